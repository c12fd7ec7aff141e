"""One product image per item, drawn from what defines the item.

An image is a flat product shot: the subcategory's silhouette (a sneaker, a dress, a suitcase ...) in the
item's color, with a surface cue of the family's material (ribs for knits, a twill for denim, a sheen for
leather and metals, a weave for canvas and straw), on a plain background. The geometry (proportions,
place) is drawn once per family from its parent id, so the variants of a family look alike and differ in
color, as product photos of one model do. Everything is a function of the item's row: the same catalog
gives the same pixels, whatever the seed of the rest of the log.

Images are small PNG files (``IMAGE_SIZE`` pixels square), written under the raw directory's
``IMAGES_DIR`` and named in the items file's ``image_path`` column, relative to the raw directory
(docs/raw-data.md). Drawn by hand with Pillow: no library renders product silhouettes from attributes.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
from PIL import Image, ImageDraw, ImageFilter

from warehouse.generator.vocabulary import CATEGORIES

IMAGE_SIZE = 64
IMAGES_DIR = "images"
BACKGROUND = (242, 242, 240)
OUTLINE = (96, 96, 100)  # a white product stays visible on the light background

COLOR_RGB: dict[str, tuple[int, int, int]] = {
    "Black": (28, 28, 30),
    "White": (250, 250, 250),
    "Navy": (30, 40, 90),
    "Gray": (128, 128, 132),
    "Beige": (222, 200, 165),
    "Brown": (110, 70, 40),
    "Red": (200, 30, 40),
    "Pink": (240, 150, 180),
    "Blue": (40, 90, 200),
    "Light Blue": (150, 195, 235),
    "Green": (40, 140, 60),
    "Olive": (110, 115, 50),
    "Burgundy": (120, 20, 45),
    "Khaki": (190, 175, 120),
    "Purple": (120, 60, 160),
    "Yellow": (245, 210, 40),
    "Orange": (245, 130, 30),
    "Leopard": (205, 160, 90),  # spotted below
    "Floral": (245, 240, 230),  # flowers below
    "Teal": (0, 128, 128),
    "Gold": (212, 175, 55),
    "Silver": (192, 192, 200),
    "Rose Gold": (215, 150, 135),
    "Multicolor": (200, 60, 60),  # striped below
}
UNKNOWN_COLOR = (150, 150, 150)

# a polygon (points in the unit square, y down) or an ellipse ("ellipse", x0, y0, x1, y1); a ring is an
# ellipse with a hole (the background drawn inside it)
Shape = tuple
# fmt: off
SILHOUETTES: dict[str, tuple[Shape, ...]] = {
    "suitcase": (
        ((0.28, 0.18), (0.72, 0.18), (0.72, 0.86), (0.28, 0.86)),
        ((0.42, 0.08), (0.58, 0.08), (0.58, 0.18), (0.42, 0.18)),
    ),
    "backpack": (("ellipse", 0.3, 0.1, 0.7, 0.4), ((0.3, 0.25), (0.7, 0.25), (0.74, 0.88), (0.26, 0.88))),
    "bag": (
        ((0.2, 0.42), (0.8, 0.42), (0.86, 0.86), (0.14, 0.86)),
        ((0.36, 0.42), (0.4, 0.2), (0.6, 0.2), (0.64, 0.42), (0.58, 0.42), (0.56, 0.27), (0.44, 0.27),
         (0.42, 0.42)),
    ),
    "shoe": (((0.1, 0.55), (0.45, 0.5), (0.62, 0.62), (0.9, 0.68), (0.92, 0.78), (0.1, 0.78)),),
    "boot": (((0.3, 0.12), (0.58, 0.12), (0.6, 0.58), (0.88, 0.68), (0.9, 0.82), (0.3, 0.82)),),
    "heel": (
        ((0.12, 0.42), (0.3, 0.62), (0.88, 0.7), (0.88, 0.78), (0.3, 0.72), (0.2, 0.86), (0.14, 0.86),
         (0.16, 0.66)),
    ),
    "sandal": (
        ((0.12, 0.68), (0.9, 0.68), (0.9, 0.78), (0.12, 0.78)),
        ((0.35, 0.5), (0.6, 0.5), (0.62, 0.68), (0.33, 0.68)),
    ),
    "ring": (("ring", 0.22, 0.22, 0.78, 0.78),),
    "necklace": (("ring", 0.18, 0.1, 0.82, 0.72), ("ellipse", 0.42, 0.66, 0.58, 0.86)),
    "earrings": (("ellipse", 0.2, 0.4, 0.4, 0.7), ("ellipse", 0.6, 0.4, 0.8, 0.7)),
    "watch": (((0.4, 0.08), (0.6, 0.08), (0.6, 0.92), (0.4, 0.92)), ("ellipse", 0.28, 0.3, 0.72, 0.7)),
    "sunglasses": (
        ("ellipse", 0.1, 0.38, 0.46, 0.66),
        ("ellipse", 0.54, 0.38, 0.9, 0.66),
        ((0.44, 0.44), (0.56, 0.44), (0.56, 0.5), (0.44, 0.5)),
    ),
    "cap": (("ellipse", 0.22, 0.3, 0.78, 0.8), ((0.5, 0.6), (0.92, 0.62), (0.92, 0.7), (0.5, 0.72))),
    "strip": (((0.1, 0.42), (0.9, 0.42), (0.9, 0.58), (0.1, 0.58)),),
    "scarf": (((0.3, 0.1), (0.7, 0.1), (0.62, 0.9), (0.48, 0.9), (0.5, 0.3), (0.4, 0.3)),),
    "tie": (((0.44, 0.1), (0.56, 0.1), (0.6, 0.2), (0.64, 0.78), (0.5, 0.92), (0.36, 0.78), (0.4, 0.2)),),
    "glove": (
        ((0.3, 0.9), (0.3, 0.4), (0.22, 0.3), (0.34, 0.24), (0.36, 0.1), (0.66, 0.1), (0.7, 0.45),
         (0.7, 0.9)),
    ),
    "wallet": (((0.18, 0.3), (0.82, 0.3), (0.82, 0.72), (0.18, 0.72)),),
    "clip": (("ellipse", 0.2, 0.38, 0.8, 0.62),),
    "tank": (((0.35, 0.1), (0.42, 0.1), (0.5, 0.22), (0.58, 0.1), (0.65, 0.1), (0.7, 0.9), (0.3, 0.9)),),
    "top": (
        ((0.32, 0.1), (0.68, 0.1), (0.92, 0.3), (0.82, 0.42), (0.7, 0.34), (0.7, 0.9), (0.3, 0.9),
         (0.3, 0.34), (0.18, 0.42), (0.08, 0.3)),
    ),
    "coat": (
        ((0.32, 0.06), (0.68, 0.06), (0.9, 0.24), (0.92, 0.8), (0.8, 0.8), (0.74, 0.36), (0.76, 0.96),
         (0.24, 0.96), (0.26, 0.36), (0.2, 0.8), (0.08, 0.8), (0.1, 0.24)),
    ),
    "dress": (((0.38, 0.06), (0.62, 0.06), (0.64, 0.36), (0.86, 0.94), (0.14, 0.94), (0.36, 0.36)),),
    "skirt": (((0.32, 0.2), (0.68, 0.2), (0.86, 0.84), (0.14, 0.84)),),
    "pants": (
        ((0.28, 0.08), (0.72, 0.08), (0.76, 0.94), (0.56, 0.94), (0.5, 0.36), (0.44, 0.94), (0.24, 0.94)),
    ),
    "shorts": (
        ((0.24, 0.2), (0.76, 0.2), (0.82, 0.7), (0.56, 0.72), (0.5, 0.46), (0.44, 0.72), (0.18, 0.7)),
    ),
}
# fmt: on
SUBCATEGORY_SILHOUETTE = {
    "Suitcases": "suitcase",
    "Luggage Sets": "suitcase",
    "Backpacks": "backpack",
    "Laptop Bags": "wallet",
    "Handbags": "bag",
    "Crossbody Bags": "bag",
    "Tote Bags": "bag",
    "Duffel Bags": "bag",
    "Beach Bags": "bag",
    "Sneakers": "shoe",
    "Flats": "shoe",
    "Loafers": "shoe",
    "Slippers": "shoe",
    "Boots": "boot",
    "Ankle Boots": "boot",
    "Snow Boots": "boot",
    "Rain Boots": "boot",
    "Sandals": "sandal",
    "Flip Flops": "sandal",
    "Heels": "heel",
    "Necklaces": "necklace",
    "Earrings": "earrings",
    "Bracelets": "ring",
    "Rings": "ring",
    "Watches": "watch",
    "Sunglasses": "sunglasses",
    "Baseball Caps": "cap",
    "Beanies": "cap",
    "Scarves": "scarf",
    "Gloves": "glove",
    "Belts": "strip",
    "Wallets": "wallet",
    "Hair Accessories": "clip",
    "Ties": "tie",
    "Tank Tops": "tank",
    "Swimwear": "tank",
    "Blouses": "top",
    "T-Shirts": "top",
    "Hoodies": "top",
    "Sweaters": "top",
    "Cardigans": "top",
    "Pajamas": "top",
    "Costumes": "top",
    "Coats": "coat",
    "Jackets": "coat",
    "Blazers": "coat",
    "Dresses": "dress",
    "Skirts": "skirt",
    "Jeans": "pants",
    "Leggings": "pants",
    "Shorts": "shorts",
}  # fmt: skip
CATEGORY_SILHOUETTE = dict(zip(CATEGORIES, ("bag", "shoe", "clip", "top"), strict=True))
MATERIAL_SURFACE = {
    "Knit": "ribs", "Wool": "ribs", "Cashmere": "ribs", "Fleece": "ribs", "Denim": "twill",
    "Leather": "sheen", "Faux Leather": "sheen", "PU Leather": "sheen", "Satin": "sheen", "Silk": "sheen",
    "Sterling Silver": "sheen", "14K Gold Plated": "sheen", "Stainless Steel": "sheen", "Aluminum": "sheen",
    "Polycarbonate": "sheen", "ABS": "sheen", "Canvas": "weave", "Linen": "weave", "Straw": "weave",
    "Mesh": "dots",
}  # fmt: skip


@dataclass(frozen=True)
class ItemLook:
    """What an item's image is drawn from."""

    family: str  # parent id: the geometry, shared by a family's variants
    category: str | None
    subcategory: str | None
    color: str | None
    material: str | None


