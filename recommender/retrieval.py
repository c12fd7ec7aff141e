"""Cosine top-k within one category: over a LanceDB vector table (online) or a loaded matrix (batches).

Both paths rank the same way, so the evaluation measures what the service returns:

- the score of an item is the cosine similarity between the query and its vector (LanceDB's ``cosine``
  distance is ``1 - similarity``; ``score = 1 - _distance``);
- only items of the requested category are candidates;
- items are ordered by score, highest first, and equal scores by ``item_id`` ascending, so that the
  shared "cold" vector of the ID model gives the same order every time.

:func:`search_table` asks LanceDB once per query: an exact scan below the vector store's index threshold,
its IVF-PQ index above it (then approximately, unless asked for exact). :class:`VectorCatalog` loads a
table once and scores a whole batch of queries against every item of a category with one exact matrix
product, which is what evaluating thousands of users needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from recommender import vector_store


@dataclass(frozen=True)
class Neighbor:
    """One retrieved item and its cosine similarity to the query."""

    item_id: str
    score: float


def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def category_filter(category: str) -> str:
    """LanceDB ``where`` clause that keeps the items of one category."""
    return f"category = {_sql_literal(category)}"


def item_vector(table, item_id: str) -> tuple[np.ndarray, str] | None:
    """An item's stored vector and category in a LanceDB vector table, or None when it has none."""
    rows = (
        table.search()
        .where(f"item_id = {_sql_literal(item_id)}")
        .select([vector_store.VECTOR_COLUMN, "category"])
        .limit(1)
        .to_arrow()
    )
    if rows.num_rows == 0:
        return None
    return vector_store.arrow_to_vectors(rows.column(vector_store.VECTOR_COLUMN))[0], rows.column("category")[
        0
    ].as_py()


