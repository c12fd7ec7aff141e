"""LanceDB vector tables: cosine search, versions, incremental refresh, IVF-PQ recall vs exact search."""

import lancedb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from recommender.vector_audit import vector_table_stats
from recommender.vector_store import content_hashes, frame_to_arrow, refresh_vectors, search, write_vectors


def unit(rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


class CountingEncoder:
    """Deterministic toy encoder that records what it was asked to encode."""

    def __init__(self, dim: int = 8) -> None:
        self.dim = dim
        self.calls: list[list[str]] = []

    def encode(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        seeds = [int.from_bytes(t.encode()[:8].ljust(8, b"\0"), "little") % 2**32 for t in texts]
        return unit(np.stack([np.random.default_rng(s).normal(size=self.dim) for s in seeds]))


@pytest.fixture
def db(tmp_path):
    return lancedb.connect(str(tmp_path / "lancedb"))


def test_cosine_search_returns_similarity_not_distance(db):
    rng = np.random.default_rng(0)
    vectors = unit(rng.normal(size=(50, 16)))
    items = pd.DataFrame({"item_id": [f"i{i}" for i in range(50)], "category": ["a", "b"] * 25})
    result = write_vectors(db, "vecs", frame_to_arrow(items, vectors), index_threshold=10_000)
    assert result.rows == 50 and not result.indexed and result.version >= 1

    queries = unit(rng.normal(size=(3, 16)))
    found = search(db.open_table("vecs"), queries, 5, columns=["item_id"])
    expected = queries @ vectors.T
    for q in range(3):
        rows = found[found["query_index"] == q]
        best = np.argsort(-expected[q])[:5]
        assert rows["item_id"].tolist() == [f"i{i}" for i in best]
        assert rows["rank"].tolist() == [1, 2, 3, 4, 5]
        np.testing.assert_allclose(rows["similarity"], expected[q, best], atol=1e-5)

    only_a = search(
        db.open_table("vecs"), queries[0], 3, columns=["item_id", "category"], where="category = 'a'"
    )
    assert set(only_a["category"]) == {"a"} and len(only_a) == 3


def test_refresh_encodes_only_new_or_changed_titles(db):
    encoder = CountingEncoder()
    items = pd.DataFrame(
        {
            "item_id": ["a", "b", "c"],
            "category": ["X", "X", "Y"],
            "title": ["red bag", "blue bag", "green shoe"],
        }
    )
    kwargs = dict(key="item_id", text_column="title", encode=encoder.encode, index_threshold=10_000)
    first = refresh_vectors(db, "titles", items, fingerprint="model-1", **kwargs)
    assert (first.encoded, first.rows) == (3, 3)

    again = refresh_vectors(db, "titles", items, fingerprint="model-1", **kwargs)
    assert (again.encoded, again.reused, again.deleted, again.version) == (0, 0, 0, first.version)

    changed = pd.DataFrame(
        {
            "item_id": ["a", "b", "d"],
            "category": ["X", "Z", "Y"],  # b: category moved, title unchanged -> vector reused
            "title": ["red bag", "blue bag", "new boot"],  # c removed, d new
        }
    )
    refreshed = refresh_vectors(db, "titles", changed, fingerprint="model-1", **kwargs)
    assert encoder.calls[-1] == ["new boot"]
    assert (refreshed.encoded, refreshed.reused, refreshed.deleted, refreshed.rows) == (1, 1, 1, 3)
    assert refreshed.version > first.version

    stored = db.open_table("titles").to_pandas().set_index("item_id")
    assert sorted(stored.index) == ["a", "b", "d"]
    assert stored.loc["b", "category"] == "Z"
    np.testing.assert_allclose(
        np.stack(stored.loc[["b", "d"], "vector"]), encoder.encode(["blue bag", "new boot"])
    )

    retrained = refresh_vectors(db, "titles", changed, fingerprint="model-2", **kwargs)
    assert retrained.encoded == 3  # a new encoder invalidates every stored vector

    wider = CountingEncoder(dim=16)
    kwargs["encode"] = wider.encode
    rebuilt = refresh_vectors(db, "titles", changed, fingerprint="model-3", **kwargs)
    assert rebuilt.encoded == 3 and db.open_table("titles").schema.field("vector").type.list_size == 16


def test_old_versions_stay_readable(db):
    encoder = CountingEncoder()
    kwargs = dict(key="item_id", text_column="title", encode=encoder.encode, fingerprint="m")
    v1 = refresh_vectors(db, "t", pd.DataFrame({"item_id": ["a"], "title": ["one"]}), **kwargs).version
    refresh_vectors(db, "t", pd.DataFrame({"item_id": ["a", "b"], "title": ["one", "two"]}), **kwargs)
    table = db.open_table("t")
    table.checkout(v1)
    assert table.count_rows() == 1


def test_content_hash_depends_on_text_and_encoder():
    a, b = content_hashes(["x", "y"], "m1")
    assert a != b and content_hashes(["x"], "m1") == [a] and content_hashes(["x"], "m2") != [a]


def test_nan_vectors_are_refused_and_stats_flag_bad_rows(db):
    frame = pd.DataFrame({"item_id": ["a", "b", "c"]})
    vectors = np.array([[1, 0, 0], [0, 2, 0], [np.nan, 0, 0]], dtype=np.float32)
    with pytest.raises(RuntimeError, match="NaN"):
        write_vectors(db, "bad", frame_to_arrow(frame, vectors))
    # a table written by other means may still hold a missing vector: the checks must see it
    db.create_table("bad", frame_to_arrow(frame, vectors), on_bad_vectors="null")
    stats = vector_table_stats(db.open_table("bad"), "item_id")
    assert (stats.rows, len(stats.keys), stats.dim, stats.nan_rows) == (3, 3, 3, 1)
    assert stats.max_norm_error == pytest.approx(1.0)


def test_ivf_pq_index_recall_against_exact_search(db):
    """Above the threshold an IVF-PQ index is built; with the default probes and refinement its top-10
    agrees with exact search on at least 90% of the neighbours."""
    rng = np.random.default_rng(1)
    centers = rng.normal(size=(40, 32))
    vectors = unit(centers[rng.integers(0, 40, 4000)] + 0.4 * rng.normal(size=(4000, 32)))
    table_data = pa.table({"item_id": [f"i{i}" for i in range(4000)]})
    written = write_vectors(db, "big", frame_to_arrow(table_data.to_pandas(), vectors), index_threshold=2000)
    assert written.indexed
    table = db.open_table("big")
    assert any("vector" in index.columns for index in table.list_indices())

    queries = unit(vectors[rng.integers(0, 4000, 50)] + 0.05 * rng.normal(size=(50, 32)))
    approximate = search(table, queries, 10, columns=["item_id"])
    exact = search(table, queries, 10, columns=["item_id"], exact=True)
    truth = queries @ vectors.T
    for q in range(3):  # exact search really is exact
        expected = {f"i{i}" for i in np.argsort(-truth[q])[:10]}
        assert set(exact.loc[exact["query_index"] == q, "item_id"]) == expected
    recall = np.mean(
        [
            len(
                set(approximate.loc[approximate["query_index"] == q, "item_id"])
                & set(exact.loc[exact["query_index"] == q, "item_id"])
            )
            / 10
            for q in range(50)
        ]
    )
    assert recall >= 0.9, recall

    small = write_vectors(
        db, "big", frame_to_arrow(table_data.to_pandas()[:100], vectors[:100]), index_threshold=2000
    )
    assert not small.indexed