def render_item_image(look: ItemLook, size: int = IMAGE_SIZE) -> Image.Image:
    """The item's image, an RGB square of ``size`` pixels."""
    draw_seed = zlib.crc32(look.family.encode())  # stable across processes, unlike hash()
    scale_x = 0.86 + (draw_seed % 17) / 16 * 0.24  # the family's proportions
    scale_y = 0.9 + (draw_seed >> 5) % 11 / 10 * 0.14
    shift = ((draw_seed >> 9) % 7 - 3) / 100

    def place(x: float, y: float) -> tuple[float, float]:
        return ((0.5 + (x - 0.5) * scale_x + shift) * size, (0.5 + (y - 0.5) * scale_y) * size)

    mask = Image.new("L", (size, size), 0)
    pen = ImageDraw.Draw(mask)
    for shape in SILHOUETTES[silhouette(look)]:
        if isinstance(shape[0], str):
            kind, x0, y0, x1, y1 = shape
            box = [*place(x0, y0), *place(x1, y1)]
            pen.ellipse(box, fill=255)
            if kind == "ring":
                inset = 0.22 * (box[2] - box[0])
                pen.ellipse([box[0] + inset, box[1] + inset, box[2] - inset, box[3] - inset], fill=0)
        else:
            pen.polygon([place(x, y) for x, y in shape], fill=255)
    image = Image.new("RGB", (size, size), BACKGROUND)
    image.paste(OUTLINE, mask=mask.filter(ImageFilter.MaxFilter(3)))
    image.paste(_surface(look, size, draw_seed), mask=mask)
    return image


