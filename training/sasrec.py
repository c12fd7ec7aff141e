"""SASRec (Kang & McAuley, ICDM 2018): "Self-Attentive Sequential Recommendation".

A causal transformer over the window's item + position embeddings; the hidden state at the last item is
the session vector, and items are scored by dot product with the same item table that feeds the input.
Trained, as RecBole does with ``loss_type: CE``, by cross-entropy over every item (no negative sampling)
on every prefix of the training sequences. The network follows ``recbole/model/sequential_recommender/
sasrec.py``: LayerNorm and dropout on the input, post-norm layers, N(0, 0.02) initialisation.

LLM2SASRec (``training.llm2sasrec``) is this model with its item table initialised from title embeddings.
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
from training.transformer import attention_bias, init_like_recbole, transformer_layers


@dataclass
class SasRecConfig(SequentialConfig):
    """SASRec hyperparameters: RecBole's ``properties/model/SASRec.yaml``; training as ``overall.yaml``."""

    hidden_size: int = 64  # SASRec.yaml (also the item embedding size)
    n_layers: int = 2  # SASRec.yaml
    n_heads: int = 2  # SASRec.yaml
    inner_size: int = 256  # SASRec.yaml
    hidden_dropout_prob: float = 0.5  # SASRec.yaml
    attn_dropout_prob: float = 0.5  # SASRec.yaml
    layer_norm_eps: float = 1e-12  # SASRec.yaml
    initializer_range: float = 0.02  # SASRec.yaml


class SasRecModel(SequentialRecommender):
    """SASRec over ``n_items`` embedding rows (padding, cold, vocabulary)."""

    model_name = "SASRec"

    def __init__(self, n_items: int, config: SasRecConfig) -> None:
        super().__init__()
        self.config = config
        self.n_items = n_items
        d = config.hidden_size
        self.item_embedding = nn.Embedding(n_items, d, padding_idx=PAD_INDEX)
        self.position_embedding = nn.Embedding(config.max_seq_length, d)
        self.input_norm = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.input_dropout = nn.Dropout(config.hidden_dropout_prob)
        self.layers = transformer_layers(d, config)
        self.apply(lambda module: init_like_recbole(module, config.initializer_range))
        with torch.no_grad():
            self.item_embedding.weight[PAD_INDEX].zero_()

    def session_vectors(self, item_seq: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(item_seq.size(1), device=item_seq.device)
        x = self.item_embedding(item_seq) + self.position_embedding(positions)[None]  # [b, L, d]
        x = self.input_dropout(self.input_norm(x))
        bias = attention_bias(item_seq, causal=True, dtype=x.dtype)
        for layer in self.layers:
            x = layer(x, bias)
        return gather_last(x, item_seq)

    def candidate_scores(self, sessions: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        return sessions @ self.item_embedding(candidates).T

    def loss(self, item_seq: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits = self.session_vectors(item_seq) @ self.item_embedding.weight.T  # [b, n_items]
        return F.cross_entropy(mask_padding_logits(logits), targets)
