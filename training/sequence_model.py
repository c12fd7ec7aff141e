"""The interface every item-id sequence recommender implements, and how a trained one scores.

CORE (``training.core``) and the baselines of the evaluation (GRU4Rec, SASRec, BERT4Rec, NextItNet,
LLM2SASRec, LLMSeqSim) all turn a left-aligned window of item indices (``training.sequence_data``) into a
session vector and score candidate items against it; :class:`SequentialRecommender` is that contract and
:class:`SequentialConfig` the training settings they share (RecBole's ``overall.yaml``).

- :func:`score_indices` / :func:`rank_examples`: batched ``[batch, n_candidates]`` scores; a window with
  no item at all scores every candidate 0 (no information: the target ties with everything and, ties
  counting against it, ranks last), whatever the model would make of an empty input.
- :class:`SequenceScorer`: a trained model and its vocabulary, scoring raw item-id histories.

The training loop is ``training.sequential``; checkpoints are ``training.sequence_checkpoint``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from recommender.metrics import rank_of_target
from training.sequence_data import (
    PAD_INDEX,
    CategoryCatalog,
    ItemVocabulary,
    SequenceExamples,
    sequences_to_inputs,
)


@dataclass
class WindowConfig:
    """What scoring needs: the window length and batch size, and the valid metric's cut-off."""

    max_seq_length: int = 50  # RecBole dataset default MAX_ITEM_LIST_LENGTH
    eval_batch_size: int = 4096  # RecBole overall.yaml
    # docs/recbole.md: early stopping watches valid NDCG@10 (RecBole's default is MRR@10)
    valid_metric_k: int = 10


@dataclass
class SequentialConfig(WindowConfig):
    """Training settings shared by the trained models; defaults are RecBole's ``overall.yaml``."""

    learning_rate: float = 1e-3  # overall.yaml (Adam)
    weight_decay: float = 0.0  # overall.yaml
    train_batch_size: int = 2048  # overall.yaml
    epochs: int = 300  # overall.yaml
    stopping_step: int = 10  # overall.yaml: stop when more epochs than this in a row bring no valid gain
    metric_decimal_place: int = 4  # overall.yaml: valid scores are rounded so before they are compared
    # RecBole's table: every catalog item has a row (training.sequence_data.item_vocabulary); "trained"
    # gives rows to the items seen in training only and one shared cold row to the rest. The catalog table
    # wins where users buy an article again (docs/evaluation.md, "The item table")
    item_table: str = "catalog"
    # ours, for a table with a cold row: items this rare in training stand in for unseen items ...
    cold_item_max_count: int = 1
    cold_replace_prob: float = 0.1  # ... and this often an occurrence trains the cold row instead
    seed: int = 2020  # overall.yaml
    # ours, speed only: a random batch is run in this many length-sorted pieces whose gradients add up
    # to the batch's (training.sequential.batch_pieces). One CORE epoch on demo at batches of 256 took
    # 18 s in one piece, 11.5 s in 2, 9.9 s in 4 and 13 s in 8 (smaller pieces pay more per call); a
    # GRU4Rec step at 2048 took 2.0 s in one piece and 0.7 s in 4 or 8
    length_pieces: int = 4
    # opt-in speed trick: batches of similar window lengths. Off: RecBole batches at random, and
    # length-sorted batches slowed learning (training.sequential.shuffled_batches)
    bucket_by_length: bool = False


