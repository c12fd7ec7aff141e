"""I-LLMRec's data, training and full-category scoring (the model: ``training.illmrec``).

A prompt's history is the user's latest item events before the target (``training.sequence_data``'s
windows, as CORE and the ID baselines see them, cut to ``max_history``); the targets are the train-split
purchases, ranked within their category. Training runs the frozen LM forward and back to its input
embeddings (the adaptor's tokens) but computes no weight gradient for it; scoring is one forward pass per
user and one matrix product against the category's projected item vectors.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from recommender.metrics import ndcg_at_k, rank_of_target
from recommender.retrieval import VectorCatalog
from training.illmrec import IllmrecConfig, IllmrecHeads, ItemFeatures
from training.illmrec_prompts import ANSWER_TEMPLATES, PromptEncoder, collate
from training.sequence_data import FIRST_ITEM_INDEX, ItemVocabulary, build_examples


@dataclass(frozen=True)
class IllmrecTraining:
    """How the heads are trained (the paper: lr 1e-3, batch 32)."""

    epochs: int = 1
    batch_size: int = 32
    learning_rate: float = 1e-3
    max_train_targets: int = 0  # train purchases sampled; 0 = all
    max_valid_targets: int = 200  # valid targets the epochs are compared on
    seed: int = 0


@dataclass(frozen=True)
class Histories:
    """Targets of one split with their histories as catalog rows (``ItemFeatures`` order)."""

    rows: list[list[int]]  # per target, the latest item events' rows, oldest first
    target_rows: np.ndarray  # int64 [n]
    target_ids: np.ndarray  # object [n]
    categories: np.ndarray  # object [n]

    def __len__(self) -> int:
        return len(self.target_ids)

    def take(self, index: np.ndarray) -> Histories:
        return Histories(
            [self.rows[i] for i in index],
            self.target_rows[index],
            self.target_ids[index],
            self.categories[index],
        )


def item_features(items: pd.DataFrame, tables: Mapping[str, VectorCatalog]) -> ItemFeatures:
    """Every catalog item's vector of each feature table (``image``, ``cf``, ``text``), by ``items`` row."""
    ids = items["item_id"].to_numpy(object)
    features = ItemFeatures(ids)
    for name, catalog in tables.items():
        vectors, found = catalog.vectors_of(ids.tolist())
        features.vectors[name] = np.where(found[:, None], vectors, 0.0).astype(np.float32)
        features.found[name] = found
    return features


def split_histories(
    sequences: pd.DataFrame, splits: pd.DataFrame, item_ids: np.ndarray, split: str, max_history: int
) -> Histories:
    """The split's purchase targets; items outside ``item_ids`` (none, for a valid warehouse) are left out
    of the histories."""
    vocabulary = ItemVocabulary(item_ids)
    examples = build_examples(sequences, splits, vocabulary, split=split, max_len=max_history)  # type: ignore[arg-type]
    rows = [
        [int(i) - FIRST_ITEM_INDEX for i in window[:length] if i >= FIRST_ITEM_INDEX]
        for window, length in zip(examples.inputs, examples.lengths, strict=True)
    ]
    return Histories(rows, examples.targets - FIRST_ITEM_INDEX, examples.target_ids, examples.categories)


