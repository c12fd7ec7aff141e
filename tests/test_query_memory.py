"""Query-product memory: normalisation, Q nearest queries x top-V items, time-awareness, batch = online."""

import hashlib
from pathlib import Path

import lancedb
import numpy as np
import pandas as pd
import pytest
import torch

from fashionrec.layout import QUERY_MEMORY_TABLE
from recommender.encoders import BatchedEncoder
from recommender.query_memory import (
    MemoryManifest,
    MemorySettings,
    QueryMemory,
    build_memory,
    hit_rate,
    memory_rows,
    normalize_query,
    prompt_candidates,
)
from recommender.query_memory_lookup import QueryMemoryLookup

T0 = pd.Timestamp("2024-03-01 12:00:00")


def day(n: float) -> pd.Timestamp:
    return T0 + pd.Timedelta(days=n)


class BagOfWordsEncoder(BatchedEncoder):
    """Sum of fixed random word vectors: queries sharing words are near each other."""

    def __init__(self) -> None:
        self.spec, self.dim, self.batch_size, self.show_progress = "bag-of-words", 32, 64, False
        self._fingerprint = None
        self.module = torch.nn.Linear(1, 1)
        self.calls = 0

    def _word(self, word: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha256(word.encode()).digest()[:4], "little")
        return np.random.default_rng(seed).normal(size=self.dim)

    def _encode_batch(self, texts):
        self.calls += 1
        return np.stack([sum(self._word(w) for w in text.split()) for text in texts])

    def _weights_module(self):
        return self.module


LISTINGS = pd.DataFrame(
    [
        # query_norm, item_id, organic_rank, first_shown_at
        ("red dress", "d1", 1, day(0)),
        ("red dress", "d2", 2, day(5)),  # appears in results only later
        ("red dress", "d3", 3, day(0)),
        ("red dress", "d4", 4, day(0)),
        ("red summer dress", "d5", 1, day(1)),
        ("red summer dress", "d1", 2, day(1)),
        ("black leather boots", "b1", 1, day(0)),
        ("black leather boots", "b2", 2, day(0)),
        ("leather boots", "b3", 1, day(10)),  # a query first searched late
    ],
    columns=["query_norm", "item_id", "organic_rank", "first_shown_at"],
)


@pytest.fixture
def memory_db(tmp_path: Path):
    db = lancedb.connect(str(tmp_path / "lancedb"))
    encoder = BagOfWordsEncoder()
    settings = MemorySettings(neighbours=2, items_per_query=2, max_stored_items=50)
    written = build_memory(db, LISTINGS, encoder, settings)
    manifest = MemoryManifest.of(encoder, settings).save(tmp_path / "query_memory.json")
    assert MemoryManifest.load(manifest).settings == settings
    return db, encoder, settings, written, manifest


def test_normalisation_matches_the_dbt_macro():
    assert normalize_query("  Red-Dress,  SIZE 8!! ") == "red dress size 8"
    assert normalize_query("Women's  boots") == "women s boots"
    assert (
        normalize_query("?!") is None
        and normalize_query(None) is None
        and normalize_query(float("nan")) is None
    )


def test_memory_rows_keep_the_best_listings_in_organic_order():
    rows = memory_rows(LISTINGS, max_stored_items=3).set_index("query_norm")
    assert rows.loc["red dress", "item_ids"] == ["d1", "d2", "d3"]
    assert rows.loc["red dress", "n_listings"] == 4
    assert rows.loc["red dress", "first_shown_at"] == pd.Timestamp(day(0), tz="UTC")
    assert rows.loc["leather boots", "first_shown_at"] == pd.Timestamp(day(10), tz="UTC")
    with pytest.raises(ValueError, match="query_listings lacks"):
        memory_rows(LISTINGS.drop(columns="organic_rank"), 3)


def test_memory_table_has_one_row_per_query(memory_db):
    db, encoder, _, written, _ = memory_db
    assert written.rows == 4 and written.encoded == 4
    again = build_memory(db, LISTINGS, encoder, MemorySettings(2, 2, 50))
    assert again.encoded == 0  # same queries, same encoder: nothing re-embedded
    stored = db.open_table(QUERY_MEMORY_TABLE).to_pandas()
    assert sorted(stored["query_norm"]) == [
        "black leather boots",
        "leather boots",
        "red dress",
        "red summer dress",
    ]


