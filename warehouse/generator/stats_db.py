"""The DuckDB session the statistics run in: a raw directory's files as views, the purchase, test-target
and interaction tables most statistics start from, and query results back as dicts."""

from __future__ import annotations

from pathlib import Path

import duckdb


def connect_raw(raw_dir: Path) -> duckdb.DuckDBPyConnection:
    """An in-memory connection with views ``events`` and ``items`` and temp tables ``purchases`` (with
    item attributes), ``targets`` (each user's last purchase) and ``interactions``."""
    for name in ("events.parquet", "items.parquet"):
        if not (raw_dir / name).exists():
            raise FileNotFoundError(
                f"{raw_dir / name} is missing; generate logs first "
                "(`fashionrec generate --out DIR`) or point at a raw directory"
            )
    con = duckdb.connect()
    con.execute(f"create view events as select * from read_parquet('{raw_dir / 'events.parquet'}')")
    con.execute(f"create view items as select * from read_parquet('{raw_dir / 'items.parquet'}')")
    con.execute("""create temp table purchases as
        select e.event_id, e.user_id, e.session_id, e.ts, e.item_id, e.search_id, e.position, e.is_sponsored,
               i.parent_id, i.season, i.holiday, i.first_seen, i.subcategory
        from events e join items i using (item_id) where e.action = 'purchase'""")
    con.execute("""create temp table targets as
        select * from (select *,
                              row_number() over (partition by user_id order by ts desc, event_id desc) as rn
                       from purchases) where rn = 1""")
    con.execute("""create temp table interactions as
        select user_id, session_id, item_id, ts from events
        where action in ('click', 'add_to_cart', 'purchase')""")
    return con


def rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict]:
    cur = con.execute(sql)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def one(con: duckdb.DuckDBPyConnection, sql: str) -> dict:
    return rows(con, sql)[0]


def share(x: float | None) -> float | None:
    """A share as reported: four decimals, None when there was nothing to share."""
    return None if x is None else round(float(x), 4)
