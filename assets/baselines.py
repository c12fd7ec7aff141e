"""Baseline assets (group ``baselines``): the paper's sequential baselines, trained for the evaluation.

One asset per method of DESIGN.md, ``baseline_<method>``, all computed in one step so the marts are read
and the training examples built once (any subset can be materialized on its own):

- ``gru4rec``, ``sasrec``, ``bert4rec``, ``nextitnet``: ID models with RecBole's default hyperparameters,
  trained on CORE's train-split examples with early stopping on valid NDCG@10;
- ``llm2sasrec``: SASRec with its item table initialised from the title vectors (PCA);
- ``llmseqsim``: title-embedding similarity; the history aggregation is chosen on valid;
- ``text_seq_query``: the user's latest query and item titles as one text, encoded with the title
  encoder; how many titles is chosen on valid.

Each saves itself under ``$FASHIONREC_HOME/artifacts/baselines/<method>/`` (safetensors weights and a
JSON record: epochs, best epoch, valid metrics, seconds per epoch); the evaluation assets load them from
there. The work lives in ``training.baselines`` and ``training.text_seq_query``.

For the low-resource setting (paper §5.4, Figure 6) the models that learn from the training users can be
trained on a share of them under a run name (config ``run_name``, ``train_user_fraction``): saved as
``artifacts/baselines/<method>-<run_name>/`` beside the default model, and scored by the evaluation as
method ``<method>-<run_name>`` (its ``baseline_runs``). The ID models take the share's train examples;
``text_seq_query`` takes the title vectors of a title encoder fine-tuned on the share
(``title_vectors_table``), since its title encoder is what it learnt from the training users.
"""

# torch and the model code are imported inside the functions that train: every `fashionrec` command and
# `dagster dev` load this module first, and those imports take seconds each. The method names come from
# the torch-free training.baseline_names.
import json
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource
from pydantic import Field

from assets.config import UserShareConfig
from assets.resources import LanceDBResource, PipelineSettings
from evaluation.protocol import catalog_by_category
from fashionrec.layout import ITEM_TITLE_VECTORS, ArtifactLayout, run_method
from fashionrec.presets import SequenceBudget
from recommender.encoder_specs import build_encoder
from recommender.retrieval import VectorCatalog
from recommender.vector_store import table_exists
from training.baseline_names import (
    BASELINES,
    ID_BASELINES,
    TEXT_ID_BASELINES,
    USER_SHARE_METHODS,
    baseline_key,
)
from training.text_seq_query import TITLE_OPTIONS, TextSeqQueryConfig, choose_max_titles

if TYPE_CHECKING:
    from training.baselines import SequenceData

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
    "llm2sasrec": "LLM2SASRec (papers/002): SASRec whose item table starts from PCA-reduced title vectors.",
    "llmseqsim": "LLMSeqSim (papers/002): cosine of the history's mean title vector to item title vectors; "
    "aggregation chosen on valid.",
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
        description="LanceDB table of title vectors that llm2sasrec, llmseqsim and text_seq_query read; "
        "empty = item_title_vectors. text_seq_query on a share of the users needs the table of a title "
        "encoder trained on that share (item_title_vectors with title_encoder_run and table, e.g. "
        "item_title_vectors_users_10).",
    )


def _settings(config: BaselinesConfig, budget: SequenceBudget) -> dict[str, int]:
    """The preset's training budget with the config's overrides."""
    settings = {
        "epochs": budget.epochs,
        "stopping_step": budget.stopping_step,
        "train_batch_size": budget.train_batch_size,
        "bucket_by_length": budget.bucket_by_length,
    }
    for name in ("epochs", "stopping_step", "train_batch_size"):
        if getattr(config, name) is not None:
            settings[name] = getattr(config, name)
    return settings


def _read_marts(duckdb: DuckDBResource, text: bool) -> dict[str, pd.DataFrame]:
    from warehouse.marts import read_sequence_marts

    with duckdb.get_connection() as con:
        frames = dict(zip(("sequences", "splits", "items"), read_sequence_marts(con), strict=True))
        if text:
            frames["valid_inputs"] = con.execute(
                "select target_id, user_id, category, target_item_id, is_cold_item, latest_query, history "
                "from prompt_inputs where split = 'valid' order by target_id"
            ).df()
    return frames


