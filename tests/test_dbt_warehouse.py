"""The dbt warehouse on small hand-made raw data: quarantine, sessions, leakage, splits, prompts.

Three builds cover the three raw formats: the clean scenario in ``fixtures/raw_clean`` as typed
Parquet (marts checked row by row) and as JSON lines with one broken line (marts must equal the
Parquet build), and ``fixtures/raw_malformed`` as CSV (every bad row quarantined with its reason).
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest
from dbt.adapters.duckdb.connections import DuckDBConnectionManager
from dbt.cli.main import dbtRunner

from warehouse.raw_files import dbt_env, resolve_raw_files

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
MARTS = ("items", "sessions", "query_listings", "user_sequences", "splits", "prompt_inputs")

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


@dataclass(frozen=True)
class Build:
    home: Path
    raw_dir: Path
    target_dir: Path

    @property
    def database(self) -> Path:
        return self.home / "fashionrec.duckdb"

    def query(self, sql: str) -> list[tuple]:
        with duckdb.connect(str(self.database), read_only=True) as con:
            return con.execute(sql).fetchall()


def release_duckdb() -> None:
    """Close the DuckDB instance that dbt-duckdb keeps open in its class after an in-process run.

    Until then this process cannot open the database file with other settings (read-only here).
    """
    environment = DuckDBConnectionManager._ENV
    if environment is not None:
        environment.close()
    DuckDBConnectionManager.close_all_connections()


def run_dbt(args: list[str], build: Build) -> None:
    env = dbt_env(build.home, build.raw_dir)
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        result = dbtRunner().invoke(
            [
                *args,
                "--project-dir",
                str(DBT_PROJECT_DIR),
                "--profiles-dir",
                str(DBT_PROJECT_DIR),
                "--target-path",
                str(build.target_dir),
                "--log-path",
                str(build.target_dir / "logs"),
                # the warehouse models only: models reading later pipeline stages are not tested here
                "--selector",
                "warehouse",
            ]
        )
    release_duckdb()
    if not result.success:
        failures = []
        for node_result in getattr(result.result, "results", None) or []:
            if str(node_result.status) not in ("success", "pass", "warn"):
                failures.append(f"{node_result.node.unique_id}: {node_result.status}: {node_result.message}")
        raise AssertionError(f"dbt {args[0]} failed: {result.exception or ''}\n" + "\n".join(failures))


def make_build(tmp_path_factory: pytest.TempPathFactory, name: str, raw_dir: Path) -> Build:
    root = tmp_path_factory.mktemp(name)
    home = root / "home"
    home.mkdir()
    return Build(home=home, raw_dir=raw_dir, target_dir=root / "target")


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


@pytest.fixture(scope="module")
def csv_malformed_build(tmp_path_factory: pytest.TempPathFactory) -> Build:
    build = make_build(tmp_path_factory, "malformed", FIXTURES / "raw_malformed")
    run_dbt(["build"], build)
    return build


# --- raw file resolution -----------------------------------------------------------------


def test_raw_files_resolve_by_extension_and_refuse_ambiguity(tmp_path: Path) -> None:
    (tmp_path / "events.jsonl").write_text("{}\n")
    with pytest.raises(FileNotFoundError, match=r"No items file .*items\.parquet, items\.csv"):
        resolve_raw_files(tmp_path)
    (tmp_path / "items.csv").write_text("item_id\n")
    assert resolve_raw_files(tmp_path) == {
        "events": (tmp_path / "events.jsonl").resolve(),
        "items": (tmp_path / "items.csv").resolve(),
    }
    env = dbt_env(tmp_path / "home", tmp_path)
    assert env["FASHIONREC_RAW_ITEMS"] == str((tmp_path / "items.csv").resolve())
    assert os.path.isabs(env["FASHIONREC_HOME"])
    (tmp_path / "events.parquet").write_bytes(b"")
    with pytest.raises(ValueError, match=r"Several events files .*events\.parquet, events\.jsonl"):
        resolve_raw_files(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_raw_files(tmp_path / "missing")
    # parsing the project needs no data yet: missing files default to the generator's Parquet
    parse_env = dbt_env(tmp_path / "home", tmp_path / "missing", require_files=False)
    assert parse_env["FASHIONREC_RAW_EVENTS"] == str((tmp_path / "missing" / "events.parquet").resolve())


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
        ("events", 22, "unparseable row; missing event_id; missing user_id; missing action; missing ts"),
    ]
    with duckdb.connect() as con:
        con.execute(f"attach '{parquet_build.database}' as from_parquet (read_only)")
        con.execute(f"attach '{build.database}' as from_jsonl (read_only)")
        for mart in MARTS:
            [(n_rows,)] = con.execute(f"select count(*) from from_parquet.main.{mart}").fetchall()
            [(n_different,)] = con.execute(
                f"select count(*) from ((select * from from_parquet.main.{mart} except all "
                f"select * from from_jsonl.main.{mart}) union all (select * from from_jsonl.main.{mart} "
                f"except all select * from from_parquet.main.{mart}))"
            ).fetchall()
            assert n_rows > 0 and n_different == 0, f"{mart} differs between Parquet and JSON lines input"


# --- malformed CSV ---------------------------------------------------------------------------

EXPECTED_EVENT_REASONS = {
    # (source_row_number, record_id): reason
    (6, "g5"): "exact duplicate",
    (9, "b1"): "unknown action",
    (10, "b2"): "missing user_id",
    (11, "b3"): "missing item_id",
    (12, "b4"): "missing ts",
    (13, "b5"): "unparseable ts",
    (14, "b6"): "position not an integer >= 1",
    (15, "b7"): "position not an integer >= 1",
    (16, "b8"): "position not an integer >= 1",
    (17, "b9"): "search without query",
    (18, "b10"): "item not in catalog",
    # m5 is in the raw catalog but quarantined itself
    (19, "b11"): "item not in catalog",
    (20, "b12"): "duplicate event_id with different content",
    (21, "b12"): "duplicate event_id with different content",
    (22, "b13"): "is_sponsored not boolean",
    (23, None): "missing event_id",
    (24, "b15"): "missing user_id; unknown action; position not an integer >= 1",
}
EXPECTED_ITEM_REASONS = {
    (3, None): "missing item_id",
    (4, "m3"): "missing title",
    (5, "m4"): "missing category",
    (6, "m5"): "unparseable price",
    (7, "m6"): "unparseable first_seen",
    (8, "m7"): "duplicate item_id with different content",
    (9, "m7"): "duplicate item_id with different content",
    (11, "m8"): "exact duplicate",
    (12, "m9"): "missing title; missing category; unparseable price",
}


def test_every_malformed_row_is_quarantined_with_its_reasons(csv_malformed_build: Build) -> None:
    for source, expected in (("events", EXPECTED_EVENT_REASONS), ("items", EXPECTED_ITEM_REASONS)):
        rows = csv_malformed_build.query(
            f"select source_row_number, record_id, reason from quarantine where source = '{source}'"
        )
        assert {(row_number, record_id): reason for row_number, record_id, reason in rows} == expected


def test_malformed_csv_counts_add_up(csv_malformed_build: Build) -> None:
    for source, file_name, clean_model in (
        ("events", "events.csv", "stg_raw__events"),
        ("items", "items.csv", "stg_raw__items"),
    ):
        with duckdb.connect() as con:
            raw_file = FIXTURES / "raw_malformed" / file_name
            [(n_raw,)] = con.execute(
                f"select count(*) from read_csv('{raw_file}', all_varchar = true)"
            ).fetchall()
        [(n_clean,)] = csv_malformed_build.query(f"select count(*) from {clean_model}")
        [(n_quarantined,)] = csv_malformed_build.query(
            f"select count(*) from quarantine where source = '{source}'"
        )
        assert n_raw == n_clean + n_quarantined


def test_malformed_csv_keeps_the_good_rows_typed(csv_malformed_build: Build) -> None:
    assert csv_malformed_build.query(
        "select event_id, ts, action, position, is_sponsored from stg_raw__events order by event_id"
    ) == [
        ("g1", dt.datetime(2024, 3, 1, 10, 0), "search", None, False),
        ("g2", dt.datetime(2024, 3, 1, 10, 0), "impression", 1, False),
        ("g3", dt.datetime(2024, 3, 1, 10, 1), "click", 2, False),
        ("g4", dt.datetime(2024, 3, 1, 10, 2), "purchase", 1, False),
        ("g5", dt.datetime(2024, 3, 1, 10, 3), "click", None, False),
        # " Purchase " is trimmed and lower-cased
        ("g6", dt.datetime(2024, 3, 1, 10, 4), "purchase", None, False),
        # +02:00 is converted to UTC
        ("g7", dt.datetime(2024, 3, 1, 10, 0), "purchase", None, True),
    ]
    assert csv_malformed_build.query(
        "select item_id, parent_id, title, price from items order by item_id"
    ) == [
        ("m1", "m1", "Canvas Weekender Bag", 59.0),
        ("m2", "pm2", "Running Shoe", 74.5),
        ("m8", "pm8", "Leather Belt", 35.0),
    ]
    [(raw_row,)] = csv_malformed_build.query(
        "select raw_row::varchar from quarantine where source = 'items' and record_id = 'm5'"
    )
    assert '"price":"abc"' in raw_row
