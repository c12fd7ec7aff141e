"""Reading the DuckDB warehouse: the marts as the models read them, and what tables exist.

The sequence models (CORE and the ID baselines) and their benchmarks read the same three marts in the
same shape; :func:`read_sequence_marts` is that one query set, and :func:`read_prompt_inputs` the text
models' (``text_seq_query``) read of the prompts' inputs. The assets write their tables with
:func:`replace_table`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa


def table_row_counts(database: Path) -> dict[str, int]:
    """``{schema.table: rows}`` for every base table, opened read-only so a running pipeline is not
    blocked."""
    if not database.exists():
        raise FileNotFoundError(
            f"no warehouse at {database}; build it with `fashionrec run 'group:warehouse'`"
        )
    with duckdb.connect(str(database), read_only=True) as con:
        names = con.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_type = 'BASE TABLE' order by table_schema, table_name"
        ).fetchall()
        return {
            f"{schema}.{table}": con.execute(f'select count(*) from "{schema}"."{table}"').fetchone()[0]
            for schema, table in names
        }


def read_sequence_marts(con: duckdb.DuckDBPyConnection) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """``user_sequences`` (item events only), ``splits`` and ``items`` as the ID models train on them.

    Every read is ordered: DuckDB's parallel scans return a table's rows in any order, and a model that
    samples or batches by row position would differ from run to run.
    """
    sequences = con.execute(
        "select user_id, seq_no, event_id, item_id from user_sequences where item_id is not null "
        "order by user_id, seq_no"
    ).df()
    splits = con.execute(
        "select target_id, user_id, target_item_id, category, seq_no, split from splits order by target_id"
    ).df()
    items = con.execute("select item_id, category from items order by item_id").df()
    return sequences, splits, items


def read_prompt_inputs(con: duckdb.DuckDBPyConnection, split: str) -> pd.DataFrame:
    """The ``prompt_inputs`` rows of ``split`` as the text models read them: each target (the columns of
    the evaluation's targets) with the user's latest query and history before it, ordered by target."""
    return con.execute(
        "select target_id, user_id, category, target_item_id, is_cold_item, latest_query, history "
        "from prompt_inputs where split = ? order by target_id",
        [split],
    ).df()


def replace_table(con: duckdb.DuckDBPyConnection, name: str, table: pa.Table) -> int:
    """Create or replace the DuckDB table ``name`` with the rows of ``table``; returns its row count."""
    view = f"{name}_arrow"
    con.register(view, table)
    try:
        con.execute(f'create or replace table "{name}" as select * from "{view}"')
    finally:
        con.unregister(view)
    return table.num_rows


def table_names(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {row[0] for row in con.execute("select table_name from information_schema.tables").fetchall()}


def require_tables(con: duckdb.DuckDBPyConnection, names: Iterable[str]) -> None:
    """ValueError naming the tables of ``names`` the warehouse lacks and how to build the first."""
    missing = sorted(set(names) - table_names(con))
    if missing:
        raise ValueError(
            f"table(s) {missing} missing in the warehouse; materialize them first, e.g. "
            f"`fashionrec run '+key:{missing[0]}'`"
        )
