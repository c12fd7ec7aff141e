"""The catalog's images as the feature assets use them: read from the ``items`` mart's rows, embedded
into ``item_image_vectors`` (one row per item with a readable image, re-encoding only changed files), and
what was not read, as asset metadata."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from fashionrec.layout import ITEM_IMAGE_VECTORS
from recommender.item_images import ItemImages, read_item_images
from recommender.vector_store import WriteResult, refresh_vectors, table_exists

if TYPE_CHECKING:
    import lancedb

    from recommender.image_encoders import ImageEncoder

DIGEST_COLUMN = "image_sha256"
PROBLEMS_SHOWN = 20


def catalog_images(items: pd.DataFrame, raw_dir: Path, size: int) -> ItemImages:
    """The images of the ``items`` rows (item_id, image_path), squares of ``size`` pixels."""
    return read_item_images(items[["item_id", "image_path"]].itertuples(index=False), raw_dir, size)


def image_problems_metadata(read: ItemImages) -> dict:
    """Counts of read / pathless / unreadable images and the first unreadable ones with their reasons."""
    shown = [f"{item}: {path} ({reason})" for item, path, reason in read.problems[:PROBLEMS_SHOWN]]
    return {
        "images_read": len(read.images),
        "items_without_image_path": len(read.without_path),
        "image_problems": len(read.problems),
        "image_problem_examples": "\n".join(shown) or "none",
    }


def write_image_vectors(
    db: lancedb.DBConnection,
    items: pd.DataFrame,
    read: ItemImages,
    encoder: ImageEncoder,
    index_threshold: int,
) -> WriteResult:
    """``item_image_vectors`` made to hold one row per item of ``read`` (item_id, category, image_path,
    image_sha256, vector); a row is re-encoded only when its file's bytes or the encoder changed."""
    rows = items[items["item_id"].isin(read.digests.keys())][["item_id", "category", "image_path"]]
    rows = rows.assign(**{DIGEST_COLUMN: rows["item_id"].map(read.digests)})
    image_of = {read.digests[item]: image for item, image in read.images.items()}
    return refresh_vectors(
        db,
        ITEM_IMAGE_VECTORS,
        rows,
        key="item_id",
        text_column=DIGEST_COLUMN,
        encode=lambda digests: encoder.encode_images([image_of[d] for d in digests]),
        fingerprint=encoder.fingerprint,
        index_threshold=index_threshold,
    )


def drop_image_vectors(db: lancedb.DBConnection, manifest: Path) -> None:
    """No item has an image: no table and no manifest, so no reader takes stale vectors for current."""
    if table_exists(db, ITEM_IMAGE_VECTORS):
        db.drop_table(ITEM_IMAGE_VECTORS)
    manifest.unlink(missing_ok=True)
