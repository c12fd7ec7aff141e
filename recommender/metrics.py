"""Ranking metrics of the evaluation protocol (docs/evaluation.md "The protocol").

Every metric starts from the 1-based rank of the target item. Ties count against the target: an item
that scores exactly as high as the target is ranked ahead of it, so a model that gives every item the
same score (for example the shared "cold" vector of an ID model) ranks the target last, not first.

A rank of ``NaN`` means "not ranked" (a list-producing method whose list does not hold the target);
such a target contributes 0 to every metric but still counts in the average.
"""

from __future__ import annotations

import numpy as np


def rank_of_target(scores: np.ndarray, target_index: int | np.ndarray) -> int | np.ndarray:
    """1-based rank of the target among the scored items, ties counted against the target.

    ``scores`` is ``[n_items]`` with an int ``target_index``, or ``[batch, n_items]`` with one target
    index per row (returns an int64 array). The rank is the number of items scoring at least as high as
    the target, the target included.
    """
    scores = np.asarray(scores)
    if scores.ndim == 1:
        if not 0 <= int(target_index) < scores.shape[0]:
            raise IndexError(f"target_index {target_index} is outside the {scores.shape[0]} scored items")
        return int(np.count_nonzero(scores >= scores[int(target_index)]))
    if scores.ndim != 2:
        raise ValueError(f"scores must be [n_items] or [batch, n_items], got shape {scores.shape}")
    targets = np.asarray(target_index, dtype=np.int64)
    if targets.shape != (scores.shape[0],):
        raise ValueError(f"need one target index per row: {targets.shape} vs {scores.shape[0]} rows")
    if targets.size and (targets.min() < 0 or targets.max() >= scores.shape[1]):
        raise IndexError(f"target indices must lie in [0, {scores.shape[1]})")
    target_scores = scores[np.arange(scores.shape[0]), targets][:, None]
    return np.count_nonzero(scores >= target_scores, axis=1).astype(np.int64)


def _as_ranks(ranks) -> np.ndarray:
    """Ranks as float64 with ``None`` turned into ``NaN`` ("not ranked")."""
    raw = np.ravel(np.asarray(ranks, dtype=object) if isinstance(ranks, list) else np.asarray(ranks))
    if raw.dtype == object:
        raw = np.array([np.nan if r is None else r for r in raw], dtype=np.float64)
    values = raw.astype(np.float64)
    finite = values[~np.isnan(values)]
    if finite.size and finite.min() < 1:
        raise ValueError(f"ranks are 1-based; got {finite.min()}")
    return values


def recall_at_k(ranks, k: int) -> float:
    """Share of targets ranked in the top ``k`` (Recall@k = HitRate@k with one target per user)."""
    r = _as_ranks(ranks)
    if r.size == 0:
        return float("nan")
    return float(np.mean(np.nan_to_num(r, nan=np.inf) <= k))


def ndcg_at_k(ranks, k: int) -> float:
    """NDCG@k with a single relevant item: 1/log2(rank+1) inside the top ``k``, else 0."""
    r = np.nan_to_num(_as_ranks(ranks), nan=np.inf)
    if r.size == 0:
        return float("nan")
    gains = np.where(r <= k, 1.0 / np.log2(np.minimum(r, k) + 1.0), 0.0)
    return float(np.mean(gains))


def mrr(ranks) -> float:
    """Mean reciprocal rank over the full ranking (an unranked target scores 0)."""
    r = np.nan_to_num(_as_ranks(ranks), nan=np.inf)
    if r.size == 0:
        return float("nan")
    return float(np.mean(1.0 / r))


def mrr_at_k(ranks, k: int) -> float:
    """Mean reciprocal rank truncated at ``k``: targets ranked below ``k`` score 0."""
    r = np.nan_to_num(_as_ranks(ranks), nan=np.inf)
    if r.size == 0:
        return float("nan")
    return float(np.mean(np.where(r <= k, 1.0 / r, 0.0)))


def ranking_metrics(ranks, k: int = 10) -> dict[str, float]:
    """The protocol's four figures keyed by their ``eval_metrics`` names (``recall@10``, ``ndcg@10``, ...)."""
    return {
        f"recall@{k}": recall_at_k(ranks, k),
        f"ndcg@{k}": ndcg_at_k(ranks, k),
        "mrr": mrr(ranks),
        f"mrr@{k}": mrr_at_k(ranks, k),
    }
