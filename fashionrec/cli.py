"""``fashionrec``: generate logs, materialize assets, and look at what was built."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fashionrec.settings import PRESET_NAMES, paths, preset

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
    preset_name: Annotated[
        str | None,
        typer.Option("--preset", help="tiny | demo | luggage | footwear | accessories | clothing "
                     "(default: $FASHIONREC_PRESET, else demo)"),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Directory for events.parquet and items.parquet "
                                             "(default: $FASHIONREC_RAW_DIR)")] = None,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same files.")] = 0,
    stats: Annotated[bool, typer.Option("--stats", help="Print the four fashion properties in numbers.")] = False,
) -> None:
    """Write deterministic synthetic fashion logs in the raw-data contract."""
    from warehouse.generator import compute_stats, format_stats, generate as generate_logs

    name = _check_preset(preset_name or preset())
    out_dir = (out or paths().raw_dir).resolve()
    result = generate_logs(name, out_dir, seed=seed)
    typer.echo(f"wrote {out_dir}: {result.n_events:,} events, {result.n_items:,} items, "
               f"{result.n_users:,} users ({result.seconds:.1f} s, preset {name}, seed {seed})")
    if stats:
        typer.echo(format_stats(compute_stats(out_dir)))


@app.command("stats")
def stats_command(
    raw_dir: Annotated[Path | None, typer.Argument(help="Raw directory (default: $FASHIONREC_RAW_DIR)")] = None,
) -> None:
    """Print the fashion properties (C1-C4) of an existing raw directory."""
    from warehouse.generator import compute_stats, format_stats

    typer.echo(format_stats(compute_stats((raw_dir or paths().raw_dir).resolve())))


@app.command()
def run(
    selection: Annotated[str | None, typer.Argument(
        help="Dagster asset selection, e.g. 'group:warehouse', 'key:prompts+', '*query_memory'. Default: all.")] = None,
    log_level: Annotated[str, typer.Option(help="Dagster console log level.")] = "WARNING",
) -> None:
    """Materialize assets (and run their checks) with the same definitions the UI shows."""
    from fashionrec.pipeline import materialize_selection

    summary = materialize_selection(selection, log_level=log_level)
    for name in summary.materialized:
        rows = summary.row_counts.get(name)
        typer.echo(f"  materialized {name}" + (f"  ({rows:,} rows)" if rows is not None else ""))
    typer.echo(f"run {summary.run_id}: {len(summary.materialized)} assets, "
               f"{summary.checks_passed} checks passed, {len(summary.checks_failed)} failed")
    for failed in summary.checks_failed:
        typer.echo(f"  check failed: {failed}", err=True)
    if not summary.success:
        typer.echo("run failed; `make ui` shows the step logs", err=True)
        raise typer.Exit(1)


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
    from fashionrec.warehouse_tables import table_row_counts

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
    from training.leaderboard import print_leaderboard

    print_leaderboard(paths().duckdb_path, run_id=run_id, split=split, slice_name=slice_name, echo=typer.echo)


@app.command()
def sql(query: Annotated[str, typer.Argument(help="A SQL query; the warehouse is opened read-only.")]) -> None:
    """Run a read-only SQL query against the DuckDB warehouse and print the result."""
    import duckdb

    database = paths().duckdb_path
    if not database.exists():
        raise typer.BadParameter(f"no warehouse at {database}; build it with `fashionrec run 'group:warehouse'`")
    with duckdb.connect(str(database), read_only=True) as con:
        relation = con.sql(query)
        if relation is not None:
            relation.show(max_width=160, max_rows=60)


if __name__ == "__main__":
    app()
