"""An adapter's score on valid prompts, which chooses its learning rate and steps
(``training.adapter_tuning``).

The score is the target's NDCG@10 when the model alone (the ``ranked`` decoding, no order prior) ranks
each prompt's candidates: the part of the evaluation the adapter decides. Only prompts with candidates
are scored (without any, the answer does not come from a ranking), and a target the candidates miss
scores 0 for every adapter alike. The adapter is loaded exactly as the ``generations`` asset and the
service load it (``recommender.generation.load_recommender``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recommender.generation import Recommender, load_recommender
from recommender.generation_settings import GenerationSettings
from recommender.metrics import ndcg_at_k
from recommender.order_prior import target_rank
from recommender.prompt_table import sample_rows

SCORE_NAME = "valid NDCG@10 of the model's candidate ranking"
CUTOFF = 10


def with_candidates(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The ``prompts`` rows that show candidates."""
    return [row for row in rows if row["candidate_item_ids"] is not None and len(row["candidate_item_ids"])]


def candidate_ranking_ndcg(recommender: Recommender, rows: Sequence[Mapping[str, Any]]) -> float:
    """Mean NDCG@10 of each row's target in its candidates ranked by the model alone (``rows``: prompts
    with candidates); ValueError without rows."""
    if not rows:
        raise ValueError("no valid prompts with candidates to score the adapter on")
    run = recommender.rank(
        [row["prompt_text"] for row in rows],
        [row["category"] for row in rows],
        [row["candidate_item_ids"] for row in rows],
        progress=False,
    )
    ranks = [
        target_rank(ranking.item_ids, row["target_item_id"])
        for ranking, row in zip(run.rankings, rows, strict=True)
    ]
    return ndcg_at_k(ranks, CUTOFF)


@dataclass(frozen=True)
class ValidRankingScore:
    """Scores a saved adapter (its folder) on a fixed sample of valid prompts."""

    base_model: str
    catalog: Sequence[tuple]  # (item id, category, title) rows, as load_recommender reads them
    rows: Sequence[Mapping[str, Any]]  # valid prompts with candidates

    @classmethod
    def sample(
        cls, base_model: str, catalog: Sequence[tuple], valid: Sequence[Mapping[str, Any]], n: int, seed: int
    ) -> ValidRankingScore:
        """``n`` of the ``valid`` prompts that show candidates, drawn by ``seed``; ValueError if none do."""
        rows = sample_rows(with_candidates(valid), n, seed)
        if not rows:
            raise ValueError(
                f"none of the {len(valid)} valid prompts shows candidates: the learning rate and steps "
                "cannot be chosen on them (set selection_prompts to 0 and one learning rate)"
            )
        return cls(base_model, catalog, rows)

    def __call__(self, adapter_dir: Path) -> float:
        recommender, _ = load_recommender(self.base_model, adapter_dir, self.catalog, GenerationSettings())
        return candidate_ranking_ndcg(recommender, self.rows)
