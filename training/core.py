"""CORE-trm (Hou et al., SIGIR 2022): session embeddings in the item embedding space.

"CORE: Simple and Effective Session-based Recommendation within Consistent Representation Space".
A session is the weighted sum of its item embeddings, the weights coming from a small transformer
(representation-consistent encoder); session and item vectors are L2-normalised, items get dropout,
and the loss is cross-entropy over all items at temperature 0.07 (robust distance measuring). Because
the session lives in the item space, the trained item table doubles as the ID embedding model of the
fashion paper (arXiv 2410.11327, §4.4 "ID Embedding Model"), and the model itself is the CORE baseline
of the evaluation.

Every catalog item has a row of its own (``item_table: "catalog"``, RecBole's table and the default). With
``item_table: "trained"``, items outside the training vocabulary share one learned "cold" embedding (row
``COLD_INDEX``), as the fashion paper does for ID methods in its cold-start study; ``training.sequential``
trains that row on rare items and holds the training loop, ranking and checkpoints that CORE shares with
the baselines.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from fashionrec.layout import CONFIG_FILE
from training.sequence_data import (
    PAD_INDEX,
    CategoryCatalog,
    ItemVocabulary,
    SequenceExamples,
    build_examples,
    build_vocabulary,
    item_vocabulary,
    sequences_to_inputs,
)
from training.sequential import (
    SequenceScorer,
    SequentialConfig,
    SequentialRecommender,
    TrainResult,
    load_sequential,
    mask_padding_logits,
    rank_examples,
    save_sequential,
    score_indices,
    train_sequential,
    trim_padding,
)
from training.transformer import attention_bias, transformer_layers
from training.user_share import EVERY_USER, UserShare, count_train_users

__all__ = [
    "CoreConfig",
    "CoreModel",
    "CoreScorer",
    "CoreTrainResult",
    "rank_examples",
    "save_core",
    "score_indices",
    "train_core",
    "trim_padding",
]

# The result type of train_core: the shared TrainResult (the name callers of CORE already use).
CoreTrainResult = TrainResult


@dataclass
class CoreConfig(SequentialConfig):
    """CORE hyperparameters; defaults are RecBole's (``recbole/properties/model/CORE.yaml``), training
    settings those of ``overall.yaml`` (``training.sequential.SequentialConfig``)."""

    embedding_size: int = 64  # CORE.yaml
    n_layers: int = 2  # CORE.yaml
    n_heads: int = 2  # CORE.yaml
    inner_size: int = 256  # CORE.yaml
    hidden_dropout_prob: float = 0.5  # CORE.yaml
    attn_dropout_prob: float = 0.5  # CORE.yaml
    layer_norm_eps: float = 1e-12  # CORE.yaml
    initializer_range: float = 0.02  # CORE.yaml (transformer weights)
    sess_dropout: float = 0.2  # CORE.yaml: dropout on the session's item embeddings
    item_dropout: float = 0.2  # CORE.yaml: dropout on candidate item embeddings in the loss
    temperature: float = 0.07  # CORE.yaml


class CoreModel(SequentialRecommender):
    """CORE with the transformer weighting network (``dnn_type: trm``)."""

    model_name = "CORE-trm"

    def __init__(self, n_items: int, config: CoreConfig) -> None:
        super().__init__()
        self.config = config
        self.n_items = n_items
        d = config.embedding_size
        self.item_embedding = nn.Embedding(n_items, d, padding_idx=PAD_INDEX)
        self.position_embedding = nn.Embedding(config.max_seq_length, d)
        self.input_norm = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.input_dropout = nn.Dropout(config.hidden_dropout_prob)
        self.layers = transformer_layers(d, config)
        self.weight_head = nn.Linear(d, 1)
        self.sess_dropout = nn.Dropout(config.sess_dropout)
        self.item_dropout = nn.Dropout(config.item_dropout)
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        # RecBole's CORE.__init__ re-draws every parameter uniformly in +-1/sqrt(d) after the
        # transformer's own normal init, so that is the effective initialisation.
        bound = 1.0 / math.sqrt(self.config.embedding_size)
        for weight in self.parameters():
            nn.init.uniform_(weight, -bound, bound)
        with torch.no_grad():
            # an empty session must sum to the zero vector (no information), not to a random pad row
            self.item_embedding.weight[PAD_INDEX].zero_()

    def session_weights(self, item_seq: torch.Tensor, item_emb: torch.Tensor) -> torch.Tensor:
        """Softmax weights ``[b, L, 1]`` over the session's items (0 on padding)."""
        mask = item_seq.ne(PAD_INDEX)  # [b, L]
        positions = torch.arange(item_seq.size(1), device=item_seq.device)
        x = self.input_dropout(self.input_norm(item_emb + self.position_embedding(positions)[None]))
        # causal, as RecBole's TransNet builds it (bidirectional=False), plus key padding
        bias = attention_bias(item_seq, causal=True, dtype=x.dtype)
        for layer in self.layers:
            x = layer(x, bias)
        alpha = self.weight_head(x).double()  # [b, L, 1]
        alpha = torch.where(mask[..., None], alpha, torch.full_like(alpha, -9e15))
        return alpha.softmax(dim=1).float()

    def forward(self, item_seq: torch.Tensor) -> torch.Tensor:
        """Unit-length session vectors ``[b, d]`` in the item embedding space."""
        x = self.sess_dropout(self.item_embedding(item_seq))  # [b, L, d]
        alpha = self.session_weights(item_seq, x)
        session = (alpha * x).sum(dim=1)
        # an empty session stays zero, so it scores every item 0 (ties count against the target)
        return F.normalize(session, dim=-1)

    def session_vectors(self, item_seq: torch.Tensor) -> torch.Tensor:
        return self(item_seq)

    def normalized_items(self, indices: torch.Tensor | None = None) -> torch.Tensor:
        """Unit-length item vectors (all rows, or the given rows), as used for ranking."""
        weight = self.item_embedding.weight if indices is None else self.item_embedding(indices)
        return F.normalize(weight, dim=-1)

    def candidate_scores(self, sessions: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """Cosine similarity; the temperature is left out because it does not change any ranking."""
        return sessions @ self.normalized_items(candidates).T

    def loss(self, item_seq: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        session = self.forward(item_seq)
        items = F.normalize(self.item_dropout(self.item_embedding.weight), dim=-1)
        logits = session @ items.T / self.config.temperature  # [b, n_items]
        return F.cross_entropy(mask_padding_logits(logits), targets)


def train_core(
    train: SequenceExamples,
    valid: SequenceExamples,
    vocabulary: ItemVocabulary,
    catalog: CategoryCatalog,
    config: CoreConfig | None = None,
    device: torch.device | str | None = None,
    log: Callable[[str], Any] = print,
) -> TrainResult:
    """Adam on full-softmax CE at temperature ``config.temperature``; keeps the epoch with the best valid
    NDCG@k and stops as RecBole does (``training.sequential.train_sequential``)."""
    config = config or CoreConfig()
    return train_sequential(
        lambda: CoreModel(len(vocabulary), config), config, train, valid, vocabulary, catalog, device, log
    )


@dataclass
class CoreFit:
    """A trained CORE and what it was trained on."""

    result: TrainResult
    share_record: dict[str, Any]  # training.user_share.UserShare.record
    facts: dict[str, Any]  # sizes and timings, for the asset's metadata

    def scorer(self) -> CoreScorer:
        return CoreScorer(self.result.model, self.result.vocabulary)


def fit_core(
    sequences: pd.DataFrame,
    splits: pd.DataFrame,
    items: pd.DataFrame,
    config: CoreConfig,
    share: UserShare = EVERY_USER,
    train_targets: str = "all_items",
    log: Callable[[str], Any] = print,
) -> CoreFit:
    """CORE trained on the train targets of ``share``'s users (``warehouse.marts.read_sequence_marts``'
    frames), stopping early on every user's valid targets; the vocabulary comes from those users only,
    so items only the others saw are cold (with the catalog table: rows that no train example holds)."""
    training_splits = share.of_splits(splits)
    vocabulary = item_vocabulary(config.item_table, sequences, training_splits, items)
    train = build_examples(
        sequences,
        training_splits,
        vocabulary,
        split="train",
        max_len=config.max_seq_length,
        targets=train_targets,  # type: ignore[arg-type]
        item_categories=items.set_index("item_id")["category"],
    )
    valid = build_examples(sequences, splits, vocabulary, split="valid", max_len=config.max_seq_length)
    # catalog items no training example holds, whichever table ranks them
    trained = vocabulary if config.item_table == "trained" else build_vocabulary(sequences, training_splits)
    record = share.record(pd.unique(train.user_ids).size, count_train_users(splits))
    log(
        f"CORE on {record['train_users_used']} of {record['train_users_available']} training users "
        f"({share.fraction:.0%}), {len(train)} train examples"
    )
    start = time.perf_counter()
    result = train_core(
        train, valid, vocabulary, CategoryCatalog.from_items(items, vocabulary), config, log=log
    )
    facts = {
        "dim": config.embedding_size,
        "item_table": config.item_table,
        "vocabulary_items": len(vocabulary.item_ids),
        "cold_catalog_items": int((~items["item_id"].isin(set(trained.item_ids))).sum()),
        "train_examples": len(train),
        "valid_targets": len(valid),
        "best_epoch": result.best_epoch,
        "epochs_run": len(result.history),
        "train_seconds": round(time.perf_counter() - start, 2),
        "seconds_per_epoch": round(result.seconds_per_epoch, 3),
        "train_examples_per_second": round(len(train) / result.seconds_per_epoch, 1),
    }
    return CoreFit(result, record, facts)


def save_core(result: TrainResult, directory: Path, extra: dict[str, Any] | None = None) -> Path:
    """Weights as safetensors, hyperparameters and training record as JSON (plus ``extra``, e.g. the share
    of training users), vocabulary as a JSON list."""
    return save_sequential(result, directory, extra)


def _build_core(n_items: int, config: dict[str, Any]) -> CoreModel:
    return CoreModel(n_items, CoreConfig(**config))


class CoreScorer(SequenceScorer):
    """A trained CORE model ready to score raw item-id histories (the evaluation's CORE baseline)."""

    model: CoreModel

    @classmethod
    def load(cls, directory: Path, device: torch.device | str | None = None) -> CoreScorer:
        if not (directory / CONFIG_FILE).is_file():
            raise FileNotFoundError(
                f"no trained CORE model at {directory}; materialize the item_id_vectors asset"
            )
        model, vocabulary, _ = load_sequential(directory, {CoreModel.model_name: _build_core}, device)
        return cls(model, vocabulary)

    def item_vectors(self, item_ids: Sequence[str]) -> np.ndarray:
        """Unit-length ID vectors ``[n, d]``; items outside the vocabulary (only with the trained table)
        get the shared cold vector."""
        device = next(self.model.parameters()).device
        with torch.no_grad():
            rows = torch.as_tensor(self.vocabulary.index_of(item_ids), device=device)
            return self.model.normalized_items(rows).float().cpu().numpy()

    def session_vectors(self, sequences: Sequence[Sequence[str]]) -> np.ndarray:
        """Unit-length session vectors ``[n, d]`` of item-id histories (oldest first); empty -> zeros."""
        inputs, _ = sequences_to_inputs(sequences, self.vocabulary, self.model.config.max_seq_length)
        device = next(self.model.parameters()).device
        with torch.no_grad():
            return self.model(torch.as_tensor(inputs, device=device)).float().cpu().numpy()
