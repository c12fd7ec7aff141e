"""``fashionrec study NAME``: run a study's steps in order, then print its table (``cli.study_spec``).

Each step is one Dagster run of the definitions the UI shows (so ``make ui`` lists them, tagged with the
study), with the step's config as run config. Every evaluation step is labelled ``study:<name>``, so
the study's rows are found again in ``eval_runs`` and the ``eval_run_history`` mart, and what the study
skipped is written into the run's configuration (``notes``). The table is read back from
``eval_metrics`` for exactly the evaluation runs this invocation made.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb
import yaml
from dagster import AssetKey, AssetObservation, DagsterInstance, MetadataValue

from cli.runs import RunConfigError, check_run_config, materialize_selection, persistent_instance
from cli.study_report import StudyReport, write_study_report
from cli.study_spec import Requires, Study, StudyError, load_study
from fashionrec.settings import paths, preset_name

EVALUATION_OP = "evaluation"  # the multi-asset step that writes recommendations, eval_ranks, eval_metrics
LABEL_PREFIX = "study:"
_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass
class PlannedStep:
    name: str
    selection: str
    run_config: dict[str, Any]  # Dagster's: {"ops": {op: {"config": {...}}}}
    skipped: str = ""  # why the step does not run; empty when it runs
    evaluates: bool = False


@dataclass
class StudyPlan:
    name: str
    study: Study
    label: str
    steps: list[PlannedStep] = field(default_factory=list)

    @property
    def skipped(self) -> dict[str, str]:
        return {step.name: step.skipped for step in self.steps if step.skipped}


@dataclass
class StudyResult:
    plan: StudyPlan
    evaluation_run_ids: list[str]
    report: StudyReport


def warehouse_categories() -> set[str] | None:
    """The item categories of the warehouse, or None when it is not built yet (or a running pipeline
    holds it: then the assets themselves refuse a missing category)."""
    path = paths().duckdb_path
    if not path.exists():
        return None
    try:
        with duckdb.connect(str(path), read_only=True) as con:
            tables = {
                name for (name,) in con.execute("select table_name from information_schema.tables").fetchall()
            }
            if "items" not in tables:
                return None
            return {row[0] for row in con.execute("select distinct category from items").fetchall()}
    except duckdb.IOException:
        return None


def parse_overrides(items: Sequence[str]) -> list[tuple[str, str, Any]]:
    """``ASSET.FIELD=VALUE`` (VALUE read as YAML: 8, 0.5, [test], true) -> (asset, field, value)."""
    out = []
    for item in items:
        target, sep, value = item.partition("=")
        asset, dot, name = target.strip().partition(".")
        if not (sep and dot and asset and name):
            raise StudyError(
                f"--set {item!r}: expected ASSET.FIELD=VALUE, e.g. lora_adapter.max_train_prompts=8"
            )
        try:
            out.append((asset, name, yaml.safe_load(value)))
        except yaml.YAMLError as error:
            raise StudyError(f"--set {item!r}: the value is not valid YAML: {error}") from error
    return out


def _missing(requires: Requires, categories: set[str] | None) -> str:
    """Why ``requires`` is not met, or '' when it is (categories are not checked without a warehouse)."""
    reasons = [f"{name} is not set" for name in requires.env if not os.environ.get(name)]
    if categories is not None:
        absent = [name for name in requires.categories if name not in categories]
        if absent:
            reasons.append(
                f"the warehouse has no {', '.join(absent)} (it holds {', '.join(sorted(categories))})"
            )
    if not reasons:
        return ""
    return "; ".join(reasons) + (f". {requires.hint}" if requires.hint else "")


def _substitute(value: Any, step: str) -> Any:
    """``${NAME}`` in config strings -> the environment variable's value (an unset one is an error)."""
    if isinstance(value, dict):
        return {key: _substitute(item, step) for key, item in value.items()}
    if isinstance(value, list):
        return [_substitute(item, step) for item in value]
    if not isinstance(value, str):
        return value

    def lookup(match: re.Match) -> str:
        if not os.environ.get(match.group(1)):
            raise StudyError(
                f"step {step!r} uses ${{{match.group(1)}}}, which is not set; list it in `requires.env`"
            )
        return os.environ[match.group(1)]

    return _ENV_REFERENCE.sub(lookup, value)


