"""The baseline methods of the evaluation by name (DESIGN.md), grouped by what they need, and the names
of the runs that retrain them on a share of the training users (paper §5.4, low-resource setting).

They live apart from the models in ``training.baselines`` (which re-exports them) so that the Dagster code
location declares one asset per baseline without importing torch.
"""

from __future__ import annotations

import re
from typing import Any

from training.adapter_selection import in_user_fraction

ID_BASELINES = ("gru4rec", "sasrec", "bert4rec", "nextitnet")
TEXT_ID_BASELINES = ("llm2sasrec", "llmseqsim")  # sequence models that need item_title_vectors
SEQUENCE_BASELINES = ID_BASELINES + TEXT_ID_BASELINES
TEXT_BASELINES = ("text_seq_query",)
BASELINES = SEQUENCE_BASELINES + TEXT_BASELINES
BASELINES_DIR = "baselines"  # under artifacts/: one folder per method, and per run of a method

# The models that learn from the training users, so a share of them changes them: CORE (the
# item_id_vectors asset) and the ID models from train examples, text_seq_query through its title encoder
# (fine-tuned on train query-title pairs). llmseqsim only chooses an aggregation on valid targets.
USER_SHARE_METHODS = ("core", *ID_BASELINES, "llm2sasrec", "text_seq_query")

# a run name is a folder suffix and a method-name suffix (sasrec-users_10), as adapter names are
_RUN_NAME = re.compile(r"^[A-Za-z0-9_]+$")


def check_user_share(run_name: str, train_user_fraction: float) -> None:
    """A run name and share of training users that can be saved without replacing the default model.

    A share below 1 needs a run name: the share-trained model goes next to the default one (which the
    evaluation and, for CORE, mixup retrieval read), never over it.
    """
    in_user_fraction([], train_user_fraction)  # checks the range: (0, 1]
    if run_name and not _RUN_NAME.match(run_name):
        raise ValueError(
            f"run_name {run_name!r} must hold only letters, digits and '_' (it names a folder and a method, "
            "e.g. sasrec-users_10)"
        )
    if train_user_fraction < 1.0 and not run_name:
        raise ValueError(
            f"train_user_fraction {train_user_fraction} needs a run_name (e.g. users_10): a model trained on "
            "a share of the users is saved next to the default one, not over it"
        )


def user_share_record(config: Any, users_used: int, users_available: int) -> dict[str, Any]:
    """Which training users a share-trained model learnt from (``config`` has ``run_name``,
    ``train_user_fraction`` and ``user_seed``): saved in its record and shown in its metadata."""
    return {
        "run_name": config.run_name,
        "train_user_fraction": config.train_user_fraction,
        "user_seed": config.user_seed,
        "train_users_used": int(users_used),
        "train_users_available": int(users_available),
    }


def run_method(method: str, run_name: str) -> str:
    """The method name, and folder under ``artifacts/baselines/``, of ``method`` trained under
    ``run_name`` (``sasrec``, ``users_10`` -> ``sasrec-users_10``); the method itself when unnamed."""
    return f"{method}-{run_name}" if run_name else method


def parse_run_method(name: str) -> tuple[str, str]:
    """``sasrec-users_10`` -> (``sasrec``, ``users_10``), for the evaluation's ``baseline_runs``."""
    method, _, run_name = name.partition("-")
    if method not in USER_SHARE_METHODS or not _RUN_NAME.match(run_name):
        raise ValueError(
            f"baseline run {name!r} is not <method>-<run_name> with a method of {list(USER_SHARE_METHODS)} "
            "and a run_name of letters, digits and '_' (e.g. sasrec-users_10, core-users_10)"
        )
    return method, run_name


def train_step_hint(method: str, run_name: str) -> str:
    """How to train ``method`` under ``run_name``: the selection and config a user runs."""
    if method == "core":
        selection, config = "key:item_id_vectors", "item_id_vectors"
    elif method == "text_seq_query":
        return (
            "`fashionrec run 'key:title_encoder or key:item_title_vectors or key:baseline_text_seq_query'` "
            f"with run config title_encoder {{run_name: {run_name}, train_user_fraction: <share>}}, "
            f"item_title_vectors {{title_encoder_run: {run_name}, table: item_title_vectors_{run_name}}}, "
            f"baselines {{run_name: {run_name}, train_user_fraction: <share>, title_vectors_table: "
            f"item_title_vectors_{run_name}}} (the low_resource study's steps do this)"
        )
    else:
        selection, config = f"key:baseline_{method}", "baselines"
    settings = f"{{run_name: {run_name}, train_user_fraction: <share>}}"
    return (
        f"`fashionrec run '{selection}' --config FILE`, FILE holding "
        f"{{ops: {{{config}: {{config: {settings}}}}}}} (the low_resource study's steps do this)"
    )
