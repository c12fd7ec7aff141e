"""Which train prompts a LoRA adapter learns from, for the settings of paper §5.4.

- zero-shot: only the prompts of some categories (an adapter fine-tuned on Footwear answers Luggage);
- low-resource: only the prompts of a share of the training users (10 / 25 / 50 / 100 %).

Users are kept as ``training.user_share`` keeps them for every model, so each method's 10 % is the same
users (the adapter's, drawn after its prompt cap, are those of them in the capped sample). The selection
is saved next to the adapter, so whoever loads it knows which prompt variant it was trained on.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from fashionrec.layout import ADAPTER_CONFIG_FILE, ADAPTER_SELECTION_FILE, check_run_name
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

    def in_categories(self, rows: Sequence[tuple], category_at: int, known: Iterable[str]) -> list[tuple]:
        """The rows of the adapter's categories; ``known`` are the categories that have train prompts, and
        asking for another one is an input error."""
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

    def of_users(self, rows: Sequence[tuple], user_at: int) -> list[tuple]:
        """The rows of the users in the adapter's share of training users."""
        keep = in_user_fraction((row[user_at] for row in rows), self.train_user_fraction, self.user_seed)
        return [row for row, kept in zip(rows, keep, strict=True) if kept]

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
