"""The ``item_id_vectors`` feature asset: CORE (``training.core``) trained on the train split, its item table
in LanceDB (what mixup retrieval's ID list searches) and the model itself under ``artifacts/core`` (the
evaluation's CORE baseline).

A ``run_name`` trains CORE on a share of the training users for the low-resource study (paper §5.4) and
saves it as the baseline ``artifacts/baselines/core-<run_name>`` only, so the table that mixup retrieval
reads stays the default one. The asset records the LanceDB table version it wrote.
"""

# torch and the training code are imported inside the asset (see assets/title_vectors.py)
from typing import TYPE_CHECKING

import dagster as dg
from dagster_duckdb import DuckDBResource
from pydantic import Field

from assets.config import UserShareConfig, user_errors
from assets.query_memory import rounded_metric
from assets.resources import LanceDBResource, PipelineSettings
from assets.vector_checks import FEATURES_GROUP
from fashionrec.layout import ITEM_ID_VECTORS, run_method
from fashionrec.presets import SequenceBudget
from recommender.vector_store import DEFAULT_INDEX_THRESHOLD, frame_to_arrow, write_vectors
from warehouse.marts import read_sequence_marts

if TYPE_CHECKING:
    from training.core import CoreConfig, CoreFit


class CoreAssetConfig(UserShareConfig):
    """CORE training; unset budget fields take the preset's (``fashionrec.presets``), the model's
    hyperparameters are RecBole's (``training.core.CoreConfig``)."""

    epochs: int | None = Field(
        default=None, description="Max epochs; default: the preset's (300 at paper scale)."
    )
    train_batch_size: int | None = Field(
        default=None, description="Default: the preset's (RecBole's 2048 at paper scale)."
    )
    embedding_size: int = Field(default=64, description="RecBole CORE.yaml: 64.")
    learning_rate: float = Field(default=1e-3, description="RecBole overall.yaml: 1e-3.")
    stopping_step: int | None = Field(
        default=None,
        description="Stop once more epochs than this in a row bring no valid NDCG@10 gain (RecBole's "
        "stopping_step); default: the preset's (RecBole's 10 at paper scale).",
    )
    train_targets: str = Field(
        default="all_items",
        description="'all_items': every item event of the train portion is a target (RecBole's prefix "
        "augmentation); 'purchases': train-split purchases only.",
    )
    item_table: str | None = Field(
        default=None,
        description="CORE's embedding rows, which item_id_vectors holds: 'catalog' (one per catalog item) "
        "or 'trained' (items seen in training, one shared cold vector for the rest); default: CORE's "
        "(training.core.CoreConfig, docs/evaluation.md 'The item table').",
    )
    index_threshold: int = Field(
        default=DEFAULT_INDEX_THRESHOLD, description="Rows from which an IVF-PQ index is built."
    )


def core_settings(config: CoreAssetConfig, budget: SequenceBudget) -> "CoreConfig":
    """RecBole's CORE hyperparameters with the preset's training budget and the config's overrides."""
    from training.core import CoreConfig

    table = {"item_table": config.item_table} if config.item_table else {}
    return CoreConfig(
        **table,
        embedding_size=config.embedding_size,
        learning_rate=config.learning_rate,
        stopping_step=config.stopping_step or budget.stopping_step,
        epochs=config.epochs or budget.epochs,
        train_batch_size=config.train_batch_size or budget.train_batch_size,
        bucket_by_length=budget.bucket_by_length,
    )


def core_metadata(fit: "CoreFit") -> dict:
    return {
        **fit.share_record,
        **fit.facts,
        **{f"valid_{k}": rounded_metric(v) for k, v in fit.result.best_valid.items()},
        "history": dg.MetadataValue.json(fit.result.history),
    }


@dg.asset(group_name=FEATURES_GROUP, deps=["user_sequences", "splits", "items"], kinds={"pytorch", "lancedb"})
def item_id_vectors(
    context: dg.AssetExecutionContext,
    config: CoreAssetConfig,
    duckdb: DuckDBResource,
    lancedb: LanceDBResource,
    settings: PipelineSettings,
):
    """Train CORE-trm on train-split sequences (early stopping on valid NDCG@10), save it as the CORE
    baseline, and write its L2-normalised item table (item_id, category, vector) for every catalog item:
    each its own row (the catalog table), or with item_table 'trained' one learned cold vector shared by
    the items never seen in training. With a run_name (low-resource study), CORE trained on a share of the
    users is saved as the baseline core-<run_name> only."""
    from training.core import fit_core, save_core

    share = config.user_share()
    with duckdb.get_connection() as con:
        sequences, splits, items = read_sequence_marts(con)
    with user_errors():
        fit = fit_core(
            sequences,
            splits,
            items,
            core_settings(config, settings.budgets.core),
            share,
            config.train_targets,
            log=context.log.info,
        )
    if not share.is_default:
        return share_run_result(fit, settings, config.run_name)
    save_core(fit.result, settings.artifacts.core, fit.share_record)
    vectors = fit.scorer().item_vectors(items["item_id"].tolist())
    written = write_vectors(
        lancedb.connect(),
        ITEM_ID_VECTORS,
        frame_to_arrow(items, vectors),
        index_threshold=config.index_threshold,
    )
    # nothing is encoded here: the rows are the trained table itself
    write = {k: v for k, v in written.metadata().items() if k not in ("rows_encoded", "encoded_per_second")}
    return dg.MaterializeResult(metadata={**write, "dagster/row_count": written.rows, **core_metadata(fit)})


def share_run_result(fit: "CoreFit", settings: PipelineSettings, run_name: str) -> dg.MaterializeResult:
    """CORE trained on a share of the users is saved as the baseline core-<run_name> only: the vectors
    that mixup retrieval reads, and the default CORE, stay as they are."""
    from training.core import save_core

    method = run_method("core", run_name)
    record = {"method": method, **fit.share_record}
    directory = save_core(fit.result, settings.artifacts.baseline("core", run_name), record)
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(directory)),
            "method": method,
            "item_id_vectors_table": f"unchanged: a run_name saves CORE as the baseline {method} only",
            **core_metadata(fit),
        }
    )


id_vector_assets = [item_id_vectors]
