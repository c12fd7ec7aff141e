"""The baseline methods of the evaluation by name (docs/evaluation.md), grouped by what they need, and
the names of the runs that retrain them on a share of the training users (paper §5.4, low-resource).

They live apart from the models in ``training.baselines`` (which re-exports them) so that the Dagster code
location declares one asset per baseline without importing torch.
"""

from __future__ import annotations

from collections.abc import Iterable

from fashionrec.layout import RUN_NAME, split_run_method
from training.user_share import UserShare

ID_BASELINES = ("gru4rec", "sasrec", "bert4rec", "nextitnet")
TEXT_INITIALISED = ("llm2sasrec", "llm2bert4rec")  # ID models whose item table starts from title vectors
TEXT_ID_BASELINES = (*TEXT_INITIALISED, "llmseqsim")  # sequence models that need item_title_vectors
SEQUENCE_BASELINES = ID_BASELINES + TEXT_ID_BASELINES
TEXT_BASELINES = ("text_seq_query",)
BASELINES = SEQUENCE_BASELINES + TEXT_BASELINES
TITLE_VECTOR_BASELINES = TEXT_ID_BASELINES + TEXT_BASELINES  # those that read a title-vector table

# The models that learn from the training users, so a share of them changes them: CORE (the
# item_id_vectors asset) and the ID models from train examples, text_seq_query through its title encoder
# (fine-tuned on train query-title pairs). llmseqsim only chooses an aggregation on valid targets.
USER_SHARE_METHODS = ("core", *ID_BASELINES, *TEXT_INITIALISED, "text_seq_query")


def baseline_key(method: str) -> str:
    """The asset key of a baseline method (``sasrec`` -> ``baseline_sasrec``), which error messages name
    as the step to run."""
    return f"baseline_{method}"


def check_share_applies(share: UserShare, methods: Iterable[str]) -> None:
    """A run name, and so a share of the users, names a model that learns from the training users; the
    other methods would save a copy of the default model under another name. ValueError naming them."""
    fitted_on_valid = [name for name in methods if name not in USER_SHARE_METHODS]
    if not share.is_default and fitted_on_valid:
        raise ValueError(
            f"{fitted_on_valid} learn nothing from train examples (they choose a setting on valid targets), "
            f"so run_name / train_user_fraction do not apply; select only "
            f"{[m for m in USER_SHARE_METHODS if m != 'core']}, e.g. `fashionrec run 'key:baseline_sasrec'`"
        )


def parse_run_method(name: str) -> tuple[str, str]:
    """``sasrec-users_10`` -> (``sasrec``, ``users_10``), for the evaluation's ``baseline_runs``."""
    method, run_name = split_run_method(name)
    if method not in USER_SHARE_METHODS or not RUN_NAME.match(run_name):
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
        selection, config = f"key:{baseline_key(method)}", "baselines"
    settings = f"{{run_name: {run_name}, train_user_fraction: <share>}}"
    return (
        f"`fashionrec run '{selection}' --config FILE`, FILE holding "
        f"{{ops: {{{config}: {{config: {settings}}}}}}} (the low_resource study's steps do this)"
    )
