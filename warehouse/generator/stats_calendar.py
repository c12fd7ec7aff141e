"""C3 calendar: how much more seasonal items sell in their season than the catalog's base rate, which
subcategory each season lifts most, and how holiday editions sell in the weeks before their holiday."""

from __future__ import annotations

from datetime import timedelta

import duckdb

from warehouse.generator.fashion_calendar import HOLIDAYS, holiday_occurrences
from warehouse.generator.stats_db import one, rows, share

_SEASON_OF_MONTH = """case when month({ts}) in (3, 4, 5) then 'Spring'
    when month({ts}) in (6, 7, 8) then 'Summer'
    when month({ts}) in (9, 10, 11) then 'Fall' else 'Winter' end"""


def calendar(con: duckdb.DuckDBPyConnection) -> dict:
    c3 = _seasons(con)
    c3.update(_holidays(con))
    return {
        k: share(v) if isinstance(v, float) and k not in ("in_season_lift", "holiday_lift") else v
        for k, v in c3.items()
    }


def _seasons(con: duckdb.DuckDBPyConnection) -> dict:
    season_expr = _SEASON_OF_MONTH.format(ts="p.ts")
    c3 = one(
        con,
        f"""
        with catalog as (
            select season, count(*)::double / sum(count(*)) over () as share
            from items where season <> 'All-season' group by season),
        seasonal as (select p.*, {season_expr} as calendar_season
                     from purchases p where p.season <> 'All-season')
        select count(*) as seasonal_purchases,
               avg((s.season = s.calendar_season)::int) as in_season_share,
               avg(coalesce(c.share, 0)) as catalog_base_rate
        from seasonal s left join catalog c on c.season = s.calendar_season""",
    )
    c3["in_season_lift"] = (
        round(c3["in_season_share"] / c3["catalog_base_rate"], 2)
        if c3["in_season_share"] is not None and c3["catalog_base_rate"]
        else None
    )
    c3["top_subcategory_by_season"] = {
        r["calendar_season"]: f"{r['subcategory']} (lift {r['lift']:.1f})"
        for r in rows(
            con,
            f"""
        with p as (select {season_expr} as calendar_season, p.subcategory from purchases p),
        s as (select calendar_season, subcategory, count(*) as n from p group by all),
        t as (select *, n::double / sum(n) over (partition by calendar_season) as share_in_season,
                     sum(n) over (partition by subcategory)::double / sum(n) over () as share_overall
              from s where n >= 5)
        select calendar_season, subcategory, share_in_season / share_overall as lift from t
        qualify row_number() over (partition by calendar_season order by lift desc, subcategory) = 1
        order by calendar_season""",
        )
    }
    return c3


def _holidays(con: duckdb.DuckDBPyConnection) -> dict:
    """Share of purchases that are editions of a holiday inside its shopping window vs. elsewhere, per
    holiday and pooled over all of them."""
    span = one(con, "select min(ts)::date as lo, max(ts)::date as hi from events")
    windows = (
        [
            (HOLIDAYS[o.holiday].name, o.date - timedelta(days=HOLIDAYS[o.holiday].window_days), o.date)
            for o in holiday_occurrences(span["lo"], span["hi"])
        ]
        if span["lo"]
        else []
    )
    holidays: dict[str, dict] = {}
    pooled = {"in": [0, 0], "out": [0, 0]}
    if windows:
        values = ", ".join(
            f"('{h.replace(chr(39), chr(39) * 2)}', DATE '{a}', DATE '{b}')" for h, a, b in windows
        )
        con.execute(
            "create temp table windows(holiday varchar, lo date, hi date); "
            f"insert into windows values {values}"
        )
        for r in rows(
            con,
            """
            with marked as (
                select h.holiday, p.holiday = h.holiday as tagged,
                       exists (select 1 from windows w where w.holiday = h.holiday
                               and p.ts::date between w.lo and w.hi) as in_window
                from purchases p cross join (select distinct holiday from windows) h)
            select holiday, count(*) filter (where in_window) as in_n,
                   count(*) filter (where in_window and tagged) as in_tagged,
                   count(*) filter (where not in_window) as out_n,
                   count(*) filter (where not in_window and tagged) as out_tagged
            from marked group by holiday order by holiday""",
        ):
            in_share = r["in_tagged"] / r["in_n"] if r["in_n"] else None
            out_share = r["out_tagged"] / r["out_n"] if r["out_n"] else None
            holidays[r["holiday"]] = {
                "purchases_in_window": r["in_n"],
                "tagged_share_in_window": share(in_share),
                "tagged_share_elsewhere": share(out_share),
            }
            pooled["in"][0] += r["in_tagged"]
            pooled["in"][1] += r["in_n"]
            pooled["out"][0] += r["out_tagged"]
            pooled["out"][1] += r["out_n"]
    in_share = pooled["in"][0] / pooled["in"][1] if pooled["in"][1] else None
    out_share = pooled["out"][0] / pooled["out"][1] if pooled["out"][1] else None
    return {
        "holiday_share_in_window": share(in_share),
        "holiday_share_elsewhere": share(out_share),
        "holiday_lift": (
            round(in_share / out_share, 2)
            if in_share is not None and out_share
            else (None if in_share is None else float("inf") if in_share > 0 else None)
        ),
        "holidays": holidays,
    }
