"""Where the raw landing files are, and the environment dbt needs to read them.

The raw directory holds one events file and one items file, each Parquet, CSV or JSON lines
(docs/raw-data.md). dbt's sources read the absolute paths from environment variables,
and the `read_raw_rows` macro picks the reader from the extension, so callers run dbt with
``os.environ | dbt_env(home, raw_dir)``.
"""

from __future__ import annotations

from pathlib import Path

from fashionrec.settings import Paths

RAW_ENTITIES = ("events", "items")
RAW_EXTENSIONS = (".parquet", ".csv", ".jsonl", ".json")

# dbt-duckdb formats a source location with str.format_map and pastes it into SQL between single
# quotes, so these characters would change the path on the way.
_UNSAFE_PATH_CHARACTERS = ("{", "}", "'")


def _expected_names(entity: str) -> str:
    return ", ".join(f"{entity}{extension}" for extension in RAW_EXTENSIONS)


def _resolve_entity(raw_dir: Path, entity: str) -> Path:
    found = [raw_dir / f"{entity}{extension}" for extension in RAW_EXTENSIONS]
    found = [path for path in found if path.is_file()]
    if not found:
        raise FileNotFoundError(
            f"No {entity} file in {raw_dir}: expected exactly one of {_expected_names(entity)}."
        )
    if len(found) > 1:
        names = ", ".join(path.name for path in found)
        raise ValueError(
            f"Several {entity} files in {raw_dir} ({names}): keep exactly one of "
            f"{_expected_names(entity)} so that it is clear which one to load."
        )
    path = found[0]
    unsafe = [character for character in _UNSAFE_PATH_CHARACTERS if character in str(path)]
    if unsafe:
        raise ValueError(
            f"Raw file path {path} contains {' '.join(unsafe)}, which dbt-duckdb cannot pass to its "
            "reader unchanged; move the raw files to a directory whose path has none of { } '."
        )
    return path


def resolve_raw_files(raw_dir: Path) -> dict[str, Path]:
    """The absolute path of each raw file (``events``, ``items``) in ``raw_dir``.

    Raises ``FileNotFoundError`` when the directory or a file is missing, and ``ValueError`` when
    an entity has files in several formats (it would be unclear which one to load).
    """
    raw_dir = Path(raw_dir).expanduser().resolve()
    if not raw_dir.is_dir():
        raise FileNotFoundError(
            f"Raw data directory {raw_dir} does not exist; it must hold one events file "
            f"({_expected_names('events')}) and one items file ({_expected_names('items')}). "
            "Generate synthetic data or point FASHIONREC_RAW_DIR at your logs."
        )
    return {entity: _resolve_entity(raw_dir, entity) for entity in RAW_ENTITIES}


def dbt_env(home: Path, raw_dir: Path, *, require_files: bool = True) -> dict[str, str]:
    """Environment variables for a dbt run over ``raw_dir`` that writes ``home/fashionrec.duckdb``.

    FASHIONREC_HOME places the DuckDB file (profiles.yml), FASHIONREC_RAW_DIR records the landing
    directory, and FASHIONREC_RAW_EVENTS / FASHIONREC_RAW_ITEMS are the files the sources read.
    All values are absolute, so dbt may run from any working directory.

    ``require_files=False`` serves ``dbt parse`` before any raw data exists: an entity without a
    file then points at ``<raw_dir>/<entity>.parquet``, the generator's output. Runs that read the
    data keep the default, so that a missing file fails early with a message naming it.
    """
    raw_path = Path(raw_dir).expanduser().resolve()
    if require_files:
        files = resolve_raw_files(raw_path)
    else:
        files = {}
        for entity in RAW_ENTITIES:
            try:
                files[entity] = _resolve_entity(raw_path, entity)
            except FileNotFoundError:
                files[entity] = raw_path / f"{entity}.parquet"
    where = Paths.under(home, raw_path)
    return {
        "FASHIONREC_HOME": str(where.home),
        # the Spark target's catalog and tables (profiles.yml); a DuckDB build ignores them
        "FASHIONREC_SPARK_DIR": str(where.spark_dir),
        "FASHIONREC_SPARK_TABLES": str(where.spark_tables),
        "FASHIONREC_RAW_DIR": str(raw_path),
        "FASHIONREC_RAW_EVENTS": str(files["events"]),
        "FASHIONREC_RAW_ITEMS": str(files["items"]),
    }
