"""The synthetic fashion log generator: contract, determinism and the paper's four properties (C1-C4)."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from warehouse.generator import PRESETS, GeneratorPreset, compute_stats, format_stats, generate

EVENT_TYPES = {
    "event_id": pa.string(),
    "user_id": pa.string(),
    "session_id": pa.string(),
    "ts": pa.timestamp("us", tz="UTC"),
    "action": pa.string(),
    "query": pa.string(),
    "search_id": pa.string(),
    "item_id": pa.string(),
    "position": pa.int32(),
    "is_sponsored": pa.bool_(),
}
ITEM_TYPES = {
    "item_id": pa.string(),
    "title": pa.string(),
    "category": pa.string(),
    "subcategory": pa.string(),
    "brand": pa.string(),
    "color": pa.string(),
    "size": pa.string(),
    "season": pa.string(),
    "holiday": pa.string(),
    "occasion": pa.string(),
    "price": pa.float64(),
    "parent_id": pa.string(),
    "first_seen": pa.date32(),
    "last_seen": pa.date32(),
    "gender": pa.string(),
    "material": pa.string(),
    "image_path": pa.string(),
}
EXTRA_ITEM_TYPES = {"style": pa.string()}  # extra attribute columns are allowed by the contract
CATEGORIES = {"Luggage & Bags", "Footwear", "Accessories & Jewelry", "Clothing"}


@pytest.fixture(scope="module")
def tiny_raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny logs without the deliberate faulty rows, whose properties are tested on their own."""
    out = tmp_path_factory.mktemp("tiny_raw")
    generate(PRESETS["tiny"].with_(noise_share=0.0), out, seed=0)
    return out


@pytest.fixture(scope="module")
def stats(tiny_raw: Path) -> dict:
    return compute_stats(tiny_raw)


@pytest.fixture(scope="module")
def con(tiny_raw: Path):
    con = duckdb.connect()
    con.execute(f"create view events as select * from read_parquet('{tiny_raw / 'events.parquet'}')")
    con.execute(f"create view items as select * from read_parquet('{tiny_raw / 'items.parquet'}')")
    yield con
    con.close()


def scalar(con, sql: str):
    return con.execute(sql).fetchone()[0]


def test_same_seed_gives_identical_files(tiny_raw: Path, tmp_path: Path):
    generate(PRESETS["tiny"].with_(noise_share=0.0), tmp_path, seed=0)
    for name in ("events.parquet", "items.parquet"):
        assert pq.read_table(tmp_path / name).equals(pq.read_table(tiny_raw / name)), name
    assert json.loads((tmp_path / "generation_manifest.json").read_text()) == json.loads(
        (tiny_raw / "generation_manifest.json").read_text()
    )


def test_other_seed_gives_other_logs(tiny_raw: Path, tmp_path: Path):
    generate("tiny", tmp_path, seed=1)
    assert not pq.read_table(tmp_path / "events.parquet").equals(pq.read_table(tiny_raw / "events.parquet"))


def test_log_noise_adds_each_kind_of_faulty_row(tiny_raw: Path, tmp_path: Path):
    result = generate("tiny", tmp_path, seed=0)
    noise = json.loads((tmp_path / "generation_manifest.json").read_text())["counts"]["noise_rows"]
    clean = pq.read_table(tiny_raw / "events.parquet").num_rows
    assert result.n_events == clean + sum(noise.values())
    assert all(noise[kind] > 0 for kind in noise), noise
    con = duckdb.connect()
    con.execute(f"create view events as select * from read_parquet('{tmp_path / 'events.parquet'}')")
    con.execute(f"create view items as select * from read_parquet('{tmp_path / 'items.parquet'}')")
    assert (
        scalar(con, "select count(*) - count(distinct event_id) from events")
        == noise["client_retry_duplicate"]
    )
    assert (
        scalar(con, "select count(*) from events where action in ('wishlist', 'share', 'page_view')")
        == noise["unknown_action"]
    )
    assert (
        scalar(con, "select count(*) from events where item_id not in (select item_id from items)")
        == noise["delisted_item"]
    )
    assert (
        scalar(con, "select count(*) from events where action = 'search' and trim(query) = ''")
        == noise["search_without_query"]
    )
    # the real rows are the noiseless logs, unchanged
    assert scalar(con, "select count(*) from events where event_id like 'E%'") >= clean


def test_schemas_follow_the_raw_data_contract(tiny_raw: Path):
    events = pq.read_schema(tiny_raw / "events.parquet")
    items = pq.read_schema(tiny_raw / "items.parquet")
    assert {f.name: f.type for f in events} == EVENT_TYPES
    assert {f.name: f.type for f in items} == ITEM_TYPES | EXTRA_ITEM_TYPES


