"""Bad raw input on the dbt warehouse: raw files resolved by extension (ambiguity refused), and every
malformed row of ``fixtures/raw_malformed`` (CSV) quarantined with its reasons while the good rows stay
typed; the counts add up.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import duckdb
import pytest

from tests.dbt_builds import FIXTURES, Build, make_build, run_dbt
from warehouse.raw_files import dbt_env, resolve_raw_files


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
    (23, None): "missing event_id (number the rows if the export has none, see docs/raw-data.md)",
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
