"""Reading the DuckDB warehouse: the marts as the models read them, and what tables exist.

The sequence models (CORE and the ID baselines), the evaluation and their benchmarks read the same three
marts in the same shape; :func:`read_sequence_marts` is that one query set, and the evaluation reads the
parts of it its methods need; :func:`read_prompt_inputs` is the text models' read of the prompts'
inputs. The assets write their tables with :func:`replace_table`, or one group of a table's rows with
:func:`replace_group`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

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
    """``user_sequences`` (item events only), ``splits`` and ``items`` as the ID models train on them."""
    return read_item_events(con), read_splits(con), read_items(con)


# Every read is ordered: DuckDB's parallel scans return a table's rows in any order, and a model that
# samples or batches by row position would differ from run to run.


def read_item_events(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """The item events of ``user_sequences`` (searches have no item), per user in time order."""
    return con.execute(
        "select user_id, seq_no, event_id, item_id from user_sequences where item_id is not null "
        "order by user_id, seq_no"
    ).df()


def read_splits(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Every ``splits`` row (the train, valid and test targets), with whether its item is cold."""
    return con.execute(
        "select target_id, user_id, target_item_id, category, seq_no, split, is_cold_item from splits "
        "order by target_id"
    ).df()


def read_items(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Every catalog item's id, category (the candidates of a target) and parent_id (its family), by
    item id."""
    return con.execute("select item_id, category, parent_id from items order by item_id").df()


ITEM_TEXT_COLUMNS = ("title", "brand", "subcategory", "color")


def read_item_texts(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Every catalog item with the words that describe it (title, brand, subcategory, color), by item id:
    what I-LLMRec writes of a history item and asks about the next one. A column the ``items`` table
    lacks (a hand-made or older warehouse) reads as NULL."""
    present = {row[0] for row in con.execute("select * from items limit 0").description}
    words = ", ".join(c if c in present else f"null::varchar as {c}" for c in ITEM_TEXT_COLUMNS)
    return con.execute(f"select item_id, category, {words} from items order by item_id").df()


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


def replace_group(con: duckdb.DuckDBPyConnection, name: str, table: pa.Table, key: Mapping[str, Any]) -> int:
    """Swap in ``table`` as the rows of table ``name`` whose ``key`` columns hold the ``key`` values; the
    other rows stay, and a missing table is created. Columns are matched by name. Returns the rows
    written."""
    if not key:
        raise ValueError(f"no key columns to replace a group of {name!r} by; replace_table replaces it all")
    view = f"{name}_arrow"
    con.register(view, table)
    try:
        if name in table_names(con):
            match = " and ".join(f'"{column}" = ?' for column in key)
            con.execute(
                f'create or replace table "{name}" as select * from "{name}" where not ({match}) '
                f'union all by name select * from "{view}"',
                list(key.values()),
            )
        else:
            con.execute(f'create table "{name}" as select * from "{view}"')
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
