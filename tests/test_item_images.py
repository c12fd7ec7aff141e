"""Product images: the generator draws one per item from what defines it, the raw-data contract names it
in ``image_path``, and a user's own image files are read with a reason for every one that is not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from recommender.item_images import MISSING_FILE, UNREADABLE, read_item_images
from warehouse.generator import PRESETS, generate
from warehouse.generator.item_images import BACKGROUND, IMAGE_SIZE, ItemLook, render_item_image


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("raw")
    generate(PRESETS["tiny"].with_(noise_share=0.0), out, seed=0)
    return out


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def shape_of(image: Image.Image) -> np.ndarray:
    """Where the product is: the pixels that are not background."""
    return np.any(pixels(image) != np.array(BACKGROUND), axis=2)


def test_every_generated_item_has_its_image_file_and_the_same_seed_draws_the_same(raw: Path, tmp_path):
    items = pq.read_table(raw / "items.parquet").to_pylist()
    assert all(row["image_path"] == f"images/{row['item_id']}.png" for row in items)
    read = read_item_images([(row["item_id"], row["image_path"]) for row in items], raw, IMAGE_SIZE)
    assert read.counts() == {"read": len(items), "without_path": 0, "problems": 0}

    generate(PRESETS["tiny"].with_(noise_share=0.0), tmp_path, seed=0)
    for row in items[:50]:
        assert (tmp_path / row["image_path"]).read_bytes() == (raw / row["image_path"]).read_bytes()


def test_variants_of_a_family_share_a_shape_and_differ_in_color(raw: Path):
    items = pq.read_table(raw / "items.parquet").to_pylist()
    by_family: dict[str, list[dict]] = {}
    for row in items:
        by_family.setdefault(row["parent_id"], []).append(row)
    compared = 0
    for variants in by_family.values():
        colors = {row["color"]: row for row in variants}
        if len(colors) < 2:
            continue
        first, second = list(colors.values())[:2]
        a, b = (Image.open(raw / row["image_path"]) for row in (first, second))
        assert (shape_of(a) == shape_of(b)).mean() > 0.97, (first["item_id"], second["item_id"])
        assert np.abs(pixels(a) - pixels(b)).sum() > 0, (first["color"], second["color"])
        compared += 1
    assert compared >= 10

    # another subcategory is another silhouette; another family of one subcategory, other proportions
    dress = ItemLook("F1", "Clothing", "Dresses", "Red", "Cotton")
    sneaker = ItemLook("F1", "Footwear", "Sneakers", "Red", "Cotton")
    other_dress = ItemLook("F2", "Clothing", "Dresses", "Red", "Cotton")
    assert (shape_of(render_item_image(dress)) != shape_of(render_item_image(sneaker))).mean() > 0.2
    assert (shape_of(render_item_image(dress)) != shape_of(render_item_image(other_dress))).any()


def test_the_material_shows_on_the_surface():
    knit = render_item_image(ItemLook("F1", "Clothing", "Sweaters", "Blue", "Knit"))
    plain = render_item_image(ItemLook("F1", "Clothing", "Sweaters", "Blue", "Polyester"))
    assert (shape_of(knit) == shape_of(plain)).all()
    assert np.abs(pixels(knit) - pixels(plain)).sum() > 0


def test_without_images_the_path_is_null(tmp_path: Path):
    small = PRESETS["tiny"].with_(noise_share=0.0, n_users=30, n_items=100, n_interactions=800)
    generate(small, tmp_path, images=False)
    items = pq.read_table(tmp_path / "items.parquet")
    assert items.column("image_path").null_count == items.num_rows
    assert not (tmp_path / "images").exists()


def test_a_users_own_image_files_are_read_and_each_bad_one_has_its_reason(tmp_path: Path):
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.new("RGB", (300, 400), (200, 30, 40)).save(photos / "red.jpg", quality=90)
    Image.new("RGBA", (120, 120), (0, 0, 255, 255)).save(tmp_path / "blue.png")  # absolute path below
    (photos / "broken.jpg").write_bytes(b"not an image")
    rows = [
        ("i1", "photos/red.jpg"),
        ("i2", str(tmp_path / "blue.png")),
        ("i3", None),
        ("i4", "photos/missing.jpg"),
        ("i5", "photos/broken.jpg"),
    ]
    read = read_item_images(rows, tmp_path, size=32)

    assert sorted(read.images) == ["i1", "i2"]
    assert all(image.size == (32, 32) and image.mode == "RGB" for image in read.images.values())
    red = pixels(read.images["i1"]).reshape(-1, 3).mean(axis=0)
    assert np.allclose(red, (200, 30, 40), atol=6)  # JPEG moves colors a little
    assert read.without_path == ["i3"]
    reasons = {item_id: reason for item_id, _, reason in read.problems}
    assert reasons["i4"] == MISSING_FILE and reasons["i5"].startswith(UNREADABLE)


def test_an_unknown_subcategory_takes_its_categorys_silhouette():
    from warehouse.generator.item_images import silhouette
    from warehouse.generator.vocabulary import CATEGORIES

    shapes = [
        silhouette(ItemLook("F1", category, "Not A Subcategory", None, None)) for category in CATEGORIES
    ]
    assert shapes == ["bag", "shoe", "clip", "top"]
