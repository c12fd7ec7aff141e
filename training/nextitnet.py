"""NextItNet (Yuan et al., WSDM 2019): "A Simple Convolutional Generative Network for Next Item
Recommendation".

A stack of causal dilated 1-D convolutions with residual connections (the paper's residual block (b),
as RecBole's ``recbole/model/sequential_recommender/nextitnet.py`` builds it: two convolutions of
dilation d and 2d, each followed by LayerNorm and ReLU), then a linear layer; items are scored by dot
product with the item table, cross-entropy over every item, plus RecBole's L2 terms (``reg_weight``
times the norms of the item table, the output layer and the residual blocks' weights).

One deliberate difference from RecBole: RecBole reads the network's output at the window's last
*column*, which with right padding is a padding position for every window shorter than 50; here the
session vector is the output at the last *item*, which is what the causal network predicts from (the
original paper's definition, and what every other model here does).
"""

from __future__ import annotations

import math
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
class NextItNetConfig(SequentialConfig):
    """NextItNet hyperparameters: RecBole's ``properties/model/NextItNet.yaml``; training ``overall.yaml``."""

    embedding_size: int = 64  # NextItNet.yaml (also the residual channels)
    kernel_size: int = 3  # NextItNet.yaml
    block_num: int = 5  # NextItNet.yaml: the dilation list is repeated this many times
    dilations: tuple[int, ...] = (1, 4)  # NextItNet.yaml
    reg_weight: float = 1e-5  # NextItNet.yaml


class _ResidualBlock(nn.Module):
    """Residual block (b): causal conv (dilation d) -> LN -> ReLU -> causal conv (2d) -> LN -> ReLU, + x."""

    def __init__(self, channels: int, kernel_size: int, dilation: int) -> None:
        super().__init__()
        self.kernel_size, self.dilation = kernel_size, dilation
        self.conv1 = nn.Conv1d(channels, channels, kernel_size, dilation=dilation)
        self.ln1 = nn.LayerNorm(channels, eps=1e-8)
        self.conv2 = nn.Conv1d(channels, channels, kernel_size, dilation=2 * dilation)
        self.ln2 = nn.LayerNorm(channels, eps=1e-8)

    def _causal(self, conv: nn.Conv1d, x: torch.Tensor, dilation: int) -> torch.Tensor:
        # left padding only: position t sees t and earlier, never a later item
        padded = F.pad(x.transpose(1, 2), ((self.kernel_size - 1) * dilation, 0))  # [b, d, pad + L]
        return conv(padded).transpose(1, 2)  # [b, L, d]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.ln1(self._causal(self.conv1, x, self.dilation)))
        out = F.relu(self.ln2(self._causal(self.conv2, out, 2 * self.dilation)))
        return out + x


class NextItNetModel(SequentialRecommender):
    """NextItNet over ``n_items`` embedding rows (padding, cold, vocabulary)."""

    model_name = "NextItNet"

    def __init__(self, n_items: int, config: NextItNetConfig) -> None:
        super().__init__()
        self.config = config
        self.n_items = n_items
        d = config.embedding_size
        self.item_embedding = nn.Embedding(n_items, d, padding_idx=PAD_INDEX)
        dilations = list(config.dilations) * config.block_num  # [1, 4, 1, 4, ...]
        self.blocks = nn.Sequential(*(_ResidualBlock(d, config.kernel_size, r) for r in dilations))
        self.final_layer = nn.Linear(d, d)
        # RecBole's _init_weights: uniform(+-sqrt(1/n_items)) embeddings, Xavier-normal linear, bias 0.1
        bound = math.sqrt(1.0 / n_items)
        nn.init.uniform_(self.item_embedding.weight, -bound, bound)
        nn.init.xavier_normal_(self.final_layer.weight)
        nn.init.constant_(self.final_layer.bias, 0.1)
        with torch.no_grad():
            self.item_embedding.weight[PAD_INDEX].zero_()

    def session_vectors(self, item_seq: torch.Tensor) -> torch.Tensor:
        hidden = self.blocks(self.item_embedding(item_seq))  # [b, L, d]
        return self.final_layer(gather_last(hidden, item_seq))

    def candidate_scores(self, sessions: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        return sessions @ self.item_embedding(candidates).T

    def regularization(self) -> torch.Tensor:
        """RecBole's RegLoss on the item table and output layer plus ``reg_loss_rb`` on the blocks
        (plain L2 norms, not squared, of every parameter whose name ends in ``weight``)."""
        norms = self.item_embedding.weight.norm(2) + self.final_layer.weight.norm(2)
        for name, weight in self.blocks.named_parameters():
            if name.endswith("weight"):
                norms = norms + weight.norm(2)
        return self.config.reg_weight * norms

    def loss(self, item_seq: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits = self.session_vectors(item_seq) @ self.item_embedding.weight.T  # [b, n_items]
        return F.cross_entropy(mask_padding_logits(logits), targets) + self.regularization()
