"""``fashionrec``: generate logs, materialize assets, and look at what was built."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from cli.recbole import baselines_command, export_recbole
from fashionrec.presets import PRESET_NAMES
from fashionrec.settings import paths, preset_name

# torch's CPU wheels run parallel regions on libgomp threads, which busy-wait 300,000 spins before they
# sleep. When another process shares the cores (a second run, the Dagster UI's runs, a test suite), each
# spinning thread holds a core the other needs and both crawl: on 2 cores, two training processes made
# 0.39 steps/s each by default and 3.4 with 1,000 spins, for ~6 % less alone (bench/contention.py).
# libgomp reads this when torch loads it, which in this process is later; an explicit setting wins.
os.environ.setdefault("GOMP_SPINCOUNT", "1000")

app = typer.Typer(
    help="Fashion shopping logs -> next-purchase recommendations with a fine-tuned LLM.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _check_preset(name: str) -> str:
    if name not in PRESET_NAMES:
        raise typer.BadParameter(f"{name!r} is not a preset; choose one of {', '.join(PRESET_NAMES)}")
    return name


@app.command()
def generate(
    preset: Annotated[
        str | None,
        typer.Option(
            "--preset",
            help="tiny | demo | luggage | footwear | accessories | clothing "
            "(default: $FASHIONREC_PRESET, else demo)",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Directory for events.parquet and items.parquet (default: $FASHIONREC_RAW_DIR)"),
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same files.")] = 0,
    stats: Annotated[
        bool,
        typer.Option("--stats", help="Print the four fashion properties (measured before --purchases-only)."),
    ] = False,
    purchases_only: Annotated[
        bool, typer.Option(help="Reshape as an order export: purchases only, thin items (docs/raw-data.md).")
    ] = False,
    images: Annotated[
        bool, typer.Option(help="Draw one product image per item under <out>/images (image_path).")
    ] = True,
) -> None:
    """Write deterministic synthetic fashion logs in the raw-data contract."""
    from warehouse.generator import compute_stats, format_stats, to_purchases_only
    from warehouse.generator import generate as generate_logs

    name = _check_preset(preset or preset_name())
    out_dir = (out or paths().raw_dir).resolve()
    result = generate_logs(name, out_dir, seed=seed, images=images)
    # measured before the reshape: the properties need the searches, clicks and positions it drops
    measured = "\n" + format_stats(compute_stats(out_dir)) if stats else ""
    n_events = to_purchases_only(out_dir)["events"] if purchases_only else result.n_events
    kind = "purchase events" if purchases_only else "events"
    typer.echo(
        f"wrote {out_dir}: {n_events:,} {kind}, {result.n_items:,} items, "
        f"{result.n_users:,} users ({result.seconds:.1f} s, preset {name}, seed {seed}){measured}"
    )


@app.command("stats")
def stats_command(
    raw_dir: Annotated[
        Path | None, typer.Argument(help="Raw directory (default: $FASHIONREC_RAW_DIR)")
    ] = None,
) -> None:
    """Print the fashion properties (C1-C4) of an existing raw directory."""
    from warehouse.generator import compute_stats, format_stats

    typer.echo(format_stats(compute_stats((raw_dir or paths().raw_dir).resolve())))


@app.command()
def run(
    selection: Annotated[
        str | None,
        typer.Argument(
            help="Dagster asset selection, e.g. 'group:warehouse', 'key:prompts+', '*query_memory'. "
            "Default: all."
        ),
    ] = None,
    log_level: Annotated[str, typer.Option(help="Dagster console log level.")] = "WARNING",
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            exists=True,
            dir_okay=False,
            help="Dagster run config (YAML or JSON), as the UI's launchpad takes it: "
            "`ops: {lora_adapter: {config: {adapter: users_10, train_user_fraction: 0.1}}}`.",
        ),
    ] = None,
    parallel: Annotated[
        int,
        typer.Option(
            min=1,
            help="Steps run at once, each in its own process (Dagster's multiprocess executor); "
            "1 runs every step in this process.",
        ),
    ] = 1,
    steps: Annotated[bool, typer.Option("--steps", help="Print each step's seconds after the run.")] = False,
) -> None:
    """Materialize assets (and run their checks) with the same definitions the UI shows."""
    from cli.runs import RunConfigError, load_run_config, materialize_selection

    try:
        run_config = load_run_config(config) if config else None
        summary = materialize_selection(
            selection, log_level=log_level, run_config=run_config, parallel=parallel
        )
    except RunConfigError as error:
        raise typer.BadParameter(str(error), param_hint="--config") from error
    for name in summary.materialized:
        rows = summary.row_counts.get(name)
        typer.echo(f"  materialized {name}" + (f"  ({rows:,} rows)" if rows is not None else ""))
    typer.echo(
        f"run {summary.run_id}: {len(summary.materialized)} assets, "
        f"{summary.checks_passed} checks passed, {len(summary.checks_failed)} failed"
    )
    if steps:
        typer.echo(summary.step_table())
    for failed in summary.checks_failed:
        typer.echo(f"  check failed: {failed}", err=True)
    for failure in summary.step_failures:
        typer.echo(f"  step failed: {failure}", err=True)
    if not summary.success:
        typer.echo("run failed; `make ui` shows the step logs", err=True)
        raise typer.Exit(1)


@app.command()
def study(
    name: Annotated[
        str | None,
        typer.Argument(
            help="A study of studies/ (ablations, cold_start, zero_shot, low_resource) or a YAML path."
        ),
    ] = None,
    show_list: Annotated[bool, typer.Option("--list", help="List the studies and what they run.")] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the steps and their config only.")
    ] = False,
    overrides: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="ASSET.FIELD=VALUE for every step that materializes ASSET, e.g. "
            "generations.max_prompts_per_split=50 (repeatable).",
        ),
    ] = None,
    log_level: Annotated[str, typer.Option(help="Dagster console log level.")] = "WARNING",
) -> None:
    """Run one of the paper's studies (its steps in order, as Dagster runs), then print its table."""
    from cli.study_spec import StudyError, list_studies

    if show_list or name is None:
        for study_name, description in list_studies():
            typer.echo(f"{study_name:<14} {description}")
        if name is None:
            return
    from cli.studies import describe_plan, plan_study, run_study

    try:
        plan = plan_study(name, overrides or [])
        if dry_run:
            typer.echo(describe_plan(plan))
            return
        run_study(plan, log_level=log_level, echo=typer.echo)
    except StudyError as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(1) from error


