"""The candidates' order as a prior beside the model's scores (the ``ranked_prior`` decoding).

The prompt shows its candidates in the sources' order, and that order is a strong prior: on the demo
data the target, when the query memory holds it, is its first candidate 54 % of the time, second 22 %,
third 12 %. The fine-tuned model scores each candidate's whole answer (``recommender.candidate_ranking``),
but a short fine-tune does not learn that prior as well as the rule "take the first" knows it. The
``ranked_prior`` decoding therefore ranks by

    score(c_i) = log p_model(answer of c_i | prompt) - w * ln(1 + i)

where ``i`` is the candidate's 0-based place in the prompt: a Zipf-shaped prior on the place, weighted
by ``w``. ``w = 0`` is the model alone (the ``ranked`` decoding), ``w = inf`` the sources' order alone
(the ``memory_first`` control's order, the model breaking no ties). ``w`` is chosen on the valid prompts
(:func:`choose_order_prior_weight`) by the NDCG of the target within the fused ranking, the part of
``llm_mixup``'s top-K that the ranking decides (``recommender.mixup``: its best candidates lead). The
choice is recorded with the generations (``order_prior_weight``), and the service ranks with it.

Torch-free: the evaluation and the Dagster code location import it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from recommender.metrics import ndcg_at_k

# the weights tried on valid, the model alone first; ties go to the earlier one (more say for the model)
ORDER_PRIOR_WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, math.inf)


def check_order_prior_weight(weight: float) -> float:
    if not weight >= 0:  # also refuses NaN
        raise ValueError(f"order prior weight {weight!r} must be >= 0 (0: the model alone; inf: the order)")
    return float(weight)


def fused_order(candidates: Sequence[str], log_probs: Sequence[float], weight: float) -> list[str]:
    """``candidates`` (distinct, in the prompt's order) best first by their model log-probabilities
    ``log_probs`` (same order) plus the order prior of ``weight``; ties keep the prompt's order."""
    if len(candidates) != len(log_probs):
        raise ValueError(f"{len(log_probs)} log-probabilities for {len(candidates)} candidates")
    weight = check_order_prior_weight(weight)
    if math.isinf(weight):
        return list(candidates)

    def score(place: int) -> float:
        return log_probs[place] - weight * math.log1p(place)

    return [candidates[i] for i in sorted(range(len(candidates)), key=lambda i: (-score(i), i))]


def in_prompt_order(
    shortlist: Sequence[str] | None, ranked_ids: Sequence[str], log_probs: Sequence[float]
) -> tuple[list[str], list[float]]:
    """A ranking's candidates (``ranked_ids`` with their ``log_probs``, any order) put back in the order
    of the prompt's ``shortlist``, each id once at its first place, with their log-probabilities."""
    scores = dict(zip(ranked_ids, log_probs, strict=True))
    candidates = list(dict.fromkeys(str(item_id) for item_id in (shortlist if shortlist is not None else ())))
    return candidates, [scores[item_id] for item_id in candidates]


def target_rank(ranking: Sequence[str], target: str) -> int | None:
    """The 1-based rank of ``target`` in ``ranking``, None when it is absent (not ranked)."""
    return next((place for place, item_id in enumerate(ranking, start=1) if item_id == target), None)


def target_ndcg(ranking: Sequence[str], target: str) -> float:
    """The evaluation's NDCG of ``target`` in the whole ``ranking``: 1 / log2(1 + rank), 0 when absent."""
    return ndcg_at_k([target_rank(ranking, target)], max(len(ranking), 1))


@dataclass(frozen=True)
class OrderPriorChoice:
    weight: float
    ndcg_by_weight: Mapping[float, float]  # mean target NDCG of each weight tried, on the prompts given
    n_prompts: int  # prompts the choice was made on (all of them, with or without the target)


def choose_order_prior_weight(
    candidates: Sequence[Sequence[str]],
    log_probs: Sequence[Sequence[float]],
    targets: Sequence[str],
    weights: Sequence[float] = ORDER_PRIOR_WEIGHTS,
) -> OrderPriorChoice:
    """The weight of ``weights`` whose fused rankings give the best mean target NDCG over the prompts
    (each prompt's distinct candidates in its order, their log-probabilities, its target); the earliest
    weight wins a tie. ValueError without prompts: a weight chosen on nothing would only look chosen."""
    if not (len(candidates) == len(log_probs) == len(targets)):
        raise ValueError(
            f"{len(candidates)} candidate lists, {len(log_probs)} scores, {len(targets)} targets"
        )
    if not targets:
        raise ValueError("no prompts to choose the order prior weight on (answer some valid prompts)")
    whole = max(1, *(len(ids) for ids in candidates))  # no cut-off: every candidate counts
    ndcg = {
        check_order_prior_weight(weight): ndcg_at_k(
            [
                target_rank(fused_order(ids, scores, weight), target)
                for ids, scores, target in zip(candidates, log_probs, targets, strict=True)
            ],
            whole,
        )
        for weight in weights
    }
    best = max(ndcg.values())
    chosen = next(weight for weight, value in ndcg.items() if value == best)
    return OrderPriorChoice(chosen, ndcg, len(targets))
