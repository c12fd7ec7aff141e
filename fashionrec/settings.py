"""Where fashionrec reads and writes, from environment variables (DESIGN.md "Interfaces").

Every path is resolved when asked for, not at import time, so a test or a CLI call that sets
``FASHIONREC_HOME`` before running sees its own directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"

PRESET_NAMES = ("tiny", "demo", "luggage", "footwear", "accessories", "clothing")
DEFAULT_PRESET = "demo"


@dataclass(frozen=True)
class Paths:
    """Absolute locations of everything the pipeline reads or writes."""

    home: Path
    raw_dir: Path

    @property
    def duckdb_path(self) -> Path:
        return self.home / "fashionrec.duckdb"

    @property
    def lancedb_dir(self) -> Path:
        return self.home / "lancedb"

    @property
    def artifacts_dir(self) -> Path:
        """Model checkpoints (safetensors), tokenizers and adapters."""
        return self.home / "artifacts"

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster_home"


def paths() -> Paths:
    """Paths from ``FASHIONREC_HOME`` (default ``warehouse/``) and ``FASHIONREC_RAW_DIR`` (default
    ``$FASHIONREC_HOME/raw``)."""
    home = Path(os.environ.get("FASHIONREC_HOME") or PROJECT_ROOT / "warehouse").expanduser().resolve()
    raw = os.environ.get("FASHIONREC_RAW_DIR")
    raw_dir = Path(raw).expanduser().resolve() if raw else home / "raw"
    return Paths(home=home, raw_dir=raw_dir)


def preset() -> str:
    """The scale preset from ``FASHIONREC_PRESET`` (``tiny``, ``demo`` or a paper-scale name)."""
    name = os.environ.get("FASHIONREC_PRESET", DEFAULT_PRESET)
    if name not in PRESET_NAMES:
        raise ValueError(
            f"FASHIONREC_PRESET={name!r} is not a preset; expected one of {', '.join(PRESET_NAMES)}"
        )
    return name
