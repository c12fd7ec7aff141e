"""I-LLMRec (group ``llm``): items as images in the frozen base LM, ranking the whole category from one
forward pass per user (``training.illmrec``; docs/evaluation.md "I-LLMRec").

``illmrec`` trains the preset's variants (``full``, and at paper scale the ablations of the paper's
Table 2: ``image``, ``image_ila``, ``image_ila_cf``), each saved under ``artifacts/illmrec/<variant>``
and scored by the evaluation as ``illmrec`` / ``illmrec-<variant>``. Logs without item images have
nothing to train it on: the asset says so in its metadata and the evaluation leaves the method out.
"""

from typing import TYPE_CHECKING

import dagster as dg
from dagster_duckdb import DuckDBResource
from pydantic import Field

from assets.config import or_preset, user_errors
from assets.language_model import LLM_GROUP, loss_curve_markdown
from assets.resources import LanceDBResource, PipelineSettings
from fashionrec.layout import ITEM_ID_VECTORS, ITEM_IMAGE_VECTORS, ITEM_TITLE_VECTORS
from recommender.vector_store import table_exists
from training.illmrec_names import VARIANTS, variant_method

if TYPE_CHECKING:  # torch loads only when the asset runs
    from fashionrec.presets import IllmrecBudget
    from training.illmrec_training import IllmrecTraining


class IllmrecAssetConfig(dg.Config):
    """Unset fields take the preset's budget (``fashionrec.presets.IllmrecBudget``)."""

    variants: list[str] | None = Field(
        default=None,
        description=f"Variants to train, of {list(VARIANTS)}: 'full' is I-LLMRec (method illmrec), the "
        "others its ablations (method illmrec-<variant>). Default: the preset's.",
    )
    epochs: int | None = Field(default=None, description="Passes over the train targets.")
    batch_size: int | None = Field(default=None, description="Prompts per step (the paper: 32).")
    max_train_targets: int | None = Field(default=None, description="Train purchases sampled; 0 = all.")
    max_history: int | None = Field(default=None, description="Latest item events per prompt.")
    learning_rate: float = Field(default=1e-3, description="AdamW rate of the heads (the paper: 1e-3).")
    item_text: str | None = Field(
        default=None,
        description="History lines: 'title' ({Title: ..., Visual representation: <i_vis>}, the authors' "
        "format) or 'none' (the image token alone). Default: the preset's.",
    )


def _training(config: IllmrecAssetConfig, budget: "IllmrecBudget") -> "IllmrecTraining":
    """The heads' training: the config's fields, the preset's where unset."""
    from training.illmrec_training import IllmrecTraining

    return IllmrecTraining(
        epochs=or_preset(config.epochs, budget.epochs),
        batch_size=or_preset(config.batch_size, budget.batch_size),
        learning_rate=config.learning_rate,
        max_train_targets=or_preset(config.max_train_targets, budget.max_train_targets) or 0,
        max_valid_targets=budget.max_valid_targets,
    )


def _facts(variant: str, record: dict) -> dict:
    keep = ("train_targets", "best_epoch", "train_tokens_per_second", "tokens_per_history_item", "seconds")
    return {
        f"{variant}/{key}": dg.MetadataValue.json(value) if isinstance(value, list | dict) else value
        for key, value in record.items()
        if key in keep or key.startswith("valid_")
    }


@dg.asset(
    group_name=LLM_GROUP,
    deps=["base_lm", ITEM_IMAGE_VECTORS, ITEM_ID_VECTORS, ITEM_TITLE_VECTORS, "user_sequences", "splits"],
    kinds={"pytorch"},
)
def illmrec(
    context: dg.AssetExecutionContext,
    config: IllmrecAssetConfig,
    duckdb: DuckDBResource,
    lancedb: LanceDBResource,
    settings: PipelineSettings,
):
    """Train I-LLMRec's adaptor, [REC] and projectors around the frozen base LM (IRE, + ILA), the epoch
    kept on valid NDCG@10; one model per variant, loss curves and valid figures in the metadata."""
    from recommender.language_model import read_base_model_pointer
    from training.illmrec import IllmrecConfig
    from training.illmrec_fit import fit_and_save
    from warehouse.marts import read_item_events, read_item_texts, read_splits

    budget, db = settings.budgets.illmrec, lancedb.connect()
    if not table_exists(db, ITEM_IMAGE_VECTORS):
        context.log.warning("I-LLMRec not trained: no item has an image vector (the logs hold no images)")
        return dg.MaterializeResult(metadata={"trained": False, "reason": "no item images"})
    variants = config.variants or list(budget.variants)
    with duckdb.get_connection() as con:
        items, sequences, splits = read_item_texts(con), read_item_events(con), read_splits(con)
    training = _training(config, budget)
    metadata: dict = {"trained": True, "variants": variants}
    with user_errors():
        base_model = read_base_model_pointer(settings.artifacts.base_model_pointer)
        for variant in variants:
            model = IllmrecConfig.of_variant(
                variant,
                max_history=or_preset(config.max_history, budget.max_history),
                item_text=or_preset(config.item_text, budget.item_text),
            )
            _, record = fit_and_save(
                base_model,
                db,
                items,
                sequences,
                splits,
                model,
                training,
                settings.artifacts.illmrec(variant),
                context.log.info,
            )
            metadata.update(_facts(variant, record))
            metadata[f"{variant}/method"] = variant_method(variant)
            metadata[f"{variant}/loss_curve"] = loss_curve_markdown(record["loss_curve"])
    return dg.MaterializeResult(metadata=metadata)