def silhouette(look: ItemLook) -> str:
    """The name of the item's silhouette: its subcategory's, else its category's, else a top."""
    return SUBCATEGORY_SILHOUETTE.get(look.subcategory or "") or CATEGORY_SILHOUETTE.get(
        look.category or "", "top"
    )


def _surface(look: ItemLook, size: int, draw_seed: int) -> Image.Image:
    """The item's color with its color pattern (leopard, floral, multicolor) and its material's cue."""
    base = COLOR_RGB.get(look.color or "", UNKNOWN_COLOR)
    surface = Image.new("RGB", (size, size), base)
    pen = ImageDraw.Draw(surface)
    step = max(3, size // 10)
    shade = tuple(max(0, c - 40) for c in base)
    light = tuple(min(255, c + 60) for c in base)
    if look.color == "Leopard":
        for n in range(0, size * size // (step * step)):
            x, y = (n * 37 + draw_seed) % size, (n * 53 + draw_seed // 7) % size
            pen.ellipse([x, y, x + step // 2 + 1, y + step // 3 + 1], fill=(70, 45, 25))
    elif look.color == "Floral":
        for x in range(step // 2, size, step * 2):
            for y in range(step // 2, size, step * 2):
                pen.ellipse([x, y, x + step, y + step], fill=(220, 70, 110) if (x + y) % 3 else (90, 160, 80))
    elif look.color == "Multicolor":
        palette = ((200, 60, 60), (240, 200, 50), (60, 150, 80), (50, 90, 200))
        for n, y in enumerate(range(0, size, step)):
            pen.rectangle([0, y, size, y + step], fill=palette[n % len(palette)])
    cue = MATERIAL_SURFACE.get(look.material or "")
    if cue == "ribs":
        for x in range(0, size, step // 2 + 1):
            pen.line([x, 0, x, size], fill=shade, width=1)
    elif cue == "twill":
        for x in range(-size, size, step // 2 + 1):
            pen.line([x, size, x + size, 0], fill=shade, width=1)
    elif cue == "sheen":
        pen.polygon([(size * 0.3, 0), (size * 0.45, 0), (size * 0.25, size), (size * 0.1, size)], fill=light)
    elif cue == "weave":
        for v in range(0, size, step):
            pen.line([v, 0, v, size], fill=shade)
            pen.line([0, v, size, v], fill=shade)
    elif cue == "dots":
        for x in range(1, size, step // 2 + 1):
            for y in range(1, size, step // 2 + 1):
                pen.point((x, y), fill=shade)
    return surface


def looks(items: pa.Table) -> list[ItemLook]:
    """Each row's look (``items``: the items table with parent_id, category, subcategory, color, material)."""
    names = ("parent_id", "category", "subcategory", "color", "material")
    columns = {name: items.column(name).to_pylist() for name in names}
    return [
        ItemLook(family, category, subcategory, color, material)
        for family, category, subcategory, color, material in zip(*columns.values(), strict=True)
    ]


def write_item_images(items: pa.Table, raw_dir: Path, size: int = IMAGE_SIZE) -> pa.Array:
    """Draw every item's image into ``raw_dir``/``IMAGES_DIR``/<item_id>.png, each file atomically; return
    the ``image_path`` column (relative to ``raw_dir``)."""
    folder = raw_dir / IMAGES_DIR
    folder.mkdir(parents=True, exist_ok=True)
    paths: list[str] = []
    for item_id, look in zip(items.column("item_id").to_pylist(), looks(items), strict=True):
        name = f"{item_id}.png"
        tmp = folder / f".{name}.tmp"
        render_item_image(look, size).save(tmp, format="PNG", optimize=False)
        os.replace(tmp, folder / name)
        paths.append(f"{IMAGES_DIR}/{name}")
    return pa.array(paths, type=pa.string())
