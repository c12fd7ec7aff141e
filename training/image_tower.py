"""The embedded image encoder: a small image tower trained CLIP-style against the catalog titles.

No image weights can be downloaded here, so the default image vectors come from a tower trained on the
catalog's own (image, title) pairs: the symmetric InfoNCE loss of CLIP (Radford et al. 2021) with a
learnable temperature, the text side the packaged MiniLM, locked (the reverse of LiT, Zhai et al. 2022:
the pretrained side is the text one), with a linear head on its title vectors that starts as the identity.
Items whose images are pixel for pixel the same (a family's sizes in one colour) are each other's
positives, not negatives.

Quality is image -> title Recall@10 on held-out families: each held-out item's image ranks the titles of
every held-out item, and a hit is its own title in the top 10; reported before training (the seeded random
tower) and after, with the chance rate (10 / held-out items) beside them. Families, not items, are held
out, so a score cannot come from a sibling seen in training.
"""

from __future__ import annotations

import hashlib
import math
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from recommender.encoders import TextEncoder, default_device
from recommender.image_encoders import ImageTowerShape, build_image_tower, pixels, save_image_tower
from recommender.metrics import rank_of_target, recall_at_k


@dataclass
class ImageTowerConfig:
    epochs: int = 12
    batch_size: int = 256  # CLIP's loss wants large batches: each pair's negatives are the batch
    learning_rate: float = 2e-3
    weight_decay: float = 0.05
    temperature: float = 0.07  # CLIP's initial temperature; learnt, its inverse capped at 100 as in CLIP
    holdout_percent: int = 10  # families held out for the recall figure
    recall_k: int = 10
    seed: int = 0
    shape: ImageTowerShape = field(default_factory=ImageTowerShape)


@dataclass
class ImageTowerResult:
    spec: str
    dim: int
    text_encoder: str
    train_items: int
    heldout_items: int
    heldout_families: int
    recall_before: float
    recall_after: float
    chance_recall: float
    loss_by_epoch: list[float]
    recall_by_epoch: list[float]
    seconds: float

    def record(self) -> dict:
        return asdict(self)


