"""Where on the result page purchases and search clicks come from (the paper: users buy top exposure
results), by organic position bucket."""

from __future__ import annotations

import duckdb

from warehouse.generator.stats_db import one, rows, share

POSITION_BUCKETS = ("1", "2", "3", "4-5", "6-10", ">10", "sponsored", "none")

_BUCKET = """case when is_sponsored then 'sponsored' when position is null then 'none'
        when position <= 3 then position::varchar when position <= 5 then '4-5'
        when position <= 10 then '6-10' else '>10' end"""


def positions(con: duckdb.DuckDBPyConnection) -> dict:
    purchase_pos = {
        r["b"]: r["share"]
        for r in rows(
            con,
            f"""
        select {_BUCKET} as b, count(*)::double / sum(count(*)) over () as share
        from purchases group by all""",
        )
    }
    click_pos = {
        r["b"]: r["share"]
        for r in rows(
            con,
            f"""
        select {_BUCKET} as b, count(*)::double / sum(count(*)) over () as share
        from events where action = 'click' and search_id is not null group by all""",
        )
    }
    return {
        "purchase_share": {b: share(purchase_pos.get(b, 0.0)) for b in POSITION_BUCKETS},
        "search_click_share": {b: share(click_pos.get(b, 0.0)) for b in POSITION_BUCKETS},
        "purchases_from_search": share(
            one(con, "select avg((search_id is not null)::int) as s from purchases")["s"]
        ),
    }