def plan_study(name: str, overrides: Sequence[str] = (), categories: set[str] | None = None) -> StudyPlan:
    """Validate a study against the code location and resolve what each step runs with which config.

    ``overrides`` (``ASSET.FIELD=VALUE``) set a config field in every step that materializes the asset;
    ``categories`` are the warehouse's (read from it when None; unchecked before it is built).
    """
    from assets.definitions import defs
    from cli.runs import resolve_selection

    study_name, path, study = load_study(name)
    plan = StudyPlan(study_name, study, LABEL_PREFIX + study_name)
    categories = categories if categories is not None else warehouse_categories()
    missing = _missing(study.requires, categories)
    if missing:
        raise StudyError(f"study {study_name!r} cannot run here (preset {preset_name()}): {missing}")

    graph = defs.resolve_asset_graph()
    op_of = {
        key.to_user_string(): defs.resolve_assets_def(key).node_def.name
        for key in graph.get_all_asset_keys()
        if graph.get(key).is_materializable
    }
    op_of.update({op: op for op in set(op_of.values())})  # an op may be named directly (evaluation)
    job = defs.resolve_implicit_global_asset_job_def()
    pending = parse_overrides(overrides)
    unused = {(asset, field) for asset, field, _ in pending}
    for step in study.steps:
        where = f"{path.name}, step {step.name!r}"
        try:
            keys = resolve_selection(step.selection)
        except ValueError as error:
            raise StudyError(f"{where}: {error}") from error
        running = {op_of[key.to_user_string()] for key in keys}
        ops: dict[str, dict[str, Any]] = {}
        for asset, config in step.config.items():
            if asset not in op_of:
                raise StudyError(
                    f"{where}: config for {asset!r}, which is not an asset; see `fashionrec assets`"
                )
            if op_of[asset] not in running:
                raise StudyError(
                    f"{where}: config for {asset!r}, but {step.selection!r} does not materialize it"
                )
            if op_of[asset] in ops:
                raise StudyError(f"{where}: {asset!r} and another key both configure step {op_of[asset]!r}")
            ops[op_of[asset]] = dict(config)
        skipped = _missing(step.requires, categories)
        ops = {} if skipped else _substitute(ops, step.name)
        for asset, name, value in pending:
            if asset in op_of and op_of[asset] in running:
                ops.setdefault(op_of[asset], {})[name] = value
                unused.discard((asset, name))
        evaluates = EVALUATION_OP in running
        if evaluates:
            if ops.get(EVALUATION_OP, {}).get("label", plan.label) != plan.label:
                raise StudyError(f"{where}: the study labels its evaluations {plan.label!r}; remove `label`")
            ops.setdefault(EVALUATION_OP, {})["label"] = plan.label
        run_config = {"ops": {op: {"config": config} for op, config in ops.items()}}
        if not skipped:
            try:
                check_run_config(job, keys, run_config)
            except RunConfigError as error:
                raise StudyError(f"{where}: {error}") from error
        plan.steps.append(PlannedStep(step.name, step.selection, run_config, skipped, evaluates))
    if unused:
        names = ", ".join(f"{asset}.{field}" for asset, field in sorted(unused))
        raise StudyError(f"--set {names}: no step of study {study_name!r} materializes that asset")
    if plan.skipped:
        # the evaluation runs carry what the study left out, so their rows never pass for a full study
        notes = "skipped: " + "; ".join(f"{step} ({reason})" for step, reason in plan.skipped.items())
        for step in plan.steps:
            if step.evaluates and not step.skipped:
                config = step.run_config["ops"][EVALUATION_OP]["config"]
                config["notes"] = "; ".join(filter(None, [config.get("notes", ""), notes]))
    return plan


def describe_plan(plan: StudyPlan) -> str:
    """The steps as `fashionrec run SELECTION --config FILE` would take them (``--dry-run``)."""
    lines = [f"study {plan.name}: {' '.join(plan.study.description.split())}", ""]
    for i, step in enumerate(plan.steps, start=1):
        lines.append(f"[{i}/{len(plan.steps)}] {step.name}")
        if step.skipped:
            lines.append(f"    skipped: {step.skipped}")
            continue
        lines.append(f"    fashionrec run '{step.selection}' --config <<")
        config = yaml.safe_dump(step.run_config, sort_keys=False, default_flow_style=False).rstrip()
        lines.extend("      " + line for line in config.splitlines())
    return "\n".join(lines)


def run_study(
    plan: StudyPlan,
    instance: DagsterInstance | None = None,
    log_level: str = "WARNING",
    echo: Callable[[str], None] = print,
) -> StudyResult:
    """Run the plan's steps in order, stop at the first failure, then write and print the study's table."""
    instance = instance or persistent_instance()
    run_ids: list[str] = []
    for i, step in enumerate(plan.steps, start=1):
        heading = f"[{i}/{len(plan.steps)}] {step.name}"
        if step.skipped:
            echo(f"{heading}: skipped, {step.skipped}")
            continue
        echo(f"{heading}: fashionrec run '{step.selection}'")
        summary = materialize_selection(
            step.selection,
            instance=instance,
            log_level=log_level,
            run_config=step.run_config,
            tags={"fashionrec/study": plan.name, "fashionrec/study_step": step.name},
        )
        if not summary.success:
            why = "".join(f"\n  {failure}" for failure in summary.step_failures)
            raise StudyError(
                f"study {plan.name!r} stopped: step {step.name!r} failed (run {summary.run_id}; `make ui` "
                f"shows its logs){why}"
            )
        if step.evaluates:
            run_ids.append(summary.run_id)
    if not run_ids:
        raise StudyError(f"study {plan.name!r} ran no evaluation step, so it has no table")
    report = write_study_report(plan.name, plan.study, run_ids, plan.skipped)
    echo(report.text)
    # the study's table and plot next to the evaluation's own metadata in the UI (eval_metrics' events)
    instance.report_runless_asset_event(
        AssetObservation(asset_key=AssetKey("eval_metrics"), metadata=_observation(plan, run_ids, report))
    )
    return StudyResult(plan, run_ids, report)


def _observation(plan: StudyPlan, run_ids: list[str], report: StudyReport) -> dict[str, Any]:
    from evaluation.leaderboard import png_markdown

    metadata: dict[str, Any] = {
        "study": plan.name,
        "label": plan.label,
        "evaluation_run_ids": MetadataValue.json(run_ids),
        "study_table": MetadataValue.md(report.markdown),
        "report_dir": MetadataValue.path(str(report.directory)),
    }
    if plan.skipped:
        metadata["skipped_steps"] = MetadataValue.json(plan.skipped)
    if report.plot is not None:
        metadata["study_plot"] = MetadataValue.md(png_markdown(report.plot, plan.study.plot.title))
    return metadata
