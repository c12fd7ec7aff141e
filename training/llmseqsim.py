"""LLMSeqSim: recommend the items whose text embedding is closest to the session's embedding. Nothing is
trained (Harte et al., "Leveraging Large Language Models for Sequential Recommendation", RecSys 2023;
docs/evaluation.md, "The methods").

The session embedding is a weighted mean of the language-model embeddings of the history's items, and
items are ranked by cosine similarity to it. The paper compares several ways of combining the history
(plain average, recency-weighted averages, only the last item) and keeps the best per data set; here the
combination is chosen the same way, by valid NDCG@10 among :data:`AGGREGATIONS`:

- ``mean``: every item of the window weighs the same;
- ``linear``: the i-th item of an n-item window (oldest i = 1) weighs i, so the latest weighs n;
- ``exponential``: each step back in time multiplies the weight by ``decay`` (0.5, ours);
- ``last``: only the latest item.

The embeddings are the title vectors of ``item_title_vectors`` (the triplet-fine-tuned MiniLM title
encoder, the repository's stand-in for the paper's OpenAI/PaLM embeddings). Every catalog item has one,
so, unlike the ID models, a never-bought item is ranked by its own text: the "vocabulary" here is the
title table, and the cold row (an item without a title vector) is zero and scores 0. The model stores
the title table it used as its (frozen) weights, so a saved model scores the same later whatever
happens to the LanceDB table.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from training.sequence_data import (
    FIRST_ITEM_INDEX,
    PAD_INDEX,
    CategoryCatalog,
    ItemVocabulary,
    SequenceExamples,
)
from training.sequential import SequentialRecommender, TrainResult, WindowConfig, validate

AGGREGATIONS = ("mean", "linear", "exponential", "last")


@dataclass
class LlmSeqSimConfig(WindowConfig):
    """How a window becomes a session embedding; the window is the same 50 latest items as the ID models'."""

    aggregation: str = "mean"  # one of AGGREGATIONS; chosen on valid by fit_llmseqsim
    decay: float = 0.5  # ours: weight ratio between consecutive items for ``exponential``
    text_dim: int = 384  # width of the title vectors (MiniLM)


class LlmSeqSimModel(SequentialRecommender):
    """Frozen unit title vectors as the item table; weighted-mean sessions; cosine scores."""

    model_name = "LLMSeqSim"

    def __init__(self, n_items: int, config: LlmSeqSimConfig) -> None:
        super().__init__()
        if config.aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation {config.aggregation!r} is not one of {AGGREGATIONS}")
        self.config = config
        self.n_items = n_items
        self.item_embedding = nn.Embedding(n_items, config.text_dim, padding_idx=PAD_INDEX)
        self.item_embedding.weight.requires_grad_(False)

    def position_weights(self, item_seq: torch.Tensor) -> torch.Tensor:
        """Weights ``[b, L]`` of each window position (0 on padding), per ``config.aggregation``."""
        real = item_seq.ne(PAD_INDEX)
        lengths = real.sum(dim=1, keepdim=True)  # [b, 1]
        position = torch.arange(item_seq.size(1), device=item_seq.device)[None]  # [1, L]
        steps_back = (lengths - 1 - position).clamp(min=0).float()  # 0 at the latest item
        weights = {
            "mean": torch.ones_like(steps_back),
            "linear": (position + 1).float().expand_as(steps_back),
            "exponential": self.config.decay**steps_back,
            "last": (steps_back == 0).float(),
        }[self.config.aggregation]
        return weights * real

    def session_vectors(self, item_seq: torch.Tensor) -> torch.Tensor:
        weights = self.position_weights(item_seq)[..., None]  # [b, L, 1]
        session = (weights * self.item_embedding(item_seq)).sum(dim=1)  # [b, d]
        return F.normalize(session, dim=-1)  # the normalisation makes the weighted sum a weighted mean

    def candidate_scores(self, sessions: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        return sessions @ F.normalize(self.item_embedding(candidates), dim=-1).T

    def after_step(self) -> None:
        """Nothing is trained."""


def title_vocabulary(item_ids: Sequence[str]) -> ItemVocabulary:
    """The items that have a title vector, sorted: LLMSeqSim's vocabulary (every catalog item)."""
    return ItemVocabulary(np.array(sorted(set(item_ids)), dtype=object))


def llmseqsim_model(
    vocabulary: ItemVocabulary, title_vectors: np.ndarray, config: LlmSeqSimConfig
) -> LlmSeqSimModel:
    """A model whose item rows ``FIRST_ITEM_INDEX..`` are ``title_vectors`` (aligned with the vocabulary)."""
    vectors = np.asarray(title_vectors, dtype=np.float32)
    if vectors.shape != (len(vocabulary.item_ids), vectors.shape[1]):
        raise ValueError(
            f"need one title vector per vocabulary item: {len(vocabulary.item_ids)} items, "
            f"vectors of shape {vectors.shape}"
        )
    model = LlmSeqSimModel(len(vocabulary), replace(config, text_dim=int(vectors.shape[1])))
    with torch.no_grad():
        model.item_embedding.weight.zero_()
        model.item_embedding.weight[FIRST_ITEM_INDEX:] = torch.from_numpy(vectors)
    return model.eval()


def fit_llmseqsim(
    valid: SequenceExamples,
    vocabulary: ItemVocabulary,
    catalog: CategoryCatalog,
    title_vectors: np.ndarray,
    config: LlmSeqSimConfig | None = None,
    aggregations: Sequence[str] = AGGREGATIONS,
    log: Callable[[str], Any] = print,
) -> TrainResult:
    """The aggregation with the best valid NDCG@k (the first one when there are no valid targets).

    ``history`` holds one row per aggregation tried, with its valid metrics and seconds.
    """
    config = config or LlmSeqSimConfig()
    best: tuple[float, LlmSeqSimModel, dict[str, float]] | None = None
    history: list[dict[str, Any]] = []
    for aggregation in aggregations:
        start = time.perf_counter()
        model = llmseqsim_model(vocabulary, title_vectors, replace(config, aggregation=aggregation))
        metrics = validate(model, valid, catalog)
        score = metrics.pop("_score", 0.0)
        history.append({"aggregation": aggregation, "seconds": time.perf_counter() - start, **metrics})
        k = config.valid_metric_k
        log(f"LLMSeqSim {aggregation}: valid ndcg@{k} {metrics.get(f'ndcg@{k}', float('nan')):.4f}")
        if best is None or score > best[0]:
            best = (score, model, metrics)
    if best is None:
        raise ValueError(f"no aggregation to try; choose from {AGGREGATIONS}")
    _, model, metrics = best
    return TrainResult(model=model, vocabulary=vocabulary, best_epoch=0, best_valid=metrics, history=history)
