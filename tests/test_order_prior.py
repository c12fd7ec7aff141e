"""The candidates' order as a prior beside the model's scores (recommender.order_prior)."""

import math

import pytest

from recommender.order_prior import (
    ORDER_PRIOR_WEIGHTS,
    choose_order_prior_weight,
    fused_order,
    in_prompt_order,
    target_ndcg,
)


def test_weight_zero_is_the_model_alone_and_infinity_the_prompts_order():
    candidates, log_probs = ["a", "b", "c"], [-9.0, -3.0, -3.0]
    assert fused_order(candidates, log_probs, 0.0) == ["b", "c", "a"]  # a tie keeps the prompt's order
    assert fused_order(candidates, log_probs, math.inf) == candidates


def test_the_prior_settles_close_calls_but_not_clear_ones():
    # second place costs ln 2 = 0.69 nats at weight 1
    assert fused_order(["a", "b"], [-5.0, -4.9], 1.0) == ["a", "b"]
    assert fused_order(["a", "b"], [-5.0, -2.0], 1.0) == ["b", "a"]
    assert fused_order(["a", "b"], [-5.0, -2.0], 8.0) == ["a", "b"]


def test_bad_weights_and_lengths_are_errors():
    with pytest.raises(ValueError, match=">= 0"):
        fused_order(["a"], [-1.0], -1.0)
    with pytest.raises(ValueError, match=">= 0"):
        fused_order(["a"], [-1.0], math.nan)
    with pytest.raises(ValueError, match="2 log-probabilities for 1 candidates"):
        fused_order(["a"], [-1.0, -2.0], 0.0)


def test_a_ranking_goes_back_to_the_prompts_order_each_id_once():
    assert in_prompt_order(["b", "a", "b"], ["a", "b"], [-1.0, -2.0]) == (["b", "a"], [-2.0, -1.0])
    assert in_prompt_order(None, [], []) == ([], [])


def test_target_ndcg_discounts_by_place_and_is_zero_when_absent():
    assert target_ndcg(["t", "x"], "t") == 1.0
    assert target_ndcg(["x", "t"], "t") == pytest.approx(1 / math.log2(3))
    assert target_ndcg(["x"], "t") == 0.0


def test_the_weight_that_ranks_the_valid_targets_best_is_chosen():
    # the target is always first in the prompt; the model prefers the wrong one by 1 nat in two of three
    candidates = [["t1", "x1"], ["t2", "x2"], ["t3", "x3"]]
    log_probs = [[-3.0, -2.0], [-3.0, -2.0], [-1.0, -4.0]]
    choice = choose_order_prior_weight(candidates, log_probs, ["t1", "t2", "t3"])
    # ln 2 * w must exceed 1 nat: w = 2 is the first weight of the grid that does
    assert choice.weight == 2.0 and choice.n_prompts == 3
    assert choice.ndcg_by_weight[2.0] == choice.ndcg_by_weight[math.inf] == 1.0
    assert choice.ndcg_by_weight[0.0] == pytest.approx((1 + 2 / math.log2(3)) / 3)
    assert list(choice.ndcg_by_weight) == list(ORDER_PRIOR_WEIGHTS)
    # where the model is right, the model alone (the first weight) wins the tie
    right = choose_order_prior_weight([["x", "t"]], [[-5.0, -1.0]], ["t"], weights=(0.0, math.inf))
    assert right.weight == 0.0


def test_a_weight_is_never_chosen_on_nothing():
    with pytest.raises(ValueError, match="no prompts"):
        choose_order_prior_weight([], [], [])
