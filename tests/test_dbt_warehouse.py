"""The dbt warehouse on small hand-made raw data: sessions, leakage, splits, prompts.

Two builds of the clean scenario in ``fixtures/raw_clean``: as typed Parquet (marts checked row by row)
and as JSON lines with one broken line (marts must equal the Parquet build). Bad input and the
quarantine are tests/test_dbt_quarantine.py's.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import pytest

from tests.dbt_builds import FIXTURES, MARTS, Build, count_differences, make_build, run_dbt

EVENTS_TYPED = """
    select event_id, user_id, session_id, cast(ts as timestamp) as ts, action, query, search_id,
           item_id, cast(position as integer) as position, cast(is_sponsored as boolean) as is_sponsored
    from read_csv('{path}', all_varchar = true)
"""
ITEMS_TYPED = """
    select * replace (cast(price as double) as price, cast(first_seen as date) as first_seen,
                      cast(last_seen as date) as last_seen)
    from read_csv('{path}', all_varchar = true)
"""


@pytest.fixture(scope="module")
def parquet_build(tmp_path_factory: pytest.TempPathFactory) -> Build:
    raw_dir = tmp_path_factory.mktemp("raw_parquet")
    with duckdb.connect() as con:
        con.execute(
            f"copy ({EVENTS_TYPED.format(path=FIXTURES / 'raw_clean' / 'events.csv')}) "
            f"to '{raw_dir / 'events.parquet'}' (format parquet)"
        )
        con.execute(
            f"copy ({ITEMS_TYPED.format(path=FIXTURES / 'raw_clean' / 'items.csv')}) "
            f"to '{raw_dir / 'items.parquet'}' (format parquet)"
        )
    build = make_build(tmp_path_factory, "parquet", raw_dir)
    run_dbt(["build"], build)
    return build


# --- the clean scenario, from Parquet --------------------------------------------------------


def test_clean_parquet_has_nothing_in_quarantine(parquet_build: Build) -> None:
    assert parquet_build.query("select count(*) from quarantine") == [(0,)]
    assert parquet_build.query("select count(*) from stg_raw__events") == [(21,)]


def test_sessions_are_logged_ids_or_cut_after_30_minutes(parquet_build: Build) -> None:
    rows = parquet_build.query(
        "select session_key, session_id, n_events, n_purchases from sessions order by 1"
    )
    assert rows == [
        # e101..e108; e109 comes 40 minutes after e108
        ("u1/#1", None, 8, 1),
        # e109..e111: a 25-minute gap stays in the session
        ("u1/#2", None, 3, 1),
        ("u1/#3", None, 2, 1),
        # a logged session_id is kept across a 3.5-hour gap
        ("u2/x1", "x1", 5, 1),
        ("u3/#1", None, 3, 1),
    ]


def test_user_sequences_drop_impressions_and_target_leaking_clicks(parquet_build: Build) -> None:
    rows = parquet_build.query(
        "select seq_no, event_id, action, query, query_norm, search_id, item_id, category "
        "from user_sequences where user_id = 'u1' order by seq_no"
    )
    assert rows == [
        (1, "e101", "search", "Red Suitcase!", "red suitcase", "s101", None, None),
        # e106 (click) and e107 (add_to_cart) on i1 are gone: the session buys i1 at e108
        (2, "e105", "click", "Red Suitcase!", "red suitcase", "s101", "i2", "Luggage & Bags"),
        (3, "e108", "purchase", "Red Suitcase!", "red suitcase", "s101", "i1", "Luggage & Bags"),
        # e109 has no search_id: it is its own search id, and e111 links to it through the session
        (4, "e109", "search", "boots", "boots", "e109", None, None),
        (5, "e111", "purchase", "boots", "boots", "e109", "i3", "Footwear"),
        (6, "e112", "click", None, None, None, "i5", "Clothing"),
        (7, "e113", "purchase", None, None, None, "i2", "Luggage & Bags"),
    ]


def test_splits_last_purchase_is_test_and_cold_items_are_flagged(parquet_build: Build) -> None:
    rows = parquet_build.query(
        "select target_id, user_id, target_item_id, seq_no, purchase_no, n_purchases, split, is_cold_item "
        "from splits order by user_id, purchase_no"
    )
    # the train vocabulary is u1's events up to e108 (the only train target): i2 and i1
    assert rows == [
        ("e108", "u1", "i1", 3, 1, 3, "train", False),
        ("e111", "u1", "i3", 5, 2, 3, "valid", True),
        ("e113", "u1", "i2", 7, 3, 3, "test", False),
        ("e204", "u2", "i2", 2, 1, 1, "test", False),
        ("e303", "u3", "i5", 2, 1, 1, "test", True),
    ]


def test_prompt_inputs_carry_ordered_history_and_latest_query(parquet_build: Build) -> None:
    rows = parquet_build.query(
        "select target_id, split, target_title, n_history_events, "
        "       [h.seq_no for h in history], [h.action for h in history], latest_query, latest_query_ts "
        "from prompt_inputs order by target_id"
    )
    assert rows == [
        (
            "e108",
            "train",
            "Red Hardside Suitcase",
            2,
            [1, 2],
            ["search", "click"],
            "Red Suitcase!",
            dt.datetime(2024, 3, 1, 10, 0),
        ),
        (
            "e111",
            "valid",
            "Black Chelsea Boots",
            4,
            [1, 2, 3, 4],
            ["search", "click", "purchase", "search"],
            "boots",
            dt.datetime(2024, 3, 1, 11, 0),
        ),
        (
            "e113",
            "test",
            "Blue Hardside Suitcase",
            6,
            [1, 2, 3, 4, 5, 6],
            ["search", "click", "purchase", "search", "purchase", "click"],
            "boots",
            dt.datetime(2024, 3, 1, 11, 0),
        ),
        (
            "e204",
            "test",
            "Blue Hardside Suitcase",
            1,
            [1],
            ["search"],
            "red  suitcase",
            dt.datetime(2024, 3, 1, 9, 0),
        ),
        (
            "e303",
            "test",
            "White Linen Shirt",
            1,
            [1],
            ["search"],
            "linen shirt",
            dt.datetime(2024, 3, 3, 8, 0),
        ),
    ]
    [(history,)] = parquet_build.query("select history from prompt_inputs where target_id = 'e108'")
    assert history[1] == {
        "seq_no": 2,
        "ts": dt.datetime(2024, 3, 1, 10, 5),
        "action": "click",
        "query": "Red Suitcase!",
        "item_id": "i2",
        "title": "Blue Hardside Suitcase",
        "category": "Luggage & Bags",
        "brand": "Voyager",
        "color": "blue",
        "size": "M",
        "season": "summer",
        "holiday": None,
        "occasion": "travel",
    }


def test_query_listings_merge_query_spellings_and_skip_sponsored(parquet_build: Build) -> None:
    rows = parquet_build.query(
        "select query_norm, item_id, n_searches, impressions, best_position, mean_position, clicks, "
        "       purchases, first_shown_at, organic_rank from query_listings order by query_norm, organic_rank"
    )
    assert rows == [
        ("boots", "i3", 1, 1, 1, 1.0, 0, 1, dt.datetime(2024, 3, 1, 11, 0), 1),
        ("linen shirt", "i5", 1, 1, 1, 1.0, 0, 1, dt.datetime(2024, 3, 3, 8, 0), 1),
        # "Red Suitcase!" and "red  suitcase" are one query; the sponsored i4 is not a listing;
        # i1 and i2 tie on positions and impressions, so item_id decides
        ("red suitcase", "i1", 2, 2, 1, 1.5, 1, 1, dt.datetime(2024, 3, 1, 9, 0), 1),
        ("red suitcase", "i2", 2, 2, 1, 1.5, 1, 1, dt.datetime(2024, 3, 1, 9, 0), 2),
    ]


def test_items_keep_extra_columns_as_attributes(parquet_build: Build) -> None:
    [(parent_id, price, first_seen, attributes)] = parquet_build.query(
        "select parent_id, price, first_seen, attributes::varchar from items where item_id = 'i4'"
    )
    assert (parent_id, price, first_seen) == ("p4", 45.0, dt.date(2024, 1, 20))
    assert attributes == '{"last_seen":"2024-06-30","gender":"women","material":"gold"}'


def test_docs_generate(parquet_build: Build) -> None:
    run_dbt(["docs", "generate"], parquet_build)
    catalog = (parquet_build.target_dir / "catalog.json").read_text()
    assert '"model.fashionrec.prompt_inputs"' in catalog


# --- the same scenario from JSON lines, with one line that is not JSON -----------------------


def test_jsonl_input_builds_the_same_marts(
    parquet_build: Build, tmp_path_factory: pytest.TempPathFactory
) -> None:
    raw_dir = tmp_path_factory.mktemp("raw_jsonl")
    with duckdb.connect() as con:
        con.execute(
            f"copy ({EVENTS_TYPED.format(path=FIXTURES / 'raw_clean' / 'events.csv')}) "
            f"to '{raw_dir / 'events.jsonl'}' (format json)"
        )
        con.execute(
            f"copy ({ITEMS_TYPED.format(path=FIXTURES / 'raw_clean' / 'items.csv')}) "
            f"to '{raw_dir / 'items.jsonl'}' (format json)"
        )
    with (raw_dir / "events.jsonl").open("a") as events:
        events.write('{"event_id": "e999", "user_id": \n')
    build = make_build(tmp_path_factory, "jsonl", raw_dir)
    run_dbt(["build"], build)

    assert build.query("select source, source_row_number, reason from quarantine") == [
        (
            "events",
            22,
            "unparseable row; missing event_id (number the rows if the export has none, see "
            "docs/raw-data.md); missing user_id; missing action; missing ts",
        ),
    ]
    for mart in MARTS:
        n_rows, n_different = count_differences(parquet_build, build, mart)
        assert n_rows > 0 and n_different == 0, f"{mart} differs between Parquet and JSON lines input"
