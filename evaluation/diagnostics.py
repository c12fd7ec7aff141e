"""The LLM diagnostics of an evaluation run (``eval_llm_diagnostics``, docs/evaluation.md "Controls and LLM
diagnostics"): whether the prompt's candidates hold the target at all, and how often each pick method
picks it.

A pick method is a rule that names one of the candidates: every LLM generation group (named as its
``llm_mixup`` method, e.g. ``llm_mixup-no_attributes``) and every control (``memory_first``,
``memory_random``: ``evaluation.controls``). The pick is the generation's ``item_id`` (for a ranked
generation without one, the first of its ``ranked_item_ids``); a target the group did not answer has no
pick. Everything is counted on the targets the controls answer (the headline LLM group's), per category
and over all of them (``category = 'all'``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from evaluation.llm_methods import generation_groups
from recommender.generation_settings import DEFAULT_DECODING
from recommender.mixup import as_id_list

ALL = "all"
DIAGNOSTIC_COLUMNS = [
    "method",
    "category",
    "n_targets",
    "n_with_candidates",
    "mean_candidates",
    "candidate_recall",
    "pick_accuracy",
    "pick_accuracy_se",
    "pick_accuracy_given_recall",
]


def picks_of(generations: pd.DataFrame) -> pd.Series:
    """``target_id -> picked item id`` (None when the answer names none) of one generation group."""
    picks = [item if isinstance(item, str) and item else None for item in generations["item_id"]]
    if "ranked_item_ids" in generations:
        for row, ranked in enumerate(generations["ranked_item_ids"]):
            ranked_ids = as_id_list(ranked)  # None for a missing ranking: None, NaN or pd.NA
            if picks[row] is None and ranked_ids:
                picks[row] = ranked_ids[0]
    return pd.Series(picks, index=generations["target_id"].to_numpy(), dtype=object)


def llm_picks(
    generations: pd.DataFrame, preferred_decoding: str = DEFAULT_DECODING, method_suffix: str = ""
) -> dict[str, pd.Series]:
    """Each generation group's picks, by its ``llm_mixup`` method name."""
    return {
        f"llm_mixup{suffix}{method_suffix}": picks_of(group)
        for suffix, group in generation_groups(generations, preferred_decoding).items()
    }


def _summary(group: pd.DataFrame) -> dict[str, float | int]:
    n = len(group)
    accuracy = float(group["correct"].mean())
    recalled = group[group["recalled"]]
    return {
        "n_targets": n,
        "n_with_candidates": int((group["n_candidates"] > 0).sum()),
        "mean_candidates": float(group["n_candidates"].mean()),
        "candidate_recall": float(group["recalled"].mean()),
        "pick_accuracy": accuracy,
        "pick_accuracy_se": float(np.sqrt(accuracy * (1.0 - accuracy) / n)),
        "pick_accuracy_given_recall": float(recalled["correct"].mean()) if len(recalled) else float("nan"),
    }


def llm_diagnostics(
    targets: pd.DataFrame, candidates: Mapping[str, Sequence[str]], picks: Mapping[str, pd.Series]
) -> pd.DataFrame:
    """One row per pick method and category ('all' first): :data:`DIAGNOSTIC_COLUMNS`.

    ``targets`` has target_id, category and target_item_id; ``candidates`` maps a target id to its
    prompt's candidates (a target absent from it has none); ``picks`` maps a method to its
    ``target_id -> item id`` picks (a target absent from them has no pick). ``mean_candidates`` counts a
    target without candidates as 0; ``pick_accuracy_se`` is the binomial standard error
    sqrt(p (1 - p) / n_targets); ``pick_accuracy_given_recall`` is NaN when no candidate list holds its
    target.
    """
    lists = [candidates.get(target_id, []) for target_id in targets["target_id"]]
    base = pd.DataFrame(
        {
            "category": targets["category"].to_numpy(),
            "n_candidates": [len(ids) for ids in lists],
            "recalled": [item in ids for item, ids in zip(targets["target_item_id"], lists, strict=True)],
        }
    )
    rows = []
    for method, picked in picks.items():
        chosen = picked.reindex(targets["target_id"].to_numpy()).to_numpy()
        frame = base.assign(correct=chosen == targets["target_item_id"].to_numpy())
        for category in [ALL, *sorted(frame["category"].unique())]:
            group = frame if category == ALL else frame[frame["category"] == category]
            if len(group):
                rows.append({"method": method, "category": category, **_summary(group)})
    return pd.DataFrame(rows, columns=DIAGNOSTIC_COLUMNS)
