"""A real export on the dbt warehouse (docs/raw-data.md, "Real exports"): a retailer's purchases only,
dated to the day, with article ids that look like numbers, prices as decimals and a catalog with only
some of the named columns, or with extra ones.

One export (``fixtures/raw_export``), five builds: CSV as written (checked mart by mart); JSON lines
with extra item columns; Parquet with text ids and DOUBLE prices; Parquet with integer ids, DATE
timestamps and DECIMAL prices; and a CSV catalog whose descriptions hold line breaks (staging only).
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import shutil

import duckdb
import pytest

from tests.dbt_builds import FIXTURES, MARTS, Build, count_differences, make_build, run_dbt

EXPORT = FIXTURES / "raw_export"
MISSING_EVENT_ID = "missing event_id (number the rows if the export has none, see docs/raw-data.md)"
# (source, source_row_number, record_id): reason
CSV_QUARANTINE = {
    ("events", 8, None): MISSING_EVENT_ID,
    # its item is quarantined itself
    ("events", 9, "000009"): "item not in catalog",
    # "108775015" is not the catalog's "0108775015"
    ("events", 10, "000010"): "item not in catalog",
    # a decimal comma: 12.99 or 1299?
    ("items", 4, "0111565001"): "unparseable price",
}
PRICES = {"0108775015": 0.0508, "0108775044": 12.99, "0110065001": 0.022}

# The export as typed Parquet. Neither a DOUBLE nor a DECIMAL column can hold "12,99": that item is
# left out, and its event stays "item not in catalog".
TEXT_ID_PARQUET = {
    "events": "select event_id, user_id, cast(ts as timestamp) as ts, action, item_id from {rows}",
    "items": "select item_id, title, category, cast(price as double) as price from {rows} "
    "where price not like '%,%'",
}
INTEGER_ID_PARQUET = {
    "events": "select event_id, user_id, cast(ts as date) as ts, action, cast(item_id as bigint) as item_id "
    "from {rows}",
    "items": "select cast(item_id as bigint) as item_id, title, category, "
    "cast(price as decimal(10, 4)) as price from {rows} where price not like '%,%'",
}


def export_rows(name: str) -> list[dict[str, str]]:
    """The rows of a CSV file of the export, empty cells left out (absent keys in JSON)."""
    with (EXPORT / name).open(newline="") as file:
        return [{key: value for key, value in row.items() if value} for row in csv.DictReader(file)]


def parquet_build(tmp_path_factory: pytest.TempPathFactory, name: str, selects: dict[str, str]) -> Build:
    """The export written as Parquet by ``selects`` (entity: a select over ``{rows}``), then built."""
    raw_dir = tmp_path_factory.mktemp(f"raw_{name}")
    with duckdb.connect() as con:
        for entity, select in selects.items():
            rows = f"read_csv('{EXPORT / f'{entity}.csv'}', all_varchar = true)"
            con.execute(
                f"copy ({select.format(rows=rows)}) to '{raw_dir / f'{entity}.parquet'}' (format parquet)"
            )
    build = make_build(tmp_path_factory, name, raw_dir)
    run_dbt(["build"], build)
    return build


def quarantined(build: Build) -> dict[tuple, str]:
    rows = build.query("select source, source_row_number, record_id, reason from quarantine")
    return {(source, row_number, record_id): reason for source, row_number, record_id, reason in rows}


def prices(build: Build) -> dict[str, float]:
    return dict(build.query("select item_id, price from items"))


@pytest.fixture(scope="module")
def csv_build(tmp_path_factory: pytest.TempPathFactory) -> Build:
    build = make_build(tmp_path_factory, "export_csv", EXPORT)
    run_dbt(["build"], build)
    return build


@pytest.fixture(scope="module")
def jsonl_build(tmp_path_factory: pytest.TempPathFactory) -> Build:
    raw_dir = tmp_path_factory.mktemp("raw_export_jsonl")
    events = export_rows("events.csv")
    # an id written as a JSON number is its decimal text: still not the catalog's "0108775015"
    events[9]["item_id"] = int(events[9]["item_id"])
    (raw_dir / "events.jsonl").write_text("".join(json.dumps(event) + "\n" for event in events))
    shutil.copy(EXPORT / "items_described.jsonl", raw_dir / "items.jsonl")
    build = make_build(tmp_path_factory, "export_jsonl", raw_dir)
    run_dbt(["build"], build)
    return build


@pytest.fixture(scope="module")
def text_id_parquet_build(tmp_path_factory: pytest.TempPathFactory) -> Build:
    return parquet_build(tmp_path_factory, "export_text_ids", TEXT_ID_PARQUET)


@pytest.fixture(scope="module")
def integer_id_parquet_build(tmp_path_factory: pytest.TempPathFactory) -> Build:
    return parquet_build(tmp_path_factory, "export_integer_ids", INTEGER_ID_PARQUET)


# --- the CSV export, mart by mart --------------------------------------------------------------


def test_only_unreadable_rows_are_quarantined(csv_build: Build) -> None:
    assert quarantined(csv_build) == CSV_QUARANTINE


def test_a_catalog_with_four_columns_builds_every_mart(csv_build: Build) -> None:
    assert csv_build.query(
        "select item_id, parent_id, title, category, subcategory, brand, color, size, season, holiday, "
        "       occasion, first_seen, attributes::varchar from items order by item_id"
    ) == [
        ("0108775015", "0108775015", "Strap top", "Garment Upper body", *[None] * 8, "{}"),
        ("0108775044", "0108775044", "Strap top (1)", "Garment Upper body", *[None] * 8, "{}"),
        ("0110065001", "0110065001", "OP T-shirt (Idro)", "Underwear", *[None] * 8, "{}"),
    ]
    counts = {mart: csv_build.query(f"select count(*) from {mart}")[0][0] for mart in MARTS}
    # purchases only: no searches, so no query listings
    assert counts == {
        "items": 3,
        "sessions": 3,
        "query_listings": 0,
        "user_sequences": 7,
        "splits": 7,
        "prompt_inputs": 7,
    }


def test_purchases_of_one_day_are_all_kept_in_event_id_order(csv_build: Build) -> None:
    day = dt.datetime(2020, 9, 22)
    assert csv_build.query(
        "select user_id, seq_no, event_id, ts, item_id from user_sequences order by user_id, seq_no"
    ) == [
        ("c1", 1, "000001", dt.datetime(2020, 9, 20), "0108775015"),
        # three purchases of one article and one of another, all at midnight of the 22nd; the file
        # has 000005 before 000003, but events at the same instant go by event_id
        ("c1", 2, "000002", day, "0108775044"),
        ("c1", 3, "000003", day, "0108775044"),
        ("c1", 4, "000004", day, "0110065001"),
        ("c1", 5, "000005", day, "0108775044"),
        ("c2", 1, "000006", dt.datetime(2020, 9, 21), "0110065001"),
        ("c2", 2, "000007", dt.datetime(2020, 9, 21), "0110065001"),
    ]
    assert csv_build.query("select session_key, n_events, n_purchases from sessions order by 1") == [
        ("c1/#1", 1, 1),
        ("c1/#2", 4, 4),
        ("c2/#1", 2, 2),
    ]
    assert csv_build.query(
        "select target_id, target_item_id, purchase_no, split, is_cold_item from splits "
        "order by user_id, purchase_no"
    ) == [
        ("000001", "0108775015", 1, "train", False),
        ("000002", "0108775044", 2, "train", False),
        ("000003", "0108775044", 3, "train", False),
        ("000004", "0110065001", 4, "valid", True),
        ("000005", "0108775044", 5, "test", False),
        # the same article twice in one day: one valid and one test target
        ("000006", "0110065001", 1, "valid", True),
        ("000007", "0110065001", 2, "test", True),
    ]
    assert csv_build.query(
        "select target_id, n_history_events, [h.item_id for h in history], latest_query "
        "from prompt_inputs where split <> 'train' order by target_id"
    ) == [
        ("000004", 3, ["0108775015", "0108775044", "0108775044"], None),
        ("000005", 4, ["0108775015", "0108775044", "0108775044", "0110065001"], None),
        ("000006", 0, [], None),
        ("000007", 1, ["0110065001"], None),
    ]


# --- the same export in other formats ----------------------------------------------------------


def test_article_ids_keep_their_leading_zeros_everywhere(csv_build: Build, jsonl_build: Build) -> None:
    for build in (csv_build, jsonl_build):
        for table, ids in (
            ("items", "item_id"),
            ("stg_raw__events", "item_id"),
            ("user_sequences", "item_id"),
            ("splits", "target_item_id"),
            ("prompt_inputs", "target_item_id"),
            ("(select unnest(history) as h from prompt_inputs)", "h.item_id"),
        ):
            found = {item_id for (item_id,) in build.query(f"select distinct {ids} from {table}")}
            assert found and found <= set(PRICES), (table, found)


def test_extra_item_columns_land_in_attributes(jsonl_build: Build) -> None:
    [(attributes,)] = jsonl_build.query("select attributes::varchar from items where item_id = '0108775044'")
    assert json.loads(attributes) == {
        "product_type": "Vest top",
        "colour_group": "White",
        "garment_group": "Jersey Basic",
        "description": 'Jersey top with "narrow" straps,\nin soft cotton.',
    }


def test_json_lines_and_text_id_parquet_build_the_same_marts(
    csv_build: Build, jsonl_build: Build, text_id_parquet_build: Build
) -> None:
    assert quarantined(jsonl_build) == CSV_QUARANTINE
    assert quarantined(text_id_parquet_build) == {
        key: reason for key, reason in CSV_QUARANTINE.items() if key[0] == "events"
    }
    for build in (jsonl_build, text_id_parquet_build):
        for mart in MARTS:
            # the catalog in JSON lines has extra columns; everything else must be the same
            columns = "* exclude (attributes)" if mart == "items" else "*"
            assert count_differences(csv_build, build, mart, columns)[1] == 0, (build.raw_dir, mart)


def test_integer_ids_are_their_decimal_text_in_both_files(integer_id_parquet_build: Build) -> None:
    build = integer_id_parquet_build
    assert build.query("select item_id from items order by 1") == [
        ("108775015",),
        ("108775044",),
        ("110065001",),
    ]
    assert quarantined(build) == {
        ("events", 8, None): MISSING_EVENT_ID,
        ("events", 9, "000009"): "item not in catalog",
    }
    # the zero is gone from both files alike, so 000010 now names a catalog item; DATE is midnight
    assert build.query(
        "select target_id, target_item_id, target_ts, split from splits where user_id = 'c3'"
    ) == [("000010", "108775015", dt.datetime(2020, 9, 22), "test")]
    assert build.query("select count(*) from user_sequences") == [(8,)]


def test_prices_parse_to_the_same_double_in_every_format(
    csv_build: Build, jsonl_build: Build, text_id_parquet_build: Build, integer_id_parquet_build: Build
) -> None:
    # text, JSON numbers, Parquet DOUBLE and Parquet DECIMAL(10, 4)
    assert prices(csv_build) == pytest.approx(PRICES)
    assert prices(jsonl_build) == prices(text_id_parquet_build) == prices(csv_build)
    assert {
        item_id.zfill(10): price for item_id, price in prices(integer_id_parquet_build).items()
    } == prices(csv_build)
    decimal_file = integer_id_parquet_build.raw_dir / "items.parquet"
    [(price_type,)] = duckdb.sql(
        f"select typeof(price) from read_parquet('{decimal_file}') limit 1"
    ).fetchall()
    assert price_type == "DECIMAL(10,4)"


def test_a_csv_catalog_may_hold_line_breaks_in_quotes(
    jsonl_build: Build, tmp_path_factory: pytest.TempPathFactory
) -> None:
    raw_dir = tmp_path_factory.mktemp("raw_export_described_csv")
    items = [json.loads(line) for line in (EXPORT / "items_described.jsonl").read_text().splitlines()]
    with (raw_dir / "items.csv").open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(items[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(items)
    shutil.copy(EXPORT / "events.csv", raw_dir / "events.csv")
    build = make_build(tmp_path_factory, "export_described_csv", raw_dir)
    run_dbt(["build"], build, select="base_raw__items")

    checked = (
        "select source_row_number, item_id, price, attributes::varchar, rejection_reason from base_raw__items"
    )
    rows = build.query(f"{checked} order by 1")
    # the quoted line break stays in its value and the row numbers count records, not lines
    assert [row[:2] for row in rows] == [
        (1, "0108775015"),
        (2, "0108775044"),
        (3, "0110065001"),
        (4, "0111565001"),
    ]
    assert rows == jsonl_build.query(f"{checked} order by 1")
