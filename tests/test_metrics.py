"""Ranking metrics: 1-based ranks, ties against the target, unranked targets score 0."""

import math

import numpy as np
import pytest

from recommender.metrics import mrr, mrr_at_k, ndcg_at_k, rank_of_target, ranking_metrics, recall_at_k


def test_rank_is_one_based_and_counts_ties_against_the_target():
    scores = np.array([0.1, 0.9, 0.5, 0.9, 0.2])
    assert rank_of_target(scores, 1) == 2  # tied with item 3 -> placed behind it
    assert rank_of_target(scores, 3) == 2
    assert rank_of_target(scores, 2) == 3
    assert rank_of_target(scores, 0) == 5
    assert rank_of_target(np.zeros(7), 4) == 7  # all equal: last, not first


def test_batched_ranks_match_row_by_row():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, size=(6, 9)).astype(float)  # many ties
    targets = rng.integers(0, 9, size=6)
    batched = rank_of_target(scores, targets)
    assert batched.dtype == np.int64
    assert batched.tolist() == [rank_of_target(row, t) for row, t in zip(scores, targets, strict=True)]


def test_rank_rejects_bad_targets():
    with pytest.raises(IndexError):
        rank_of_target(np.zeros(3), 3)
    with pytest.raises(ValueError):
        rank_of_target(np.zeros((2, 3)), np.array([0]))


def test_metrics_from_ranks():
    ranks = [1, 2, 10, 11, None]
    assert recall_at_k(ranks, 10) == pytest.approx(3 / 5)
    assert ndcg_at_k(ranks, 10) == pytest.approx((1 + 1 / math.log2(3) + 1 / math.log2(11)) / 5)
    assert mrr(ranks) == pytest.approx((1 + 1 / 2 + 1 / 10 + 1 / 11) / 5)
    assert mrr_at_k(ranks, 10) == pytest.approx((1 + 1 / 2 + 1 / 10) / 5)
    assert set(ranking_metrics(np.array([1.0, np.nan]))) == {"recall@10", "ndcg@10", "mrr", "mrr@10"}
    assert ranking_metrics(np.array([1.0, np.nan]))["mrr"] == pytest.approx(0.5)


def test_metric_edge_cases():
    assert math.isnan(recall_at_k([], 10))
    with pytest.raises(ValueError, match="1-based"):
        mrr([0, 1])