@app.command()
def assets() -> None:
    """List every asset with its group."""
    from assets.definitions import defs

    graph = defs.resolve_asset_graph()
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        if node.is_materializable:
            typer.echo(f"{node.group_name:<12} {key.to_user_string()}")


@app.command()
def tables() -> None:
    """Row counts of every table in the DuckDB warehouse."""
    from warehouse.marts import table_row_counts

    counts = table_row_counts(paths().duckdb_path)
    width = max((len(name) for name in counts), default=10)
    for name, rows in counts.items():
        typer.echo(f"{name:<{width}}  {rows:>12,}")


@app.command()
def report(
    run_id: Annotated[str | None, typer.Option(help="Evaluation run (default: the latest).")] = None,
    split: Annotated[str, typer.Option(help="test or valid")] = "test",
    slice_name: Annotated[str, typer.Option("--slice", help="all, cold_start or warm")] = "all",
) -> None:
    """Print the leaderboard of an evaluation run, per category and overall."""
    from evaluation.leaderboard import print_leaderboard

    print_leaderboard(paths().duckdb_path, run_id=run_id, split=split, slice_name=slice_name, echo=typer.echo)


@app.command()
def sql(
    query: Annotated[str, typer.Argument(help="A SQL query; the warehouse is opened read-only.")],
) -> None:
    """Run a read-only SQL query against the DuckDB warehouse and print the result."""
    import duckdb

    database = paths().duckdb_path
    if not database.exists():
        raise typer.BadParameter(
            f"no warehouse at {database}; build it with `fashionrec run 'group:warehouse'`"
        )
    with duckdb.connect(str(database), read_only=True) as con:
        relation = con.sql(query)
        if relation is not None:
            relation.show(max_width=160, max_rows=60)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on; the default keeps /reload local.")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Serve recommendations over HTTP from the latest materialized artifacts (OpenAPI docs at /docs)."""
    import uvicorn

    from serving.api import create_app
    from serving.service import RecommendationService, ServiceSettings

    settings = ServiceSettings.from_env()
    service = RecommendationService(paths(), settings)
    typer.echo(f"loading artifacts from {paths().home} ...")
    loaded = _load_service(service)
    typer.echo(
        f"loaded in {loaded.seconds:.1f} s: adapter {loaded.current.adapter_sha256}, LanceDB versions "
        f"{loaded.current.lancedb_versions}, evaluation run {loaded.current.eval_run_id}"
    )
    uvicorn.run(create_app(service), host=host, port=port, log_level=log_level)


@app.command()
def recommend(
    events: Annotated[
        Path,
        typer.Option(
            "--events",
            exists=True,
            dir_okay=False,
            help="JSON file: a list of events, or a request body "
            "{events, k, category, at}, as POST /recommend takes it.",
        ),
    ],
    k: Annotated[int | None, typer.Option(help="Items to return (overrides the file's k).")] = None,
    category: Annotated[str | None, typer.Option(help="Category to recommend in (overrides the file).")] = (
        None
    ),
) -> None:
    """Recommend for one session offline, as POST /recommend does, and print the JSON response."""
    import json

    from pydantic import ValidationError

    from serving.schemas import request_models
    from serving.service import RecommendationService, RequestFieldError, ServiceSettings

    settings = ServiceSettings.from_env()
    try:
        body = json.loads(events.read_text())
    except json.JSONDecodeError as error:
        raise typer.BadParameter(f"{events} is not JSON: {error}", param_hint="--events") from error
    body = {"events": body} if isinstance(body, list) else body
    if not isinstance(body, dict):
        raise typer.BadParameter(f"{events} must hold a list of events or an object", param_hint="--events")
    body.update({key: value for key, value in (("k", k), ("category", category)) if value is not None})
    _, request_model = request_models(settings.limits)
    try:
        request = request_model.model_validate(body)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise typer.BadParameter(problems, param_hint="--events") from error
    service = RecommendationService(paths(), settings)
    _load_service(service)
    try:
        response = service.recommend(request)
    except RequestFieldError as error:
        raise typer.BadParameter(str(error), param_hint=f"--{error.field}") from error
    typer.echo(response.model_dump_json(indent=2))


def _load_service(service):
    """Load the service's artifacts, or exit with the reason (a missing asset, a locked warehouse)."""
    import torch

    from serving.artifacts import ArtifactsUnavailable

    torch.set_num_threads(service.settings.torch_threads)  # a serving process: see ServiceSettings
    try:
        return service.reload()
    except ArtifactsUnavailable as error:
        typer.echo(f"cannot load the artifacts: {error}", err=True)
        raise typer.Exit(1) from error


app.command("baselines")(baselines_command)
app.command("export-recbole")(export_recbole)


if __name__ == "__main__":
    app()
