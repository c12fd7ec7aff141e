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
    JobExecutionResult,
    execute_job,
    validate_run_config,
)
from dagster._core.definitions.reconstruct import ReconstructableRepository

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
    # each step's (start, end) in seconds since the run's first step started, from the instance's record
    step_times: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def wall_seconds(self) -> float:
        return max((end for _, end in self.step_times.values()), default=0.0)

    def step_table(self) -> str:
        """One line per step, the longest first: its seconds and its start within the run."""
        rows = sorted(self.step_times.items(), key=lambda item: -(item[1][1] - item[1][0]))
        width = max((len(step) for step in self.step_times), default=0)
        lines = [
            f"  {step:<{width}}  {end - start:7.1f} s  (from {start:6.1f} s)" for step, (start, end) in rows
        ]
        return "\n".join([*lines, f"  {'all steps':<{width}}  {self.wall_seconds:7.1f} s wall"])


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
    parallel: int = 1,
) -> RunSummary:
    """Materialize the selected assets (and run their checks) with the definitions the UI shows.

    ``run_config`` is Dagster's (``ops: {op: {config: ...}}``), checked before the run starts; the
    console logger is set to ``log_level`` unless it sets loggers itself. ``tags`` label the run in the UI.
    ``parallel`` > 1 runs each step in its own process, that many at once (:func:`multiprocess_config`);
    that needs a persistent ``instance`` (``DAGSTER_HOME``, or ``dagster.instance_for_test``).
    """
    from assets.definitions import build_defs

    if parallel < 1:
        raise RunConfigError(f"parallel must be 1 or more, not {parallel}")
    defs = build_defs()  # resources follow this process's FASHIONREC_HOME
    keys = resolve_selection(selection)
    job = defs.resolve_implicit_global_asset_job_def()
    config = {"loggers": {"console": {"config": {"log_level": log_level}}}, **(run_config or {})}
    if parallel > 1:
        config.setdefault("execution", multiprocess_config(parallel))
    if run_config or parallel > 1:
        check_run_config(job, keys, config)
    instance = instance or persistent_instance()
    how = {
        "instance": instance,
        "asset_selection": keys,
        "raise_on_error": False,
        "run_config": config,
        "tags": dict(tags or {}),
    }
    if parallel == 1:
        result = job.execute_in_process(**how)
    else:
        # each step's process loads the code location as `dagster dev` does, from the module's `defs`
        # (dagster.reconstructable takes a job-making function, and refuses the implicit job's name)
        where = ReconstructableRepository.for_module("assets.definitions", "defs", os.getcwd())
        result = execute_job(where.get_reconstructable_job(job.name), **how)
    summary = summarize(result)
    summary.step_times = step_times(instance, result.run_id)
    return summary


def step_times(instance: DagsterInstance, run_id: str) -> dict[str, tuple[float, float]]:
    """Each finished step's (start, end), in seconds since the run's first step started."""
    stats = [s for s in instance.get_run_step_stats(run_id) if s.start_time and s.end_time]
    origin = min((s.start_time for s in stats), default=0.0)
    return {s.step_key: (s.start_time - origin, s.end_time - origin) for s in stats}


# The environment the forkserver of this process started with: Python starts one forkserver per
# process, and the steps it forks see its environment, not the caller's of a later run.
_forkserver_environment: dict[str, str] | None = None


def multiprocess_config(processes: int) -> dict[str, Any]:
    """Run config for Dagster's multiprocess executor: ``processes`` steps at once, each in a process
    forked from a server that has imported the code location once (a spawned step spends ~5 s importing
    dagster-dbt, pandas and the definitions before its work). Steps tagged ``assets.config.CRITICAL_PATH``
    start first. Every step may run beside any other: DuckDB steps wait for the warehouse's lock
    (``assets.resources.WarehouseDuckDB``, dbt's profile retries too), LanceDB tables have one writer
    each, and on 2 cores and 24 GiB the largest step (QLoRA, ~12 GB) fits beside any other.

    A second parallel run in the same process with other ``FASHIONREC_*`` settings (a test, a study over
    several homes) spawns its steps instead, since the forkserver's preloaded definitions and
    environment are those of the first."""
    global _forkserver_environment
    environment = {name: value for name, value in os.environ.items() if name.startswith("FASHIONREC_")}
    if _forkserver_environment is None:
        _forkserver_environment = environment
    if environment == _forkserver_environment:
        start = {"forkserver": {"preload_modules": ["dagster", "assets.definitions"]}}
    else:
        start = {"spawn": {}}
    return {"config": {"multiprocess": {"max_concurrent": processes, "start_method": start}}}


def summarize(result: ExecuteInProcessResult | JobExecutionResult) -> RunSummary:
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
