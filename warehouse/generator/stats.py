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
- Repeats: purchases that buy again an article the same user bought before, purchased items bought
  once, and test targets a model trained on the purchases alone never saw (real purchase exports are
  compared on these, docs/synthetic-data.md).

This module gathers the numbers and prints them; each property is measured in its own module
(`stats_turnover`, `stats_comparison`, `stats_calendar`, `stats_queries`, `stats_positions`,
`stats_predictability`, `stats_repeats`) on the session `stats_db` opens.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from warehouse.generator.stats_calendar import calendar
from warehouse.generator.stats_comparison import comparison
from warehouse.generator.stats_db import connect_raw, one
from warehouse.generator.stats_positions import POSITION_BUCKETS, positions
from warehouse.generator.stats_predictability import predictability
from warehouse.generator.stats_queries import query_diversity
from warehouse.generator.stats_repeats import repeats
from warehouse.generator.stats_turnover import NEW_LAUNCH_DAYS, turnover


def compute_stats(raw_dir: Path) -> dict:
    """Counts and the C1-C4 numbers of ``raw_dir`` (events.parquet, items.parquet, optional manifest)."""
    raw_dir = Path(raw_dir)
    con = connect_raw(raw_dir)
    stats = {
        "raw_dir": str(raw_dir),
        "counts": _counts(con),
        "c1_turnover": turnover(con),
        "c2_comparison": comparison(con),
        "c3_calendar": calendar(con),
        "c4_queries": query_diversity(con, raw_dir),
        "positions": positions(con),
        "predictability": predictability(con),
        "repeats": repeats(con),
    }
    con.close()
    return stats


def _counts(con: duckdb.DuckDBPyConnection) -> dict:
    counts = one(
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
    counts.update(one(con, "select count(*) as items, count(distinct parent_id) as families from items"))
    counts["avg_sequence_length"] = round(counts["interactions"] / max(counts["users"], 1), 2)
    counts["first_day"], counts["last_day"] = str(counts["first_day"]), str(counts["last_day"])
    return counts


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def format_stats(stats: dict) -> str:
    """A short report of ``compute_stats`` for a terminal."""
    n, c1, c2, c3, c4 = (
        stats[k] for k in ("counts", "c1_turnover", "c2_comparison", "c3_calendar", "c4_queries")
    )
    pos, pred, rep = stats["positions"], stats["predictability"], stats["repeats"]
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
        "Repeat purchases and the long tail",
        f"  purchases that buy again an article the user bought before: {_pct(rep['rebuy_share'])} "
        f"of {rep['purchases']:,} (test targets: {_pct(rep['target_rebuy_share'])})",
        f"  purchased items bought exactly once: {_pct(rep['bought_once_share'])} of "
        f"{rep['purchased_items']:,}; catalog items never bought: {_pct(rep['never_bought_share'])}",
        f"  test targets absent from the purchases a leave-one-out split trains on: "
        f"{_pct(rep['loo_cold_share'])} of {rep['loo_test_targets']:,} (users with >= 3 purchases)",
    ]
    return "\n".join(lines)
