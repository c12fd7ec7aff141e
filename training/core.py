"""CORE-trm (Hou et al., SIGIR 2022): session embeddings in the item embedding space.

"CORE: Simple and Effective Session-based Recommendation within Consistent Representation Space".
A session is the weighted sum of its item embeddings, the weights coming from a small transformer
(representation-consistent encoder); session and item vectors are L2-normalised, items get dropout,
and the loss is cross-entropy over all items at temperature 0.07 (robust distance measuring). Because
the session lives in the item space, the trained item table doubles as the ID embedding model of the
fashion paper (arXiv 2410.11327, §4.4 "ID Embedding Model"), and the model itself is the CORE baseline
of the evaluation.

Items outside the training vocabulary share one learned "cold" embedding (row ``COLD_INDEX``), as the
fashion paper does for ID methods in its cold-start study. A row that is never a training input or
target would keep its random initialisation, so during training each occurrence of an item seen at most
``cold_item_max_count`` times in training is replaced by the cold row with probability
``cold_replace_prob``: rare items are the closest stand-in for unseen ones.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm

from training.metrics import ndcg_at_k, rank_of_target, ranking_metrics
from training.sequence_data import (
    COLD_INDEX,
    PAD_INDEX,
    CategoryCatalog,
    ItemVocabulary,
    SequenceExamples,
    sequences_to_inputs,
)

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
VOCABULARY_FILE = "item_vocabulary.json"


@dataclass
class CoreConfig:
    """CORE hyperparameters; defaults are RecBole's (``recbole/properties/model/CORE.yaml`` and
    ``overall.yaml``) unless marked otherwise."""

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
    max_seq_length: int = 50  # RecBole dataset default MAX_ITEM_LIST_LENGTH
    learning_rate: float = 1e-3  # overall.yaml (Adam)
    weight_decay: float = 0.0  # overall.yaml
    train_batch_size: int = 2048  # overall.yaml
    eval_batch_size: int = 4096  # overall.yaml
    epochs: int = 300  # overall.yaml
    stopping_step: int = 10  # overall.yaml: epochs without valid improvement before stopping
    valid_metric_k: int = 10  # DESIGN.md: early stopping on valid NDCG@10 (RecBole's default is MRR@10)
    cold_item_max_count: int = 1  # ours: items this rare in training stand in for unseen items
    cold_replace_prob: float = 0.1  # ours: how often such an occurrence trains the cold row instead
    seed: int = 2020  # overall.yaml


class _SelfAttentionLayer(nn.Module):
    """Post-norm transformer layer as in RecBole's ``TransformerLayer`` (separate attention dropout)."""

    def __init__(self, config: CoreConfig) -> None:
        super().__init__()
        d, self.n_heads = config.embedding_size, config.n_heads
        if d % self.n_heads:
            raise ValueError(f"embedding_size {d} must be divisible by n_heads {self.n_heads}")
        self.qkv = nn.Linear(d, 3 * d)
        self.attn_out = nn.Linear(d, d)
        self.attn_dropout = nn.Dropout(config.attn_dropout_prob)
        self.attn_norm = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.ffn = nn.Sequential(nn.Linear(d, config.inner_size), nn.GELU(), nn.Linear(config.inner_size, d))
        self.ffn_norm = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.hidden_dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, x: torch.Tensor, attention_bias: torch.Tensor) -> torch.Tensor:
        b, length, d = x.shape
        q, k, v = self.qkv(x).view(b, length, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        scores = q @ k.transpose(-1, -2) / math.sqrt(d // self.n_heads) + attention_bias  # [b, h, L, L]
        context = self.attn_dropout(scores.softmax(dim=-1)) @ v  # [b, h, L, d/h]
        context = context.transpose(1, 2).reshape(b, length, d)
        x = self.attn_norm(x + self.hidden_dropout(self.attn_out(context)))
        return self.ffn_norm(x + self.hidden_dropout(self.ffn(x)))


class CoreModel(nn.Module):
    """CORE with the transformer weighting network (``dnn_type: trm``)."""

    def __init__(self, n_items: int, config: CoreConfig) -> None:
        super().__init__()
        self.config = config
        self.n_items = n_items
        d = config.embedding_size
        self.item_embedding = nn.Embedding(n_items, d, padding_idx=PAD_INDEX)
        self.position_embedding = nn.Embedding(config.max_seq_length, d)
        self.input_norm = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.input_dropout = nn.Dropout(config.hidden_dropout_prob)
        self.layers = nn.ModuleList(_SelfAttentionLayer(config) for _ in range(config.n_layers))
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
        allowed = torch.tril(mask[:, None, :].expand(-1, item_seq.size(1), -1))  # [b, L, L]
        bias = torch.where(allowed, 0.0, -10000.0)[:, None].to(x.dtype)  # [b, 1, L, L]
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

    def normalized_items(self, indices: torch.Tensor | None = None) -> torch.Tensor:
        """Unit-length item vectors (all rows, or the given rows), as used for ranking."""
        weight = self.item_embedding.weight if indices is None else self.item_embedding(indices)
        return F.normalize(weight, dim=-1)

    def loss(self, item_seq: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        session = self.forward(item_seq)
        items = F.normalize(self.item_dropout(self.item_embedding.weight), dim=-1)
        logits = session @ items.T / self.config.temperature  # [b, n_items]
        # padding is never a recommendation
        logits = logits.index_fill(1, torch.tensor([PAD_INDEX], device=logits.device), float("-inf"))
        return F.cross_entropy(logits, targets)


@dataclass
class CoreTrainResult:
    model: CoreModel
    vocabulary: ItemVocabulary
    best_epoch: int
    best_valid: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)
    seconds_per_epoch: float = 0.0


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def trim_padding(item_seq: torch.Tensor) -> torch.Tensor:
    """Drop the all-padding columns at the right of a left-aligned batch.

    Padding is masked everywhere, so the session vectors do not change, but the transformer then runs
    over the batch's longest session instead of ``max_seq_length`` positions (short fashion sessions
    make this several times faster).
    """
    width = int(item_seq.ne(PAD_INDEX).sum(dim=1).max()) if len(item_seq) else 0
    return item_seq[:, : max(1, width)]


@torch.no_grad()
def score_indices(
    model: CoreModel, inputs: np.ndarray, candidate_indices: np.ndarray, batch_size: int = 4096
) -> np.ndarray:
    """Cosine scores ``[n, n_candidates]`` of index windows against candidate embedding rows.

    One ``[batch, d] @ [d, n_candidates]`` product per batch; the temperature is left out because it does
    not change any ranking.
    """
    model.eval()
    device = next(model.parameters()).device
    items = model.normalized_items(torch.as_tensor(candidate_indices, device=device))  # [c, d]
    out = np.empty((len(inputs), len(candidate_indices)), dtype=np.float32)
    for start in range(0, len(inputs), batch_size):
        batch = trim_padding(torch.as_tensor(inputs[start : start + batch_size])).to(device)
        out[start : start + len(batch)] = (model(batch) @ items.T).float().cpu().numpy()
    return out


def rank_examples(
    model: CoreModel, examples: SequenceExamples, catalog: CategoryCatalog, batch_size: int = 4096
) -> np.ndarray:
    """1-based rank of each example's target among all catalog items of its category."""
    ranks = np.zeros(len(examples), dtype=np.int64)
    for category in np.unique(examples.categories.astype(str)):
        rows = np.flatnonzero(examples.categories.astype(str) == category)
        positions = catalog.target_positions(category, examples.target_item_ids[rows])
        for start in range(0, len(rows), batch_size):
            chunk = rows[start : start + batch_size]
            scores = score_indices(model, examples.inputs[chunk], catalog.indices[category], batch_size)
            ranks[chunk] = rank_of_target(scores, positions[start : start + batch_size])
    return ranks


def _rare_item_mask(train: SequenceExamples, n_items: int, max_count: int) -> torch.Tensor:
    counts = np.bincount(train.targets, minlength=n_items) + np.bincount(
        train.inputs.ravel(), minlength=n_items
    )
    rare = (counts > 0) & (counts <= max_count)
    rare[[PAD_INDEX, COLD_INDEX]] = False
    return torch.as_tensor(rare)


def train_core(
    train: SequenceExamples,
    valid: SequenceExamples,
    vocabulary: ItemVocabulary,
    catalog: CategoryCatalog,
    config: CoreConfig | None = None,
    device: torch.device | str | None = None,
    log=print,
) -> CoreTrainResult:
    """Adam on full-softmax CE; keeps the epoch with the best valid NDCG@k, stops after
    ``stopping_step`` epochs without improvement (RecBole's trainer loop)."""
    config = config or CoreConfig()
    if len(train) == 0:
        raise ValueError(
            "no training sequences: every user needs at least one train-split purchase with history"
        )
    device = torch.device(device) if device is not None else default_device()
    torch.manual_seed(config.seed)
    generator = np.random.default_rng(config.seed)
    model = CoreModel(len(vocabulary), config).to(device)
    optimizer = torch.optim.Adam(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    rare = _rare_item_mask(train, len(vocabulary), config.cold_item_max_count).to(device)

    for name, examples in (("train", train), ("valid", valid)):
        if examples.inputs.shape[1] > config.max_seq_length:
            raise ValueError(
                f"{name} windows hold {examples.inputs.shape[1]} items but max_seq_length is "
                f"{config.max_seq_length}; build the examples with max_len={config.max_seq_length}"
            )
    inputs = torch.as_tensor(train.inputs)
    targets = torch.as_tensor(train.targets)
    best_state, best_score, best_epoch, best_valid = None, -math.inf, 0, {}
    history: list[dict[str, float]] = []
    epochs_without_gain = 0
    epoch_seconds: list[float] = []
    for epoch in range(1, config.epochs + 1):
        model.train()
        start = time.perf_counter()
        order = torch.as_tensor(generator.permutation(len(train)))
        total = 0.0
        batches = range(0, len(order), config.train_batch_size)
        for offset in tqdm(batches, desc=f"CORE epoch {epoch}", unit="batch", leave=False):
            idx = order[offset : offset + config.train_batch_size]
            seq, tgt = trim_padding(inputs[idx]).to(device), targets[idx].to(device)
            if config.cold_replace_prob > 0:
                seq = torch.where(
                    rare[seq] & (torch.rand(seq.shape, device=device) < config.cold_replace_prob),
                    COLD_INDEX,
                    seq,
                )
                tgt = torch.where(
                    rare[tgt] & (torch.rand(tgt.shape, device=device) < config.cold_replace_prob),
                    COLD_INDEX,
                    tgt,
                )
            loss = model.loss(seq, tgt)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                model.item_embedding.weight[PAD_INDEX].zero_()
            total += loss.item() * len(idx)
        epoch_seconds.append(time.perf_counter() - start)
        ranks = rank_examples(model, valid, catalog, config.eval_batch_size) if len(valid) else np.array([])
        metrics = ranking_metrics(ranks, config.valid_metric_k) if len(valid) else {}
        score = ndcg_at_k(ranks, config.valid_metric_k) if len(valid) else -float(total)
        history.append(
            {"epoch": epoch, "train_loss": total / len(train), "seconds": epoch_seconds[-1], **metrics}
        )
        log(
            f"CORE epoch {epoch}: loss {total / len(train):.4f}, valid ndcg@{config.valid_metric_k} "
            f"{metrics.get(f'ndcg@{config.valid_metric_k}', float('nan')):.4f} ({epoch_seconds[-1]:.1f}s)"
        )
        if score > best_score:
            best_score, best_epoch, best_valid = score, epoch, metrics
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            epochs_without_gain = 0
        else:
            epochs_without_gain += 1
            if epochs_without_gain >= config.stopping_step:
                log(f"CORE: no valid gain for {config.stopping_step} epochs, stopping at epoch {epoch}")
                break
    model.load_state_dict(best_state)
    model.eval()
    return CoreTrainResult(
        model=model,
        vocabulary=vocabulary,
        best_epoch=best_epoch,
        best_valid=best_valid,
        history=history,
        seconds_per_epoch=float(np.mean(epoch_seconds)),
    )


def save_core(result: CoreTrainResult, directory: Path) -> Path:
    """Weights as safetensors, hyperparameters and training record as JSON, vocabulary as a JSON list."""
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in result.model.state_dict().items()}
    save_file(state, str(directory / WEIGHTS_FILE))
    record = {
        "model": "CORE-trm",
        "n_items": result.model.n_items,
        "config": asdict(result.model.config),
        "best_epoch": result.best_epoch,
        "best_valid": result.best_valid,
        "seconds_per_epoch": result.seconds_per_epoch,
        "history": result.history,
    }
    (directory / CONFIG_FILE).write_text(json.dumps(record, indent=2))
    (directory / VOCABULARY_FILE).write_text(json.dumps(result.vocabulary.item_ids.tolist()))
    return directory


class CoreScorer:
    """A trained CORE model ready to score raw item-id histories (the evaluation's CORE baseline)."""

    def __init__(self, model: CoreModel, vocabulary: ItemVocabulary) -> None:
        self.model = model.eval()
        self.vocabulary = vocabulary

    @classmethod
    def load(cls, directory: Path, device: torch.device | str | None = None) -> CoreScorer:
        config_path = directory / CONFIG_FILE
        if not config_path.is_file():
            raise FileNotFoundError(
                f"no trained CORE model at {directory}; materialize the item_id_vectors asset"
            )
        record = json.loads(config_path.read_text())
        vocabulary = ItemVocabulary(
            np.array(json.loads((directory / VOCABULARY_FILE).read_text()), dtype=object)
        )
        model = CoreModel(record["n_items"], CoreConfig(**record["config"]))
        model.load_state_dict(load_file(str(directory / WEIGHTS_FILE)))
        return cls(model.to(torch.device(device) if device else default_device()), vocabulary)

    def item_vectors(self, item_ids: Sequence[str]) -> np.ndarray:
        """Unit-length ID vectors ``[n, d]``; items outside the vocabulary get the shared cold vector."""
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

    def score(
        self, sequences: Sequence[Sequence[str]], item_ids: Sequence[str], batch_size: int = 4096
    ) -> np.ndarray:
        """Scores ``[len(sequences), len(item_ids)]``: each history against every given item (e.g. all
        items of a category), in batched matrix products. Higher is better; unseen items tie."""
        inputs, _ = sequences_to_inputs(sequences, self.vocabulary, self.model.config.max_seq_length)
        return score_indices(self.model, inputs, self.vocabulary.index_of(item_ids), batch_size)
