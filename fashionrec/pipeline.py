"""Materialize a Dagster selection of the code location outside the UI (``fashionrec run``, tests, demo).

Runs go to the persistent Dagster instance in ``$DAGSTER_HOME`` (default ``$FASHIONREC_HOME/dagster_home``),
so ``make ui`` shows every run that the CLI made, with its metadata and asset-check results.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from dagster import AssetKey, AssetSelection, DagsterInstance, ExecuteInProcessResult

from fashionrec.settings import paths


@dataclass
class RunSummary:
    run_id: str
    success: bool
    materialized: list[str] = field(default_factory=list)
    row_counts: dict[str, int] = field(default_factory=dict)
    checks_passed: int = 0
    checks_failed: list[str] = field(default_factory=list)


def persistent_instance() -> DagsterInstance:
    """The instance under ``DAGSTER_HOME``, created on first use under ``$FASHIONREC_HOME``."""
    if not os.environ.get("DAGSTER_HOME"):
        home = paths().dagster_home
        home.mkdir(parents=True, exist_ok=True)
        os.environ["DAGSTER_HOME"] = str(home)
    return DagsterInstance.get()


def resolve_selection(selection: str | None) -> list[AssetKey]:
    """Asset keys for a Dagster selection string (``group:warehouse``, ``key:prompts+`` ...); all when
    None."""
    from assets.definitions import defs

    graph = defs.resolve_asset_graph()
    chosen = AssetSelection.from_string(selection) if selection else AssetSelection.all()
    # Assets computed in one step (the evaluation tables) are materialized together.
    chosen = chosen.required_multi_asset_neighbors()
    keys = sorted(chosen.resolve(graph), key=lambda k: k.to_user_string())
    if not keys:
        raise ValueError(f"selection {selection!r} matches no asset; see `fashionrec assets` for the list")
    return keys


def materialize_selection(
    selection: str | None = None, instance: DagsterInstance | None = None, log_level: str = "INFO"
) -> RunSummary:
    """Materialize the selected assets (and run their checks) with the definitions the UI shows."""
    from assets.definitions import build_defs

    defs = build_defs()  # resources follow this process's FASHIONREC_HOME
    keys = resolve_selection(selection)
    job = defs.resolve_implicit_global_asset_job_def()
    result: ExecuteInProcessResult = job.execute_in_process(
        instance=instance or persistent_instance(),
        asset_selection=keys,
        raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
    )
    return summarize(result)


def summarize(result: ExecuteInProcessResult) -> RunSummary:
    summary = RunSummary(run_id=result.run_id, success=result.success)
    for event in result.get_asset_materialization_events():
        mat = event.materialization
        name = mat.asset_key.to_user_string()
        summary.materialized.append(name)
        count = mat.metadata.get("dagster/row_count")
        if count is not None:
            summary.row_counts[name] = int(count.value)
    for event in result.get_asset_check_evaluations():
        if event.passed:
            summary.checks_passed += 1
        else:
            summary.checks_failed.append(f"{event.asset_key.to_user_string()}:{event.check_name}")
    return summary
