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
"""

# torch and the model code are imported inside the functions that train: every `fashionrec` command and
# `dagster dev` load this module first, and those imports take seconds each. The method names come from
# the torch-free training.baseline_names.
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource
from pydantic import Field

from assets.features import TITLE_VECTORS_MANIFEST
from assets.resources import LanceDBResource
from fashionrec.settings import paths, preset
from serving.encoders import build_encoder
from serving.retrieval import ITEM_TITLE_VECTORS, VectorCatalog
from training.baseline_names import BASELINES, ID_BASELINES, TEXT_ID_BASELINES
from training.evaluation import catalog_by_category
from training.text_seq_query import TITLE_OPTIONS, TextSeqQueryConfig, choose_max_titles

if TYPE_CHECKING:
    from training.baselines import SequenceData

BASELINES_GROUP = "baselines"
BASELINES_DIR = "baselines"  # under artifacts/: one folder per method

# Training budgets per preset. RecBole's own (300 epochs, patience 10, batch 2048) apply at paper scale;
# tiny must train every baseline in seconds for the test suite, demo in about two minutes for
# `make demo` (measured on 2 CPU cores: ~36 s for one epoch of all five trained models on demo's 13k
# train examples). Batches of 256 give these few epochs 8x the optimizer steps of RecBole's 2048. Only
# the budget changes, never a model hyperparameter, so demo's ID baselines are undertrained by design.
PRESET_TRAINING: dict[str, dict[str, int]] = {
    "tiny": {"epochs": 3, "stopping_step": 2, "train_batch_size": 256},
    "demo": {"epochs": 4, "stopping_step": 2, "train_batch_size": 256},
}
# Models this small train faster on one CPU thread than with two that wait on each other (up to 20x
# on a busy 2-core machine); at paper scale torch's default applies.
PRESET_THREADS = {"tiny": 1, "demo": 1}

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


def baseline_key(method: str) -> str:
    """The asset key of a baseline method (``sasrec`` -> ``baseline_sasrec``)."""
    return f"baseline_{method}"


def baselines_dir() -> Path:
    """Where the baselines are saved: ``$FASHIONREC_HOME/artifacts/baselines``."""
    return paths().artifacts_dir / BASELINES_DIR


class BaselinesConfig(dg.Config):
    """Training budget of the baselines; unset fields take the preset's budget (``PRESET_TRAINING``),
    or RecBole's defaults at paper scale. Model hyperparameters are always the published defaults."""

    epochs: int | None = Field(default=None, description="Max epochs: 300 (RecBole), 4 on demo, 3 on tiny.")
    stopping_step: int | None = Field(
        default=None, description="Epochs without valid NDCG@10 gain before stopping: 10 (RecBole), 2."
    )
    train_batch_size: int | None = Field(default=None, description="2048 (RecBole), 256 on demo and tiny.")
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
        description="CPU threads for training; 0 = the preset's (PRESET_THREADS: 1 on tiny and demo), "
        "torch's default elsewhere.",
    )
    max_valid_targets: int = Field(
        default=300,
        description="text_seq_query: valid targets (sampled) used to choose the number of titles.",
    )


def _settings(config: BaselinesConfig) -> dict[str, int]:
    settings = dict(PRESET_TRAINING.get(preset(), {}))
    for name in ("epochs", "stopping_step", "train_batch_size"):
        if getattr(config, name) is not None:
            settings[name] = getattr(config, name)
    return settings


def _read_marts(duckdb: DuckDBResource, text: bool) -> dict[str, pd.DataFrame]:
    with duckdb.get_connection() as con:
        frames = {
            "sequences": con.execute(
                "select user_id, seq_no, event_id, item_id from user_sequences where item_id is not null"
            ).df(),
            "splits": con.execute(
                "select target_id, user_id, target_item_id, category, seq_no, split from splits"
            ).df(),
            "items": con.execute("select item_id, category from items order by item_id").df(),
        }
        if text:
            frames["valid_inputs"] = con.execute(
                "select target_id, user_id, category, target_item_id, is_cold_item, latest_query, history "
                "from prompt_inputs where split = 'valid'"
            ).df()
    return frames


def _train_text_seq_query(
    context: dg.AssetExecutionContext, config: BaselinesConfig, marts: dict, titles: VectorCatalog
) -> dict[str, Any]:
    manifest_path = paths().artifacts_dir / TITLE_VECTORS_MANIFEST
    if not manifest_path.is_file():
        raise dg.Failure(f"{manifest_path} is missing; materialize item_title_vectors first")
    manifest = json.loads(manifest_path.read_text())
    encoder = build_encoder(manifest["encoder_spec"], show_progress=False)
    if encoder.fingerprint != manifest["encoder_fingerprint"]:
        raise dg.Failure(
            f"the encoder {manifest['encoder_spec']} no longer matches the one that made item_title_vectors; "
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
    )
    directory = saved.save(baselines_dir() / "text_seq_query")
    return {
        "path": dg.MetadataValue.path(str(directory)),
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
) -> dict[str, Any]:
    from training.baselines import train_baseline
    from training.sequential import save_sequential

    start = time.perf_counter()
    result, extra = train_baseline(name, data, settings, titles, log=context.log.info)
    train_seconds = time.perf_counter() - start
    directory = save_sequential(result, baselines_dir() / name, {"method": name, **extra})
    trained = result.best_epoch > 0  # llmseqsim is fitted on valid, not trained
    return {
        "path": dg.MetadataValue.path(str(directory)),
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
) -> Iterator[dg.MaterializeResult]:
    from training.baselines import SequenceData

    data: SequenceData | None = None
    for name in chosen:
        if name == "text_seq_query" and titles is not None:
            metadata = _train_text_seq_query(context, config, marts, titles)
        else:
            if data is None:  # built once for every sequence model
                data = SequenceData.from_marts(
                    marts["sequences"], marts["splits"], marts["items"], 50, config.train_targets
                )
            metadata = _train_sequence_baseline(context, name, data, _settings(config), titles)
        yield dg.MaterializeResult(asset_key=baseline_key(name), metadata=metadata)


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
):
    """Train (or fit on valid) the selected baselines and save each under artifacts/baselines/<method>."""
    import torch

    chosen = [n for n in BASELINES if dg.AssetKey(baseline_key(n)) in context.selected_asset_keys]
    marts = _read_marts(duckdb, text="text_seq_query" in chosen)
    needs_titles = bool(set(chosen) & {*TEXT_ID_BASELINES, "text_seq_query"})
    titles = (
        VectorCatalog.from_table(lancedb.connect().open_table(ITEM_TITLE_VECTORS)) if needs_titles else None
    )
    threads = config.torch_threads or PRESET_THREADS.get(preset(), torch.get_num_threads())
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield from _train_chosen(context, config, chosen, marts, titles)
    finally:
        torch.set_num_threads(previous_threads)


baseline_assets = [baselines]
