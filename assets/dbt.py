"""The dbt project as Dagster assets: every model is an asset in group ``warehouse``, every dbt test an
asset check (dagster-dbt's default), and the raw files are the project's sources."""

import os
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from dagster import AssetExecutionContext
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets

from assets.resources import PipelineSettings, WarehouseDuckDB
from fashionrec.settings import DBT_PROJECT_DIR, paths
from warehouse import spark_tables
from warehouse.raw_files import dbt_env

WAREHOUSE_GROUP = "warehouse"

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)


def _project_sources(project_dir: Path) -> Iterator[Path]:
    yield project_dir / "dbt_project.yml"
    for folder in ("models", "macros", "tests", "analyses", "seeds", "snapshots"):
        yield from (p for p in (project_dir / folder).rglob("*") if p.is_file())


def ensure_manifest(project: DbtProject = dbt_project) -> Path:
    """Parse the dbt project when its manifest is missing or older than any of its files.

    dagster-dbt reads the manifest at import time; ``prepare_if_dev`` only refreshes it under
    ``dagster dev``, while ``fashionrec run`` and the tests load the same definitions outside it.
    """
    manifest = Path(project.manifest_path)
    newest = max(p.stat().st_mtime for p in _project_sources(Path(project.project_dir)) if p.exists())
    if manifest.exists() and manifest.stat().st_mtime >= newest:
        return manifest
    from dbt.cli.main import dbtRunner

    # Parsing needs no raw data: a fresh clone has none yet.
    os.environ.update(dbt_env(paths().home, paths().raw_dir, require_files=False))
    result = dbtRunner().invoke(
        [
            "parse",
            "--quiet",
            "--project-dir",
            str(project.project_dir),
            "--profiles-dir",
            str(project.profiles_dir),
            "--target-path",
            str(project.target_path),
        ]
    )
    if not result.success:
        raise RuntimeError(f"dbt parse failed for {project.project_dir}: {result.exception}")
    return manifest


class GroupTranslator(DagsterDbtTranslator):
    """Puts every selected dbt model in one asset group; keys stay the model names."""

    def __init__(self, group: str):
        super().__init__()
        self.group = group

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return self.group


def _build(context: AssetExecutionContext, dbt: DbtCliResource, settings: PipelineSettings, target: str):
    """``dbt build`` of the context's models on the profile's output ``target``; the invocation."""
    # dbt reads the raw-file locations and the DuckDB path from the environment (profiles.yml,
    # sources): the dbt process gets those of the settings resource.
    where = settings.paths
    where.home.mkdir(parents=True, exist_ok=True)
    os.environ.update(dbt_env(where.home, where.raw_dir))
    return dbt.cli(["build", "--target", target], context=context)


# The evaluation marts read tables that the Python evaluation assets write, so they are a separate
# dbt asset definition downstream of those, in the `evaluation` group.
EVALUATION_MODELS = "tag:evaluation"


@dbt_assets(
    manifest=ensure_manifest(),
    project=dbt_project,
    exclude=EVALUATION_MODELS,
    dagster_dbt_translator=GroupTranslator(WAREHOUSE_GROUP),
)
def warehouse_models(
    context: AssetExecutionContext, dbt: DbtCliResource, settings: PipelineSettings, duckdb: WarehouseDuckDB
):
    """dbt build: staging, quarantine, intermediate and marts, with their tests as asset checks, on the
    settings' engine. A Spark build is then published to the steps after it as DuckDB views over its
    Parquet tables (``warehouse.spark_tables``)."""
    invocation = _build(context, dbt, settings, settings.warehouse_engine)
    yield from invocation.stream()
    if settings.warehouse_engine == "spark":
        artifacts = (invocation.get_artifact(name) for name in ("run_results.json", "manifest.json"))
        with duckdb.get_connection() as con:
            published = spark_tables.publish_build(con, settings.paths, *artifacts)
        context.log.info(f"Spark's tables published as DuckDB views: {', '.join(published)}")


@dbt_assets(
    manifest=ensure_manifest(),
    project=dbt_project,
    select=EVALUATION_MODELS,
    dagster_dbt_translator=GroupTranslator("evaluation"),
)
def evaluation_marts(context: AssetExecutionContext, dbt: DbtCliResource, settings: PipelineSettings):
    """dbt build of the analyst marts over the evaluation tables (leaderboard, slices, run history). Always
    on DuckDB, whatever engine built the warehouse: the evaluation steps write their tables there."""
    yield from _build(context, dbt, settings, "duckdb").stream()


def dbt_resource() -> DbtCliResource:
    # The dbt next to this interpreter, so a run works whether or not the venv is on PATH.
    beside = Path(sys.executable).with_name("dbt")
    return DbtCliResource(project_dir=dbt_project, dbt_executable=str(beside) if beside.exists() else "dbt")
