"""Retrieval with Mixup (paper §4.4): list order, sources, fallbacks, and online == batched."""

from __future__ import annotations

import zlib

import lancedb
import numpy as np
import pandas as pd
import pytest

from recommender.mixup import MixupConfig, MixupRetriever, lead_with_ranking, mix, mixup_batch
from recommender.retrieval import Neighbor, VectorCatalog
from recommender.vector_store import frame_to_arrow, write_vectors

DIM = 32


def bag_of_words(texts) -> np.ndarray:
    """A deterministic stand-in for the title encoder: hashed words, unit length."""
    out = np.zeros((len(texts), DIM), dtype=np.float32)
    for row, text in enumerate(texts):
        for word in text.lower().split():
            out[row, zlib.crc32(word.encode()) % DIM] += 1.0
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def neighbors(*ids: str) -> list[Neighbor]:
    return [Neighbor(item_id, 1.0 - 0.1 * i) for i, item_id in enumerate(ids)]


def test_mix_takes_n_from_the_id_list_then_fills_from_the_title_list_without_duplicates():
    a = neighbors("a1", "a2", "a3")
    b = neighbors("a1", "b1", "b2", "b3", "b4")
    out = mix(a, b, MixupConfig(k=4, n=1))
    assert [(r.rank, r.item_id, r.source) for r in out] == [
        (1, "a1", "id"),
        (2, "b1", "title"),
        (3, "b2", "title"),
        (4, "b3", "title"),
    ]
    assert out[0].score == pytest.approx(1.0) and out[1].score == pytest.approx(0.9)
    out = mix(a, b, MixupConfig(k=4, n=2))
    assert [(r.item_id, r.source) for r in out] == [
        ("a1", "id"),
        ("a2", "id"),
        ("b1", "title"),
        ("b2", "title"),
    ]


def test_mix_without_an_id_list_or_with_n_zero_is_all_title():
    b = neighbors("b1", "b2", "b3")
    assert [r.item_id for r in mix([], b, MixupConfig(k=2, n=1))] == ["b1", "b2"]
    assert {r.source for r in mix(neighbors("a1"), b, MixupConfig(k=3, n=0))} == {"title"}
    assert mix([], [], MixupConfig()) == []


def test_mix_with_short_lists_returns_fewer_items():
    out = mix(neighbors("a1"), neighbors("a1", "b1"), MixupConfig(k=10, n=1))
    assert [r.item_id for r in out] == ["a1", "b1"]


def test_config_rejects_impossible_values():
    with pytest.raises(ValueError, match="0 <= n <= k"):
        MixupConfig(k=3, n=4)
    with pytest.raises(ValueError, match="k >= 1"):
        MixupConfig(k=0, n=0)


@pytest.fixture
def vector_db(tmp_path):
    """Two categories; shoes s0..s5 with titles, s4 and s5 share the ID model's cold vector."""
    rng = np.random.default_rng(0)
    items = pd.DataFrame(
        {
            "item_id": ["s0", "s1", "s2", "s3", "s4", "s5", "b0", "b1", "b2"],
            "category": ["Footwear"] * 6 + ["Luggage & Bags"] * 3,
            "title": [
                "red leather boot",
                "blue canvas sneaker",
                "red canvas sneaker",
                "black leather loafer",
                "green rain boot",
                "white tennis sneaker",
                "black travel backpack",
                "red carry on suitcase",
                "brown leather duffel",
            ],
        }
    )
    id_vectors = rng.normal(size=(9, 16)).astype(np.float32)
    id_vectors[5] = id_vectors[4]  # the shared cold vector
    db = lancedb.connect(str(tmp_path / "lancedb"))
    write_vectors(db, "item_id_vectors", frame_to_arrow(items[["item_id", "category"]], id_vectors))
    write_vectors(db, "item_title_vectors", frame_to_arrow(items, bag_of_words(items["title"])))
    return db, items


GENERATIONS = pd.DataFrame(
    {
        "target_id": ["t1", "t2", "t3", "t4", "t5", "t6", "t7"],
        "category": [
            "Footwear",
            "Footwear",
            "Footwear",
            "Footwear",
            "Footwear",
            "Luggage & Bags",
            "Footwear",
        ],
        "item_id": ["s2", "s5", "unknown", None, "b1", "b0", None],
        "title": [
            "red canvas sneaker",
            "white tennis sneaker",
            "black leather loafer",
            None,
            "red carry on suitcase",
            "black travel backpack",
            None,
        ],
        "raw_text": ["", "", "", "<id>broken green rain boot", "", "", "  "],
    }
)


def test_online_and_batched_mixup_agree(vector_db):
    db, _ = vector_db
    config = MixupConfig(k=4, n=1)
    retriever = MixupRetriever(db, bag_of_words, config)
    batched = mixup_batch(
        GENERATIONS,
        VectorCatalog.from_table(db.open_table("item_id_vectors")),
        VectorCatalog.from_table(db.open_table("item_title_vectors")),
        bag_of_words,
        config,
        batch_size=3,
    )
    for row in GENERATIONS.itertuples():
        online = retriever.recommend(row.category, row.item_id, row.title, row.raw_text)
        mine = batched[batched["target_id"] == row.target_id].sort_values("rank")
        assert [(r.rank, r.item_id, r.source) for r in online] == list(
            zip(mine["rank"], mine["item_id"], mine["source"], strict=True)
        ), row.target_id
        np.testing.assert_allclose([r.score for r in online], mine["score"], atol=1e-5)


