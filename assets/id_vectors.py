"""The ``item_id_vectors`` feature asset: CORE (``training.core``) trained on the train split, its item table
in LanceDB (what mixup retrieval's ID list searches) and the model itself under ``artifacts/core`` (the
evaluation's CORE baseline).

A ``run_name`` trains CORE on a share of the training users for the low-resource study (paper §5.4) and
saves it as the baseline ``artifacts/baselines/core-<run_name>`` only, so the table that mixup retrieval
reads stays the default one. The asset records the LanceDB table version it wrote; its check wants one
row per catalog item, CORE's embedding size, unit norm and no NaN.
"""

# torch and the training code are imported inside the asset (see assets/features.py)
import time
from typing import TYPE_CHECKING

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource
from pydantic import Field

from assets.features import (
    FEATURES_GROUP,
    catalog_item_ids,
    check_vector_table,
    expected_dim,
    rounded_metric,
)
from assets.resources import LanceDBResource
from fashionrec.settings import paths, preset
from serving.retrieval import ITEM_ID_VECTORS
from serving.vector_store import DEFAULT_INDEX_THRESHOLD, frame_to_arrow, write_vectors
from training.baseline_names import BASELINES_DIR, check_user_share, run_method, user_share_record
from training.checkpoint_files import CONFIG_FILE as CORE_CONFIG_FILE

if TYPE_CHECKING:
    from training.core import CoreConfig, CoreTrainResult

CORE_DIR = "core"  # under artifacts/: CORE weights (safetensors), config and vocabulary


class CoreAssetConfig(dg.Config):
    """CORE training; unset fields take RecBole's defaults (``training.core.CoreConfig``), or quick
    settings on the tiny preset."""

    epochs: int | None = Field(
        default=None, description="Max epochs; default 300 (RecBole), 20 on demo, 3 on tiny."
    )
    train_batch_size: int | None = Field(
        default=None, description="Default 2048 (RecBole), 256 on demo and tiny."
    )
    embedding_size: int = Field(default=64, description="RecBole CORE.yaml: 64.")
    learning_rate: float = Field(default=1e-3, description="RecBole overall.yaml: 1e-3.")
    stopping_step: int | None = Field(
        default=None,
        description="Stop once more epochs than this in a row bring no valid NDCG@10 gain (RecBole's "
        "stopping_step); default 10 (RecBole), 3 on demo.",
    )
    train_targets: str = Field(
        default="all_items",
        description="'all_items': every item event of the train portion is a target (RecBole's prefix "
        "augmentation); 'purchases': train-split purchases only.",
    )
    index_threshold: int = Field(
        default=DEFAULT_INDEX_THRESHOLD, description="Rows from which an IVF-PQ index is built."
    )
    run_name: str = Field(
        default="",
        description="Name of a CORE run beside the default one (e.g. 'users_10', the low-resource study): "
        "the model is saved only as the baseline artifacts/baselines/core-<run_name>, scored as method "
        "core-<run_name> (evaluation `baseline_runs`). The item_id_vectors table and artifacts/core, which "
        "mixup retrieval and the `core` method read, are left as they are. Empty: the default CORE.",
    )
    train_user_fraction: float = Field(
        default=1.0,
        description="Share of training users whose train targets CORE learns from (low-resource, paper "
        "§5.4), drawn by a hash of user_id and user_seed as the LoRA adapters' shares are (nested); below "
        "1 it needs a run_name. Valid targets (early stopping) stay every user's.",
    )
    user_seed: int = Field(
        default=0, description="Seed of the user hash; 0 draws the same users as lora_adapter's seed 0."
    )


def _core_settings(config: CoreAssetConfig) -> "CoreConfig":
    """RecBole's CORE hyperparameters with the preset's training budget and the config's overrides."""
    from training.core import CoreConfig

    return CoreConfig(
        embedding_size=config.embedding_size,
        learning_rate=config.learning_rate,
        # RecBole's 300 epochs / patience 10 / batches of 2048 are kept at paper scale. The README demo has
        # ~15 minutes on 2 CPU cores for every asset: batches of 256 (8x the optimizer steps per epoch, as
        # the demo's baselines use) reach a better valid NDCG@10 in 10 epochs (0.154, 48 s) than 25
        # epochs of 2048 did (0.143, 251 s), and it stops on the first plateau
        stopping_step=config.stopping_step or (3 if preset() == "demo" else CoreConfig.stopping_step),
        epochs=config.epochs or {"tiny": 3, "demo": 20}.get(preset(), CoreConfig.epochs),
        train_batch_size=config.train_batch_size
        or (256 if preset() in ("tiny", "demo") else CoreConfig.train_batch_size),
        # Demo only, for its time budget: length-sorted batches (the opt-in speed trick; random batches
        # everywhere else, see training.sequential.shuffled_batches). For CORE on demo they cost nothing
        # measurable: valid NDCG@10 0.185 after 20 epochs in 79 s, against 0.187 in 187 s at random
        # batches, which made `make demo` take 15:27 instead of 12:21 on a quiet machine.
        bucket_by_length=preset() == "demo",
    )


