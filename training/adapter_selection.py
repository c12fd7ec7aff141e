"""Which train prompts a LoRA adapter learns from, for the settings of paper §5.4.

- zero-shot: only the prompts of some categories (an adapter fine-tuned on Footwear answers Luggage);
- low-resource: only the prompts of a share of the training users (10 / 25 / 50 / 100 %).

Users are kept as ``training.user_share`` keeps them for every model, so each method's 10 % is the same
users (the adapter's, drawn after its prompt cap, are those of them in the capped sample). The selection
is saved next to the adapter, so whoever loads it knows which prompt variant it was trained on.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fashionrec.layout import ADAPTER_CONFIG_FILE, ADAPTER_SELECTION_FILE, check_run_name
from recommender.prompt_table import sample_rows
from training.user_share import check_fraction, in_user_fraction


@dataclass(frozen=True)
class AdapterSelection:
    """The training prompts of one adapter: its name, prompt variant, categories and share of users."""

    adapter: str
    variant: str
    categories: tuple[str, ...] = ()  # empty: every category
    train_user_fraction: float = 1.0
    user_seed: int = 0
    counts: dict[str, int] = field(default_factory=dict, compare=False)  # prompts and users used

    def __post_init__(self) -> None:
        # the adapter's name is its run name: a folder under artifacts/lora_adapter/ and a method suffix
        check_run_name(self.adapter, "adapter name")
        check_fraction(self.train_user_fraction)

    def in_categories(self, rows: Sequence[Any], category_at: int | str, known: Iterable[str]) -> list[Any]:
        """The rows of the adapter's categories (``row[category_at]``); ``known`` are the categories that
        have train prompts, and asking for another one is an input error."""
        if not self.categories:
            return list(rows)
        known = set(known)
        unknown = [name for name in self.categories if name not in known]
        if unknown:
            raise ValueError(
                f"adapter {self.adapter!r}: categories {unknown} have no train prompts in this warehouse; "
                f"these do: {sorted(known)}"
            )
        return [row for row in rows if row[category_at] in self.categories]

    def of_users(self, rows: Sequence[Any], user_at: int | str) -> list[Any]:
        """The rows of the users (``row[user_at]``) in the adapter's share of training users."""
        keep = in_user_fraction((row[user_at] for row in rows), self.train_user_fraction, self.user_seed)
        return [row for row, kept in zip(rows, keep, strict=True) if kept]

    def train_prompts(
        self, rows: Sequence[Mapping[str, Any]], cap: int | None, seed: int
    ) -> list[Mapping[str, Any]]:
        """The prompts the adapter learns from, out of its variant's train rows of the ``prompts`` table
        (with ``category`` and ``user_id``): its categories, then a ``cap``-row sample drawn by ``seed``,
        then its users. In that order, at 100 % of the users the adapter trains on the default adapter's
        sample, and each smaller share on a nested part of it."""
        if not rows:
            raise ValueError(
                f"the prompts table has no train rows for variant {self.variant!r}; add it to the prompts "
                "asset's variants and materialize prompts again"
            )
        in_categories = self.in_categories(rows, "category", {row["category"] for row in rows})
        chosen = self.of_users(sample_rows(in_categories, cap, seed), "user_id")
        if not chosen:
            raise ValueError(
                f"adapter {self.adapter!r} has no train prompts left: categories "
                f"{list(self.categories) or 'all'}, {self.train_user_fraction:.0%} of the users of "
                f"{f'a {cap}-prompt sample' if cap is not None else 'every prompt'}; raise max_train_prompts "
                "or train_user_fraction"
            )
        return chosen

    def save(self, directory: Path) -> Path:
        path = Path(directory) / ADAPTER_SELECTION_FILE
        path.write_text(json.dumps(asdict(self), indent=2))
        return path

    @classmethod
    def load(cls, directory: Path) -> AdapterSelection | None:
        """The selection saved with an adapter; None for an adapter saved before selections were."""
        path = Path(directory) / ADAPTER_SELECTION_FILE
        if not path.is_file():
            return None
        record = json.loads(path.read_text())
        return cls(**{**record, "categories": tuple(record.get("categories", ()))})


def check_adapter(directory: Path, adapter: str, variant: str) -> None:
    """An adapter about to answer ``variant`` prompts exists and was trained on that variant."""
    if not (Path(directory) / ADAPTER_CONFIG_FILE).is_file():
        raise ValueError(
            f"no adapter {adapter!r} in {directory}; train it first (lora_adapter config "
            f"{{adapter: {adapter}, variant: {variant}}})"
        )
    record = AdapterSelection.load(directory)
    if record is not None and record.variant != variant:
        raise ValueError(
            f"adapter {adapter!r} was trained on prompt variant {record.variant!r}, not {variant!r}; "
            f"answer {record.variant!r} prompts with it, or train an adapter on {variant!r}"
        )