def search_table(table, query: np.ndarray, category: str, k: int, *, exact: bool = False) -> list[Neighbor]:
    """The ``k`` items of ``category`` in a LanceDB table nearest to ``query`` by cosine, best first.

    ``table`` has columns ``item_id``, ``category`` and ``vector``. Below the vector store's index
    threshold the table is scanned exactly; above it the IVF-PQ index answers (approximately) unless
    ``exact``. Equal scores are ordered by item_id; when several items tie at the k-th place, LanceDB
    decides which of them make the cut.
    """
    if k <= 0:
        return []
    found = vector_store.search(
        table, query, k, columns=["item_id"], where=category_filter(category), exact=exact
    )
    neighbors = (
        Neighbor(str(i), float(s)) for i, s in zip(found["item_id"], found["similarity"], strict=True)
    )
    return sorted(neighbors, key=lambda n: (-n.score, n.item_id))


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def top_k_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the ``k`` highest scores per row ``[batch, k]``, ties broken by lower index.

    ``scores`` is ``[batch, n_items]``. ``torch.topk`` (multi-threaded, no full sort) finds the top
    ``k + 1``: when the (k+1)-th score equals the k-th, items tie across the cut and only that row falls
    back to a full stable sort, so the result always equals a stable descending sort of every row.
    """
    # imported here so that the table names above load without torch (the Dagster code location)
    import torch

    batch, n_items = scores.shape
    k = min(k, n_items)
    if k == 0 or batch == 0:
        return np.empty((batch, 0), dtype=np.int64)
    tensor = torch.from_numpy(np.ascontiguousarray(scores))
    values, part = (t.numpy() for t in torch.topk(tensor, min(k + 1, n_items), dim=1, sorted=True))
    crowded = np.flatnonzero(values[:, k] == values[:, k - 1]) if n_items > k else []
    values, part = values[:, :k], part[:, :k]
    order = np.lexsort((part, -values), axis=1)  # equal scores inside the top k: lower index first
    top = np.take_along_axis(part, order, axis=1).astype(np.int64)
    for row in crowded:
        top[row] = np.argsort(-scores[row], kind="stable")[:k]
    return top


@dataclass(frozen=True)
class CategoryMatrix:
    """Every item vector of one category, unit length, rows sorted by item_id."""

    category: str
    item_ids: np.ndarray  # [n_items] str, ascending
    vectors: np.ndarray  # [n_items, dim] float32, unit rows

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {item_id: i for i, item_id in enumerate(self.item_ids)})

    def __len__(self) -> int:
        return len(self.item_ids)

    def index_of(self, item_ids: Sequence[str | None]) -> np.ndarray:
        """Row of each item in this category, ``-1`` for items that are not in it."""
        index = self._index
        return np.array([index.get(item_id, -1) for item_id in item_ids], dtype=np.int64)

    def scores(self, queries: np.ndarray) -> np.ndarray:
        """Cosine similarity of each query to each item: ``[batch, dim] -> [batch, n_items]``."""
        return _unit_rows(np.atleast_2d(queries)) @ self.vectors.T

    def top_k(self, queries: np.ndarray, k: int) -> list[list[Neighbor]]:
        """The ``k`` nearest items per query, best first, ordered exactly as :func:`search_table` orders."""
        scores = self.scores(queries)
        top = top_k_indices(scores, k)
        rows = np.arange(len(top))[:, None]
        values = scores[rows, top]
        return [
            [Neighbor(str(self.item_ids[j]), float(v)) for j, v in zip(idx, vals, strict=True)]
            for idx, vals in zip(top, values, strict=True)
        ]


class VectorCatalog:
    """A vector table loaded once: one :class:`CategoryMatrix` per category plus a lookup by item_id."""

    def __init__(self, item_ids: Sequence[str], categories: Sequence[str], vectors: np.ndarray) -> None:
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) != len(item_ids) or len(categories) != len(item_ids):
            raise ValueError(
                f"need one category and one vector per item: {len(item_ids)} ids, {len(categories)} "
                f"categories, vectors of shape {vectors.shape}"
            )
        ids = np.asarray(item_ids, dtype=object)
        unique, counts = np.unique(ids, return_counts=True)
        if (counts > 1).any():
            raise ValueError(
                f"item_id {unique[counts > 1][0]!r} has more than one vector; expected one per item"
            )
        unit = _unit_rows(vectors)
        self.dim = vectors.shape[1]
        self._row = {item_id: i for i, item_id in enumerate(ids)}
        self._vectors = unit
        cats = np.asarray(categories, dtype=object)
        self.categories: dict[str, CategoryMatrix] = {}
        for category in sorted(set(cats.tolist())):
            rows = np.flatnonzero(cats == category)
            rows = rows[np.argsort(ids[rows].astype(str), kind="stable")]
            self.categories[category] = CategoryMatrix(category, ids[rows].astype(str), unit[rows])

    @classmethod
    def from_arrow(cls, data: pa.Table) -> VectorCatalog:
        """From an Arrow table with ``item_id``, ``category`` and a fixed-size-list ``vector`` column."""
        vector = data.column(vector_store.VECTOR_COLUMN)
        if not pa.types.is_fixed_size_list(vector.type):
            raise TypeError(f"column 'vector' must be a fixed-size list of floats, got {vector.type}")
        matrix = vector_store.arrow_to_vectors(vector)
        return cls(data.column("item_id").to_pylist(), data.column("category").to_pylist(), matrix)

    @classmethod
    def from_table(cls, table) -> VectorCatalog:
        """Every row of a LanceDB table with ``item_id``, ``category`` and ``vector``."""
        columns = ["item_id", "category", vector_store.VECTOR_COLUMN]
        return cls.from_arrow(table.search().select(columns).limit(None).to_arrow())

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._row

    def category(self, name: str) -> CategoryMatrix:
        try:
            return self.categories[name]
        except KeyError:
            raise KeyError(
                f"category {name!r} has no vectors; the table holds {', '.join(map(repr, self.categories))}"
            ) from None

    def vectors_of(self, item_ids: Sequence[str | None]) -> tuple[np.ndarray, np.ndarray]:
        """Unit vectors ``[n, dim]`` of the given items (zeros where unknown) and a found mask ``[n]``."""
        rows = np.array([self._row.get(item_id, -1) for item_id in item_ids], dtype=np.int64)
        found = rows >= 0
        out = np.zeros((len(rows), self.dim), dtype=np.float32)
        out[found] = self._vectors[rows[found]]
        return out, found
