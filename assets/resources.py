"""What the assets are given: the pipeline's settings (paths, artifact layout, preset budgets) and
handles to the stores they read and write, DuckDB (the warehouse) and LanceDB (the vectors).

Assets never read environment variables themselves: ``build_defs`` resolves ``FASHIONREC_*`` once into
these resources, so the UI, ``fashionrec run`` and the tests point at the same files, and a test that
passes its own resources needs no environment at all.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import duckdb
from dagster import ConfigurableResource
from dagster_duckdb import DuckDBResource

from fashionrec.layout import ArtifactLayout, ReportLayout
from fashionrec.presets import Preset, get_preset
from fashionrec.settings import (
    DEFAULT_WAREHOUSE_ENGINE,
    Paths,
    check_warehouse_engine,
    paths,
    preset_name,
    warehouse_engine,
)

if TYPE_CHECKING:
    import lancedb


class WarehouseDuckDB(DuckDBResource):
    """dagster-duckdb's resource, waiting for the warehouse while another process writes it, and closing
    its connection when the block raises too.

    DuckDB lets one process at a time open a file for writing; a second is refused at once ("Could not
    set lock on file"). Under the multiprocess executor (``fashionrec run --parallel``) two steps may
    reach for the warehouse together, so a refused connection is retried, with jitter, until
    ``lock_wait_seconds`` have passed (dagster-duckdb's own retry gives up after ~100 s, and its
    connection stays open when the block raises). Every asset holds its connection only to read its
    inputs or write its table, never while it trains, so the wait is seconds.
    """

    lock_wait_seconds: float = 900.0

    @contextmanager
    def get_connection(self) -> Iterator:
        con = connect_when_free(self.database, self.connection_config, self.lock_wait_seconds)
        try:
            yield con
        finally:
            con.close()


def connect_when_free(database: str, config: dict, wait_seconds: float) -> duckdb.DuckDBPyConnection:
    """A read-write connection to ``database``, retried while another process holds its lock; raises
    the lock error, naming the wait, once ``wait_seconds`` are spent."""
    deadline = time.monotonic() + wait_seconds
    delay = 0.05
    while True:
        try:
            return duckdb.connect(database, read_only=False, config=config)
        except duckdb.IOException as error:
            if "lock" not in str(error).lower():
                raise
            if time.monotonic() + delay > deadline:
                raise duckdb.IOException(
                    f"{error} (waited {wait_seconds:.0f} s for the other process to close it)"
                ) from error
        time.sleep(delay * random.uniform(0.5, 1.5))
        delay = min(delay * 2, 2.0)


class PipelineSettings(ConfigurableResource):
    """Where the pipeline reads and writes, the preset whose budgets unset config fields take, and the
    engine (dbt target) that builds the warehouse."""

    home: str
    raw_dir: str
    preset: str
    warehouse: str = DEFAULT_WAREHOUSE_ENGINE

    @classmethod
    def from_env(cls) -> PipelineSettings:
        """``FASHIONREC_HOME``, ``FASHIONREC_RAW_DIR``, ``FASHIONREC_PRESET`` and ``FASHIONREC_WAREHOUSE`` as
        they are now."""
        now = paths()
        return cls(
            home=str(now.home), raw_dir=str(now.raw_dir), preset=preset_name(), warehouse=warehouse_engine()
        )

    @property
    def warehouse_engine(self) -> str:
        """``warehouse``, checked: ``duckdb`` or ``spark``."""
        return check_warehouse_engine(self.warehouse)

    @property
    def paths(self) -> Paths:
        return Paths.under(self.home, self.raw_dir)

    @property
    def artifacts(self) -> ArtifactLayout:
        return self.paths.artifacts

    @property
    def reports(self) -> ReportLayout:
        return self.paths.reports

    @property
    def budgets(self) -> Preset:
        """The preset's budget for every stage (raises on a name that is not a preset)."""
        return get_preset(self.preset)


class LanceDBResource(ConfigurableResource):
    """A LanceDB database directory; one writer per table, many readers."""

    uri: str

    def connect(self) -> lancedb.DBConnection:
        # imported on first use, so that loading the code location does not import LanceDB
        import lancedb

        return lancedb.connect(self.uri)


def pipeline_resources(settings: PipelineSettings) -> dict[str, ConfigurableResource]:
    """The ``settings``, ``duckdb`` and ``lancedb`` resources of one home (the ``dbt`` resource is
    ``assets.dbt``'s)."""
    where = settings.paths
    return {
        "settings": settings,
        "duckdb": WarehouseDuckDB(database=str(where.duckdb_path)),
        "lancedb": LanceDBResource(uri=str(where.lancedb_dir)),
    }