def test_lookup_unions_top_v_of_q_nearest_queries_visible_at_the_time(memory_db):
    db, encoder, settings, _, manifest = memory_db
    memory = QueryMemory.from_table(db.open_table(QUERY_MEMORY_TABLE))
    prompts = pd.DataFrame(
        {
            "target_id": ["t1", "t2", "t3", "t4", "t5"],
            "target_item_id": ["d3", "d2", "b3", "b1", "x"],
            "latest_query": ["Red Dress!", "red dress", "leather boots", "leather boots", None],
            "target_ts": [day(2), day(6), day(3), day(11), day(20)],
            "split": ["valid", "valid", "test", "valid", "valid"],
        }
    )
    found = prompt_candidates(prompts, memory, encoder, settings).set_index("target_id")
    # day 2: d2 not yet shown, so "red dress" gives d1, d3; then "red summer dress" adds d5 (d1 already in)
    assert found.loc["t1", "candidate_item_ids"] == ["d1", "d3", "d5"]
    assert bool(found.loc["t1", "target_in_candidates"])
    # day 6: d2 is visible and ranks 2nd
    assert found.loc["t2", "candidate_item_ids"][:2] == ["d1", "d2"]
    # day 3: the "leather boots" query itself is not searched yet; its nearest visible query is used
    assert "b3" not in found.loc["t3", "candidate_item_ids"]
    assert found.loc["t3", "candidate_item_ids"][:2] == ["b1", "b2"]
    # day 11: now it is the nearest query
    assert found.loc["t4", "candidate_item_ids"][0] == "b3"
    assert found.loc["t5", "candidate_item_ids"] == [] and found.loc["t5", "n_candidates"] == 0
    assert (found["n_candidates"] <= settings.neighbours * settings.items_per_query).all()

    # the online path (LanceDB with a time prefilter) answers the same
    online = QueryMemoryLookup.open(db, manifest, encoder=encoder)
    answers = online.lookup_many(prompts["latest_query"].tolist(), prompts["target_ts"].tolist())
    assert answers == found.loc[prompts["target_id"], "candidate_item_ids"].tolist()
    assert online.lookup("red dress") == ["d1", "d2", "d5"]  # now: everything is visible

    rates = hit_rate(found.reset_index(), prompts, "valid")
    assert rates["valid_targets"] == 4
    assert rates["valid_hit_rate"] == pytest.approx(3 / 4)  # t1, t2, t4 hit; t5 has no query
    assert rates["valid_hit_rate_with_query"] == pytest.approx(1.0)


def test_nearest_is_exact_and_chunking_does_not_change_it(memory_db):
    db, encoder, _, _, _ = memory_db
    memory = QueryMemory.from_table(db.open_table(QUERY_MEMORY_TABLE))
    queries = encoder.encode(["red dress", "boots", "summer", "leather"])
    cutoffs = np.full(4, np.iinfo(np.int64).max)
    whole, sims = memory.nearest(queries, cutoffs, 3)
    chunked, _ = memory.nearest(queries, cutoffs, 3, row_chunk=1, memory_chunk=2)
    np.testing.assert_array_equal(whole, chunked)
    brute = np.argsort(-(queries @ memory.vectors.T), axis=1, kind="stable")[:, :3]
    np.testing.assert_array_equal(whole, brute)
    assert np.all(np.diff(sims, axis=1) <= 0)
    nothing_visible, _ = memory.nearest(queries, np.zeros(4, dtype=np.int64), 2)
    assert (nothing_visible == -1).all()


def test_manifest_guards_against_a_different_encoder(memory_db):
    db, _, _, _, manifest = memory_db

    class Wider(BagOfWordsEncoder):
        def __init__(self):
            super().__init__()
            self.dim = 16

    with pytest.raises(ValueError, match="rebuild the query_memory asset"):
        QueryMemoryLookup.open(db, manifest, encoder=Wider())
    with pytest.raises(FileNotFoundError, match="materialize the query_memory asset"):
        MemoryManifest.load(manifest.parent / "missing.json")


def test_logs_without_searches_give_an_empty_memory_and_no_candidates(tmp_path):
    db = lancedb.connect(str(tmp_path / "lancedb"))
    encoder = BagOfWordsEncoder()
    written = build_memory(db, LISTINGS.iloc[:0], encoder)
    assert written.rows == 0
    memory = QueryMemory.from_table(db.open_table(QUERY_MEMORY_TABLE))
    prompts = pd.DataFrame(
        {
            "target_id": ["t1"],
            "target_item_id": ["d1"],
            "latest_query": [None],
            "target_ts": [day(1)],
            "split": ["valid"],
        }
    )
    found = prompt_candidates(prompts, memory, encoder)
    assert found["candidate_item_ids"].tolist() == [[]] and not found["target_in_candidates"].any()
