"""Baseline assets (group ``baselines``): the paper's sequential baselines, trained for the evaluation.

One asset per method of docs/evaluation.md ("The methods"), ``baseline_<method>``, all computed in one
step so the marts are read and the training examples built once (any subset can be materialized on its
own):

- ``gru4rec``, ``sasrec``, ``bert4rec``, ``nextitnet``: ID models with RecBole's default hyperparameters,
  trained on CORE's train-split examples with early stopping on valid NDCG@10;
- ``llm2sasrec``, ``llm2bert4rec``: SASRec and BERT4Rec with their item table initialised from the title
  vectors (PCA);
- ``llmseqsim``: title-embedding similarity; the history aggregation is chosen on valid;
- ``text_seq_query``: the user's latest query and item titles as one text, encoded with the title
  encoder; how many titles is chosen on valid.

Each saves itself under ``$FASHIONREC_HOME/artifacts/baselines/<method>/`` (safetensors weights and a
JSON record: epochs, best epoch, valid metrics, seconds per epoch); the evaluation assets load them from
there. The work lives in ``training.baseline_training`` (the run), ``training.baselines`` and
``training.text_seq_query`` (the models).

For the low-resource setting (paper §5.4, Figure 6) the models that learn from the training users can be
trained on a share of them under a run name (config ``run_name``, ``train_user_fraction``): saved as
``artifacts/baselines/<method>-<run_name>/`` beside the default model, and scored by the evaluation as
method ``<method>-<run_name>`` (its ``baseline_runs``). The ID models take the share's train examples;
``text_seq_query`` takes the title vectors of a title encoder fine-tuned on the share
(``title_vectors_table``), since its title encoder is what it learnt from the training users.
"""

# torch and the model code are imported inside the asset: every `fashionrec` command and `dagster dev`
# load this module first, and those imports take seconds each. The method names come from the torch-free
# training.baseline_names.
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_duckdb import DuckDBResource
from pydantic import Field

from assets.config import UserShareConfig, config_fields, user_errors
from assets.resources import LanceDBResource, PipelineSettings
from fashionrec.layout import ITEM_TITLE_VECTORS
from recommender.ranking import catalog_by_category
from training.baseline_names import (
    BASELINES,
    ID_BASELINES,
    TEXT_ID_BASELINES,
    TITLE_VECTOR_BASELINES,
    baseline_key,
    check_share_applies,
)
from training.text_seq_query import TITLE_OPTIONS
from warehouse.marts import read_prompt_inputs, read_sequence_marts

BASELINES_GROUP = "baselines"

_DEPS = {
    **{name: ["user_sequences", "splits", "items"] for name in ID_BASELINES},
    **{name: ["user_sequences", "splits", "items", ITEM_TITLE_VECTORS] for name in TEXT_ID_BASELINES},
    "text_seq_query": ["prompt_inputs", "items", ITEM_TITLE_VECTORS],
}
_DESCRIPTIONS = {
    "gru4rec": "GRU4Rec (RecBole defaults: embedding 64, GRU 128, dropout 0.3, CE over all items).",
    "sasrec": "SASRec (RecBole defaults: 2 layers, 2 heads, hidden 64, inner 256, dropout 0.5, CE).",
    "bert4rec": "BERT4Rec (RecBole defaults: 2 layers, 2 heads, hidden 64, mask ratio 0.2, CE).",
    "nextitnet": "NextItNet (RecBole defaults: embedding 64, kernel 3, dilations [1,4] x 5 blocks, CE).",
    "llm2sasrec": "LLM2SASRec (Harte et al. 2023): SASRec whose item table starts from PCA-reduced title "
    "vectors.",
    "llm2bert4rec": "LLM2BERT4Rec (Harte et al. 2023): BERT4Rec whose item table starts from PCA-reduced "
    "title vectors.",
    "llmseqsim": "LLMSeqSim (Harte et al. 2023): cosine of the history's mean title vector to item title "
    "vectors; aggregation chosen on valid.",
    "text_seq_query": "Recformer-w/-query stand-in: latest query + item titles as one text, encoded with the "
    "title encoder, cosine to item title vectors; number of titles chosen on valid.",
}


