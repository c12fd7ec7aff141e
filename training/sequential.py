"""What every item-id sequence recommender shares: training loop, full ranking, checkpoints, scoring.

CORE (``training.core``) and the baselines of the evaluation (GRU4Rec, SASRec, BERT4Rec, NextItNet,
LLM2SASRec, LLMSeqSim) all turn a left-aligned window of item indices (``training.sequence_data``) into a
session vector and score candidate items against it. They differ in the network and the loss; the rest
lives here once:

- :func:`train_sequential`: RecBole's trainer loop. Adam on the model's loss, one validation pass per
  epoch that ranks each valid target among all items of its category, the epoch with the best valid
  NDCG@k kept (DESIGN.md: early stopping on valid NDCG@10) and stopping as RecBole's
  ``early_stopping`` does: scores compared at ``metric_decimal_place`` decimals, a tie counts as a gain
  (the later epoch is kept), and training stops once more than ``stopping_step`` epochs in a row
  brought none.
- Cold items: every item outside the training vocabulary shares the embedding row ``COLD_INDEX``. A row
  that is never a training input or target would keep its random initialisation, so each occurrence of
  an item seen at most ``cold_item_max_count`` times in training is replaced by the cold row with
  probability ``cold_replace_prob``: rare items are the closest stand-in for unseen ones.
- :func:`score_indices` / :func:`rank_examples`: batched ``[batch, n_candidates]`` scores; a window with
  no item at all scores every candidate 0 (no information: the target ties with everything and, ties
  counting against it, ranks last), whatever the model would make of an empty input.
- :func:`save_sequential` / :func:`load_sequential`: weights as safetensors, hyperparameters and the
  training record as JSON, the vocabulary as a JSON list.
"""

from __future__ import annotations

import json
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm

