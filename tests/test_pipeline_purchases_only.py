"""`fashionrec run` on a purchase-only export (`fashionrec generate --purchases-only`): every asset and
check, through the evaluation and its marts, with each stand-in for what such logs lack on record."""

from __future__ import annotations

import json

import duckdb
import pytest

from fashionrec.layout import TITLE_ENCODER_MANIFEST
from fashionrec.settings import Paths
from tests.conftest import TinyRun, run_whole_pipeline, small_tiny_logs
from tests.test_pipeline_tiny import GROUPS
from training.baselines import BASELINES
from warehouse.generator import generate, to_purchases_only


def write_purchase_only_logs(raw_dir):
    generate(small_tiny_logs(), raw_dir, seed=0)
    to_purchases_only(raw_dir)


@pytest.fixture(scope="module")
def purchases_only(tmp_path_factory: pytest.TempPathFactory) -> TinyRun:
    return run_whole_pipeline(tmp_path_factory.mktemp("purchases_only_home"), write_purchase_only_logs)


def rows(run: TinyRun, sql: str) -> list[tuple]:
    with duckdb.connect(str(run.home / "fashionrec.duckdb"), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_every_asset_materialized_and_every_check_passed(purchases_only):
    done = set(purchases_only.summary.materialized)
    for group, assets in GROUPS.items():
        assert assets <= done, (group, assets - done)
    assert purchases_only.summary.checks_failed == []
    assert rows(purchases_only, "select count(*) from query_listings") == [(0,)]


def test_candidates_come_from_the_history_and_the_popular_items(purchases_only):
    sources = dict(
        rows(purchases_only, "select candidate_source, count(*) from prompt_candidates group by 1")
    )
    assert set(sources) <= {"history", "popular", "history+popular"} and sources
    assert rows(purchases_only, "select min(n_candidates) from prompt_candidates") > [(0,)]
    shares = purchases_only.metadata("prompt_candidates")["candidate_sources"]
    assert set(shares) == set(sources) and sum(shares.values()) == pytest.approx(1.0)
    assert purchases_only.metadata("query_memory")["dagster/row_count"] == 0


def test_the_title_encoder_trains_on_purchase_sequences(purchases_only):
    meta = purchases_only.metadata("title_encoder")
    assert meta["pairs_source"] == "purchase_sequence"
    assert meta["train_pairs"] > 0 and meta["epochs"] >= 1
    encoder = Paths.under(purchases_only.home).artifacts.title_encoder()
    record = json.loads((encoder / TITLE_ENCODER_MANIFEST).read_text())
    assert record["pairs_source"] == "purchase_sequence"


def test_the_evaluation_scores_every_method_and_notes_the_stand_ins(purchases_only):
    methods = {m for (m,) in rows(purchases_only, "select distinct method from eval_metrics")}
    assert {"llm_mixup", "llm_only", "core", "popularity", *BASELINES} <= methods
    leaderboard = {m for (m,) in rows(purchases_only, "select distinct method from eval_leaderboard")}
    assert methods <= leaderboard
    [(config,)] = rows(purchases_only, "select config from eval_runs")
    notes = json.loads(config)["notes"].split("; ")
    assert notes == purchases_only.metadata("eval_metrics")["fallbacks"]
    memory, candidates, title_encoder, queries = notes
    assert memory.startswith("query memory empty")
    assert candidates.startswith("prompt candidates from") and "history" in candidates
    assert title_encoder.startswith("title encoder fine-tuned on") and "earlier purchase" in title_encoder
    assert queries.endswith("carry no query")
