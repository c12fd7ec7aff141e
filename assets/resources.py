"""What the assets are given: the pipeline's settings (paths, artifact layout, preset budgets) and
handles to the stores they read and write, DuckDB (the warehouse) and LanceDB (the vectors).

Assets never read environment variables themselves: ``build_defs`` resolves ``FASHIONREC_*`` once into
these resources, so the UI, ``fashionrec run`` and the tests point at the same files, and a test that
passes its own resources needs no environment at all.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from dagster import ConfigurableResource
from dagster_duckdb import DuckDBResource

from fashionrec.layout import ArtifactLayout, ReportLayout
from fashionrec.presets import Preset, get_preset
from fashionrec.settings import Paths, paths, preset_name

if TYPE_CHECKING:
    import lancedb


class WarehouseDuckDB(DuckDBResource):
    """dagster-duckdb's resource, whose connection is closed when the block raises too.

    ``DuckDBResource.get_connection`` closes its connection only after a block that succeeds, so a step
    that failed inside one left the warehouse open in the process until garbage collection, and the next
    connection with another configuration (a read-only one, say) was refused.
    """

    @contextmanager
    def get_connection(self) -> Iterator:
        with super().get_connection() as con:
            try:
                yield con
            finally:
                con.close()  # closing twice (again by the parent on success) is harmless


class PipelineSettings(ConfigurableResource):
    """Where the pipeline reads and writes, and the preset whose budgets unset config fields take."""

    home: str
    raw_dir: str
    preset: str

    @classmethod
    def from_env(cls) -> PipelineSettings:
        """``FASHIONREC_HOME``, ``FASHIONREC_RAW_DIR`` and ``FASHIONREC_PRESET`` as they are now."""
        now = paths()
        return cls(home=str(now.home), raw_dir=str(now.raw_dir), preset=preset_name())

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
