"""Materialize a Dagster selection of the code location outside the UI (``fashionrec run``, tests, demo).

Runs go to the persistent Dagster instance in ``$DAGSTER_HOME`` (default ``$FASHIONREC_HOME/dagster_home``),
so ``make ui`` shows every run that the CLI made, with its metadata and asset-check results.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from dagster import (
    AssetKey,
    AssetSelection,
    DagsterInstance,
    DagsterInvalidConfigError,
    ExecuteInProcessResult,
    JobDefinition,
    validate_run_config,
)

from fashionrec.settings import paths

FAILURE_PREFIX = "dagster._core.definitions.events.Failure: "


class RunConfigError(ValueError):
    """Run configuration that Dagster would reject, said before anything runs."""


@dataclass
class RunSummary:
    run_id: str
    success: bool
    materialized: list[str] = field(default_factory=list)
    row_counts: dict[str, int] = field(default_factory=dict)
    checks_passed: int = 0
    checks_failed: list[str] = field(default_factory=list)
    step_failures: list[str] = field(default_factory=list)  # "step: what went wrong", for the terminal


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


def load_run_config(path: Path) -> dict[str, Any]:
    """A Dagster run config from a YAML (or JSON) file, as the UI's launchpad takes it:
    ``ops: {op_name: {config: {...}}}``."""
    try:
        loaded = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as error:
        raise RunConfigError(f"cannot read run config {path}: {error}") from error
    if not isinstance(loaded, dict):
        raise RunConfigError(
            f"run config {path} must be a mapping such as `ops: {{prompts: {{config: ...}}}}`"
        )
    return loaded


def check_run_config(job: JobDefinition, keys: list[AssetKey], run_config: Mapping[str, Any]) -> None:
    """Raise :class:`RunConfigError` when ``run_config`` does not fit the ops that ``keys`` run."""
    subset = job.get_subset(asset_selection=set(keys))
    ops = run_config.get("ops") or {}
    if not isinstance(ops, Mapping):
        raise RunConfigError("run config `ops` must map op names to `{config: {...}}`")
    # Dagster accepts config for ops the selection leaves out and silently ignores it
    running = {node.name for node in subset.graph.node_defs}
    idle = sorted(set(ops) - running)
    if idle:
        raise RunConfigError(
            f"run config sets op(s) {idle}, which this selection does not run; it runs {sorted(running)}"
        )
    try:
        validate_run_config(subset, dict(run_config))
    except DagsterInvalidConfigError as error:
        problems = "\n".join(f"  - {e.message}" for e in error.errors)
        raise RunConfigError(f"invalid run config:\n{problems}") from error


def materialize_selection(
    selection: str | None = None,
    instance: DagsterInstance | None = None,
    log_level: str = "INFO",
    run_config: Mapping[str, Any] | None = None,
    tags: Mapping[str, str] | None = None,
) -> RunSummary:
    """Materialize the selected assets (and run their checks) with the definitions the UI shows.

    ``run_config`` is Dagster's (``ops: {op: {config: ...}}``), checked before the run starts; the
    console logger is set to ``log_level`` unless it sets loggers itself. ``tags`` label the run in the UI.
    """
    from assets.definitions import build_defs

    defs = build_defs()  # resources follow this process's FASHIONREC_HOME
    keys = resolve_selection(selection)
    job = defs.resolve_implicit_global_asset_job_def()
    config = {"loggers": {"console": {"config": {"log_level": log_level}}}, **(run_config or {})}
    if run_config:
        check_run_config(job, keys, config)
    result: ExecuteInProcessResult = job.execute_in_process(
        instance=instance or persistent_instance(),
        asset_selection=keys,
        raise_on_error=False,
        run_config=config,
        tags=dict(tags or {}),
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
    for event in result.get_step_failure_events():
        error = event.event_specific_data.error if event.event_specific_data else None
        message = error.message.strip() if error else "failed"
        # a dg.Failure is the asset's own explanation; its class path only hides it
        summary.step_failures.append(f"{event.step_key}: {message.removeprefix(FAILURE_PREFIX)}")
    for event in result.get_asset_check_evaluations():
        if event.passed:
            summary.checks_passed += 1
        else:
            summary.checks_failed.append(f"{event.asset_key.to_user_string()}:{event.check_name}")
    return summary