class BaselinesConfig(UserShareConfig):
    """Training budget of the baselines; unset fields take the preset's budget (``fashionrec.presets``:
    RecBole's at paper scale). Model hyperparameters are always the published defaults. A run_name and a
    train_user_fraction apply to the models that learn from the training users only."""

    epochs: int | None = Field(
        default=None, description="Max epochs; default: the preset's (300 at paper scale)."
    )
    stopping_step: int | None = Field(
        default=None,
        description="Stop once more epochs than this in a row bring no valid NDCG@10 gain (RecBole's "
        "stopping_step); default: the preset's (10 at paper scale).",
    )
    train_batch_size: int | None = Field(
        default=None, description="Default: the preset's (RecBole's 2048 at paper scale)."
    )
    train_targets: str = Field(
        default="all_items",
        description="'all_items': every item event of the train portion is a target (as CORE trains); "
        "'purchases': train-split purchases only.",
    )
    item_table: str | None = Field(
        default=None,
        description="Embedding rows of the ID models: 'catalog' (one per catalog item, RecBole's table) or "
        "'trained' (items seen in training, one shared cold row for the rest); default: each model's own "
        "(the catalog table, docs/evaluation.md 'The item table').",
    )
    title_options: list[int] = Field(
        default=list(TITLE_OPTIONS), description="text_seq_query: numbers of titles tried on valid."
    )
    torch_threads: int = Field(
        default=0,
        description="CPU threads for training; 0 = the preset's (1 on tiny and demo), torch's default "
        "elsewhere.",
    )
    max_valid_targets: int = Field(
        default=300,
        description="text_seq_query: valid targets (sampled) used to choose the number of titles.",
    )
    title_vectors_table: str = Field(
        default="",
        description="LanceDB table of title vectors that llm2sasrec, llm2bert4rec, llmseqsim and "
        "text_seq_query read; empty = item_title_vectors. text_seq_query on a share of the users needs "
        "the table of a title encoder trained on that share (item_title_vectors with title_encoder_run "
        "and table, e.g. item_title_vectors_users_10).",
    )


def _metadata(facts: dict[str, Any]) -> dict[str, Any]:
    """A run's facts as the UI shows them: folders as paths, records and histories as JSON."""
    return {
        key: dg.MetadataValue.path(str(value))
        if isinstance(value, Path)
        else dg.MetadataValue.json(value)
        if isinstance(value, dict | list)
        else value
        for key, value in facts.items()
    }


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            baseline_key(name),
            group_name=BASELINES_GROUP,
            deps=_DEPS[name],
            description=_DESCRIPTIONS[name],
            kinds={"pytorch"},
        )
        for name in BASELINES
    ],
    can_subset=True,
)
def baselines(
    context: dg.AssetExecutionContext,
    config: BaselinesConfig,
    duckdb: DuckDBResource,
    lancedb: LanceDBResource,
    settings: PipelineSettings,
):
    """Train (or fit on valid) the selected baselines and save each under artifacts/baselines/<method>
    (<method>-<run_name> for a run on a share of the training users)."""
    import torch

    from training.baseline_training import (
        BaselineInputs,
        BaselineOptions,
        open_title_vectors,
        train_baselines,
    )

    chosen = [n for n in BASELINES if dg.AssetKey(baseline_key(n)) in context.selected_asset_keys]
    share = config.user_share()
    options = BaselineOptions(settings.budgets.baselines, share, **config_fields(config, BaselineOptions))
    with user_errors():
        check_share_applies(share, chosen)
        with duckdb.get_connection() as con:
            sequences, splits, items = read_sequence_marts(con)
            valid = read_prompt_inputs(con, "valid") if "text_seq_query" in chosen else None
        needs_titles = bool(set(chosen) & set(TITLE_VECTOR_BASELINES))
        titles = open_title_vectors(lancedb.connect(), options.table) if needs_titles else None
    inputs = BaselineInputs(sequences, splits, items, valid, catalog_by_category(items))
    threads = config.torch_threads or settings.budgets.baselines.torch_threads or torch.get_num_threads()
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with user_errors():
            for name, facts in train_baselines(
                chosen, inputs, titles, options, settings.artifacts, context.log.info
            ):
                yield dg.MaterializeResult(asset_key=baseline_key(name), metadata=_metadata(facts))
    finally:
        torch.set_num_threads(previous_threads)


baseline_assets = [baselines]
