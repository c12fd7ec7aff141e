"""BERT4Rec (Sun et al., CIKM 2019): a bidirectional transformer trained by masked item prediction.

Following RecBole (``recbole/model/sequential_recommender/bert4rec.py`` and the ``mask_itemseq``
transform in ``recbole/data/transform.py``): an extra "mask" embedding row; in a training batch each
item is replaced by the mask with probability ``mask_ratio`` and predicted back at its position, except
that with probability ``ft_ratio`` a whole batch masks only its last item instead (the fine-tuning
samples that match how the model is asked at inference). Predictions go through a dense+GELU+LayerNorm
head and are scored by dot product with the item table plus a per-item output bias, cross-entropy over
every item. At inference the mask is appended after the last item and its output is the session vector.

Two differences from RecBole, both so that short fashion histories are used whole:

- training sequences are the window *and its target* (the window alone in RecBole), so a target that is
  never part of a later window (a user's last train purchase) still trains the model;
- RecBole appends the inference mask by dropping the window's oldest item even when the window is not
  full, so a one-item history becomes the mask alone; here the oldest item is dropped only when the
  window already holds ``max_seq_length`` items.

RecBole also caps the predicted positions per sequence at ``int(mask_ratio * max_seq_length)``; every
masked position is predicted here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from training.sequence_data import PAD_INDEX
from training.sequential import SequentialConfig, SequentialRecommender, mask_padding_logits
from training.transformer import attention_bias, init_like_recbole, transformer_layers


@dataclass
class Bert4RecConfig(SequentialConfig):
    """BERT4Rec hyperparameters: RecBole's ``properties/model/BERT4Rec.yaml``; training ``overall.yaml``."""

    hidden_size: int = 64  # BERT4Rec.yaml
    n_layers: int = 2  # BERT4Rec.yaml
    n_heads: int = 2  # BERT4Rec.yaml
    inner_size: int = 256  # BERT4Rec.yaml
    hidden_dropout_prob: float = 0.2  # BERT4Rec.yaml
    attn_dropout_prob: float = 0.2  # BERT4Rec.yaml
    layer_norm_eps: float = 1e-12  # BERT4Rec.yaml
    initializer_range: float = 0.02  # BERT4Rec.yaml
    mask_ratio: float = 0.2  # BERT4Rec.yaml
    ft_ratio: float = 0.5  # BERT4Rec.yaml


def append_item(item_seq: torch.Tensor, items: torch.Tensor, max_len: int) -> torch.Tensor:
    """Windows ``[b, L]`` with ``items`` ``[b]`` written after each window's last item: ``[b, <= max_len]``.

    A window that already holds ``max_len`` items drops its oldest one to make room.
    """
    b, width = item_seq.shape
    lengths = item_seq.ne(PAD_INDEX).sum(dim=1)  # [b]
    extended = torch.cat([item_seq, item_seq.new_zeros(b, 1)], dim=1)  # [b, L+1]
    extended[torch.arange(b, device=item_seq.device), lengths] = items
    if width + 1 <= max_len:
        return extended
    full = (lengths + 1 > max_len)[:, None]
    # only a full window shifts left; every other window ends in padding, so the last column goes
    return torch.where(full, extended.roll(-1, dims=1), extended)[:, :max_len]


class Bert4RecModel(SequentialRecommender):
    """BERT4Rec over ``n_items`` embedding rows (padding, cold, vocabulary) plus the mask row."""

    model_name = "BERT4Rec"

    def __init__(self, n_items: int, config: Bert4RecConfig) -> None:
        super().__init__()
        self.config = config
        self.n_items = n_items
        self.mask_index = n_items  # the extra row after the items
        d = config.hidden_size
        self.item_embedding = nn.Embedding(n_items + 1, d, padding_idx=PAD_INDEX)
        self.position_embedding = nn.Embedding(config.max_seq_length, d)
        self.input_norm = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.input_dropout = nn.Dropout(config.hidden_dropout_prob)
        self.layers = transformer_layers(d, config)
        self.output_head = nn.Sequential(
            nn.Linear(d, d), nn.GELU(), nn.LayerNorm(d, eps=config.layer_norm_eps)
        )
        self.output_bias = nn.Parameter(torch.zeros(n_items))
        self.apply(lambda module: init_like_recbole(module, config.initializer_range))
        with torch.no_grad():
            self.item_embedding.weight[PAD_INDEX].zero_()

    def encode(self, item_seq: torch.Tensor) -> torch.Tensor:
        """Output ``[b, L, d]`` of the bidirectional encoder and the prediction head at every position."""
        positions = torch.arange(item_seq.size(1), device=item_seq.device)
        x = self.item_embedding(item_seq) + self.position_embedding(positions)[None]
        x = self.input_dropout(self.input_norm(x))
        bias = attention_bias(item_seq, causal=False, dtype=x.dtype)
        for layer in self.layers:
            x = layer(x, bias)
        return self.output_head(x)

    def session_vectors(self, item_seq: torch.Tensor) -> torch.Tensor:
        masks = torch.full((len(item_seq),), self.mask_index, device=item_seq.device)
        query = append_item(item_seq, masks, self.config.max_seq_length)
        hidden = self.encode(query)  # [b, L', d]
        at_mask = (query == self.mask_index).float().argmax(dim=1)  # [b]
        return hidden[torch.arange(len(query), device=query.device), at_mask]

    def candidate_scores(self, sessions: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        return sessions @ self.item_embedding(candidates).T + self.output_bias[candidates]

    def loss(self, item_seq: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        sequence = append_item(item_seq, targets, self.config.max_seq_length)  # [b, L'] with the target
        real = sequence.ne(PAD_INDEX)
        if torch.rand(()) < self.config.ft_ratio:
            # fine-tuning samples: only the last item is masked, as at inference
            last = real.sum(dim=1) - 1
            masked = torch.zeros_like(real)
            masked[torch.arange(len(sequence), device=sequence.device), last] = True
        else:
            masked = real & (torch.rand(sequence.shape, device=sequence.device) < self.config.mask_ratio)
        if not masked.any():  # nothing to predict in this batch (RecBole's loss is 0/0 then)
            return self.output_bias.sum() * 0.0
        hidden = self.encode(sequence.masked_fill(masked, self.mask_index))[masked]  # [m, d]
        logits = hidden @ self.item_embedding.weight[: self.n_items].T + self.output_bias  # [m, n_items]
        return F.cross_entropy(mask_padding_logits(logits), sequence[masked])
