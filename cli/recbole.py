"""The RecBole commands of `fashionrec`: ``baselines`` (our sequential baselines on RecBole atomic files,
RecBole's protocol) and ``export-recbole`` (the warehouse as such files). ``cli.main`` registers them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from fashionrec.settings import paths


def baselines_command(
    inter: Annotated[
        Path,
        typer.Option(
            exists=True, dir_okay=False, help="RecBole .inter file: user_id, item_id and optional timestamp."
        ),
    ],
    item: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help=".item file: its items join the ranking; a title column enables llm2sasrec, "
            "llm2bert4rec and llmseqsim.",
        ),
    ] = None,
    methods: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated: popularity, gru4rec, sasrec, bert4rec, nextitnet, llm2sasrec, "
            "llm2bert4rec, llmseqsim (default: the four ID models, plus the three text ones when --item "
            "has titles)."
        ),
    ] = None,
    epochs: Annotated[
        int | None,
        typer.Option(min=1, help="Max epochs (default RecBole's 300; stops after 10 without gain)."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Where baselines.csv and .json go (default: $FASHIONREC_HOME/reports/recbole/<inter stem>)."
        ),
    ] = None,
    item_table: Annotated[
        str | None,
        typer.Option(
            help="Embedding rows: 'catalog' (RecBole's: one row per item of the files) or 'trained' (items "
            "seen in training, one shared cold row for the rest); default: each model's own (catalog).",
        ),
    ] = None,
) -> None:
    """Train and test the sequential baselines on a RecBole .inter file with RecBole's leave-one-out
    protocol (last interaction test, second to last valid, full ranking) and print the table."""
    from evaluation.recbole_atomic import AtomicFileError
    from evaluation.recbole_protocol import compare_on_files, format_table

    chosen = [name.strip() for name in methods.split(",") if name.strip()] if methods else None
    out_dir = out or paths().reports.recbole(inter.stem)
    settings: dict[str, Any] = {"epochs": epochs} if epochs else {}
    if item_table:
        settings["item_table"] = item_table
    try:
        rows, _ = compare_on_files(
            inter, item, chosen, settings, out_dir, log=lambda m: typer.echo(m, err=True)
        )
    except AtomicFileError as error:
        raise typer.BadParameter(str(error), param_hint="--inter/--item") from error
    except ValueError as error:  # an unknown or impossible method, or a file with nothing to train on
        raise typer.BadParameter(str(error)) from error
    typer.echo(format_table(rows))
    typer.echo(f"wrote {out_dir / 'baselines.csv'} and {out_dir / 'baselines.json'}")


def export_recbole(
    out: Annotated[Path, typer.Option(help="RecBole data_path: files go to OUT/NAME/NAME.inter and .item.")],
    name: Annotated[str, typer.Option(help="RecBole dataset name.")] = "fashionrec",
    actions: Annotated[
        str,
        typer.Option(
            help="Comma-separated item events to export: click, add_to_cart, purchase; 'purchase' alone "
            "gives a transaction export's shape (repeat purchases, many cold test targets)."
        ),
    ] = "click,add_to_cart,purchase",
) -> None:
    """Write the warehouse's item events and items as RecBole atomic files, plus OUT/NAME.yaml with the
    settings that run `fashionrec baselines`' protocol in RecBole."""
    from evaluation.recbole_atomic import export_warehouse

    database = paths().duckdb_path
    if not database.exists():
        raise typer.BadParameter(
            f"no warehouse at {database}; build it with `fashionrec run 'group:warehouse'`"
        )
    try:
        written = export_warehouse(database, out.resolve(), name, [a.strip() for a in actions.split(",")])
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--actions") from error
    typer.echo(
        f"wrote {written['inter']} ({written['interactions']:,} interactions), {written['item']} "
        f"({written['items']:,} items) and {written['config']}"
    )
