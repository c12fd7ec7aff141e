"""What the asset checks verify on a vector table: one row per expected key, the expected dimension,
unit-length vectors and no NaN, read in streamed batches so a catalog-sized table never sits in memory
whole."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from recommender.vector_store import VECTOR_COLUMN, arrow_to_vectors, table_exists

if TYPE_CHECKING:
    import lancedb

NORM_TOLERANCE = 1e-3  # float32 vectors normalised in float32 are unit length to ~1e-7


@dataclass(frozen=True)
class VectorTableStats:
    rows: int
    keys: frozenset
    dim: int
    max_norm_error: float
    nan_rows: int


def vector_table_stats(table: lancedb.table.Table, key: str, batch_rows: int = 65_536) -> VectorTableStats:
    """Row count, the keys, dimension, worst deviation from unit norm and NaN rows, streamed."""
    dim = table.schema.field(VECTOR_COLUMN).type.list_size
    keys: set = set()
    rows = nan_rows = 0
    max_error = 0.0
    reader = table.search().select([key, VECTOR_COLUMN]).limit(None).to_batches(batch_rows)
    for batch in reader:
        rows += batch.num_rows
        keys.update(batch.column(key).to_pylist())
        matrix = arrow_to_vectors(batch.column(VECTOR_COLUMN))
        bad = np.isnan(matrix).any(axis=1)
        nan_rows += int(bad.sum())
        if (~bad).any():
            norms = np.linalg.norm(matrix[~bad].astype(np.float64), axis=1)
            max_error = max(max_error, float(np.abs(norms - 1.0).max()))
    return VectorTableStats(
        rows=rows, keys=frozenset(keys), dim=dim, max_norm_error=max_error, nan_rows=nan_rows
    )


@dataclass(frozen=True)
class VectorTableReport:
    """The problems found in one vector table (none: the check passes) and the figures behind them."""

    problems: list[str]
    figures: dict[str, Any] = field(default_factory=dict)

    def metadata(self) -> dict[str, Any]:
        return {**self.figures, "problems": "; ".join(self.problems) or "none"}


def check_vector_table(
    db: lancedb.DBConnection, table_name: str, key: str, expected_keys: set[str], expected_dim: int | None
) -> VectorTableReport:
    """Compare a vector table with the keys and dimension it should hold."""
    if not table_exists(db, table_name):
        return VectorTableReport([f"LanceDB table {table_name} is missing"])
    stats = vector_table_stats(db.open_table(table_name), key)
    missing, extra = expected_keys - stats.keys, stats.keys - expected_keys
    problems = []
    if stats.rows != len(expected_keys) or len(stats.keys) != stats.rows or missing or extra:
        problems.append(
            f"{stats.rows} rows / {len(stats.keys)} distinct {key}s for {len(expected_keys)} expected; "
            f"missing e.g. {sorted(missing)[:3]}, unexpected e.g. {sorted(extra)[:3]}"
        )
    if expected_dim is not None and stats.dim != expected_dim:
        problems.append(f"dimension {stats.dim}, expected {expected_dim}")
    if stats.nan_rows:
        problems.append(f"{stats.nan_rows} vectors contain NaN")
    if stats.max_norm_error > NORM_TOLERANCE:
        problems.append(f"a vector's norm is off by {stats.max_norm_error:.2e} (tolerance {NORM_TOLERANCE})")
    figures = {
        "rows": stats.rows,
        "expected_rows": len(expected_keys),
        "dim": stats.dim,
        "expected_dim": expected_dim if expected_dim is not None else -1,
        "max_norm_error": float(stats.max_norm_error),
        "nan_rows": stats.nan_rows,
    }
    return VectorTableReport(problems, figures)
