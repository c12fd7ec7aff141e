"""GRU4Rec (Hidasi et al., ICLR 2016; Tan et al., DLRS 2016): a GRU over the session's items.

As RecBole implements it (``recbole/model/sequential_recommender/gru4rec.py``): embedding dropout, a
bias-free GRU, a dense layer back to the embedding size, the output at the last item as the session
vector, dot-product scores with the item table, cross-entropy over every item on every prefix of the
training sequences (RecBole's stand-in for the paper's session-parallel mini-batches).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from training.sequence_data import PAD_INDEX
from training.sequential import (
    SequentialConfig,
    SequentialRecommender,
    gather_last,
    mask_padding_logits,
)


@dataclass
class Gru4RecConfig(SequentialConfig):
    """GRU4Rec hyperparameters: RecBole's ``properties/model/GRU4Rec.yaml``; training as ``overall.yaml``."""

    embedding_size: int = 64  # GRU4Rec.yaml
    hidden_size: int = 128  # GRU4Rec.yaml
    num_layers: int = 1  # GRU4Rec.yaml
    dropout_prob: float = 0.3  # GRU4Rec.yaml


class Gru4RecModel(SequentialRecommender):
    """GRU4Rec over ``n_items`` embedding rows (padding, cold, vocabulary)."""

    model_name = "GRU4Rec"

    def __init__(self, n_items: int, config: Gru4RecConfig) -> None:
        super().__init__()
        self.config = config
        self.n_items = n_items
        self.item_embedding = nn.Embedding(n_items, config.embedding_size, padding_idx=PAD_INDEX)
        self.emb_dropout = nn.Dropout(config.dropout_prob)
        self.gru = nn.GRU(
            input_size=config.embedding_size,
            hidden_size=config.hidden_size,
            num_layers=config.num_layers,
            bias=False,
            batch_first=True,
        )
        self.dense = nn.Linear(config.hidden_size, config.embedding_size)
        # RecBole's _init_weights: Xavier-normal embeddings, Xavier-uniform GRU weights
        nn.init.xavier_normal_(self.item_embedding.weight)
        for name, weight in self.gru.named_parameters():
            if name.startswith("weight_"):
                nn.init.xavier_uniform_(weight)
        with torch.no_grad():
            self.item_embedding.weight[PAD_INDEX].zero_()

    def session_vectors(self, item_seq: torch.Tensor) -> torch.Tensor:
        # right padding comes after the last item, so the GRU state there is not yet affected by it
        output, _ = self.gru(self.emb_dropout(self.item_embedding(item_seq)))  # [b, L, hidden]
        return gather_last(self.dense(output), item_seq)

    def candidate_scores(self, sessions: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        return sessions @ self.item_embedding(candidates).T

    def loss(self, item_seq: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits = self.session_vectors(item_seq) @ self.item_embedding.weight.T  # [b, n_items]
        return F.cross_entropy(mask_padding_logits(logits), targets)