def test_batched_mixup_lists(vector_db):
    db, items = vector_db
    out = mixup_batch(
        GENERATIONS,
        VectorCatalog.from_table(db.open_table("item_id_vectors")),
        VectorCatalog.from_table(db.open_table("item_title_vectors")),
        bag_of_words,
        MixupConfig(k=4, n=1),
    )
    lists = {t: g.sort_values("rank") for t, g in out.groupby("target_id")}
    # the generated item itself leads, then the title list skips it
    assert lists["t1"]["item_id"].iloc[0] == "s2" and lists["t1"]["source"].tolist() == ["id"] + ["title"] * 3
    assert lists["t1"]["item_id"].tolist().count("s2") == 1
    # s5 shares its vector with s4 (cold): the generated s5 still comes first
    assert lists["t2"]["item_id"].iloc[0] == "s5"
    # an id without a vector: everything from the title list, the loafer first
    assert lists["t3"]["source"].eq("title").all() and lists["t3"]["item_id"].iloc[0] == "s3"
    # no id, no title: the raw text is encoded
    assert lists["t4"]["source"].eq("title").all() and lists["t4"]["item_id"].iloc[0] == "s4"
    # an id from another category: list A holds the nearest shoe to it, never a bag
    footwear = set(items.loc[items["category"] == "Footwear", "item_id"])
    assert set(lists["t5"]["item_id"]) <= footwear and lists["t5"]["source"].iloc[0] == "id"
    assert lists["t6"]["item_id"].iloc[0] == "b0" and len(lists["t6"]) == 3  # the category has 3 items
    # nothing usable at all: no list
    assert "t7" not in lists
    assert (out.groupby("target_id")["item_id"].nunique() == out.groupby("target_id").size()).all()


def test_batched_mixup_names_missing_columns(vector_db):
    db, _ = vector_db
    catalog = VectorCatalog.from_table(db.open_table("item_id_vectors"))
    with pytest.raises(KeyError, match="lacks column"):
        mixup_batch(GENERATIONS.drop(columns="title"), catalog, catalog, bag_of_words)


def test_lead_with_ranking_puts_the_best_in_category_candidates_first():
    mixed = mix(neighbors("s3", "s1"), neighbors("s1", "s0", "s2", "s5"), MixupConfig(k=4, n=1))
    ranking = ["b1", "s2", "s4", "unknown", "s2", "s0", "s5"]  # a bag, an unknown id, a repeat: skipped
    footwear = {f"s{i}" for i in range(6)}
    out = lead_with_ranking(ranking, footwear, mixed, MixupConfig(k=4, n=1, lead=3))
    assert [(r.rank, r.item_id, r.source) for r in out] == [
        (1, "s2", "ranked"),
        (2, "s4", "ranked"),
        (3, "s0", "ranked"),
        (4, "s3", "id"),
    ]
    assert [r.score for r in out[:3]] == pytest.approx([1.0, 0.5, 1 / 3])
    # nothing to lead with: the mixup as it is
    for ranking, lead in ((None, 3), ([], 3), (["b1", "unknown"], 3), (["s2"], 0)):
        assert lead_with_ranking(ranking, footwear, mixed, MixupConfig(k=4, n=1, lead=lead)) == mixed


def test_batched_mixup_with_a_ranking(vector_db):
    db, _ = vector_db
    ids = VectorCatalog.from_table(db.open_table("item_id_vectors"))
    titles = VectorCatalog.from_table(db.open_table("item_title_vectors"))
    # the best candidate as the generation, the whole ranking beside it (as the controls build it)
    ranked = pd.DataFrame(
        {
            "target_id": ["t1", "t2"],
            "category": ["Footwear", "Luggage & Bags"],
            "item_id": ["s3", "b2"],
            "title": ["black leather loafer", "brown leather duffel"],
            "ranked_item_ids": [["s3", "b1", "s0", "unknown", "s4", "s1"], ["b2", "s0", "b0"]],
        }
    )

    def lists(frame: pd.DataFrame, lead: int) -> dict[str, list[tuple[str, str]]]:
        out = mixup_batch(frame, ids, titles, bag_of_words, MixupConfig(k=5, n=1, lead=lead))
        return {
            t: list(zip(g["item_id"], g["source"], strict=True))
            for t, g in out.sort_values("rank").groupby("target_id")
        }

    plain = lists(ranked.drop(columns="ranked_item_ids"), 1)
    first = lists(ranked, 1)
    for target_id in ("t1", "t2"):  # lead 1: the plain mixup of the best candidate, led by it
        assert [i for i, _ in first[target_id]] == [i for i, _ in plain[target_id]]
        assert first[target_id][0] == (ranked.set_index("target_id").loc[target_id, "item_id"], "ranked")
        assert plain[target_id][0][1] == "id"
    three = lists(ranked, 3)
    assert three["t1"][:3] == [("s3", "ranked"), ("s0", "ranked"), ("s4", "ranked")]  # b1, unknown skipped
    assert three["t2"][:2] == [("b2", "ranked"), ("b0", "ranked")] and len(three["t2"]) == 3
    assert all(source != "ranked" for _, source in three["t1"][3:])
    assert len({i for i, _ in three["t1"]}) == len(three["t1"]) == 5
