"""The evaluation run's notes on what earlier stages did in place of what the logs lack."""

import json

import duckdb
import lancedb
import pandas as pd
import pytest

from evaluation.fallbacks import fallback_notes, with_notes
from evaluation.settings import EvaluationSettings
from fashionrec.layout import TITLE_ENCODER_MANIFEST, ArtifactLayout
from recommender.query_memory import build_memory
from tests.test_query_memory import LISTINGS, BagOfWordsEncoder


def warehouse(sources: list[str], queries: list[str | None]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    targets = [f"t{i}" for i in range(len(sources))]
    con.register("candidates", pd.DataFrame({"target_id": targets, "candidate_source": sources}))
    con.register("inputs", pd.DataFrame({"target_id": targets, "latest_query": queries}))
    con.execute("create table prompt_candidates as select * from candidates")
    con.execute("create table prompt_inputs as select * from inputs")
    return con


def artifacts(tmp_path, pairs_source: str, train_pairs: int) -> ArtifactLayout:
    layout = ArtifactLayout(tmp_path / "artifacts")
    layout.title_encoder().mkdir(parents=True)
    record = {"spec": "lstm:./model", "pairs_source": pairs_source, "train_pairs": train_pairs}
    (layout.title_encoder() / TITLE_ENCODER_MANIFEST).write_text(json.dumps(record))
    return layout


@pytest.fixture
def memory(tmp_path):
    def build(listings: pd.DataFrame):
        db = lancedb.connect(str(tmp_path / "lancedb"))
        build_memory(db, listings, BagOfWordsEncoder())
        return db

    return build


def test_purchase_only_inputs_are_named_in_pipeline_order(tmp_path, memory):
    con = warehouse(["history+popular", "history+popular", "popular", "popular"], [None] * 4)
    layout = artifacts(tmp_path, "purchase_sequence", 12)
    notes = fallback_notes(con, layout, memory(LISTINGS.iloc[:0]), EvaluationSettings())
    assert notes == [
        "query memory empty (the logs have no organic search listings)",
        "prompt candidates from history+popular 50%, popular 50%",
        "title encoder fine-tuned on 12 (earlier purchase's title, next purchased title) pairs "
        "(the logs have no queries)",
        "no prompt target has a search before it: prompts and text_seq_query carry no query",
    ]
    untuned = artifacts(tmp_path / "untuned", "none", 0)
    assert (
        "title encoder untuned"
        in fallback_notes(con, untuned, memory(LISTINGS.iloc[:0]), EvaluationSettings())[2]
    )
    # a run that scores no method reading the title vectors, or names its own encoder, is not told
    for settings in (EvaluationSettings(methods=("core",)), EvaluationSettings(title_encoder="lstm:/x")):
        assert not any(
            "title encoder" in note for note in fallback_notes(con, layout, memory(LISTINGS), settings)
        )


def test_logs_with_searches_give_no_notes_and_notes_follow_the_runs_own(tmp_path, memory):
    con = warehouse(["memory", "memory", "none"], ["red dress", "boots", None])
    notes = fallback_notes(con, artifacts(tmp_path, "query", 40), memory(LISTINGS), EvaluationSettings())
    assert notes == []
    old = warehouse(["memory"], ["boots"])
    old.execute("alter table prompt_candidates drop column candidate_source")  # written before sources
    assert (
        fallback_notes(old, ArtifactLayout(tmp_path / "none"), memory(LISTINGS), EvaluationSettings()) == []
    )
    assert with_notes(EvaluationSettings(notes="study"), ["a", "b"]).notes == "study; a; b"
    assert with_notes(EvaluationSettings(), []).notes == ""
