"""A share of the training users, for the low-resource setting of paper §5.4 (10 / 25 / 50 / 100 %).

One concept serves every model that learns from the training users (the LoRA adapters, CORE, the ID
baselines, the title encoder): a :class:`UserShare` is a run name, a fraction and a seed. Users are kept
by a hash of their id and the seed, not by a random draw, so the share kept is stable from run to run and
nested (every user of the 10 % sample is in the 25 % one): a curve over the shares compares training
sets that grow, not different ones, and each method's 10 % is the same users. A model trained on a share
is saved under its run name beside the default one (``fashionrec.layout.run_method``), never over it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from fashionrec.layout import check_run_name, run_method


def user_draw(user_id: str, seed: int = 0) -> float:
    """A number in [0, 1) fixed by ``user_id`` and ``seed``, uniform over users."""
    digest = hashlib.blake2b(f"{seed}\x1f{user_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def check_fraction(fraction: float) -> float:
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"train_user_fraction must be in (0, 1]; got {fraction}")
    return fraction


def in_user_fraction(user_ids: Iterable[str], fraction: float, seed: int = 0) -> list[bool]:
    """Whether each user is in the ``fraction`` sample; samples of growing fractions are nested."""
    check_fraction(fraction)
    return [fraction >= 1.0 or user_draw(str(user_id), seed) < fraction for user_id in user_ids]


def of_train_users(splits: pd.DataFrame, fraction: float, seed: int = 0) -> pd.DataFrame:
    """``splits`` with the train rows of only the users in the ``fraction`` sample; valid and test rows
    stay.

    The vocabulary and the train examples are both cut at each user's last train target, so a user
    without train rows adds neither an item nor an example: what a share-trained model knows comes
    from its users only, and items only the others saw are cold. Valid targets (early stopping) and test
    targets are the same for every share, so every share answers the same questions.
    """
    user_ids = splits["user_id"].astype(str)
    users = pd.unique(user_ids)
    sampled = users[np.asarray(in_user_fraction(users, fraction, seed), dtype=bool)]
    return splits.loc[user_ids.isin(sampled) | (splits["split"] != "train")]


def count_train_users(splits: pd.DataFrame) -> int:
    """Users with at least one train target (those whose events a model learns from)."""
    return int(splits.loc[splits["split"] == "train", "user_id"].nunique())


@dataclass(frozen=True)
class UserShare:
    """The training users a model learns from, and the run name it is saved under.

    The default (empty run name, every user) is the model the evaluation and the service read; a share
    below 1 needs a run name, so that the share-trained model goes next to the default one.
    """

    run_name: str = ""
    fraction: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        check_fraction(self.fraction)
        if self.run_name:
            check_run_name(self.run_name)
        elif self.fraction < 1.0:
            raise ValueError(
                f"train_user_fraction {self.fraction} needs a run_name (e.g. users_10): a model trained on "
                "a share of the users is saved next to the default one, not over it"
            )

    @property
    def is_default(self) -> bool:
        return not self.run_name

    def method(self, name: str) -> str:
        """The method (and folder) name of model ``name`` trained on this share: ``sasrec-users_10``."""
        return run_method(name, self.run_name)

    def keeps(self, user_ids: Iterable[str]) -> list[bool]:
        return in_user_fraction(user_ids, self.fraction, self.seed)

    def of_splits(self, splits: pd.DataFrame) -> pd.DataFrame:
        """``splits`` with the train rows of this share's users only (:func:`of_train_users`)."""
        return of_train_users(splits, self.fraction, self.seed)

    def record(self, users_used: int, users_available: int) -> dict[str, Any]:
        """Which training users a model learnt from: saved with it and shown in its metadata."""
        return {
            "run_name": self.run_name,
            "train_user_fraction": self.fraction,
            "user_seed": self.seed,
            "train_users_used": int(users_used),
            "train_users_available": int(users_available),
        }

    def same_users(self, record: dict[str, Any]) -> bool:
        """Whether a saved :meth:`record` (e.g. a title encoder's) was trained on this share's users."""
        return (record.get("train_user_fraction", 1.0), record.get("user_seed", 0)) == (
            self.fraction,
            self.seed,
        )


EVERY_USER = UserShare()  # the default model: every training user, no run name
