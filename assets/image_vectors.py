"""The image side of the catalog, group ``features``: an image tower trained against the catalog titles
(``image_encoder``, ``training.image_tower``) and every item's product image embedded into LanceDB
(``item_image_vectors``), refreshed incrementally, for I-LLMRec's one-token items.

Images are optional in the raw-data contract: logs whose items name no ``image_path`` materialize both
assets with nothing to do (said in their metadata), and the methods that need image vectors are left out
of the evaluation. A path that names no readable file is listed with its reason; the table's asset check
then fails, since the table lacks the rows the catalog promises.
"""

from typing import TYPE_CHECKING

import dagster as dg
from dagster_duckdb import DuckDBResource
from pydantic import Field

from assets.config import or_preset, user_errors
from assets.query_memory import rounded_metric
from assets.resources import LanceDBResource, PipelineSettings
from assets.vector_checks import FEATURES_GROUP
from fashionrec.layout import ITEM_IMAGE_VECTORS
from recommender.encoder_specs import DEFAULT_ENCODER_SPEC
from recommender.image_catalog import (
    catalog_images,
    drop_image_vectors,
    image_problems_metadata,
    write_image_vectors,
)
from recommender.vector_store import DEFAULT_INDEX_THRESHOLD

if TYPE_CHECKING:  # torch loads only when an asset runs
    from training.image_tower import ImageTowerResult

IMAGE_ROWS = "select item_id, parent_id, category, title, image_path from items order by item_id"


class ImageEncoderConfig(dg.Config):
    """The embedded image tower's training (``training.image_tower.ImageTowerConfig``); unset fields take
    the preset's budget."""

    text_encoder: str = Field(
        default=DEFAULT_ENCODER_SPEC,
        description="Encoder spec of the locked text side whose title vectors the images learn to match; "
        "default: the packaged MiniLM.",
    )
    epochs: int | None = Field(default=None, description="Passes over the catalog; default: the preset's.")
    batch_size: int | None = Field(default=None, description="Pairs per step; default: the preset's.")
    learning_rate: float = Field(default=2e-3, description="AdamW peak rate (one-cycle schedule).")
    image_size: int = Field(default=64, description="Side in pixels the images are resized to.")


@dg.asset(group_name=FEATURES_GROUP, deps=["items"], kinds={"pytorch"})
def image_encoder(
    context: dg.AssetExecutionContext,
    config: ImageEncoderConfig,
    duckdb: DuckDBResource,
    settings: PipelineSettings,
):
    """Train the image tower CLIP-style against the locked title vectors; held-out families' image->title
    Recall@10 before and after training, with the chance rate beside them."""
    from recommender.encoder_specs import build_encoder
    from recommender.image_encoders import ImageTowerShape
    from training.image_tower import ImageTowerConfig, fit_image_tower

    with duckdb.get_connection() as con:
        items = con.execute(IMAGE_ROWS).df()
    read = catalog_images(items, settings.paths.raw_dir, config.image_size)
    if len(read.images) < 2:
        context.log.warning(f"image tower not trained: {len(read.images)} items have a readable image")
        return dg.MaterializeResult(metadata={"trained": False, **image_problems_metadata(read)})
    budget = settings.budgets.image_tower
    tower_config = ImageTowerConfig(
        epochs=or_preset(config.epochs, budget.epochs),
        batch_size=or_preset(config.batch_size, budget.batch_size),
        learning_rate=config.learning_rate,
        shape=ImageTowerShape(image_size=config.image_size),
    )
    with user_errors():
        text_encoder = build_encoder(config.text_encoder, show_progress=False)
        result = fit_image_tower(
            items,
            read.images,
            text_encoder,
            settings.artifacts.image_encoder,
            tower_config,
            log=context.log.info,
        )
    return dg.MaterializeResult(metadata={**image_problems_metadata(read), **tower_metadata(result)})


def tower_metadata(result: "ImageTowerResult") -> dict:
    """The trained tower's figures as asset metadata (``training.image_tower.ImageTowerResult``)."""
    return {
        "trained": True,
        "encoder": result.spec,
        "text_encoder": result.text_encoder,
        "dim": result.dim,
        "train_items": result.train_items,
        "heldout_items": result.heldout_items,
        "heldout_families": result.heldout_families,
        "heldout_image_title_recall@10_before": rounded_metric(result.recall_before),
        "heldout_image_title_recall@10_after": rounded_metric(result.recall_after),
        "heldout_image_title_recall@10_chance": rounded_metric(result.chance_recall),
        "train_loss_by_epoch": dg.MetadataValue.json(result.loss_by_epoch),
        "heldout_recall_by_epoch": dg.MetadataValue.json(result.recall_by_epoch),
        "seconds": result.seconds,
    }


class ImageVectorsConfig(dg.Config):
    encoder: str = Field(
        default="",
        description="Image encoder spec; empty = the trained image tower (artifacts/image_encoder). "
        "'open_clip:ARCH@/path/to/checkpoint.pt' embeds with a real CLIP or SigLIP image tower.",
    )
    index_threshold: int = Field(
        default=DEFAULT_INDEX_THRESHOLD, description="Rows from which an IVF-PQ index is built."
    )
    batch_size: int = Field(default=256, description="Images per encoder batch.")


@dg.asset(group_name=FEATURES_GROUP, deps=["image_encoder", "items"], kinds={"lancedb"})
def item_image_vectors(
    context: dg.AssetExecutionContext,
    config: ImageVectorsConfig,
    duckdb: DuckDBResource,
    lancedb: LanceDBResource,
    settings: PipelineSettings,
):
    """Every readable item image embedded (item_id, category, image_path, image_sha256, vector); only new
    or changed image files are re-encoded (content hash of encoder weights + file bytes)."""
    from recommender.encoders import save_encoder_manifest
    from recommender.image_encoders import IMAGE_TOWER_SPEC, build_image_encoder

    with duckdb.get_connection() as con:
        items = con.execute(IMAGE_ROWS).df()
    if items["image_path"].isna().all():
        drop_image_vectors(lancedb.connect(), settings.artifacts.image_vectors_manifest)
        return dg.MaterializeResult(
            metadata={"table": ITEM_IMAGE_VECTORS, "rows": 0, "items_with_image_path": 0}
        )
    with user_errors():
        encoder = build_image_encoder(
            config.encoder or f"{IMAGE_TOWER_SPEC}:{settings.artifacts.image_encoder}",
            batch_size=config.batch_size,
        )
    read = catalog_images(items, settings.paths.raw_dir, encoder.image_size)
    if not read.digests:
        drop_image_vectors(lancedb.connect(), settings.artifacts.image_vectors_manifest)
        return dg.MaterializeResult(
            metadata={"table": ITEM_IMAGE_VECTORS, "rows": 0, **image_problems_metadata(read)}
        )
    written = write_image_vectors(lancedb.connect(), items, read, encoder, config.index_threshold)
    context.log.info(f"{ITEM_IMAGE_VECTORS}: {written.encoded} of {written.rows} images encoded")
    save_encoder_manifest(settings.artifacts.image_vectors_manifest, encoder, lancedb_version=written.version)
    return dg.MaterializeResult(
        metadata={**written.encoded_metadata(encoder.spec, encoder.dim), **image_problems_metadata(read)}
    )


image_vector_assets = [image_encoder, item_image_vectors]