def _check_title_share(config: BaselinesConfig, table: str, user_share: dict[str, Any]) -> None:
    """text_seq_query learns from training users only through its title encoder: a run on a share must
    read title vectors whose encoder was trained on that same share."""
    if config.train_user_fraction >= 1.0:
        return
    if not config.user_share().same_users(user_share):
        share = (user_share.get("train_user_fraction", 1.0), user_share.get("user_seed", 0))
        raise dg.Failure(
            f"text_seq_query on {config.train_user_fraction:.0%} of the training users needs title vectors "
            f"from a title encoder trained on that share, but {table!r} comes from one trained on "
            f"{share[0]:.0%} (user_seed {share[1]}). Train it (title_encoder run_name, train_user_fraction), "
            "write its vectors (item_title_vectors title_encoder_run, table) and set title_vectors_table"
        )


def _train_text_seq_query(
    context: dg.AssetExecutionContext,
    config: BaselinesConfig,
    marts: dict,
    titles: VectorCatalog,
    layout: ArtifactLayout,
) -> dict[str, Any]:
    table = config.title_vectors_table or ITEM_TITLE_VECTORS
    manifest_path = layout.title_vectors_manifest(table)
    if not manifest_path.is_file():
        raise dg.Failure(f"{manifest_path} is missing; materialize item_title_vectors first")
    manifest = json.loads(manifest_path.read_text())
    _check_title_share(config, table, manifest.get("user_share", {}))
    encoder = build_encoder(manifest["encoder_spec"], show_progress=False)
    if encoder.fingerprint != manifest["encoder_fingerprint"]:
        raise dg.Failure(
            f"the encoder {manifest['encoder_spec']} no longer matches the one that made {table}; "
            "re-materialize item_title_vectors"
        )
    start = time.perf_counter()
    max_titles, best_valid, history = choose_max_titles(
        marts["valid_inputs"],
        catalog_by_category(marts["items"]),
        encoder,
        titles,
        config.title_options,
        config.max_valid_targets,
        log=context.log.info,
    )
    fit_seconds = time.perf_counter() - start
    saved = TextSeqQueryConfig(
        encoder_spec=encoder.spec,
        encoder_fingerprint=encoder.fingerprint,
        max_titles=max_titles,
        max_valid_targets=config.max_valid_targets,
        best_valid=best_valid,
        history=history,
        title_vectors_table=table,
        user_share=manifest.get("user_share", {}),
    )
    method = config.user_share().method("text_seq_query")
    directory = saved.save(layout.baseline(method))
    return {
        "path": dg.MetadataValue.path(str(directory)),
        "method": method,
        "title_vectors_table": table,
        "title_encoder_user_share": dg.MetadataValue.json(saved.user_share),
        "max_titles": max_titles,
        "fit_seconds": round(fit_seconds, 2),
        "valid_targets": min(len(marts["valid_inputs"]), config.max_valid_targets),
        **{f"valid_{k}": round(v, 4) for k, v in best_valid.items()},
        "options": dg.MetadataValue.json(history),
    }