from fashionrec.layout import CONFIG_FILE, VOCABULARY_FILE, WEIGHTS_FILE
from recommender.metrics import ndcg_at_k, rank_of_target, ranking_metrics
from training.sequence_data import (
    COLD_INDEX,
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
    valid_metric_k: int = 10  # DESIGN.md: early stopping on valid NDCG@10 (RecBole's default is MRR@10)


@dataclass
class SequentialConfig(WindowConfig):
    """Training settings shared by the trained models; defaults are RecBole's ``overall.yaml``."""

    learning_rate: float = 1e-3  # overall.yaml (Adam)
    weight_decay: float = 0.0  # overall.yaml
    train_batch_size: int = 2048  # overall.yaml
    epochs: int = 300  # overall.yaml
    stopping_step: int = 10  # overall.yaml: stop when more epochs than this in a row bring no valid gain
    metric_decimal_place: int = 4  # overall.yaml: valid scores are rounded so before they are compared
    cold_item_max_count: int = 1  # ours: items this rare in training stand in for unseen items
    cold_replace_prob: float = 0.1  # ours: how often such an occurrence trains the cold row instead
    seed: int = 2020  # overall.yaml
    # ours, speed only: a random batch is run in this many length-sorted pieces whose gradients add up
    # to the batch's (see batch_pieces). One CORE epoch on demo at batches of 256 took 18 s in one
    # piece, 11.5 s in 2, 9.9 s in 4 and 13 s in 8 (smaller pieces pay more per call); a GRU4Rec step at
    # 2048 took 2.0 s in one piece and 0.7 s in 4 or 8
    length_pieces: int = 4
    # opt-in speed trick: batches of similar window lengths. Off: RecBole batches at random, and
    # length-sorted batches slowed learning (see shuffled_batches)
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


def _rare_item_mask(train: SequenceExamples, n_items: int, max_count: int) -> torch.Tensor:
    counts = np.bincount(train.targets, minlength=n_items) + np.bincount(
        train.inputs.ravel(), minlength=n_items
    )
    rare = (counts > 0) & (counts <= max_count)
    rare[[PAD_INDEX, COLD_INDEX]] = False
    return torch.as_tensor(rare)


def as_cold(indices: torch.Tensor, rare: torch.Tensor, prob: float) -> torch.Tensor:
    """Rare items replaced by ``COLD_INDEX`` with probability ``prob``, each occurrence independently."""
    chosen = rare[indices] & (torch.rand(indices.shape, device=indices.device) < prob)
    return torch.where(chosen, COLD_INDEX, indices)


BUCKET_BATCHES = 16  # batches whose examples are sorted by length together


def shuffled_batches(
    lengths: np.ndarray, config: SequentialConfig, generator: np.random.Generator
) -> list[torch.Tensor]:
    """One epoch's batches of example indices: a random permutation cut into ``train_batch_size`` pieces.

    With ``bucket_by_length`` (off by default), each run of ``BUCKET_BATCHES`` batches of the permutation
    is sorted by window length before it is cut, and the batches are shuffled again: every example is
    still seen once an epoch, but each batch holds windows of similar lengths, so :func:`trim_padding`
    leaves far less padding. That made every batch a biased draw, and learning slowed: on the demo's
    RecBole export at batches of 2048 (14 an epoch, each of near-equal lengths), seed 2020, GRU4Rec's
    train loss after 30 epochs was 7.69 with it against 7.10 without, its valid NDCG@10 0.0103 against
    0.0169; NextItNet's test NDCG@10 after 15 epochs 0.0111 against 0.0152. Random batches run in
    length-sorted pieces (:func:`batch_pieces`) get most of the speed back without the bias.
    """
    order = generator.permutation(len(lengths))
    size = config.train_batch_size
    if config.bucket_by_length:
        pool = size * BUCKET_BATCHES
        order = np.concatenate(
            [
                chunk[np.argsort(lengths[chunk], kind="stable")]
                for chunk in np.split(order, range(pool, len(order), pool))
            ]
        )
    batches = [torch.as_tensor(order[start : start + size]) for start in range(0, len(order), size)]
    return [batches[i] for i in generator.permutation(len(batches))]


def batch_pieces(batch: torch.Tensor, lengths: np.ndarray, config: SequentialConfig) -> list[torch.Tensor]:
    """The example indices of one batch, cut into the pieces that one forward pass each runs over.

    A length-bucketed batch is one piece. A random batch is sorted by window length and cut into
    ``length_pieces`` pieces, so that :func:`trim_padding` trims each piece to its own longest window:
    one random batch of fashion sessions is mostly padding (demo: mean window 11 items, longest 50).
    With each piece's mean loss weighted by its share of the batch, the summed gradient is the batch's
    mean-loss gradient, so the optimizer takes RecBole's step on RecBole's random batch. (For losses that
    average over masked positions rather than examples, BERT4Rec's, the weighting is by examples.)
    """
    if config.bucket_by_length or config.length_pieces <= 1 or len(batch) <= 1:
        return [batch]
    ordered = batch[np.argsort(lengths[batch.numpy()], kind="stable")]
    return [piece for piece in torch.tensor_split(ordered, config.length_pieces) if len(piece)]


def validate(
    model: SequentialRecommender, valid: SequenceExamples, catalog: CategoryCatalog
) -> dict[str, float]:
    """The protocol's metrics of the valid targets at ``valid_metric_k`` (empty when there are none)."""
    if not len(valid):
        return {}
    ranks = rank_examples(model, valid, catalog, model.config.eval_batch_size)
    return ranking_metrics(ranks, model.config.valid_metric_k) | {
        "_score": ndcg_at_k(ranks, model.config.valid_metric_k)
    }


def train_sequential(
    build: Callable[[], SequentialRecommender],
    config: SequentialConfig,
    train: SequenceExamples,
    valid: SequenceExamples,
    vocabulary: ItemVocabulary,
    catalog: CategoryCatalog,
    device: torch.device | str | None = None,
    log: Callable[[str], Any] = print,
) -> TrainResult:
    """Adam on ``model.loss``; keeps the epoch with the best valid NDCG@k and stops as RecBole's trainer
    does (``recbole.utils.early_stopping``: rounded scores, ties count as gains, stop after more than
    ``stopping_step`` epochs without one). ``build`` makes the model (whose config is
    ``config``) after the seed is set, so its initialisation is reproducible."""
    if len(train) == 0:
        raise ValueError(
            "no training sequences: every user needs at least one train-split purchase with history"
        )
    device = torch.device(device) if device is not None else default_device()
    for name, examples in (("train", train), ("valid", valid)):
        if examples.inputs.shape[1] > config.max_seq_length:
            raise ValueError(
                f"{name} windows hold {examples.inputs.shape[1]} items but max_seq_length is "
                f"{config.max_seq_length}; build the examples with max_len={config.max_seq_length}"
            )
    torch.manual_seed(config.seed)
    generator = np.random.default_rng(config.seed)
    model = build().to(device)
    name = model.model_name
    optimizer = torch.optim.Adam(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    rare = _rare_item_mask(train, len(vocabulary), config.cold_item_max_count).to(device)

    inputs, targets = torch.as_tensor(train.inputs), torch.as_tensor(train.targets)
    best_state, best_score, best_epoch, best_valid = None, -math.inf, 0, {}
    history: list[dict[str, float]] = []
    epochs_without_gain = 0
    epoch_seconds: list[float] = []
    for epoch in range(1, config.epochs + 1):
        model.train()
        start = time.perf_counter()
        total = 0.0
        batches = shuffled_batches(train.lengths, config, generator)
        for idx in tqdm(batches, desc=f"{name} epoch {epoch}", unit="batch", leave=False):
            optimizer.zero_grad(set_to_none=True)
            for piece in batch_pieces(idx, train.lengths, config):
                seq, tgt = trim_padding(inputs[piece]).to(device), targets[piece].to(device)
                if config.cold_replace_prob > 0:
                    seq = as_cold(seq, rare, config.cold_replace_prob)
                    tgt = as_cold(tgt, rare, config.cold_replace_prob)
                loss = model.loss(seq, tgt) * (len(piece) / len(idx))
                loss.backward()
                total += loss.item() * len(idx)
            optimizer.step()
            model.after_step()
        epoch_seconds.append(time.perf_counter() - start)
        metrics = validate(model, valid, catalog)
        score = round(metrics.pop("_score", -total), config.metric_decimal_place)
        history.append(
            {"epoch": epoch, "train_loss": total / len(train), "seconds": epoch_seconds[-1], **metrics}
        )
        k = config.valid_metric_k
        log(
            f"{name} epoch {epoch}: loss {total / len(train):.4f}, valid ndcg@{k} "
            f"{metrics.get(f'ndcg@{k}', float('nan')):.4f} ({epoch_seconds[-1]:.1f}s)"
        )
        if score >= best_score:
            best_score, best_epoch, best_valid = score, epoch, metrics
            best_state = {key: v.detach().clone() for key, v in model.state_dict().items()}
            epochs_without_gain = 0
        else:
            epochs_without_gain += 1
            if epochs_without_gain > config.stopping_step:
                log(f"{name}: no valid gain for {epochs_without_gain} epochs, stopping at epoch {epoch}")
                break
    model.load_state_dict(best_state)
    model.eval()
    return TrainResult(
        model=model,
        vocabulary=vocabulary,
        best_epoch=best_epoch,
        best_valid=best_valid,
        history=history,
        seconds_per_epoch=float(np.mean(epoch_seconds)),
    )


def save_sequential(result: TrainResult, directory: Path, extra: Mapping[str, Any] | None = None) -> Path:
    """Weights as safetensors, hyperparameters and training record as JSON, vocabulary as a JSON list.

    ``extra`` adds fields to the JSON record (e.g. how an embedding table was initialised).
    """
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in result.model.state_dict().items()}
    save_file(state, str(directory / WEIGHTS_FILE))
    record = {
        "model": result.model.model_name,
        "n_items": result.model.n_items,
        "config": asdict(result.model.config),
        "best_epoch": result.best_epoch,
        "epochs_run": len(result.history),
        "best_valid": result.best_valid,
        "seconds_per_epoch": result.seconds_per_epoch,
        "history": result.history,
        **(extra or {}),
    }
    (directory / CONFIG_FILE).write_text(json.dumps(record, indent=2))
    (directory / VOCABULARY_FILE).write_text(json.dumps(result.vocabulary.item_ids.tolist()))
    return directory


ModelBuilder = Callable[[int, dict[str, Any]], SequentialRecommender]  # (n_items, config fields) -> model


def read_record(directory: Path) -> dict[str, Any]:
    """The JSON record :func:`save_sequential` wrote (FileNotFoundError naming the directory if none)."""
    path = directory / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no trained model at {directory} ({CONFIG_FILE} is missing)")
    return json.loads(path.read_text())


def load_sequential(
    directory: Path, builders: Mapping[str, ModelBuilder], device: torch.device | str | None = None
) -> tuple[SequentialRecommender, ItemVocabulary, dict[str, Any]]:
    """Model, vocabulary and JSON record saved by :func:`save_sequential`; ``builders`` maps the
    record's ``model`` name to a constructor."""
    record = read_record(directory)
    if record["model"] not in builders:
        raise ValueError(f"{directory} holds a {record['model']!r} model; expected one of {sorted(builders)}")
    vocabulary = ItemVocabulary(np.array(json.loads((directory / VOCABULARY_FILE).read_text()), dtype=object))
    model = builders[record["model"]](record["n_items"], record["config"])
    model.load_state_dict(load_file(str(directory / WEIGHTS_FILE)))
    model.to(torch.device(device) if device else default_device()).eval()
    return model, vocabulary, record


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
