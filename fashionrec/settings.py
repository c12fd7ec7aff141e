"""Where fashionrec reads and writes, and at which scale, from environment variables.

``FASHIONREC_HOME`` (default ``warehouse/``), ``FASHIONREC_RAW_DIR`` (default ``$FASHIONREC_HOME/raw``),
``FASHIONREC_PRESET`` (default ``demo``) and ``FASHIONREC_WAREHOUSE`` (the dbt target, default ``duckdb``)
are read when asked for, not at import time, so a test or a CLI call that sets them before running sees its
own directory. The names under the home are ``fashionrec.layout``'s. Imports nothing of the project but its
two neighbours.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from fashionrec.layout import (
    ARTIFACTS_DIR,
    DAGSTER_HOME_DIR,
    DUCKDB_FILE,
    LANCEDB_DIR,
    RAW_DIR,
    REPORTS_DIR,
    SPARK_DIR,
    SPARK_TABLES_DIR,
    ArtifactLayout,
    ReportLayout,
)
from fashionrec.presets import DEFAULT_PRESET, Preset, get_preset

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"


@dataclass(frozen=True)
class Paths:
    """Absolute locations of everything the pipeline reads or writes."""

    home: Path
    raw_dir: Path

    @classmethod
    def under(cls, home: str | Path, raw_dir: str | Path | None = None) -> Paths:
        """The paths of a home directory; the raw files default to ``home/raw``."""
        home = Path(home).expanduser().resolve()
        return cls(home=home, raw_dir=Path(raw_dir).expanduser().resolve() if raw_dir else home / RAW_DIR)

    @property
    def duckdb_path(self) -> Path:
        return self.home / DUCKDB_FILE

    @property
    def spark_dir(self) -> Path:
        """The Spark target's catalog (a Derby metastore) and its warehouse folder."""
        return self.home / SPARK_DIR

    @property
    def spark_tables(self) -> Path:
        """Spark's warehouse folder: a table ``<schema>.<name>`` is Parquet under ``<schema>.db/<name>/``."""
        return self.spark_dir / SPARK_TABLES_DIR

    def spark_table(self, schema: str, name: str) -> Path:
        """The folder of the Spark table ``schema.name`` (Hive's layout for a managed table)."""
        return self.spark_tables / f"{schema}.db" / name

    @property
    def lancedb_dir(self) -> Path:
        return self.home / LANCEDB_DIR

    @property
    def artifacts(self) -> ArtifactLayout:
        """Model checkpoints (safetensors), tokenizers, adapters and vector manifests."""
        return ArtifactLayout(self.home / ARTIFACTS_DIR)

    @property
    def reports(self) -> ReportLayout:
        return ReportLayout(self.home / REPORTS_DIR)

    @property
    def dagster_home(self) -> Path:
        return self.home / DAGSTER_HOME_DIR


def paths() -> Paths:
    """Paths from ``FASHIONREC_HOME`` (default ``warehouse/``) and ``FASHIONREC_RAW_DIR`` (default
    ``$FASHIONREC_HOME/raw``)."""
    return Paths.under(
        os.environ.get("FASHIONREC_HOME") or PROJECT_ROOT / "warehouse", os.environ.get("FASHIONREC_RAW_DIR")
    )


# The dbt targets (profiles.yml outputs) that build the warehouse.
WAREHOUSE_ENGINES = ("duckdb", "spark")
DEFAULT_WAREHOUSE_ENGINE = "duckdb"


def check_warehouse_engine(name: str) -> str:
    """``name`` when it is one of :data:`WAREHOUSE_ENGINES`; ValueError otherwise."""
    if name not in WAREHOUSE_ENGINES:
        raise ValueError(f"warehouse engine {name!r} is none of {', '.join(WAREHOUSE_ENGINES)}")
    return name


def warehouse_engine() -> str:
    """The engine that builds the warehouse, ``FASHIONREC_WAREHOUSE`` (default ``duckdb``)."""
    try:
        return check_warehouse_engine(os.environ.get("FASHIONREC_WAREHOUSE") or DEFAULT_WAREHOUSE_ENGINE)
    except ValueError as error:
        raise ValueError(f"FASHIONREC_WAREHOUSE: {error}") from None


def preset_name() -> str:
    """The scale preset named by ``FASHIONREC_PRESET`` (``tiny``, ``demo`` or a paper-scale name); a name
    that is not a preset raises."""
    name = os.environ.get("FASHIONREC_PRESET", DEFAULT_PRESET)
    try:
        get_preset(name)
    except ValueError as error:
        raise ValueError(f"FASHIONREC_PRESET: {error}") from None
    return name


def preset() -> Preset:
    """The budgets of the preset named by ``FASHIONREC_PRESET``."""
    return get_preset(preset_name())
