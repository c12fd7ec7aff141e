"""Reading the items' product images named by the ``image_path`` column of the ``items`` mart.

A path is absolute or relative to the raw directory (docs/raw-data.md); any format Pillow opens works
(PNG, JPEG, WebP ...), converted to RGB and resized to a square. An item without a path has no image; a
path that names no file, or a file Pillow cannot open, is reported with its reason beside the images
that were read, never dropped in silence and never fatal for the others.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError

MISSING_FILE = "image file not found"
UNREADABLE = "not an image Pillow can read"


@dataclass
class ItemImages:
    images: dict[str, Image.Image] = field(default_factory=dict)  # item id -> RGB image, size x size
    digests: dict[str, str] = field(default_factory=dict)  # item id -> SHA-256 of its file's bytes
    without_path: list[str] = field(default_factory=list)  # items with no image_path
    problems: list[tuple[str, str, str]] = field(default_factory=list)  # (item id, path, reason)

    def counts(self) -> dict[str, int]:
        return {
            "read": len(self.images),
            "without_path": len(self.without_path),
            "problems": len(self.problems),
        }


def resolve(image_path: str, raw_dir: Path) -> Path:
    """``image_path`` as a file path: as it is when absolute, else under ``raw_dir``."""
    path = Path(image_path).expanduser()
    return path if path.is_absolute() else Path(raw_dir) / path


def read_item_images(rows: Iterable[tuple[str, str | None]], raw_dir: Path, size: int) -> ItemImages:
    """The images of ``rows`` (item id, image_path), each an RGB square of ``size`` pixels."""
    result = ItemImages()
    for item_id, image_path in rows:
        if not image_path:
            result.without_path.append(item_id)
            continue
        path = resolve(image_path, raw_dir)
        if not path.is_file():
            result.problems.append((item_id, image_path, MISSING_FILE))
            continue
        data = path.read_bytes()
        try:
            with Image.open(io.BytesIO(data)) as image:
                result.images[item_id] = image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
        except (UnidentifiedImageError, OSError) as error:
            result.problems.append((item_id, image_path, f"{UNREADABLE}: {error}"))
            continue
        result.digests[item_id] = hashlib.sha256(data).hexdigest()
    return result