def _core_run_result(
    config: CoreAssetConfig, result: "CoreTrainResult", share: dict, facts: dict
) -> dg.MaterializeResult:
    """A CORE run on a share of the users: saved as a baseline only, the retrieval's vectors untouched."""
    from training.core import save_core

    method = run_method("core", config.run_name)
    directory = save_core(result, paths().artifacts_dir / BASELINES_DIR / method, {"method": method, **share})
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(directory)),
            "method": method,
            "item_id_vectors_table": f"unchanged: a run_name saves CORE as the baseline {method} only",
            **share,
            **facts,
        }
    )


@dg.asset(
    group_name=FEATURES_GROUP,
    deps=["user_sequences", "splits", "items"],
    kinds={"pytorch", "lancedb"},
)
def item_id_vectors(
    context: dg.AssetExecutionContext,
    config: CoreAssetConfig,
    duckdb: DuckDBResource,
    lancedb: LanceDBResource,
):
    """Train CORE-trm on train-split sequences (early stopping on valid NDCG@10), save it as the CORE
    baseline, and write its L2-normalised item table (item_id, category, vector) for every catalog item;
    items never seen in training share the learned cold vector. With a run_name (low-resource study), CORE
    trained on a share of the users is saved as the baseline core-<run_name> only."""
    from training.core import CoreScorer, save_core, train_core
    from training.sequence_data import (
        CategoryCatalog,
        build_examples,
        build_vocabulary,
        of_train_users,
        train_users,
    )

    try:
        check_user_share(config.run_name, config.train_user_fraction)
    except ValueError as error:
        raise dg.Failure(str(error)) from error
    with duckdb.get_connection() as con:
        sequences = con.execute(
            "select user_id, seq_no, event_id, item_id from user_sequences where item_id is not null"
        ).df()
        splits = con.execute(
            "select target_id, user_id, target_item_id, category, seq_no, split from splits"
        ).df()
        items = con.execute("select item_id, category from items order by item_id").df()
    core_config = _core_settings(config)
    # the vocabulary and train examples come from the sampled users only; valid stays every user's
    training_splits = of_train_users(splits, config.train_user_fraction, config.user_seed)
    vocabulary = build_vocabulary(sequences, training_splits)
    categories = items.set_index("item_id")["category"]
    train = build_examples(
        sequences,
        training_splits,
        vocabulary,
        split="train",
        max_len=core_config.max_seq_length,
        targets=config.train_targets,  # type: ignore[arg-type]
        item_categories=categories,
    )
    valid = build_examples(sequences, splits, vocabulary, split="valid", max_len=core_config.max_seq_length)
    catalog = CategoryCatalog.from_items(items, vocabulary)
    share = user_share_record(config, pd.unique(train.user_ids).size, train_users(splits))
    context.log.info(
        f"CORE on {share['train_users_used']} of {share['train_users_available']} training users "
        f"({config.train_user_fraction:.0%}), {len(train)} train examples"
    )
    start = time.perf_counter()
    result = train_core(train, valid, vocabulary, catalog, core_config, log=context.log.info)
    train_seconds = time.perf_counter() - start
    n_cold = int((~items["item_id"].isin(set(vocabulary.item_ids))).sum())
    facts = {
        "dim": core_config.embedding_size,
        "vocabulary_items": len(vocabulary.item_ids),
        "cold_catalog_items": n_cold,
        "train_examples": len(train),
        "valid_targets": len(valid),
        "best_epoch": result.best_epoch,
        "epochs_run": len(result.history),
        "train_seconds": round(train_seconds, 2),
        "seconds_per_epoch": round(result.seconds_per_epoch, 3),
        "train_examples_per_second": round(len(train) / result.seconds_per_epoch, 1),
        **{f"valid_{k}": rounded_metric(v) for k, v in result.best_valid.items()},
        "history": dg.MetadataValue.json(result.history),
    }
    if config.run_name:
        return _core_run_result(config, result, share, facts)
    save_core(result, paths().artifacts_dir / CORE_DIR, share)

    scorer = CoreScorer(result.model, vocabulary)
    vectors = scorer.item_vectors(items["item_id"].tolist())
    written = write_vectors(
        lancedb.connect(),
        ITEM_ID_VECTORS,
        frame_to_arrow(items, vectors),
        index_threshold=config.index_threshold,
    )
    # nothing is encoded here: the rows are the trained table itself
    write_metadata = {
        k: v for k, v in written.metadata().items() if k not in ("rows_encoded", "encoded_per_second")
    }
    return dg.MaterializeResult(
        metadata={**write_metadata, "dagster/row_count": written.rows, **share, **facts}
    )


@dg.asset_check(
    asset=ITEM_ID_VECTORS, description="One row per catalog item; CORE embedding size; unit norm; no NaN."
)
def item_id_vectors_check(duckdb: DuckDBResource, lancedb: LanceDBResource) -> dg.AssetCheckResult:
    dim = expected_dim(f"{CORE_DIR}/{CORE_CONFIG_FILE}", "config.embedding_size")
    return check_vector_table(lancedb, ITEM_ID_VECTORS, "item_id", catalog_item_ids(duckdb), dim)


id_vector_assets = [item_id_vectors]
id_vector_checks = [item_id_vectors_check]