class SequentialRecommender(nn.Module, ABC):
    """A model that maps item-index windows ``[b, L]`` (left-aligned, ``PAD_INDEX`` after the last item)
    to session vectors and scores candidate rows against them."""

    model_name: ClassVar[str]  # written to config.json, selects the class when loading
    config: WindowConfig
    n_items: int  # embedding rows: padding + cold + vocabulary
    item_embedding: nn.Embedding  # row i is item index i (PAD_INDEX, COLD_INDEX, then the vocabulary)

    @abstractmethod
    def session_vectors(self, item_seq: torch.Tensor) -> torch.Tensor:
        """Session vectors ``[b, d]`` of index windows ``[b, L]``."""

    @abstractmethod
    def candidate_scores(self, sessions: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """Scores ``[b, c]`` of sessions ``[b, d]`` against candidate embedding rows ``[c]``."""

    def loss(self, item_seq: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Training loss of windows ``[b, L]`` whose next items are ``targets`` ``[b]``."""
        raise NotImplementedError(f"{self.model_name} is not trained by gradient descent")

    def after_step(self) -> None:
        """Called after every optimizer step; keeps the padding row at zero by default."""
        with torch.no_grad():
            self.item_embedding.weight[PAD_INDEX].zero_()


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def trim_padding(item_seq: torch.Tensor) -> torch.Tensor:
    """Drop the all-padding columns at the right of a left-aligned batch.

    Every model masks or ignores positions after the last item, so its session vectors do not change,
    but it then runs over the batch's longest session instead of ``max_seq_length`` positions (short
    fashion sessions make this several times faster).
    """
    width = int(item_seq.ne(PAD_INDEX).sum(dim=1).max()) if len(item_seq) else 0
    return item_seq[:, : max(1, width)]


def gather_last(hidden: torch.Tensor, item_seq: torch.Tensor) -> torch.Tensor:
    """The hidden state ``[b, d]`` at each window's last item (position 0 for an empty window)."""
    last = (item_seq.ne(PAD_INDEX).sum(dim=1) - 1).clamp(min=0)  # [b]
    return hidden[torch.arange(len(hidden), device=hidden.device), last]


def mask_padding_logits(logits: torch.Tensor) -> torch.Tensor:
    """Padding is never a recommendation: its column gets -inf in full-softmax logits ``[b, n_items]``."""
    return logits.index_fill(-1, torch.tensor([PAD_INDEX], device=logits.device), float("-inf"))


@torch.no_grad()
def score_indices(
    model: SequentialRecommender, inputs: np.ndarray, candidate_indices: np.ndarray, batch_size: int = 4096
) -> np.ndarray:
    """Scores ``[n, n_candidates]`` of index windows against candidate embedding rows, batch by batch.

    One ``[batch, d] @ [d, n_distinct_candidates]`` product per batch; candidates sharing an embedding
    row (the unseen items) get bit-identical scores; a window without any item scores 0 for every
    candidate.
    """
    model.eval()
    device = next(model.parameters()).device
    # Each distinct row is scored once and copied to its columns: every unseen item maps to the cold
    # row, and a matrix product may round the same dot product differently in different columns, which
    # would break the exact ties the protocol counts against a cold target.
    rows, column_row = torch.as_tensor(candidate_indices, device=device).unique(return_inverse=True)
    out = np.empty((len(inputs), len(candidate_indices)), dtype=np.float32)
    for start in range(0, len(inputs), batch_size):
        batch = trim_padding(torch.as_tensor(inputs[start : start + batch_size])).to(device)
        scores = model.candidate_scores(model.session_vectors(batch), rows)[:, column_row]
        scores = scores.masked_fill(batch.ne(PAD_INDEX).sum(dim=1).eq(0)[:, None], 0.0)
        out[start : start + len(batch)] = scores.float().cpu().numpy()
    return out


def rank_examples(
    model: SequentialRecommender, examples: SequenceExamples, catalog: CategoryCatalog, batch_size: int = 4096
) -> np.ndarray:
    """1-based rank of each example's target among all catalog items of its category."""
    ranks = np.zeros(len(examples), dtype=np.int64)
    categories = examples.categories.astype(str)
    for category in np.unique(categories):
        rows = np.flatnonzero(categories == category)
        positions = catalog.target_positions(category, examples.target_item_ids[rows])
        for start in range(0, len(rows), batch_size):
            chunk = rows[start : start + batch_size]
            scores = score_indices(model, examples.inputs[chunk], catalog.indices[category], batch_size)
            ranks[chunk] = rank_of_target(scores, positions[start : start + batch_size])
    return ranks


@dataclass
class TrainResult:
    """A trained (or fitted) model with its validation record."""

    model: SequentialRecommender
    vocabulary: ItemVocabulary
    best_epoch: int
    best_valid: dict[str, float]
    history: list[dict[str, Any]] = field(default_factory=list)  # one row per epoch (or option tried)
    seconds_per_epoch: float = 0.0


class SequenceScorer:
    """A trained sequence model ready to score raw item-id histories (an evaluation method)."""

    def __init__(self, model: SequentialRecommender, vocabulary: ItemVocabulary) -> None:
        self.model = model.eval()
        self.vocabulary = vocabulary

    def score(
        self, sequences: Sequence[Sequence[str]], item_ids: Sequence[str], batch_size: int = 4096
    ) -> np.ndarray:
        """Scores ``[len(sequences), len(item_ids)]``: each history (oldest first) against every given
        item (e.g. all items of a category). Higher is better; items outside the vocabulary tie."""
        inputs, _ = sequences_to_inputs(sequences, self.vocabulary, self.model.config.max_seq_length)
        return score_indices(self.model, inputs, self.vocabulary.index_of(item_ids), batch_size)
