"""Publishing a Spark build as DuckDB views (warehouse.spark_tables), on Parquet written here the way Spark
writes it (UTC instants, at any depth), without starting Spark."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import duckdb
import pytest

from fashionrec.settings import Paths
from warehouse.spark_tables import built_models, publish


def _spark_like_table(where: Paths, name: str) -> None:
    folder = where.spark_table("fashionrec", name)
    folder.mkdir(parents=True)
    with duckdb.connect() as con:
        con.execute("set TimeZone = 'UTC'")
        con.execute(
            f"""copy (
                select 'u1' as user_id,
                       timestamptz '2024-03-01 23:30:00+00' as target_ts,
                       [{{'seq_no': 1, 'ts': timestamptz '2024-03-01 22:00:00+00', 'item_id': 'i1'}}]
                           as history,
                       '{{"color": "red"}}' as attributes
            ) to '{folder / "part-00000.parquet"}' (format parquet)"""
        )


def test_views_read_spark_parquet_as_duckdb_types_in_any_time_zone(tmp_path: Path):
    where = Paths.under(tmp_path)
    _spark_like_table(where, "prompt_inputs")
    with duckdb.connect(str(where.duckdb_path)) as con:
        # an earlier DuckDB build left a table of the same name
        con.execute("create table prompt_inputs as select 1 as stale")
        assert publish(con, where, [("fashionrec", "prompt_inputs")]) == ["prompt_inputs"]
        con.execute("set TimeZone = 'Asia/Tokyo'")  # a reader's own setting must not shift the instants
        types = {name: kind for name, kind, *_ in con.execute("describe prompt_inputs").fetchall()}
        assert types["target_ts"] == "TIMESTAMP"
        assert "ts TIMESTAMP," in types["history"] and "WITH TIME ZONE" not in types["history"]
        target_ts, history, attributes = con.execute(
            "select target_ts, history, attributes ->> 'color' from prompt_inputs"
        ).fetchone()
        assert target_ts == datetime(2024, 3, 1, 23, 30)
        assert history == [{"seq_no": 1, "ts": datetime(2024, 3, 1, 22, 0), "item_id": "i1"}]
        assert attributes == "red"
        kind = con.execute(
            "select table_type from information_schema.tables where table_name = 'prompt_inputs'"
        )
        assert kind.fetchone()[0] == "VIEW"


def test_a_missing_table_fails_clearly_and_publishes_nothing(tmp_path: Path):
    where = Paths.under(tmp_path)
    _spark_like_table(where, "items")
    with duckdb.connect(str(where.duckdb_path)) as con:
        with pytest.raises(FileNotFoundError, match="splits has no Parquet files"):
            publish(con, where, [("fashionrec", "items"), ("fashionrec", "splits")])
        assert con.execute("select count(*) from information_schema.tables").fetchone()[0] == 0


def test_only_models_that_built_are_published():
    manifest = {
        "nodes": {
            "model.fashionrec.items": {"schema": "fashionrec", "alias": "items"},
            "model.fashionrec.splits": {"schema": "fashionrec", "alias": "splits"},
            "test.fashionrec.not_null_items_item_id": {"schema": "fashionrec", "alias": "not_null"},
        }
    }
    run_results = {
        "results": [
            {"unique_id": "model.fashionrec.items", "status": "success"},
            {"unique_id": "model.fashionrec.splits", "status": "error"},
            {"unique_id": "test.fashionrec.not_null_items_item_id", "status": "pass"},
        ]
    }
    assert list(built_models(run_results, manifest)) == [("fashionrec", "items")]


def test_the_engine_comes_from_fashionrec_warehouse(monkeypatch):
    from assets.resources import PipelineSettings

    monkeypatch.delenv("FASHIONREC_WAREHOUSE", raising=False)
    assert PipelineSettings.from_env().warehouse_engine == "duckdb"
    monkeypatch.setenv("FASHIONREC_WAREHOUSE", "spark")
    assert PipelineSettings.from_env().warehouse_engine == "spark"
    monkeypatch.setenv("FASHIONREC_WAREHOUSE", "snowflake")
    with pytest.raises(
        ValueError, match="FASHIONREC_WAREHOUSE: warehouse engine 'snowflake' is none of duckdb, spark"
    ):
        PipelineSettings.from_env()
