"""Cosine top-k within a category: the LanceDB path and the batched matrix path rank items identically."""

from __future__ import annotations

import lancedb
import numpy as np
import pandas as pd
import pytest

from recommender.retrieval import VectorCatalog, item_vector, search_table, top_k_indices
from recommender.vector_store import frame_to_arrow, write_vectors

CATEGORIES = ["Footwear", "Luggage & Bags", "Women's Shoes"]  # an apostrophe must survive the filter


def make_table(tmp_path, vectors: np.ndarray, categories: list[str], ids: list[str] | None = None):
    ids = ids or [f"i{j:03d}" for j in range(len(vectors))]
    frame = pd.DataFrame({"item_id": ids, "category": categories})
    db = lancedb.connect(str(tmp_path / "lancedb"))
    write_vectors(db, "item_title_vectors", frame_to_arrow(frame, vectors))
    return db.open_table("item_title_vectors"), frame


def test_top_k_indices_equals_a_stable_descending_sort_even_with_ties():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 4, size=(50, 30)).astype(np.float32)  # many ties, also at the cut
    for k in (1, 5, 10, 30, 40):
        expected = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        np.testing.assert_array_equal(top_k_indices(scores, k), expected)


def test_lancedb_search_and_matrix_batch_agree(tmp_path):
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(90, 16)).astype(np.float32) * rng.uniform(0.5, 3, size=(90, 1))  # not unit
    categories = [CATEGORIES[j % 3] for j in range(90)]
    ids = [f"item-{(j * 37) % 90:03d}" for j in range(90)]  # row order differs from id order
    table, _ = make_table(tmp_path, vectors, categories, ids)
    catalog = VectorCatalog.from_table(table)
    queries = rng.normal(size=(12, 16)).astype(np.float32)
    for category in CATEGORIES:
        batched = catalog.category(category).top_k(queries, 7)
        for query, from_matrix in zip(queries, batched, strict=True):
            online = search_table(table, query, category, 7)
            assert [n.item_id for n in online] == [n.item_id for n in from_matrix]
            np.testing.assert_allclose([n.score for n in online], [n.score for n in from_matrix], atol=1e-5)
            members = {i for i, c in zip(ids, categories, strict=True) if c == category}
            assert {n.item_id for n in online} <= members


def test_equal_vectors_are_ordered_by_item_id_in_both_paths(tmp_path):
    rng = np.random.default_rng(2)
    cold = rng.normal(size=16).astype(np.float32)
    vectors = np.vstack([np.tile(cold, (5, 1)), rng.normal(size=(5, 16)).astype(np.float32)])
    ids = ["c4", "c2", "c0", "c3", "c1", "w0", "w1", "w2", "w3", "w4"]
    table, _ = make_table(tmp_path, vectors, ["Footwear"] * 10, ids)
    catalog = VectorCatalog.from_table(table)
    online = search_table(table, cold, "Footwear", 5)
    batched = catalog.category("Footwear").top_k(cold[None, :], 5)[0]
    assert [n.item_id for n in online] == ["c0", "c1", "c2", "c3", "c4"]
    assert [n.item_id for n in batched] == ["c0", "c1", "c2", "c3", "c4"]
    assert all(n.score == pytest.approx(1.0, abs=1e-5) for n in online + batched)


def test_item_vector_and_vectors_of(tmp_path):
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(6, 8)).astype(np.float32)
    table, frame = make_table(tmp_path, vectors, ["Footwear"] * 3 + ["Women's Shoes"] * 3)
    vector, category = item_vector(table, "i004")
    assert category == "Women's Shoes"
    np.testing.assert_allclose(vector, vectors[4], rtol=1e-6)
    assert item_vector(table, "nope") is None
    catalog = VectorCatalog.from_table(table)
    found_vectors, found = catalog.vectors_of(["i001", None, "nope", "i005"])
    assert found.tolist() == [True, False, False, True]
    np.testing.assert_allclose(found_vectors[0], vectors[1] / np.linalg.norm(vectors[1]), rtol=1e-5)
    assert not found_vectors[1].any()
    assert "i001" in catalog and "nope" not in catalog
    assert catalog.category("Footwear").index_of(["i002", "i004"]).tolist() == [2, -1]


def test_catalog_errors_name_the_problem():
    with pytest.raises(ValueError, match="'a' has more than one vector"):
        VectorCatalog(["a", "a"], ["x", "x"], np.ones((2, 3)))
    catalog = VectorCatalog(["a"], ["x"], np.ones((1, 3)))
    with pytest.raises(KeyError, match="'Clothing' has no vectors"):
        catalog.category("Clothing")