def _train_sequence_baseline(
    context: dg.AssetExecutionContext,
    name: str,
    data: "SequenceData",
    settings: dict[str, int],
    titles: VectorCatalog | None,
    share: dict[str, Any],
    layout: ArtifactLayout,
) -> dict[str, Any]:
    from training.baselines import train_baseline
    from training.sequential import save_sequential

    method = run_method(name, share["run_name"])
    start = time.perf_counter()
    result, extra = train_baseline(name, data, settings, titles, log=context.log.info)
    train_seconds = time.perf_counter() - start
    directory = save_sequential(result, layout.baseline(method), {"method": method, **share, **extra})
    trained = result.best_epoch > 0  # llmseqsim is fitted on valid, not trained
    return {
        "path": dg.MetadataValue.path(str(directory)),
        "method": method,
        **share,
        "model": result.model.model_name,
        "vocabulary_items": len(result.vocabulary.item_ids),
        "train_examples": len(data.train) if trained else 0,
        "valid_targets": len(data.valid),
        "epochs_run": len(result.history) if trained else 0,
        "best_epoch": result.best_epoch,
        "seconds_per_epoch": round(result.seconds_per_epoch, 3),
        "train_seconds": round(train_seconds, 2),
        **{f"valid_{k}": round(v, 4) for k, v in result.best_valid.items()},
        **{k: dg.MetadataValue.json(v) if isinstance(v, dict) else v for k, v in extra.items()},
        "history": dg.MetadataValue.json(result.history),
    }


def _train_chosen(
    context: dg.AssetExecutionContext,
    config: BaselinesConfig,
    chosen: list[str],
    marts: dict[str, pd.DataFrame],
    titles: VectorCatalog | None,
    settings: PipelineSettings,
) -> Iterator[dg.MaterializeResult]:
    from training.baselines import SequenceData
    from training.user_share import count_train_users

    data: SequenceData | None = None
    share: dict[str, Any] = {}
    for name in chosen:
        if name == "text_seq_query" and titles is not None:
            metadata = _train_text_seq_query(context, config, marts, titles, settings.artifacts)
        else:
            if data is None:  # built once for every sequence model
                data = SequenceData.from_marts(
                    marts["sequences"],
                    marts["splits"],
                    marts["items"],
                    50,
                    config.train_targets,
                    config.user_share(),
                )
                share = config.user_share().record(
                    pd.unique(data.train.user_ids).size, count_train_users(marts["splits"])
                )
                context.log.info(
                    f"training on {share['train_users_used']} of {share['train_users_available']} training "
                    f"users ({config.train_user_fraction:.0%}), {len(data.train)} train examples"
                )
            metadata = _train_sequence_baseline(
                context,
                name,
                data,
                _settings(config, settings.budgets.baselines),
                titles,
                share,
                settings.artifacts,
            )
        yield dg.MaterializeResult(asset_key=baseline_key(name), metadata=metadata)


def _title_vectors(lancedb: LanceDBResource, table: str) -> VectorCatalog:
    db = lancedb.connect()
    if not table_exists(db, table):
        raise dg.Failure(
            f"no title vector table {table!r}; materialize item_title_vectors first (with config `table: "
            f"{table}` for another table than item_title_vectors)"
        )
    return VectorCatalog.from_table(db.open_table(table))


def _check_user_share(config: BaselinesConfig, chosen: list[str]) -> None:
    """A run name or share of users applies only to the models that learn from train examples."""
    config.user_share()  # checks the run name and the share
    fitted_on_valid = [name for name in chosen if name not in USER_SHARE_METHODS]
    if (config.run_name or config.train_user_fraction < 1.0) and fitted_on_valid:
        raise dg.Failure(
            f"{fitted_on_valid} learn nothing from train examples (they choose a setting on valid targets), "
            f"so run_name / train_user_fraction do not apply; select only "
            f"{[m for m in USER_SHARE_METHODS if m != 'core']}, e.g. `fashionrec run 'key:baseline_sasrec'`"
        )


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

    chosen = [n for n in BASELINES if dg.AssetKey(baseline_key(n)) in context.selected_asset_keys]
    _check_user_share(config, chosen)
    marts = _read_marts(duckdb, text="text_seq_query" in chosen)
    needs_titles = bool(set(chosen) & {*TEXT_ID_BASELINES, "text_seq_query"})
    titles = (
        _title_vectors(lancedb, config.title_vectors_table or ITEM_TITLE_VECTORS) if needs_titles else None
    )
    threads = config.torch_threads or settings.budgets.baselines.torch_threads or torch.get_num_threads()
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield from _train_chosen(context, config, chosen, marts, titles, settings)
    finally:
        torch.set_num_threads(previous_threads)


baseline_assets = [baselines]
