"""The paper's four fashion properties (arXiv 2410.11327 section 3), measured on a raw directory.

Everything except the per-intent query counts is computed from events.parquet and items.parquet with
DuckDB, so the same numbers can be taken from a user's own logs; the per-intent counts need the
generator's knowledge of which intent each query was typed for and come from generation_manifest.json.

- C1 turnover: share of test targets (each user's last purchase) whose item had no click, add-to-cart or
  purchase by anyone before (clicks of the purchaser in the purchase session itself do not count, as in
  the paper's filtering), and share launched in the last 30 days.
- C2 comparison: clicks per purchase session; share of purchases whose session clicked >= 2 variants
  (items) of the purchased product family.
- C3 calendar: share of purchases of seasonal items bought in their season vs. the catalog base rate;
  share of holiday-edition purchases in the weeks before that holiday vs. elsewhere.
- C4 queries: distinct query strings per search intent; searches per distinct string.
- Position: purchase share by organic position (the paper: users buy top exposure results).
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import duckdb

from warehouse.generator.fashion_calendar import HOLIDAYS, holiday_occurrences

NEW_LAUNCH_DAYS = 30
POSITION_BUCKETS = ("1", "2", "3", "4-5", "6-10", ">10", "sponsored", "none")

_SEASON_OF_MONTH = """case when month({ts}) in (3, 4, 5) then 'Spring'
    when month({ts}) in (6, 7, 8) then 'Summer'
    when month({ts}) in (9, 10, 11) then 'Fall' else 'Winter' end"""


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict]:
    cur = con.execute(sql)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def _one(con: duckdb.DuckDBPyConnection, sql: str) -> dict:
    return _rows(con, sql)[0]


def _share(x: float | None) -> float | None:
    return None if x is None else round(float(x), 4)


def compute_stats(raw_dir: Path) -> dict:
    """Counts and the C1-C4 numbers of ``raw_dir`` (events.parquet, items.parquet, optional manifest)."""
    raw_dir = Path(raw_dir)
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

    counts = _one(
        con,
        """select count(distinct user_id) as users, count(*) as events,
            count(distinct session_id) as sessions,
            count(*) filter (where action = 'search') as searches,
            count(*) filter (where action = 'impression') as impressions,
            count(*) filter (where action = 'click') as clicks,
            count(*) filter (where action = 'add_to_cart') as add_to_carts,
            count(*) filter (where action = 'purchase') as purchases,
            count(*) filter (where action <> 'impression') as interactions,
            min(ts)::date as first_day, max(ts)::date as last_day from events""",
    )
    counts.update(_one(con, "select count(*) as items, count(distinct parent_id) as families from items"))
    counts["avg_sequence_length"] = round(counts["interactions"] / max(counts["users"], 1), 2)
    counts["first_day"], counts["last_day"] = str(counts["first_day"]), str(counts["last_day"])

    # --- C1 turnover
    c1 = _one(
        con,
        f"""
        with seen as (
            select t.event_id,
                   count(x.item_id) filter (where x.ts < t.ts
                       and not (x.user_id = t.user_id and x.session_id = t.session_id)) as before
            from targets t left join interactions x on x.item_id = t.item_id
            group by t.event_id),
        shown as (
            select t.event_id, count(x.item_id) as before
            from targets t left join events x on x.item_id = t.item_id and x.ts < t.ts
                 and not (x.user_id = t.user_id and x.session_id = t.session_id)
            group by t.event_id)
        select count(*) as test_targets,
               avg((seen.before = 0)::int) as cold_share,
               avg((shown.before = 0)::int) as never_shown_share,
               avg((date_diff('day', t.first_seen, t.ts::date) <= {NEW_LAUNCH_DAYS})::int) as new_launch_share
        from targets t join seen using (event_id) join shown using (event_id)""",
    )
    c1.update(
        _one(
            con,
            f"""select
            avg((date_diff('day', first_seen, ts::date) <= {NEW_LAUNCH_DAYS})::int)
                as all_purchases_new_launch_share
        from purchases""",
        )
    )
    c1.update(
        _one(
            con,
            """select count(distinct date_trunc('month', first_seen)) filter (
                                  where first_seen >= (select min(ts)::date from events)) as launch_months,
                              avg((first_seen >= (select min(ts)::date from events))::int)
                                  as launched_in_period_share,
                              avg((last_seen is not null)::int) as retired_share
                           from (select distinct parent_id, first_seen, last_seen from items)""",
        )
    )

    # --- C2 comparison
    c2 = _one(
        con,
        """
        with ps as (select distinct user_id, session_id from purchases),
        per_session as (
            select ps.user_id, ps.session_id,
                   count(e.event_id) filter (where e.action = 'click') as clicks,
                   count(distinct e.item_id) filter (where e.action = 'click') as items_clicked
            from ps join events e using (user_id, session_id) group by all),
        variants as (
            select p.event_id,
                   count(distinct e.item_id) filter (where i.parent_id = p.parent_id) as variants_clicked
            from purchases p
            left join events e on e.user_id = p.user_id and e.session_id = p.session_id and e.action = 'click'
            left join items i on i.item_id = e.item_id
            group by p.event_id)
        select (select avg(clicks) from per_session) as clicks_per_purchase_session,
               (select avg(items_clicked) from per_session) as items_clicked_per_purchase_session,
               (select avg((variants_clicked >= 2)::int)
                from purchases p left join variants v using (event_id))
                   as share_comparing_2plus_variants,
               (select avg(coalesce(variants_clicked, 0))
                from purchases p left join variants v using (event_id))
                   as variants_clicked_per_purchase""",
    )

    # --- C3 calendar: seasons
    season_expr = _SEASON_OF_MONTH.format(ts="p.ts")
    c3 = _one(
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
        for r in _rows(
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

    # --- C3 calendar: holidays
    span = _one(con, "select min(ts)::date as lo, max(ts)::date as hi from events")
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
        for r in _rows(
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
                "tagged_share_in_window": _share(in_share),
                "tagged_share_elsewhere": _share(out_share),
            }
            pooled["in"][0] += r["in_tagged"]
            pooled["in"][1] += r["in_n"]
            pooled["out"][0] += r["out_tagged"]
            pooled["out"][1] += r["out_n"]
    in_share = pooled["in"][0] / pooled["in"][1] if pooled["in"][1] else None
    out_share = pooled["out"][0] / pooled["out"][1] if pooled["out"][1] else None
    c3["holiday_share_in_window"] = _share(in_share)
    c3["holiday_share_elsewhere"] = _share(out_share)
    c3["holiday_lift"] = (
        round(in_share / out_share, 2)
        if in_share is not None and out_share
        else (None if in_share is None else float("inf") if in_share > 0 else None)
    )
    c3["holidays"] = holidays

    # --- C4 queries
    c4 = _one(
        con,
        """
        with q as (select query, regexp_replace(trim(regexp_replace(lower(query), '[^a-z0-9]+', ' ', 'g')),
                                                '\\s+', ' ', 'g') as norm
                   from events where action = 'search')
        select count(*) as searches, count(distinct query) as distinct_strings,
               count(distinct norm) as distinct_normalized from q""",
    )
    c4["searches_per_distinct_string"] = (
        round(c4["searches"] / c4["distinct_strings"], 2) if c4["distinct_strings"] else None
    )
    manifest_path = raw_dir / "generation_manifest.json"
    if manifest_path.exists():
        truth = json.loads(manifest_path.read_text()).get("queries", {})
        for key in (
            "intents",
            "intents_searched_twice_or_more",
            "mean_distinct_strings_per_intent",
            "mean_distinct_strings_per_repeated_intent",
            "mean_distinct_normalized_per_repeated_intent",
            "share_repeated_intents_with_2plus_strings",
            "mean_searches_per_intent",
        ):
            c4[key] = truth.get(key)
        c4["example_intents"] = truth.get("top_intents", [])[:3]

    # --- position of purchases (and clicks) on the result page
    bucket = """case when is_sponsored then 'sponsored' when position is null then 'none'
        when position <= 3 then position::varchar when position <= 5 then '4-5'
        when position <= 10 then '6-10' else '>10' end"""
    purchase_pos = {
        r["b"]: r["share"]
        for r in _rows(
            con,
            f"""
        select {bucket} as b, count(*)::double / sum(count(*)) over () as share
        from purchases group by all""",
        )
    }
    click_pos = {
        r["b"]: r["share"]
        for r in _rows(
            con,
            f"""
        select {bucket} as b, count(*)::double / sum(count(*)) over () as share
        from events where action = 'click' and search_id is not null group by all""",
        )
    }
    positions = {
        "purchase_share": {b: _share(purchase_pos.get(b, 0.0)) for b in POSITION_BUCKETS},
        "search_click_share": {b: _share(click_pos.get(b, 0.0)) for b in POSITION_BUCKETS},
        "purchases_from_search": _share(
            _one(con, "select avg((search_id is not null)::int) as s from purchases")["s"]
        ),
    }

    # --- how predictable the test target is from the user's own earlier events
    predict = _one(
        con,
        """
        with hist as (
            select t.event_id, i.brand, i.color, i.size, i.subcategory, i.parent_id
            from targets t join events e on e.user_id = t.user_id and e.ts < t.ts
                 and e.action in ('click', 'add_to_cart', 'purchase') and e.session_id <> t.session_id
            join items i on i.item_id = e.item_id),
        ti as (select t.event_id, i.* from targets t join items i using (item_id))
        select avg((exists (select 1 from hist h where h.event_id = ti.event_id and h.brand = ti.brand))::int)
                   as brand_seen_before,
               avg((exists (select 1 from hist h where h.event_id = ti.event_id and h.color = ti.color))::int)
                   as color_seen_before,
               avg((exists (select 1 from hist h where h.event_id = ti.event_id and h.size = ti.size))::int)
                   as size_seen_before,
               avg((exists (select 1 from hist h where h.event_id = ti.event_id
                                                    and h.subcategory = ti.subcategory))::int)
                   as subcategory_seen_before,
               avg((exists (select 1 from hist h where h.event_id = ti.event_id
                                                    and h.parent_id = ti.parent_id))::int)
                   as family_seen_before
        from ti""",
    )
    predict.update(
        _one(
            con,
            """
        select avg((exists (select 1 from events s where s.user_id = t.user_id and s.session_id = t.session_id
                            and s.action = 'search' and s.ts < t.ts))::int) as query_in_target_session,
               avg((exists (select 1 from events x where x.user_id = t.user_id and x.session_id = t.session_id
                            and x.action = 'impression' and x.item_id = t.item_id))::int)
                   as target_on_result_page
        from targets t""",
        )
    )
    con.close()
    return {
        "raw_dir": str(raw_dir),
        "counts": counts,
        "c1_turnover": {k: _share(v) if isinstance(v, float) else v for k, v in c1.items()},
        "c2_comparison": {k: round(v, 3) if isinstance(v, float) else v for k, v in c2.items()},
        "c3_calendar": {
            k: _share(v) if isinstance(v, float) and k not in ("in_season_lift", "holiday_lift") else v
            for k, v in c3.items()
        },
        "c4_queries": c4,
        "positions": positions,
        "predictability": {k: _share(v) for k, v in predict.items()},
    }


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def format_stats(stats: dict) -> str:
    """A short report of ``compute_stats`` for a terminal."""
    n, c1, c2, c3, c4 = (
        stats[k] for k in ("counts", "c1_turnover", "c2_comparison", "c3_calendar", "c4_queries")
    )
    pos, pred = stats["positions"], stats["predictability"]
    lines = [
        f"raw logs {stats['raw_dir']}",
        f"  {n['users']:,} users, {n['items']:,} items ({n['families']:,} families), {n['events']:,} events "
        f"from {n['first_day']} to {n['last_day']}",
        f"  interactions (search+click+cart+purchase) {n['interactions']:,} "
        f"= {n['avg_sequence_length']} per user; "
        f"{n['searches']:,} searches, {n['impressions']:,} impressions, {n['clicks']:,} clicks, "
        f"{n['add_to_carts']:,} carts, {n['purchases']:,} purchases, {n['sessions']:,} sessions",
        "C1 high turnover",
        f"  test targets never interacted with before: {_pct(c1['cold_share'])} "
        f"(never even shown: {_pct(c1['never_shown_share'])}) of {c1['test_targets']:,}",
        f"  test targets launched in the last {NEW_LAUNCH_DAYS} days: {_pct(c1['new_launch_share'])} "
        f"(all purchases: {_pct(c1['all_purchases_new_launch_share'])})",
        f"  families launched in the period: {_pct(c1['launched_in_period_share'])} "
        f"over {c1['launch_months']} "
        f"months; retired before the end: {_pct(c1['retired_share'])}",
        "C2 thorough comparison",
        f"  clicks per purchase session: {c2['clicks_per_purchase_session']:.2f} "
        f"({c2['items_clicked_per_purchase_session']:.2f} distinct items)",
        f"  purchases whose session clicked >= 2 variants of the bought family: "
        f"{_pct(c2['share_comparing_2plus_variants'])} "
        f"(mean {c2['variants_clicked_per_purchase']:.2f} variants)",
        "C3 attribute-driven shopping",
        f"  seasonal items bought in their season: {_pct(c3['in_season_share'])} vs catalog base rate "
        f"{_pct(c3['catalog_base_rate'])} (lift {c3['in_season_lift']})",
        "  top subcategory by season: "
        + ", ".join(f"{k}: {v}" for k, v in c3["top_subcategory_by_season"].items()),
        f"  holiday editions in the weeks before their holiday: {_pct(c3['holiday_share_in_window'])} "
        "of purchases "
        f"vs {_pct(c3['holiday_share_elsewhere'])} elsewhere (lift {c3['holiday_lift']})",
        "C4 diverse queries",
        f"  {c4['searches']:,} searches, {c4['distinct_strings']:,} distinct strings, "
        f"{c4['distinct_normalized']:,} after normalisation",
    ]
    if c4.get("intents") is not None:
        lines.append(
            f"  {c4['intents']:,} intents; intents searched >= 2 times: "
            f"{c4['intents_searched_twice_or_more']:,},"
            f" typed as {c4['mean_distinct_strings_per_repeated_intent']} distinct strings on average "
            f"({c4['mean_distinct_normalized_per_repeated_intent']} after normalisation), "
            f"{_pct(c4['share_repeated_intents_with_2plus_strings'])} with >= 2 strings"
        )
        for ex in c4.get("example_intents", []):
            lines.append(
                f"    {ex['intent']}: {ex['searches']} searches, {ex['distinct_strings']} strings, "
                f"e.g. {', '.join(repr(s) for s in ex['examples'][:4])}"
            )
    lines += [
        "Position of purchases on the result page",
        "  " + "  ".join(f"{b}: {_pct(pos['purchase_share'][b])}" for b in POSITION_BUCKETS),
        "  clicks: " + "  ".join(f"{b}: {_pct(pos['search_click_share'][b])}" for b in POSITION_BUCKETS),
        "Predictability of the test target from the user's earlier sessions",
        f"  brand {_pct(pred['brand_seen_before'])}, color {_pct(pred['color_seen_before'])}, size "
        f"{_pct(pred['size_seen_before'])}, subcategory {_pct(pred['subcategory_seen_before'])}, family "
        f"{_pct(pred['family_seen_before'])}; a search in the target session "
        f"{_pct(pred['query_in_target_session'])},"
        f" target on its result page {_pct(pred['target_on_result_page'])}",
    ]
    return "\n".join(lines)
