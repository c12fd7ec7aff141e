"""Read-only views of the DuckDB warehouse for people: what tables exist and how big they are."""

from __future__ import annotations

from pathlib import Path

import duckdb


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