def test_counts_match_the_preset(tiny_raw: Path, con):
    preset = PRESETS["tiny"]
    assert scalar(con, "select count(distinct user_id) from events") == preset.n_users
    assert scalar(con, "select count(*) from items") == preset.n_items
    interactions = scalar(con, "select count(*) from events where action <> 'impression'")
    assert abs(interactions - preset.n_interactions) <= 0.05 * preset.n_interactions
    manifest = json.loads((tiny_raw / "generation_manifest.json").read_text())
    assert manifest["preset"]["name"] == "tiny" and manifest["seed"] == 0
    assert manifest["counts"]["events"] == scalar(con, "select count(*) from events")
    assert manifest["counts"]["interactions"] == interactions


def test_ids_are_unique_and_required_fields_present(con):
    assert scalar(con, "select count(*) - count(distinct event_id) from events") == 0
    assert scalar(con, "select count(*) - count(distinct item_id) from items") == 0
    assert (
        scalar(
            con,
            """select count(*) from events where event_id is null or user_id is null
                          or session_id is null or ts is null or is_sponsored is null""",
        )
        == 0
    )
    assert {r[0] for r in con.execute("select distinct action from events").fetchall()} == {
        "search",
        "impression",
        "click",
        "add_to_cart",
        "purchase",
    }


def test_searches_and_item_events(con):
    assert (
        scalar(
            con,
            """select count(*) from events where action = 'search'
                          and (query is null or search_id is null or item_id is not null)""",
        )
        == 0
    )
    assert scalar(con, "select count(*) from events where action <> 'search' and query is not null") == 0
    # every non-search event names an item of the catalog, sold on that day
    assert (
        scalar(
            con,
            """select count(*) from events e left join items i using (item_id)
                          where e.action <> 'search' and i.item_id is null""",
        )
        == 0
    )
    assert (
        scalar(
            con,
            """select count(*) from events e join items i using (item_id)
                          where e.ts::date < i.first_seen
                             or e.ts::date > coalesce(i.last_seen, DATE '9999-12-31')""",
        )
        == 0
    )
    # events that came from a search point at a search of the same user and session, at or before them
    assert (
        scalar(
            con,
            """select count(*) from events e left join events s
                              on s.search_id = e.search_id and s.action = 'search'
                          where e.action <> 'search' and e.search_id is not null
                            and (s.event_id is null or s.user_id <> e.user_id or s.session_id <> e.session_id
                                 or s.ts > e.ts)""",
        )
        == 0
    )
    # impressions always come from a search; some purchases do not (recommendation feeds)
    assert scalar(con, "select count(*) from events where action = 'impression' and search_id is null") == 0
    assert scalar(con, "select count(*) from events where action = 'purchase' and search_id is null") > 0


def test_positions(con):
    assert (
        scalar(
            con,
            """select count(*) from events where action = 'impression' and not is_sponsored
                          and (position is null or position < 1)""",
        )
        == 0
    )
    assert scalar(con, "select count(*) from events where is_sponsored and position is not null") == 0
    assert scalar(con, "select count(*) from events where search_id is null and position is not null") == 0
    assert scalar(con, "select count(*) from events where action = 'impression' and is_sponsored") > 0
    # organic positions on a page are 1..K without gaps or repeats
    assert (
        scalar(
            con,
            """select count(*) from (
                              select search_id, count(*) as n, max(position) as k,
                                     count(distinct position) as d
                              from events where action = 'impression' and not is_sponsored group by search_id)
                          where n <> k or d <> k""",
        )
        == 0
    )
    assert (
        scalar(con, "select max(position) from events where action = 'impression'")
        <= PRESETS["tiny"].organic_results[1]
    )


def test_catalog_looks_like_a_fashion_shop(con):
    assert {r[0] for r in con.execute("select distinct category from items").fetchall()} == CATEGORIES
    # families group color x size variants: same title stem, brand and subcategory, different color or size
    assert (
        scalar(
            con,
            """select count(*) from (select parent_id from items group by parent_id
                          having count(distinct brand) > 1 or count(distinct subcategory) > 1)""",
        )
        == 0
    )
    assert scalar(con, "select avg(n) from (select count(*) as n from items group by parent_id)") > 2
    assert scalar(con, "select count(*) from items where not starts_with(title, brand || ' ')") == 0
    assert scalar(con, "select count(*) from items where brand <> upper(brand)") == 0
    assert scalar(con, "select count(*) from items where price <= 0") == 0
    assert scalar(con, "select count(distinct holiday) from items where holiday <> ''") >= 5
    assert scalar(con, "select count(distinct season) from items") == 5


def test_c1_high_turnover(stats: dict):
    c1 = stats["c1_turnover"]
    # the catalog keeps changing: most families launch during the period, in every month, and most retire
    assert c1["launched_in_period_share"] > 0.6
    assert c1["launch_months"] >= 15
    assert c1["retired_share"] > 0.5
    # shoppers lean to new launches, so many test targets are new and a fair share was never touched before
    assert c1["new_launch_share"] > 0.15
    assert 0.08 < c1["cold_share"] < 0.8


