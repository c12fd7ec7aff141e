"""Item-id sequences for ID-based sequential recommenders (CORE and the other baselines).

From the ``user_sequences`` and ``splits`` marts this builds, per prediction target, the item ids of
the user's events before it (clicks, add-to-carts and purchases; searches carry no item), truncated to
the latest ``max_len`` and left-aligned with padding on the right as RecBole does.

Item indices: 0 is padding, 1 is the shared "cold" item that stands for every item outside the
vocabulary, and 2.. are the vocabulary. Which items get rows is the model's item table
(:func:`item_vocabulary`): every item of the catalog (``"catalog"``, RecBole's table and the default), or
the training portion only (``"trained"``): every item in ``user_sequences`` at or before some user's last
train target, which is exactly the definition behind ``splits.is_cold_item``.

For the low-resource setting of paper §5.4, ``training.user_share`` keeps the train targets of a share
of the users only; the vocabulary and the train examples then come from those users alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

PAD_INDEX = 0
COLD_INDEX = 1
FIRST_ITEM_INDEX = 2


@dataclass(frozen=True)
class ItemVocabulary:
    """Item ids known from training, mapped to embedding rows ``FIRST_ITEM_INDEX..``."""

    item_ids: np.ndarray  # object array of str, row i+FIRST_ITEM_INDEX <-> item_ids[i]

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", pd.Index(self.item_ids))

    def __len__(self) -> int:
        """Embedding rows needed: padding + cold + vocabulary."""
        return len(self.item_ids) + FIRST_ITEM_INDEX

    def index_of(self, item_ids: Iterable[str]) -> np.ndarray:
        """Embedding rows of ``item_ids``; ids outside the vocabulary map to ``COLD_INDEX``."""
        positions = self._index.get_indexer(pd.Index(list(item_ids), dtype=object))
        return np.where(positions >= 0, positions + FIRST_ITEM_INDEX, COLD_INDEX).astype(np.int64)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._index


def _item_events(user_sequences: pd.DataFrame) -> pd.DataFrame:
    required = {"user_id", "seq_no", "item_id"}
    missing = required - set(user_sequences.columns)
    if missing:
        raise ValueError(f"user_sequences lacks columns {sorted(missing)}; expected the user_sequences mart")
    events = user_sequences.loc[user_sequences["item_id"].notna(), ["user_id", "seq_no", "item_id"]].copy()
    events["event_id"] = (
        user_sequences.loc[events.index, "event_id"]
        if "event_id" in user_sequences.columns
        else events["user_id"].astype(str) + "#" + events["seq_no"].astype(str)
    )
    return events.sort_values(["user_id", "seq_no"], kind="stable").reset_index(drop=True)


def last_train_seq_no(splits: pd.DataFrame) -> pd.Series:
    """Per user, the ``seq_no`` of the last train-split purchase (users without one are absent)."""
    train = splits.loc[splits["split"] == "train"]
    return train.groupby("user_id")["seq_no"].max()


def build_vocabulary(user_sequences: pd.DataFrame, splits: pd.DataFrame) -> ItemVocabulary:
    """Every item in a user's events at or before that user's last train target, sorted by id."""
    events = _item_events(user_sequences)
    cutoff = events["user_id"].map(last_train_seq_no(splits))
    in_train = events.loc[events["seq_no"] <= cutoff, "item_id"]
    return ItemVocabulary(np.array(sorted(in_train.unique()), dtype=object))


# Which items get an embedding row of their own (docs/evaluation.md, "The item table"):
# "catalog" every item of the items mart, as RecBole's table; "trained" the items seen in training, the
# others sharing the cold row.
ITEM_TABLES = ("catalog", "trained")


def item_vocabulary(
    item_table: str, user_sequences: pd.DataFrame, splits: pd.DataFrame, items: pd.DataFrame
) -> ItemVocabulary:
    """The rows of ``item_table``: every item of ``items`` (``"catalog"``), or those of
    :func:`build_vocabulary` (``"trained"``), items outside it sharing ``COLD_INDEX``."""
    if item_table not in ITEM_TABLES:
        raise ValueError(f"unknown item_table {item_table!r}; choose from {', '.join(ITEM_TABLES)}")
    if item_table == "trained":
        return build_vocabulary(user_sequences, splits)
    return ItemVocabulary(np.array(sorted(items["item_id"].unique()), dtype=object))


@dataclass(frozen=True)
class SequenceExamples:
    """Aligned arrays, one row per prediction target."""

    inputs: np.ndarray  # [n, max_len] int64, left-aligned item indices, PAD_INDEX after the last item
    lengths: np.ndarray  # [n] int64, items in the input (0 = no item history)
    targets: np.ndarray  # [n] int64, target item index (COLD_INDEX when outside the vocabulary)
    target_item_ids: np.ndarray  # [n] object
    target_ids: np.ndarray  # [n] object, splits.target_id (event id of the target for all-items examples)
    user_ids: np.ndarray  # [n] object
    categories: np.ndarray  # [n] object, category of the target item

    def __len__(self) -> int:
        return len(self.targets)

    def subset(self, mask: np.ndarray) -> SequenceExamples:
        return SequenceExamples(**{name: getattr(self, name)[mask] for name in self.__dataclass_fields__})


def _windows(
    events: pd.DataFrame, codes: np.ndarray, user_ids: np.ndarray, seq_nos: np.ndarray, max_len: int
) -> tuple[np.ndarray, np.ndarray]:
    """Input windows for targets at (user, seq_no): the latest ``max_len`` item events strictly before."""
    user_index = pd.Index(pd.unique(events["user_id"]))
    event_user = user_index.get_indexer(events["user_id"])
    scale = int(max(events["seq_no"].max() if len(events) else 0, np.max(seq_nos, initial=0))) + 1
    event_key = event_user.astype(np.int64) * scale + events["seq_no"].to_numpy(np.int64)
    user_start = np.searchsorted(event_key, np.arange(len(user_index), dtype=np.int64) * scale, side="left")

    target_user = user_index.get_indexer(pd.Index(user_ids, dtype=object))
    known = target_user >= 0
    end = np.zeros(len(user_ids), dtype=np.int64)
    start = np.zeros(len(user_ids), dtype=np.int64)
    target_key = target_user[known].astype(np.int64) * scale + seq_nos[known].astype(np.int64)
    end[known] = np.searchsorted(event_key, target_key, side="left")
    start[known] = np.maximum(user_start[target_user[known]], end[known] - max_len)

    offsets = start[:, None] + np.arange(max_len, dtype=np.int64)[None, :]
    valid = offsets < end[:, None]
    if len(codes):
        inputs = np.where(valid, codes[np.minimum(offsets, len(codes) - 1)], PAD_INDEX)
    else:
        inputs = np.full(offsets.shape, PAD_INDEX, dtype=np.int64)
    return inputs.astype(np.int64), valid.sum(axis=1).astype(np.int64)


def build_examples(
    user_sequences: pd.DataFrame,
    splits: pd.DataFrame,
    vocabulary: ItemVocabulary,
    *,
    split: Literal["train", "valid", "test"],
    max_len: int = 50,
    targets: Literal["purchases", "all_items"] = "purchases",
    item_categories: pd.Series | None = None,
) -> SequenceExamples:
    """Examples of one split.

    ``targets="purchases"`` gives one example per ``splits`` row of that split (the evaluation targets).
    ``targets="all_items"`` (train only) makes every item event up to each user's last train target a
    target, predicting it from the events before it: RecBole's prefix augmentation of sequential data,
    which gives ID models far more training signal than purchases alone. Examples without any item in
    their input are kept for evaluation (they must still be scored) but dropped from ``all_items``.
    ``item_categories`` (item_id -> category) labels all-items targets with their category.
    """
    events = _item_events(user_sequences)
    codes = vocabulary.index_of(events["item_id"])
    if targets == "purchases":
        rows = splits.loc[splits["split"] == split].sort_values(["user_id", "seq_no"], kind="stable")
        inputs, lengths = _windows(
            events, codes, rows["user_id"].to_numpy(object), rows["seq_no"].to_numpy(np.int64), max_len
        )
        return SequenceExamples(
            inputs=inputs,
            lengths=lengths,
            targets=vocabulary.index_of(rows["target_item_id"]),
            target_item_ids=rows["target_item_id"].to_numpy(object),
            target_ids=rows["target_id"].to_numpy(object),
            user_ids=rows["user_id"].to_numpy(object),
            categories=rows["category"].to_numpy(object),
        )
    if targets != "all_items" or split != "train":
        raise ValueError(f"targets={targets!r} with split={split!r}: all-items targets exist for train only")
    cutoff = events["user_id"].map(last_train_seq_no(splits))
    chosen = events.loc[events["seq_no"] <= cutoff]
    inputs, lengths = _windows(
        events, codes, chosen["user_id"].to_numpy(object), chosen["seq_no"].to_numpy(np.int64), max_len
    )
    keep = lengths > 0
    chosen = chosen.loc[keep]
    categories = (
        chosen["item_id"].map(item_categories).to_numpy(object)
        if item_categories is not None
        else np.full(len(chosen), None, dtype=object)
    )
    return SequenceExamples(
        inputs=inputs[keep],
        lengths=lengths[keep],
        targets=codes[chosen.index.to_numpy()],
        target_item_ids=chosen["item_id"].to_numpy(object),
        target_ids=chosen["event_id"].to_numpy(object),
        user_ids=chosen["user_id"].to_numpy(object),
        categories=categories,
    )


def sequences_to_inputs(
    sequences: Sequence[Sequence[str]], vocabulary: ItemVocabulary, max_len: int
) -> tuple[np.ndarray, np.ndarray]:
    """Raw item-id histories (oldest first) as left-aligned windows of their latest ``max_len`` items."""
    inputs = np.full((len(sequences), max_len), PAD_INDEX, dtype=np.int64)
    lengths = np.zeros(len(sequences), dtype=np.int64)
    for row, items in enumerate(sequences):
        window = list(items)[-max_len:] if max_len else []
        if window:
            inputs[row, : len(window)] = vocabulary.index_of(window)
        lengths[row] = len(window)
    return inputs, lengths


@dataclass(frozen=True)
class CategoryCatalog:
    """Per category, the catalog items every target of that category is ranked against."""

    item_ids: dict[str, np.ndarray]  # category -> object array of item ids (catalog order)
    indices: dict[str, np.ndarray]  # category -> int64 embedding rows (COLD_INDEX for unseen items)

    @classmethod
    def from_items(cls, items: pd.DataFrame, vocabulary: ItemVocabulary) -> CategoryCatalog:
        """From the ``items`` mart (item_id, category)."""
        ordered = items[["item_id", "category"]].sort_values(["category", "item_id"], kind="stable")
        item_ids: dict[str, np.ndarray] = {}
        indices: dict[str, np.ndarray] = {}
        for category, group in ordered.groupby("category", sort=True):
            ids = group["item_id"].to_numpy(object)
            item_ids[str(category)] = ids
            indices[str(category)] = vocabulary.index_of(ids)
        return cls(item_ids=item_ids, indices=indices)

    def target_positions(self, category: str, target_item_ids: Sequence[str]) -> np.ndarray:
        """Position of each target within its category's item list."""
        if category not in self.item_ids:
            raise KeyError(f"category {category!r} has no catalog items; known: {sorted(self.item_ids)}")
        positions = pd.Index(self.item_ids[category]).get_indexer(
            pd.Index(list(target_item_ids), dtype=object)
        )
        if (positions < 0).any():
            missing = np.asarray(target_item_ids, dtype=object)[positions < 0][:5].tolist()
            raise KeyError(f"target items {missing} are not catalog items of category {category!r}")
        return positions.astype(np.int64)
