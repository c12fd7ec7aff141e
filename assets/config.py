"""Config pieces that several assets share, and the one way an asset turns a user error into a failure.

- :class:`UserShareConfig`: the three fields of a run on a share of the training users (the
  low-resource study, paper §5.4), the same on every asset that trains on the users;
- :func:`config_fields`: the values of a library dataclass's fields that an asset config also has, so a
  ``QLoRAConfig`` or ``GenerationSettings`` is built from the asset config, not copied field by field;
- :func:`or_preset`: a config field left unset (None) takes the preset's value;
- :func:`user_errors`: a ``ValueError`` from the library (a bad name, an empty selection) becomes a
  ``dagster.Failure`` whose message the UI and ``fashionrec run`` show as it is;
- :data:`CRITICAL_PATH`: the op tags of the steps on the run's longest path.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg
from pydantic import Field

from training.user_share import UserShare

# Under the multiprocess executor (`fashionrec run --parallel`) the ready step of highest priority starts
# first. The LLM chain (base_lm, query_memory -> prompts -> lora_adapter -> generations) is the longest
# path of a run, about half of `make demo`; started first, it runs while the other steps share the rest.
CRITICAL_PATH = {"dagster/priority": "10"}


@contextmanager
def user_errors() -> Iterator[None]:
    """Raise the library's ``ValueError`` (and ``FileNotFoundError``: an artifact not built yet) as a
    ``dg.Failure`` with the same message."""
    try:
        yield
    except (ValueError, FileNotFoundError) as error:
        raise dg.Failure(str(error)) from error


def config_fields(config: dg.Config, dataclass_type: type) -> dict[str, Any]:
    """``{field: value}`` for every field of ``dataclass_type`` that ``config`` also has."""
    names = {field.name for field in dataclasses.fields(dataclass_type)}
    return {name: value for name, value in config.model_dump().items() if name in names}


def or_preset(value: Any, preset_value: Any) -> Any:
    """The config's ``value``, or the preset's where the field is unset (None); a set 0 stays 0."""
    return preset_value if value is None else value


class UserShareConfig(dg.Config):
    """A run on a share of the training users, saved beside the default model (``training.user_share``)."""

    run_name: str = Field(
        default="",
        description="Name of a run beside the default one (e.g. 'users_10', the low-resource study): the "
        "model is saved under <name>-<run_name> and scored as method <method>-<run_name>; the default model, "
        "which the evaluation and the service read, is left as it is. Empty: the default model.",
    )
    train_user_fraction: float = Field(
        default=1.0,
        description="Share of training users the model learns from (low-resource, paper §5.4), drawn by a "
        "hash of user_id and user_seed, so smaller shares are nested in larger ones and every model's share "
        "is the same users; below 1 it needs a run_name. Valid targets stay every user's.",
    )
    user_seed: int = Field(
        default=0, description="Seed of the user hash; 0 draws the same users as lora_adapter's seed 0."
    )

    def user_share(self) -> UserShare:
        with user_errors():
            return UserShare(self.run_name, self.train_user_fraction, self.user_seed)