def category_rows(items: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per category, the catalog rows of its items (the candidates of its targets)."""
    return {
        str(c): group.to_numpy(np.int64)
        for c, group in items.reset_index(drop=True).groupby("category").groups.items()
    }


@dataclass
class IllmrecResult:
    heads: IllmrecHeads
    loss_by_step: list[float] = field(default_factory=list)
    valid_ndcg_by_epoch: list[float] = field(default_factory=list)
    best_epoch: int = 0
    train_targets: int = 0
    train_tokens: int = 0
    seconds: float = 0.0
    tokens_per_item: float = 0.0  # mean tokens a history item costs in the prompts

    @property
    def tokens_per_second(self) -> float:
        return self.train_tokens / self.seconds if self.seconds else 0.0


class IllmrecRanker:
    """Heads and a frozen LM that score histories against catalog rows."""

    def __init__(self, lm, tokenizer, heads: IllmrecHeads, features: ItemFeatures, titles: Sequence[str]):
        self.lm, self.heads, self.features = lm, heads, features
        self.encoder = PromptEncoder(tokenizer, titles, heads.config.item_text)
        self.pad_id = self.encoder.placeholder_id
        self.image_vectors = features.tensor("image")

    def states(self, histories: Sequence[Sequence[int]], batch_size: int = 16) -> torch.Tensor:
        """``[REC]``'s hidden state per history, without gradients."""
        out = []
        with torch.no_grad():
            for start in range(0, len(histories), batch_size):
                prompts = [self.encoder.encode(rows) for rows in histories[start : start + batch_size]]
                states, _ = self.heads.user_states(self.lm, collate(prompts, self.pad_id), self.image_vectors)
                out.append(states)
        return torch.cat(out) if out else torch.zeros((0, self.heads.rec.shape[0]))

    def item_matrix(self, rows: np.ndarray) -> dict[str, torch.Tensor]:
        index = torch.from_numpy(np.array(rows, dtype=np.int64))
        with torch.no_grad():
            return {
                name: self.heads.item_embeddings(name, self.features.tensor(name)[index])
                for name in self.heads.config.features
            }

    def score(self, histories: Sequence[Sequence[int]], rows: np.ndarray) -> np.ndarray:
        """``[len(histories), len(rows)]`` scores of catalog ``rows`` (float32)."""
        states = self.states(histories)
        with torch.no_grad():
            return self.heads.scores(states, self.item_matrix(rows)).float().cpu().numpy()

    def valid_ndcg(self, valid: Histories, catalog: Mapping[str, np.ndarray], k: int = 10) -> float:
        """NDCG@k of ``valid``'s targets, each ranked within its category."""
        ranks = []
        for category in np.unique(valid.categories):
            chosen = np.flatnonzero(valid.categories == category)
            rows = catalog[str(category)]
            scores = self.score([valid.rows[i] for i in chosen], rows)
            position = pd.Index(rows).get_indexer(valid.target_rows[chosen])
            ranks += rank_of_target(scores, position).tolist()
        return ndcg_at_k(np.asarray(ranks), k)


def _answers(
    encoder: PromptEncoder, items: pd.DataFrame, rows: np.ndarray, rng: np.random.Generator
) -> list[list[int]]:
    """One ILA answer per target, the field drawn at random among those the item has a value for."""
    fields = [name for name in ANSWER_TEMPLATES if name in items.columns]
    answers = []
    for row in rows:
        present = [
            name for name in fields if isinstance(items.at[int(row), name], str) and items.at[int(row), name]
        ]
        name = present[int(rng.integers(len(present)))] if present else None
        answers.append(encoder.answer(name, items.at[int(row), name]) if name else [])
    return answers


def _negatives(
    target_rows: np.ndarray, categories: np.ndarray, catalog: Mapping[str, np.ndarray], k: int, rng
) -> np.ndarray:
    """``[len(target_rows), k]`` random items of each target's category other than the target (the
    target itself when the category holds nothing else)."""
    out = np.empty((len(target_rows), k), dtype=np.int64)
    for i, (row, category) in enumerate(zip(target_rows, categories, strict=True)):
        rows = catalog[str(category)]
        if len(rows) < 2:
            out[i] = row
            continue
        place = int(np.flatnonzero(rows == row)[0])
        draws = rng.integers(len(rows) - 1, size=k)
        out[i] = rows[draws + (draws >= place)]  # every row but the target's, uniformly
    return out


def train_illmrec(
    lm,
    tokenizer,
    items: pd.DataFrame,
    features: ItemFeatures,
    train: Histories,
    valid: Histories,
    config: IllmrecConfig,
    training: IllmrecTraining,
    log: Callable[[str], object] = print,
) -> IllmrecResult:
    """Train the heads of ``config`` on ``train`` (IRE, and ILA when ``config.ila``); the epoch with the
    best valid NDCG@10 is kept. ``items`` is the catalog in ``features`` order (title, category and the
    ILA answer fields)."""
    missing = {"image", *config.features} - set(features.vectors)
    if missing:
        raise ValueError(
            f"I-LLMRec needs item vectors for {sorted(missing)}; have {sorted(features.vectors)}"
        )
    torch.manual_seed(training.seed)
    rng = np.random.default_rng(training.seed)
    lm.requires_grad_(False)
    lm.eval()
    embedding = lm.get_input_embeddings().weight
    heads = IllmrecHeads(config, int(embedding.shape[1]), features.dims(), float(embedding.float().std()))
    heads.to(embedding.device)
    ranker = IllmrecRanker(lm, tokenizer, heads, features, items["title"].tolist())
    catalog = category_rows(items)
    if training.max_train_targets and len(train) > training.max_train_targets:
        train = train.take(np.sort(rng.choice(len(train), training.max_train_targets, replace=False)))
    if training.max_valid_targets and len(valid) > training.max_valid_targets:
        valid = valid.take(np.sort(rng.choice(len(valid), training.max_valid_targets, replace=False)))
    answers = (
        _answers(ranker.encoder, items, train.target_rows, rng)
        if config.ila
        else [[] for _ in range(len(train))]
    )
    optimizer = torch.optim.AdamW(
        [p for p in heads.parameters() if p.requires_grad], lr=training.learning_rate
    )
    result = IllmrecResult(heads, train_targets=len(train))
    result.tokens_per_item = ranker.encoder.tokens_per_item([r for rows in train.rows for r in rows] or [0])
    best_state, best = None, -1.0
    start = time.perf_counter()
    for epoch in range(1, training.epochs + 1):
        heads.train()
        order = rng.permutation(len(train))
        batches = [order[i : i + training.batch_size] for i in range(0, len(order), training.batch_size)]
        for index in tqdm(batches, desc=f"I-LLMRec epoch {epoch}", unit="batch"):
            batch = collate([ranker.encoder.encode(train.rows[i], answers[i]) for i in index], ranker.pad_id)
            states, ila = heads.user_states(lm, batch, ranker.image_vectors)
            targets = train.target_rows[index]
            negatives = _negatives(targets, train.categories[index], catalog, config.negatives, rng)
            loss = heads.ire_loss(
                states,
                {name: features.tensor(name)[targets] for name in config.features},
                {name: features.tensor(name)[negatives] for name in config.features},
            )
            if config.ila:
                loss = loss + config.ila_weight * ila
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            result.loss_by_step.append(round(float(loss.detach()), 5))
            result.train_tokens += batch.tokens
        heads.eval()
        ndcg = ranker.valid_ndcg(valid, catalog) if len(valid) else 0.0
        result.valid_ndcg_by_epoch.append(round(ndcg, 5))
        epoch_loss = float(np.mean(result.loss_by_step[-len(batches) :]))
        log(f"I-LLMRec epoch {epoch}: loss {epoch_loss:.4f}, valid NDCG@10 {ndcg:.4f}")
        if ndcg > best:
            best, result.best_epoch = ndcg, epoch
            best_state = {k: v.detach().clone() for k, v in heads.state_dict().items()}
    result.seconds = time.perf_counter() - start
    if best_state is not None:
        heads.load_state_dict(best_state)
    return result
