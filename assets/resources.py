"""Handles to the stores the assets read and write: DuckDB (the warehouse) and LanceDB (the vectors).

Paths come from ``fashionrec.settings`` (``FASHIONREC_HOME``), so the UI, ``fashionrec run`` and the
tests all point at the same files.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dagster import ConfigurableResource
from dagster_duckdb import DuckDBResource

from fashionrec.settings import paths

if TYPE_CHECKING:
    import lancedb


class LanceDBResource(ConfigurableResource):
    """A LanceDB database directory; one writer per table, many readers."""

    uri: str

    def connect(self) -> lancedb.DBConnection:
        # imported on first use, so that loading the code location does not import LanceDB
        import lancedb

        return lancedb.connect(self.uri)


def default_duckdb() -> DuckDBResource:
    return DuckDBResource(database=str(paths().duckdb_path))


def default_lancedb() -> LanceDBResource:
    return LanceDBResource(uri=str(paths().lancedb_dir))
