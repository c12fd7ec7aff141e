"""The dbt models on Spark (target `spark`, dbt-spark's session method): every mart matches DuckDB's row for
row on the same raw files, as the steps after the warehouse read it.

The Spark side is built as Dagster builds it (the `warehouse_models` asset with the settings' engine
`spark`), which publishes Spark's Parquet tables as views in the home's DuckDB file; the marts are read
back through those views, so the test covers what every reader sees: the same columns with the same
DuckDB types (but JSON, which Spark writes as text), and the same values.

How values are compared: rows are matched on the mart's key; text, integers and booleans must be equal;
doubles to 1e-9 relative (the engines sum and average in different orders); timestamps as UTC instants
to the microsecond (both are naive UTC through the views); the JSON columns as parsed objects
with every value as its text (Spark has no JSON type, so a number comes back as its text) and a timestamp
with an offset as its UTC instant (the engines print them differently); a history list
element by element with the same rules.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from fashionrec.settings import DBT_PROJECT_DIR, PROJECT_ROOT

pytestmark = pytest.mark.slow

# mart -> the columns that identify a row
MART_KEYS = {
    "items": ["item_id"],
    "sessions": ["session_key"],
    "query_listings": ["query_norm", "item_id"],
    "user_sequences": ["event_id"],
    "splits": ["target_id"],
    "prompt_inputs": ["target_id"],
    "quarantine": ["source", "source_row_number"],
}
JSON_COLUMNS = {"attributes", "raw_row"}


def _dbt_build(home: Path, raw_dir: Path, target: str) -> None:
    from warehouse.raw_files import dbt_env

    env = os.environ | dbt_env(home, raw_dir) | {"FASHIONREC_WAREHOUSE": target}
    dbt = Path(sys.executable).with_name("dbt")
    proc = subprocess.run(
        [
            str(dbt),
            "build",
            "--selector",
            "warehouse",
            "--project-dir",
            str(DBT_PROJECT_DIR),
            "--profiles-dir",
            str(DBT_PROJECT_DIR),
            "--target-path",
            str(home / "dbt_target"),
            "--log-path",
            str(home / "dbt_logs"),
        ],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


def _spark_build(home: Path, raw_dir: Path) -> None:
    """The warehouse asset on the engine `spark`, as `FASHIONREC_WAREHOUSE=spark fashionrec run` runs it."""
    import dagster as dg

    from assets.dbt import dbt_resource, warehouse_models
    from assets.resources import PipelineSettings, pipeline_resources

    settings = PipelineSettings(home=str(home), raw_dir=str(raw_dir), preset="tiny", warehouse="spark")
    result = dg.materialize(
        [warehouse_models], resources={"dbt": dbt_resource(), **pipeline_resources(settings)}
    )
    assert result.success


def _column_types(con, relation: str) -> dict[str, str]:
    return {name: kind for name, kind, *_ in con.execute(f"describe {relation}").fetchall()}


def _normal(value, column: str):
    if value is None:
        return None
    if column in JSON_COLUMNS:
        parsed = json.loads(value)
        if isinstance(parsed, dict):
            return {key: _text(member) for key, member in parsed.items() if member is not None}
        return parsed
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
    if isinstance(value, dict):
        return {key: _normal(member, key) for key, member in value.items()}
    if isinstance(value, list):
        return [_normal(member, column) for member in value]
    return value


def _text(member) -> str:
    """A JSON member as text; a timestamp as its UTC instant, since the engines write them differently
    ('2024-01-09 19:37:45.95085+00' and '2024-01-09T19:37:45.950850Z')."""
    if not isinstance(member, str):
        return json.dumps(member)
    try:
        instant = datetime.fromisoformat(member)
    except ValueError:
        return member
    if instant.tzinfo is None:
        return member
    return instant.astimezone(UTC).isoformat()


def _equal(left, right) -> bool:
    if isinstance(left, float) and isinstance(right, float):
        return math.isclose(left, right, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(_equal(left[k], right[k]) for k in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(_equal(a, b) for a, b in zip(left, right, strict=True))
    return left == right


def _rows(con, relation: str, keys: list[str]) -> tuple[list[str], dict[tuple, dict]]:
    cursor = con.execute(f"select * from {relation} order by {', '.join(keys)}")
    columns = [d[0] for d in cursor.description]
    rows = {}
    for record in cursor.fetchall():
        row = {c: _normal(v, c) for c, v in zip(columns, record, strict=True)}
        rows[tuple(row[k] for k in keys)] = row
    return columns, rows


def _as_text_files(raw_dir: Path) -> None:
    """The generator's Parquet files rewritten as events.csv and items.jsonl (Spark reads those two through
    temporary views, Parquet inline)."""
    import duckdb

    with duckdb.connect() as con:
        for entity, extension, options in (("events", "csv", "header"), ("items", "jsonl", "format json")):
            parquet = raw_dir / f"{entity}.parquet"
            con.execute(f"copy (select * from '{parquet}') to '{raw_dir / entity}.{extension}' ({options})")
            parquet.unlink()


@pytest.mark.parametrize("raw_format", ["parquet", "csv_and_jsonl"])
def test_every_mart_is_the_same_on_spark_and_duckdb(tmp_path: Path, raw_format: str):
    assert shutil.which("java"), "Spark needs a Java runtime on PATH: `make java` installs one"
    import duckdb

    from warehouse.generator import generate

    raw_dir = tmp_path / "raw"
    generate("tiny", raw_dir, seed=0, images=False)
    if raw_format == "csv_and_jsonl":
        _as_text_files(raw_dir)
    duck_home, spark_home = tmp_path / "duckdb", tmp_path / "spark"
    _dbt_build(duck_home, raw_dir, "duckdb")
    _spark_build(spark_home, raw_dir)

    tables = spark_home / "spark" / "tables" / "fashionrec.db"
    with (
        duckdb.connect(str(duck_home / "fashionrec.duckdb"), read_only=True) as con,
        duckdb.connect(str(spark_home / "fashionrec.duckdb"), read_only=True) as published,
    ):
        for mart, keys in MART_KEYS.items():
            assert sorted((tables / mart).glob("*.parquet")), (
                f"Spark wrote no Parquet files for {mart} under {tables}"
            )
            duck_types, spark_types = _column_types(con, mart), _column_types(published, mart)
            assert list(spark_types) == list(duck_types), mart
            for column, kind in duck_types.items():
                expected = "VARCHAR" if column in JSON_COLUMNS else kind
                assert spark_types[column] == expected, (mart, column, spark_types[column], kind)
            duck_columns, duck_rows = _rows(con, mart, keys)
            spark_columns, spark_rows = _rows(published, mart, keys)
            assert len(duck_rows) > 0, mart
            assert spark_rows.keys() == duck_rows.keys(), mart
            for key, row in duck_rows.items():
                other = spark_rows[key]
                different = [c for c in duck_columns if not _equal(row[c], other[c])]
                assert not different, (mart, key, {c: (row[c], other[c]) for c in different})
        views = published.execute("select count(*) from information_schema.tables where table_type = 'VIEW'")
        assert views.fetchone()[0] == len(list(tables.iterdir())), "every model Spark built is published"
