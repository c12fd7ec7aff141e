"""Ranking every item of a category for a batch of targets: the primitive that the evaluation protocol
scores every scoring method with, and that training uses to choose a setting on valid targets.

The target's rank is the number of items of its category that score at least as high as it, itself
included: ties count against the target, and history items are not masked (docs/evaluation.md "The
protocol"). Ranks are floats with ``NaN`` for "not ranked" (the convention of ``recommender.metrics``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from recommender.metrics import rank_of_target
from recommender.retrieval import top_k_indices

TARGET_COLUMNS = ["target_id", "user_id", "category", "target_item_id", "is_cold_item"]

# score_batch(targets of one category [batch rows], item_ids of the category [n_items]) -> [batch, n_items],
# or [1, n_items] when every target gets the same scores (popularity): then ranks come from one sort.
ScoreBatch = Callable[[pd.DataFrame, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class RankingConfig:
    """Cut-offs and batch sizes of the protocol."""

    k: int = 10  # paper §5.1: "Recall@N, NDCG@N, and MRR, where N is set to 10"
    # Score rows per matrix product are capped so that one [batch, n_items] float32 block stays
    # near 128 MiB whatever the catalog size; below that, bigger batches only cost memory.
    max_batch: int = 4096
    max_scores_per_batch: int = 32 * 1024 * 1024


def check_targets(targets: pd.DataFrame) -> None:
    missing = set(TARGET_COLUMNS) - set(targets.columns)
    if missing:
        raise KeyError(
            f"targets lack column(s) {sorted(missing)}; expected the splits columns {TARGET_COLUMNS}"
        )
    if targets["target_id"].duplicated().any():
        dup = targets.loc[targets["target_id"].duplicated(), "target_id"].iloc[0]
        raise ValueError(f"target_id {dup!r} appears twice in the targets; expected one row per target")


def catalog_by_category(items: pd.DataFrame) -> dict[str, np.ndarray]:
    """``{category: item_ids sorted ascending}`` from the ``items`` mart (the candidates of each target)."""
    return {
        str(category): np.sort(group["item_id"].astype(str).to_numpy())
        for category, group in items.groupby("category", sort=True)
    }


def popularity_counts(train_targets: pd.DataFrame) -> pd.Series:
    """Purchases per item among the train-split targets (``splits`` rows with split 'train'): the
    ``popularity`` baseline's scores, and the popular prompt candidates' order."""
    return train_targets.groupby("target_item_id").size().rename("purchases")


def popular_items(counts: pd.Series, catalog: Mapping[str, np.ndarray], k: int) -> dict[str, np.ndarray]:
    """The ``k`` items of each category with the most ``counts``, most first (ties by item_id): the
    popularity baseline's top-``k``; items without purchases fill a category that has fewer than ``k``."""
    out = {}
    for category, item_ids in catalog.items():
        scores = counts.reindex(item_ids).fillna(0).to_numpy(np.float32)[None, :]
        out[category] = item_ids[top_k_indices(scores, k)[0]]
    return out


def rank_by_scores(
    targets: pd.DataFrame,
    catalog: Mapping[str, np.ndarray],
    score_batch: ScoreBatch,
    config: RankingConfig = RankingConfig(),
    desc: str = "rank",
) -> tuple[pd.Series, pd.DataFrame]:
    """Full-catalog ranks of every target and each target's top-``k`` list, one matrix per batch.

    ``catalog`` maps a category to its item ids (sorted; :func:`catalog_by_category`). Returns the ranks
    (float, NaN when the target item is not in its category's catalog) indexed like ``targets``, and the
    top-``k`` lists as rows ``target_id, rank, item_id, score`` (equal scores ordered by item_id).
    """
    check_targets(targets)
    ranks = pd.Series(np.nan, index=targets.index, name="rank", dtype="float64")
    tops: list[pd.DataFrame] = []
    for category, group in targets.groupby("category", sort=True):
        item_ids = catalog.get(category)
        if item_ids is None or len(item_ids) == 0:
            continue
        position = pd.Series(np.arange(len(item_ids)), index=item_ids)
        target_index = group["target_item_id"].map(position).fillna(-1).to_numpy(np.int64)
        batch = int(max(1, min(config.max_batch, config.max_scores_per_batch // len(item_ids))))
        starts = range(0, len(group), batch)
        for start in tqdm(starts, desc=f"{desc} {category}", unit="batch", disable=len(starts) < 2):
            chunk = group.iloc[start : start + batch]
            scores = np.asarray(score_batch(chunk, item_ids), dtype=np.float32)
            shared = scores.shape == (1, len(item_ids))
            if not shared and scores.shape != (len(chunk), len(item_ids)):
                raise ValueError(
                    f"{desc}: score_batch returned shape {scores.shape} for {len(chunk)} targets and "
                    f"{len(item_ids)} items of {category!r}; expected [targets, items] or [1, items]"
                )
            index = target_index[start : start + batch]
            known = index >= 0
            if known.any() and shared:
                # rank = items scoring >= the target = n_items - (items scoring strictly below it)
                ascending = np.sort(scores[0])
                below = np.searchsorted(ascending, scores[0, index[known]], side="left")
                ranks.loc[chunk.index[known]] = len(item_ids) - below
            elif known.any():
                ranks.loc[chunk.index[known]] = rank_of_target(scores[known], index[known])
            top = top_k_indices(scores, config.k)
            top_scores = np.take_along_axis(scores, top, axis=1)
            if shared:
                top, top_scores = (np.repeat(a, len(chunk), axis=0) for a in (top, top_scores))
            tops.append(
                pd.DataFrame(
                    {
                        "target_id": np.repeat(chunk["target_id"].to_numpy(), top.shape[1]),
                        "rank": np.tile(np.arange(1, top.shape[1] + 1), len(chunk)),
                        "item_id": item_ids[top.ravel()],
                        "score": top_scores.ravel().astype(np.float64),
                    }
                )
            )
    lists = (
        pd.concat(tops, ignore_index=True)
        if tops
        else pd.DataFrame(
            {
                "target_id": pd.Series(dtype=object),
                "rank": pd.Series(dtype="int64"),
                "item_id": pd.Series(dtype=object),
                "score": pd.Series(dtype="float64"),
            }
        )
    )
    return ranks, lists
