"""The self-attention block shared by CORE, SASRec and BERT4Rec, as RecBole builds it.

RecBole's ``TransformerEncoder`` (``recbole/model/layers.py``) is post-norm: attention with its own
dropout on the attention probabilities, a residual and LayerNorm, then a GELU feed-forward network with a
residual and LayerNorm. Masks are additive biases of -10000 (not -inf), as RecBole's
``get_attention_mask`` makes them, so a row whose keys are all masked (an empty sequence) stays finite.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from training.sequence_data import PAD_INDEX

MASKED = -10000.0  # RecBole's additive attention mask value


def attention_bias(item_seq: torch.Tensor, causal: bool, dtype: torch.dtype) -> torch.Tensor:
    """Additive attention bias ``[b, 1, L, L]``: padding keys are masked, and future keys too if ``causal``.

    Causal is SASRec and CORE (``bidirectional=False`` in RecBole), bidirectional is BERT4Rec.
    """
    length = item_seq.size(1)
    allowed = item_seq.ne(PAD_INDEX)[:, None, :].expand(-1, length, -1)  # [b, L(query), L(key)]
    if causal:
        allowed = torch.tril(allowed)
    return torch.where(allowed, 0.0, MASKED)[:, None].to(dtype)


class TransformerLayer(nn.Module):
    """Post-norm transformer layer as in RecBole's ``TransformerLayer`` (separate attention dropout)."""

    def __init__(
        self,
        hidden_size: int,
        n_heads: int,
        inner_size: int,
        hidden_dropout_prob: float,
        attn_dropout_prob: float,
        layer_norm_eps: float,
    ) -> None:
        super().__init__()
        if hidden_size % n_heads:
            raise ValueError(f"hidden size {hidden_size} must be divisible by n_heads {n_heads}")
        self.n_heads = n_heads
        self.qkv = nn.Linear(hidden_size, 3 * hidden_size)
        self.attn_out = nn.Linear(hidden_size, hidden_size)
        self.attn_dropout = nn.Dropout(attn_dropout_prob)
        self.attn_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.ffn = nn.Sequential(
            nn.Linear(hidden_size, inner_size), nn.GELU(), nn.Linear(inner_size, hidden_size)
        )
        self.ffn_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.hidden_dropout = nn.Dropout(hidden_dropout_prob)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        b, length, d = x.shape
        q, k, v = self.qkv(x).view(b, length, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        scores = q @ k.transpose(-1, -2) / math.sqrt(d // self.n_heads) + bias  # [b, h, L, L]
        context = self.attn_dropout(scores.softmax(dim=-1)) @ v  # [b, h, L, d/h]
        context = context.transpose(1, 2).reshape(b, length, d)
        x = self.attn_norm(x + self.hidden_dropout(self.attn_out(context)))
        return self.ffn_norm(x + self.hidden_dropout(self.ffn(x)))


def transformer_layers(width: int, config) -> nn.ModuleList:
    """``config.n_layers`` layers of RecBole's TransformerEncoder from a model config that names its
    fields as RecBole does (n_heads, inner_size, hidden/attn dropout, layer_norm_eps)."""
    return nn.ModuleList(
        TransformerLayer(
            width,
            config.n_heads,
            config.inner_size,
            config.hidden_dropout_prob,
            config.attn_dropout_prob,
            config.layer_norm_eps,
        )
        for _ in range(config.n_layers)
    )


def init_like_recbole(module: nn.Module, initializer_range: float) -> None:
    """RecBole's ``_init_weights`` of SASRec/BERT4Rec: N(0, range) for Linear and Embedding weights, zero
    biases, LayerNorm at identity. Apply with ``model.apply(lambda m: init_like_recbole(m, r))``."""
    if isinstance(module, nn.Linear | nn.Embedding):
        module.weight.data.normal_(mean=0.0, std=initializer_range)
    elif isinstance(module, nn.LayerNorm):
        module.bias.data.zero_()
        module.weight.data.fill_(1.0)
    if isinstance(module, nn.Linear) and module.bias is not None:
        module.bias.data.zero_()