def test_c2_thorough_comparison(stats: dict):
    c2 = stats["c2_comparison"]
    assert c2["clicks_per_purchase_session"] > 2.5
    assert c2["share_comparing_2plus_variants"] > 0.6


def test_c3_calendar_drives_purchases(stats: dict):
    c3 = stats["c3_calendar"]
    assert c3["in_season_lift"] > 1.8
    assert c3["holiday_share_in_window"] > 0.03
    assert c3["holiday_lift"] > 5


def test_c4_diverse_queries(stats: dict):
    c4 = stats["c4_queries"]
    assert c4["mean_distinct_strings_per_repeated_intent"] > 2
    assert c4["mean_distinct_normalized_per_repeated_intent"] > 2  # not just casing and punctuation
    assert c4["share_repeated_intents_with_2plus_strings"] > 0.8
    assert c4["distinct_strings"] > 0.5 * c4["searches"]


def test_purchases_favour_top_organic_results(stats: dict):
    share = stats["positions"]["purchase_share"]
    assert share["1"] > share["2"] > share["3"]
    assert share["1"] + share["2"] + share["3"] > 2 * (share["6-10"] + share[">10"])


def test_next_purchase_is_predictable_but_not_trivial(stats: dict):
    pred = stats["predictability"]
    assert 0.2 < pred["brand_seen_before"] < 0.95
    assert 0.3 < pred["target_on_result_page"] < 0.95
    assert pred["family_seen_before"] < 0.7


def test_users_buy_articles_again_and_most_items_once_or_never(stats: dict):
    rep = stats["repeats"]
    # users buy an article again (basics, a favourite): 8.5% of tiny's purchases by chance alone before
    # re-buys were drawn, 24% with them; demo 3.3% and 15.9% (docs/synthetic-data.md)
    assert 0.15 < rep["rebuy_share"] < 0.35
    assert 0.1 < rep["target_rebuy_share"] < 0.4
    # the long tail: about half the purchased items sell once and most of the catalog never sells
    assert 0.35 < rep["bought_once_share"] < 0.7
    assert rep["never_bought_share"] > 0.5
    # many test targets are articles a purchase-only leave-one-out split never trains on (export: 45%)
    assert 0.3 < rep["loo_cold_share"] < 0.7


def test_rebuys_buy_the_same_article_without_comparing(con):
    # a re-buy session clicks no other variant of the family it buys again
    compared = scalar(
        con,
        """with p as (select e.*, i.parent_id, row_number() over (partition by user_id, item_id
                                                                  order by ts, event_id) as nth
                     from events e join items i using (item_id) where action = 'purchase'),
           again as (select * from p where nth > 1 and search_id is null)
           select count(*) filter (where exists (
                      select 1 from events c join items i using (item_id)
                      where c.session_id = again.session_id and c.action = 'click'
                        and i.parent_id = again.parent_id and c.item_id <> again.item_id)) / count(*)
           from again""",
    )
    assert compared < 0.1


def test_format_stats_reports_all_properties(stats: dict):
    text = format_stats(stats)
    for heading in (
        "C1 high turnover",
        "C2 thorough comparison",
        "C3 attribute-driven shopping",
        "C4 diverse queries",
        "Position of purchases",
        "Repeat purchases",
    ):
        assert heading in text


def test_paper_presets_have_table_1_sizes():
    table_1 = {
        "luggage": (10_611, 61_550, 131_647),
        "footwear": (63_273, 380_385, 714_628),
        "accessories": (106_104, 524_433, 1_376_999),
        "clothing": (274_285, 1_386_910, 3_635_414),
    }
    for name, (users, items, interactions) in table_1.items():
        p = PRESETS[name]
        assert (p.n_users, p.n_items, p.n_interactions) == (users, items, interactions)
        assert len(p.categories) == 1
    assert set(PRESETS) == {"tiny", "demo", "luggage", "footwear", "accessories", "clothing"}


def test_custom_preset_and_errors(tmp_path: Path):
    small = PRESETS["tiny"].with_(name="mini", n_users=40, n_items=300, n_interactions=40 * 30)
    result = generate(small, tmp_path, seed=3)
    assert (result.n_users, result.n_items) == (40, 300)
    assert result.n_events == pq.read_metadata(tmp_path / "events.parquet").num_rows
    with pytest.raises(ValueError, match="n_interactions"):
        generate(PRESETS["tiny"].with_(n_interactions=10), tmp_path)
    with pytest.warns(UserWarning, match="lower mean_purchases_per_user"):
        generate(small.with_(n_interactions=40 * 4), tmp_path)
    with pytest.raises(ValueError, match="unknown preset"):
        generate("huge", tmp_path)
    with pytest.raises(ValueError, match="subcategory 'Dresses'"):
        GeneratorPreset(
            name="x",
            n_users=10,
            n_items=100,
            n_interactions=100,
            categories=("Footwear",),
            subcategories=("Dresses",),
        ).validate()
    with pytest.raises(FileNotFoundError, match="events.parquet"):
        compute_stats(tmp_path / "nowhere")
