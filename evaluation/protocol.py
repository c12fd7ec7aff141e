"""The evaluation protocol (docs/evaluation.md "The protocol"): per-target ranks, then metrics per slice.

Every method is scored on the same targets (``splits`` rows of one split) and in the same way:

- A scoring method (``core``, ``popularity``, the sequence and text baselines) scores every item of the
  target's category; the target's rank is the number of items scoring at least as high as it, itself
  included (ties count against the target; history items are not masked).
  ``recommender.ranking.rank_by_scores`` does this in batches: one ``[batch, n_items]`` score matrix per
  call of the method's scoring function.
- A list method (``llm_mixup``, ``llm_only``) is ranked only by what its list holds:
  :func:`rank_in_lists` gives the target's 1-based position, or "not ranked" when it is absent.
- A target whose item is not in the catalog of its category cannot be ranked by anyone and counts as
  not ranked (0 on every metric).

Ranks are floats with ``NaN`` for "not ranked" (the convention of ``recommender.metrics``) and become
``NULL`` in ``eval_ranks``. :func:`aggregate_metrics` turns them into the ``eval_metrics`` rows, and
:func:`evaluate_methods` does both for every method of a run. The scoring functions of the trained
models are built in ``evaluation.scorers``; ``evaluation.tables`` appends a run's rows to DuckDB.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from recommender.metrics import ranking_metrics
from recommender.ranking import (
    TARGET_COLUMNS,
    RankingConfig,
    ScoreBatch,
    check_targets,
    popular_items,
    rank_by_scores,
)

ALL = "all"  # the value of ``category`` and ``slice`` for the overall figure
SLICES = ("all", "cold_start", "warm")


def rank_in_lists(targets: pd.DataFrame, lists: pd.DataFrame) -> pd.Series:
    """The target's position in each target's list (``lists``: target_id, rank, item_id); NaN when absent.

    Returned in the order of ``targets``, indexed like it. A target without any list row is not ranked.
    """
    check_targets(targets)
    hits = lists.merge(
        targets[["target_id", "target_item_id"]],
        left_on=["target_id", "item_id"],
        right_on=["target_id", "target_item_id"],
    )
    best = hits.groupby("target_id")["rank"].min()
    return targets["target_id"].map(best).astype("float64").rename("rank")


def popularity_scorer(counts: pd.Series) -> ScoreBatch:
    """Score every item by its train purchases, the same for every user (the ``popularity`` baseline)."""

    def score_batch(chunk: pd.DataFrame, item_ids: np.ndarray) -> np.ndarray:
        return counts.reindex(item_ids).fillna(0).to_numpy(np.float32)[None, :]  # one row for every user

    return score_batch


def popular_top_k(counts: pd.Series, catalog: Mapping[str, np.ndarray], k: int) -> dict[str, set[str]]:
    """The popularity baseline's top-``k`` per category (ties by item_id): serendipity's "expected" items."""
    return {category: set(top.tolist()) for category, top in popular_items(counts, catalog, k).items()}


def catalog_coverage(lists: pd.DataFrame, catalog_size: int, k: int) -> float:
    """Share of the catalog that appears in at least one top-``k`` list (see :func:`aggregate_metrics`)."""
    if catalog_size <= 0:
        return float("nan")
    return float(lists.loc[lists["rank"] <= k, "item_id"].nunique() / catalog_size)


def serendipity(
    ranks: pd.Series, target_items: pd.Series, categories: pd.Series, expected: Mapping[str, set[str]], k: int
) -> float:
    """Share of targets hit in the top ``k`` that the popularity top-``k`` of their category misses."""
    if len(ranks) == 0:
        return float("nan")
    hit = ranks.fillna(np.inf).to_numpy() <= k
    unexpected = np.array(
        [item not in expected.get(cat, set()) for item, cat in zip(target_items, categories, strict=True)],
        dtype=bool,
    )
    return float(np.mean(hit & unexpected))


def aggregate_metrics(
    ranks: pd.DataFrame,
    lists: pd.DataFrame,
    catalog: Mapping[str, np.ndarray],
    expected: Mapping[str, set[str]],
    k: int = 10,
) -> pd.DataFrame:
    """``eval_metrics`` rows per (method, category incl. 'all', slice incl. 'all', 'cold_start', 'warm').

    ``ranks`` has one row per (method, target): method, target_id, user_id, category, target_item_id,
    is_cold_item, rank (NaN = not ranked). ``lists`` has the methods' top-``k`` lists: method, target_id,
    rank, item_id. Metrics (one value per target, averaged over the targets of the group; with one test
    purchase per user that is the average over users):

    - ``recall@k``, ``ndcg@k``, ``mrr``, ``mrr@k``: ``recommender.metrics`` on the ranks;
    - ``coverage@k`` (catalog coverage, Harte et al. 2024, arXiv 2402.01339, after Ge et al. 2010):
      ``|union of the group's top-k lists| / |items of the category|``; for category 'all' the union over
      every category divided by the whole catalog. A list method counts the items its list holds;
    - ``serendipity@k`` (same papers): the average number of correct recommendations per user that the
      primitive popularity recommender would not make. With one target per user this is the share of
      targets ranked in the top ``k`` whose item is not in the popularity top-``k`` of its category
      (``expected``), so the popularity baseline scores 0 by construction.

    ``n_users`` is the number of targets in the group. Slices with no targets are left out.
    """
    catalog_sizes = {category: len(ids) for category, ids in catalog.items()}
    total_items = sum(catalog_sizes.values())
    rows: list[tuple[str, str, str, str, float, int]] = []
    for method, of_method in ranks.groupby("method", sort=True):
        method_lists = lists[lists["method"] == method]
        for category in [ALL, *sorted(of_method["category"].unique())]:
            in_category = of_method if category == ALL else of_method[of_method["category"] == category]
            size = total_items if category == ALL else catalog_sizes.get(category, 0)
            for slice_name in SLICES:
                if slice_name == "all":
                    group = in_category
                else:
                    group = in_category[
                        in_category["is_cold_item"].astype(bool) == (slice_name == "cold_start")
                    ]
                if group.empty:
                    continue
                values = ranking_metrics(group["rank"].to_numpy(np.float64), k)
                group_lists = method_lists[method_lists["target_id"].isin(group["target_id"])]
                values[f"coverage@{k}"] = catalog_coverage(group_lists, size, k)
                values[f"serendipity@{k}"] = serendipity(
                    group["rank"], group["target_item_id"], group["category"], expected, k
                )
                rows.extend(
                    (method, category, slice_name, name, value, len(group)) for name, value in values.items()
                )
    return pd.DataFrame(rows, columns=["method", "category", "slice", "metric", "value", "n_users"])


# --- methods that output a list -------------------------------------------------------------------

LIST_COLUMNS = ["target_id", "rank", "item_id", "source", "score"]


def generated_id_lists(generations: pd.DataFrame, catalog: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """``llm_only``: the generated item id as a one-item list, when it is an item of the target category.

    ``generations`` has target_id, category (of the target) and item_id (nullable). No retrieval, no
    mixup: the LLM alone, so a hallucinated or out-of-category id recommends nothing.
    """
    members = {category: set(ids.tolist()) for category, ids in catalog.items()}
    keep = [
        isinstance(item, str) and item in members.get(category, ())
        for item, category in zip(generations["item_id"], generations["category"], strict=True)
    ]
    chosen = generations.loc[keep, ["target_id", "item_id"]]
    return chosen.assign(rank=1, source="id", score=np.nan)[LIST_COLUMNS].reset_index(drop=True)


# --- one evaluation run ---------------------------------------------------------------------------


@dataclass
class EvaluationResult:
    """Everything one run measured: per-target ranks, the top-k lists, the metrics, and its timing."""

    ranks: pd.DataFrame  # method, target_id, user_id, category, target_item_id, is_cold_item, rank
    lists: pd.DataFrame  # method, target_id, rank, item_id, source, score
    metrics: pd.DataFrame  # method, category, slice, metric, value, n_users
    seconds: dict[str, float]  # wall time of ranking each method
    # eval_llm_diagnostics rows (evaluation.diagnostics); None for a run without the prompts' candidates
    diagnostics: pd.DataFrame | None = None

    def users_per_second(self) -> dict[str, float]:
        n = self.ranks.groupby("method").size()
        return {m: float(n.get(m, 0) / s) if s > 0 else float("nan") for m, s in self.seconds.items()}

    def ranked_share(self) -> dict[str, float]:
        """Per method, the share of targets it ranked at all (a list method only those in its list)."""
        ranked = self.ranks.assign(ranked=self.ranks["rank"].notna()).groupby("method")["ranked"].mean()
        return {str(m): float(v) for m, v in ranked.items()}

    def rows_per_source(self) -> list[dict[str, object]]:
        """``{method, source, rows}`` per list source of each method (``id``, ``title``, ``list``)."""
        rows = self.lists.groupby(["method", "source"]).size().rename("rows").reset_index()
        return rows.to_dict("records")


def evaluate_methods(
    targets: pd.DataFrame,
    catalog: Mapping[str, np.ndarray],
    expected: Mapping[str, set[str]],
    list_methods: Mapping[str, pd.DataFrame],
    score_methods: Mapping[str, ScoreBatch],
    config: RankingConfig | None = None,
    list_seconds: Mapping[str, float] | None = None,
) -> EvaluationResult:
    """Rank every target under every method and aggregate the metrics.

    ``list_methods`` maps a method name to its lists (``LIST_COLUMNS``; the top-``k`` of them are kept);
    ``score_methods`` maps a name to a full-catalog scoring function (:data:`ScoreBatch`), whose top-``k``
    per target is recorded with source 'list'. ``expected`` is :func:`popular_top_k` (serendipity).
    ``list_seconds`` (time spent building each list method's lists) is added to its timing.
    """
    check_targets(targets)
    config = config or RankingConfig()
    targets = targets.reset_index(drop=True)
    rank_frames, list_frames, seconds = [], [], {}
    for method, lists in list_methods.items():
        start = time.perf_counter() - (list_seconds or {}).get(method, 0.0)
        lists = lists.loc[
            lists["target_id"].isin(targets["target_id"]) & (lists["rank"] <= config.k), LIST_COLUMNS
        ]
        ranks = rank_in_lists(targets, lists)
        seconds[method] = time.perf_counter() - start
        rank_frames.append(targets[TARGET_COLUMNS].assign(method=method, rank=ranks))
        list_frames.append(lists.assign(method=method))
    for method, score_batch in score_methods.items():
        start = time.perf_counter()
        ranks, lists = rank_by_scores(targets, catalog, score_batch, config, desc=method)
        seconds[method] = time.perf_counter() - start
        rank_frames.append(targets[TARGET_COLUMNS].assign(method=method, rank=ranks))
        list_frames.append(lists.assign(method=method, source="list"))
    ranks = pd.concat(rank_frames, ignore_index=True)[["method", *TARGET_COLUMNS, "rank"]]
    lists = pd.concat(list_frames, ignore_index=True)[["method", *LIST_COLUMNS]]
    metrics = aggregate_metrics(ranks, lists, catalog, expected, config.k)
    return EvaluationResult(ranks=ranks, lists=lists, metrics=metrics, seconds=seconds)
