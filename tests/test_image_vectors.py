"""Image vectors: the image tower learns to match images with their titles (held-out recall rises far
above chance), the encoders keep the text encoders' interface, and the assets embed a user's own image
files into LanceDB, re-encoding only changed files, with a reason for every file they could not read."""

from __future__ import annotations

import shutil

import dagster as dg
import lancedb
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from assets.image_vectors import item_image_vectors
from assets.resources import PipelineSettings, pipeline_resources
from assets.vector_checks import item_image_vectors_check
from fashionrec.layout import ITEM_IMAGE_VECTORS
from recommender.image_encoders import ImageTowerShape, build_image_encoder, build_image_tower
from training.image_tower import ContrastivePair, ImageTowerConfig, heldout_mask, train_image_tower


def metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    [event] = [
        e
        for e in result.get_asset_materialization_events()
        if e.materialization.asset_key.to_user_string() == asset
    ]
    return {k: getattr(v, "value", v) for k, v in event.materialization.metadata.items()}


def test_the_tower_maps_images_to_the_text_dimension_and_refuses_a_size_it_cannot_halve():
    shape = ImageTowerShape(image_size=32, channels=(8, 16), hidden=32, dim=24)
    out = build_image_tower(shape)(torch.zeros(3, 3, 32, 32))
    assert out.shape == (3, 24)
    with pytest.raises(ValueError, match="multiple of 2"):
        ImageTowerShape(image_size=36, channels=(8, 16, 32))


def test_identical_images_are_each_others_positives_and_the_loss_falls():
    """Two pairs with the same pixels share their targets: a tower that cannot tell them apart loses
    nothing for it."""
    torch.manual_seed(0)
    shape = ImageTowerShape(image_size=16, channels=(8, 8), hidden=16, dim=8)
    pair = ContrastivePair(shape, text_dim=8, temperature=0.07)
    images = torch.randn(4, 3, 16, 16)
    images[1] = images[0]
    texts = torch.randn(4, 8)
    same = torch.eye(4)
    same[0, 1] = same[1, 0] = 1.0
    first = pair.loss(images, texts, same).item()
    optimizer = torch.optim.Adam(pair.parameters(), lr=1e-2)
    for _ in range(30):
        optimizer.zero_grad()
        pair.loss(images, texts, same).backward()
        optimizer.step()
    assert pair.loss(images, texts, same).item() < first / 2


def test_training_lifts_heldout_image_title_recall_far_above_chance():
    """A small world where the text tells the colour and the shape, as titles do: families held out."""
    rng = np.random.default_rng(0)
    colours, shapes, n = rng.uniform(-1, 1, size=(6, 3)), 4, 240
    colour, shape_of = rng.integers(0, 6, n), rng.integers(0, shapes, n)
    images = torch.full((n, 3, 16, 16), -1.0)
    for i in range(n):
        side = 4 + 3 * int(shape_of[i])
        images[i, :, :side, :side] = torch.tensor(colours[colour[i]], dtype=torch.float32)[:, None, None]
    texts = torch.from_numpy(
        np.concatenate([np.eye(6)[colour], np.eye(shapes)[shape_of], rng.normal(0, 0.05, (n, 6))], axis=1)
    ).float()
    parents = pd.Series([f"P{i // 4}" for i in range(n)])
    heldout = heldout_mask(parents, 25)
    assert 0 < heldout.sum() < n and not set(parents[heldout]) & set(parents[~heldout])
    config = ImageTowerConfig(
        epochs=15, batch_size=32, shape=ImageTowerShape(image_size=16, channels=(16, 32), hidden=64, dim=16)
    )
    _, figures = train_image_tower(images, texts, heldout, config, log=lambda _: None, device="cpu")
    chance = config.recall_k / heldout.sum()
    assert figures["recall_before"] < 3 * chance
    assert figures["recall_after"] > max(0.5, 3 * chance), figures


def test_an_open_clip_image_tower_behind_the_same_interface():
    encoder = build_image_encoder("open_clip:ViT-S-32", batch_size=2, device="cpu")
    vectors = encoder.encode_images(
        [Image.new("RGB", (40, 30), (200, 10, 10)), Image.new("RGB", (64, 64))] * 2
    )
    assert encoder.spec == "open_clip:ViT-S-32" and vectors.shape == (4, encoder.dim)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert len(encoder.fingerprint) == 32
    with pytest.raises(ValueError, match="unknown image encoder spec"):
        build_image_encoder("image_tower")


def test_the_tiny_run_trains_the_tower_and_embeds_every_item_image(tiny_pipeline):
    home = tiny_pipeline.home
    tower = tiny_pipeline.metadata("image_encoder")
    assert tower["trained"] and tower["images_read"] > 0 and tower["image_problems"] == 0
    assert tower["heldout_items"] > 0 and len(tower["train_loss_by_epoch"]) >= 1
    assert tower["heldout_image_title_recall@10_after"] > tower["heldout_image_title_recall@10_chance"]
    table = lancedb.connect(str(home / "lancedb")).open_table(ITEM_IMAGE_VECTORS).to_arrow()
    assert table.num_rows == tower["images_read"]
    vectors = np.stack(table.column("vector").to_numpy(zero_copy_only=False))
    assert vectors.shape[1] == tower["dim"]
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)


@pytest.fixture
def own_images(tiny_pipeline, tmp_path):
    """A copy of the tiny home whose raw images a user has edited: one file changed, one deleted, one
    replaced by text."""
    home = tmp_path / "home"
    shutil.copytree(tiny_pipeline.home, home, ignore=shutil.ignore_patterns("dagster_home"))
    images = sorted((home / "raw" / "images").glob("*.png"))
    Image.new("RGB", (50, 50), (255, 0, 0)).save(images[0])
    images[1].unlink()
    images[2].write_text("not a picture")
    settings = PipelineSettings(home=str(home), raw_dir=str(home / "raw"), preset="tiny")
    return home, [p.stem for p in images[:3]], pipeline_resources(settings)


def test_a_users_changed_missing_and_broken_files(own_images):
    home, (changed, missing, broken), resources = own_images
    result = dg.materialize(
        [item_image_vectors, item_image_vectors_check],
        resources=resources,
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    written = metadata(result, ITEM_IMAGE_VECTORS)
    assert written["image_problems"] == 2 and written["rows_encoded"] == 1  # only the changed file
    assert f"{missing}: images/{missing}.png (image file not found)" in written["image_problem_examples"]
    assert f"{broken}: images/{broken}.png (not an image Pillow can read" in written["image_problem_examples"]
    stored = set(
        lancedb.connect(str(home / "lancedb"))
        .open_table(ITEM_IMAGE_VECTORS)
        .to_arrow()["item_id"]
        .to_pylist()
    )
    assert changed in stored and missing not in stored and broken not in stored
    [check] = result.get_asset_check_evaluations()
    assert not check.passed and missing in check.metadata["problems"].value
