"""Which train prompts a LoRA adapter learns from, for the settings of paper §5.4.

- zero-shot: only the prompts of some categories (an adapter fine-tuned on Footwear answers Luggage);
- low-resource: only the prompts of a share of the training users (10 / 25 / 50 / 100 %).

Users are kept by a hash of their id and a seed, not by a random draw: the share kept is stable from run
to run and nested (every user of the 10 % sample is in the 25 % one), so a curve over the shares
compares training sets that grow, not different ones. The selection is saved next to the adapter, so
whoever loads it knows which prompt variant it was trained on. The baselines of the low-resource study
(CORE, SASRec, the title encoder) draw their shares with the same :func:`in_user_fraction`
(``training.sequence_data.of_train_users``), so each method's 10 % is the same users (the adapter's,
drawn after its prompt cap, are those of them in the capped sample).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

SELECTION_FILE = "adapter_selection.json"

# an adapter's name is a folder under artifacts/lora_adapter/ and a method-name suffix (llm_mixup-zs_footwear)
_ADAPTER_NAME = re.compile(r"^[A-Za-z0-9_]+$")


def user_share(user_id: str, seed: int = 0) -> float:
    """A number in [0, 1) fixed by ``user_id`` and ``seed``, uniform over users."""
    digest = hashlib.blake2b(f"{seed}\x1f{user_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def in_user_fraction(user_ids: Iterable[str], fraction: float, seed: int = 0) -> list[bool]:
    """Whether each user is in the ``fraction`` sample; samples of growing fractions are nested."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"train_user_fraction must be in (0, 1]; got {fraction}")
    return [fraction >= 1.0 or user_share(str(user_id), seed) < fraction for user_id in user_ids]


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
        if not _ADAPTER_NAME.match(self.adapter):
            raise ValueError(
                f"adapter name {self.adapter!r} must hold only letters, digits and '_' (it names a folder "
                "and the evaluation methods, e.g. llm_mixup-zs_footwear)"
            )
        in_user_fraction([], self.train_user_fraction)  # checks the range

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
        path = Path(directory) / SELECTION_FILE
        path.write_text(json.dumps(asdict(self), indent=2))
        return path

    @classmethod
    def load(cls, directory: Path) -> AdapterSelection | None:
        """The selection saved with an adapter; None for an adapter saved before selections were."""
        path = Path(directory) / SELECTION_FILE
        if not path.is_file():
            return None
        record = json.loads(path.read_text())
        return cls(**{**record, "categories": tuple(record.get("categories", ()))})


def check_adapter(directory: Path, adapter: str, variant: str) -> None:
    """An adapter about to answer ``variant`` prompts exists and was trained on that variant."""
    if not (Path(directory) / "adapter_config.json").is_file():
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