class ContrastivePair(nn.Module):
    """The image tower, the linear head on the locked text vectors, and the learnt temperature."""

    def __init__(self, shape: ImageTowerShape, text_dim: int, temperature: float) -> None:
        super().__init__()
        self.tower = build_image_tower(shape)
        self.text_head = nn.Linear(text_dim, shape.dim, bias=False)
        if text_dim == shape.dim:
            nn.init.eye_(self.text_head.weight)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature)))

    def embed(self, images: torch.Tensor, texts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return F.normalize(self.tower(images), dim=-1), F.normalize(self.text_head(texts), dim=-1)

    def loss(self, images: torch.Tensor, texts: torch.Tensor, same_image: torch.Tensor) -> torch.Tensor:
        """Symmetric InfoNCE; ``same_image`` [b, b] marks the pairs whose images are identical (targets
        shared between them)."""
        image_vectors, text_vectors = self.embed(images, texts)
        logits = self.logit_scale.exp().clamp(max=100.0) * image_vectors @ text_vectors.T
        targets = same_image / same_image.sum(dim=1, keepdim=True)
        return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2


def heldout_mask(parent_ids: pd.Series, percent: int) -> np.ndarray:
    """Families held out by a CRC of their parent id (stable across runs and catalog edits); none when
    that would leave no family on one side."""
    buckets = np.array([zlib.crc32(str(p).encode()) % 100 for p in parent_ids])
    mask = buckets < percent
    return mask if 0 < mask.sum() < len(mask) else np.zeros(len(mask), dtype=bool)


def image_keys(batch: torch.Tensor) -> np.ndarray:
    """One key per image, equal exactly when the pixels are."""
    digests = [hashlib.blake2b(image.numpy().tobytes(), digest_size=8).hexdigest() for image in batch]
    return pd.factorize(pd.Series(digests))[0]


@torch.inference_mode()
def image_title_recall(pair: ContrastivePair, images: torch.Tensor, texts: torch.Tensor, k: int) -> float:
    """Each image ranks every text of the set; a hit is its own in the top ``k``."""
    if len(images) == 0:
        return float("nan")
    was_training = pair.training
    pair.eval()
    image_vectors = torch.cat([pair.embed(chunk, texts[:1])[0] for chunk in images.split(512)])
    text_vectors = pair.embed(images[:1], texts)[1]
    pair.train(was_training)
    scores = (image_vectors @ text_vectors.T).cpu().numpy()
    return recall_at_k(rank_of_target(scores, np.arange(len(images))), k)


def train_image_tower(
    images: torch.Tensor,
    texts: torch.Tensor,
    heldout: np.ndarray,
    config: ImageTowerConfig,
    log: Callable[[str], object] = print,
    device: str | None = None,
) -> tuple[ContrastivePair, dict]:
    """Train on the rows not ``heldout``; recall on the held-out ones before, after and at each epoch."""
    device = device or default_device()
    torch.manual_seed(config.seed)
    pair = ContrastivePair(config.shape, texts.shape[1], config.temperature).to(device)
    keys = torch.from_numpy(image_keys(images))
    train = torch.from_numpy(np.flatnonzero(~heldout))
    test_images, test_texts = images[heldout].to(device), texts[heldout].to(device)
    recall = lambda: image_title_recall(pair, test_images, test_texts, config.recall_k)  # noqa: E731
    before = recall()
    log(f"image tower: held-out image->title recall@{config.recall_k} before training {before:.4f}")
    optimizer = torch.optim.AdamW(
        pair.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    steps_per_epoch = max(1, math.ceil(len(train) / config.batch_size))
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, config.learning_rate, total_steps=steps_per_epoch * config.epochs, pct_start=0.1
    )
    generator = torch.Generator().manual_seed(config.seed)
    losses, recalls = [], []
    for epoch in tqdm(range(config.epochs), desc="image tower", unit="epoch"):
        order = train[torch.randperm(len(train), generator=generator)]
        total = 0.0
        for batch in order.split(config.batch_size):
            batch_keys = keys[batch]
            same = (batch_keys[:, None] == batch_keys[None, :]).float().to(device)
            loss = pair.loss(images[batch].to(device), texts[batch].to(device), same)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(batch)
        losses.append(round(total / max(1, len(train)), 4))
        recalls.append(round(recall(), 4))
        log(f"image tower: epoch {epoch + 1} loss {losses[-1]:.4f}, held-out recall {recalls[-1]:.4f}")
    return pair, {
        "recall_before": before,
        "recall_after": recall(),
        "loss_by_epoch": losses,
        "recall_by_epoch": recalls,
    }


def fit_image_tower(
    items: pd.DataFrame,
    images: dict,
    text_encoder: TextEncoder,
    out_dir: Path,
    config: ImageTowerConfig,
    log: Callable[[str], object] = print,
) -> ImageTowerResult:
    """Train the tower on ``items`` (item_id, parent_id, title) that have an image in ``images`` (item id ->
    PIL image), save it to ``out_dir`` and return its record."""
    start = time.perf_counter()
    rows = items[items["item_id"].isin(images.keys())].reset_index(drop=True)
    if len(rows) < 2:
        raise ValueError(f"the image tower needs at least 2 items with an image; {len(rows)} have one")
    batch = pixels([images[item] for item in rows["item_id"]], config.shape.image_size)
    texts = torch.from_numpy(text_encoder.encode(rows["title"].fillna("").tolist()))
    heldout = heldout_mask(rows["parent_id"], config.holdout_percent)
    pair, figures = train_image_tower(batch, texts, heldout, config, log)
    result = ImageTowerResult(
        spec="",
        dim=config.shape.dim,
        text_encoder=text_encoder.spec,
        train_items=int((~heldout).sum()),
        heldout_items=int(heldout.sum()),
        heldout_families=int(rows.loc[heldout, "parent_id"].nunique()),
        chance_recall=float(min(1.0, config.recall_k / heldout.sum())) if heldout.any() else float("nan"),
        seconds=0.0,
        **figures,
    )
    result.seconds = round(time.perf_counter() - start, 2)
    record = {k: v for k, v in result.record().items() if k != "spec"}
    result.spec = save_image_tower(out_dir, pair.tower.cpu(), config.shape, training=record)
    return result
