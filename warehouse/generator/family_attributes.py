"""What a family is like besides its subcategory: occasions, style adjectives, material, feature,
colors, price, popularity and style; and the price of each of its variants."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from warehouse.generator.brands import Brands
from warehouse.generator.catalog_families import MAX_COLORS, Families, Items
from warehouse.generator.vocabulary import (
    COLOR_INDEX,
    COLORS,
    MATERIAL_INDEX,
    OCCASION_INDEX,
    PALETTES,
    SIZE_SYSTEM_NAMES,
    STYLES,
    SUBCATEGORIES,
    Subcategory,
)

TIER_PRICE = np.array([0.65, 1.0, 1.7])  # budget, mid, premium brand price multipliers


@dataclass
class Attributes:
    occ_mask: np.ndarray  # bit i: OCCASIONS[i]
    adj_mask: np.ndarray  # bit i: the subcategory's adjectives[i]
    material: np.ndarray
    feature: np.ndarray  # index into the subcategory's features, -1 when the title names none
    colors: np.ndarray  # (n_families, MAX_COLORS) color indices, lead color first, -1 padded
    color_mask: np.ndarray  # bit c: COLOR_NAMES[c]
    price: np.ndarray
    log_pop: np.ndarray
    style: np.ndarray  # index into STYLES


def draw_attributes(
    rng: np.random.Generator, subcats: np.ndarray, fam: Families, fam_tier: np.ndarray, brands: Brands
) -> Attributes:
    """Per subcategory, the attributes its vocabulary offers; then popularity and style, which follow
    the brand."""
    n_fam = fam.n
    occ_mask = np.zeros(n_fam, dtype=np.int64)
    adj_mask = np.zeros(n_fam, dtype=np.int32)
    material = np.empty(n_fam, dtype=np.int16)
    colors = np.full((n_fam, MAX_COLORS), -1, dtype=np.int16)
    price = np.empty(n_fam)
    feature = np.full(n_fam, -1, dtype=np.int16)
    for s in subcats:
        sub = SUBCATEGORIES[s]
        rows = np.flatnonzero(fam.subcat == s)
        if rows.size == 0:
            continue
        occ_mask[rows] = _occasions(rng, sub, rows.size)
        adj_mask[rows] = _adjectives(rng, sub, rows.size)
        mats = np.array([MATERIAL_INDEX[m] for m in sub.materials])
        material[rows] = mats[rng.integers(0, mats.size, size=rows.size)]
        feature[rows] = np.where(
            rng.random(rows.size) < 0.6, rng.integers(0, len(sub.features), rows.size), -1
        )
        picked = _colors(rng, sub, fam.n_colors[rows])
        colors[rows, : picked.shape[1]] = picked
        lo, hi = sub.price
        base = np.exp(np.log(lo) + rng.random(rows.size) * (np.log(hi) - np.log(lo)))
        price[rows] = base * TIER_PRICE[fam_tier[rows]] * np.exp(0.1 * rng.standard_normal(rows.size))
    color_mask = np.zeros(n_fam, dtype=np.int64)
    for j in range(MAX_COLORS):
        c = colors[:, j]
        color_mask |= np.where(c >= 0, np.left_shift(1, np.maximum(c, 0).astype(np.int64)), 0)
    log_pop = (rng.normal(0.0, 1.0, size=n_fam) + 0.3 * brands.log_pop[brands.of_family]).astype(np.float32)
    # a brand keeps a house style for most of its products
    brand_style = rng.integers(0, len(STYLES), size=len(brands.names))
    style = np.where(
        rng.random(n_fam) < 0.6, brand_style[brands.of_family], rng.integers(0, len(STYLES), n_fam)
    )
    return Attributes(
        occ_mask=occ_mask,
        adj_mask=adj_mask,
        material=material,
        feature=feature,
        colors=colors,
        color_mask=color_mask,
        price=price,
        log_pop=log_pop,
        style=style.astype(np.int8),
    )


def _gumbel_order(rng: np.random.Generator, weights: np.ndarray) -> np.ndarray:
    """Per row, column indices in the order of a weighted draw without replacement (Gumbel top-k)."""
    with np.errstate(divide="ignore"):
        keys = np.log(weights) - np.log(-np.log(rng.random(weights.shape)))
    return np.argsort(-keys, axis=1, kind="stable")


def _occasions(rng: np.random.Generator, sub: Subcategory, n: int) -> np.ndarray:
    """Bit masks of 1-4 of the subcategory's occasions, the first-listed ones more often."""
    n_occ = len(sub.occasions)
    k = np.minimum(1 + rng.binomial(3, 0.45, size=n), n_occ)
    order = _gumbel_order(rng, np.broadcast_to(1 / np.sqrt(np.arange(1, n_occ + 1)), (n, n_occ)))
    occ_bits = np.array([1 << OCCASION_INDEX[o] for o in sub.occasions], dtype=np.int64)
    mask = np.zeros(n, dtype=np.int64)
    for j in range(min(4, n_occ)):
        mask |= np.where(j < k, occ_bits[order[:, j]], 0)
    return mask


def _adjectives(rng: np.random.Generator, sub: Subcategory, n: int) -> np.ndarray:
    """Bit masks of one of the subcategory's adjectives, sometimes two."""
    n_adj = len(sub.adjectives)
    order = _gumbel_order(rng, np.ones((n, n_adj)))
    return (1 << order[:, 0]) | np.where(rng.random(n) < 0.4, 1 << order[:, 1 % n_adj], 0)


def _colors(rng: np.random.Generator, sub: Subcategory, n_colors: np.ndarray) -> np.ndarray:
    """(families, slots) colors from the subcategory's palette, popular colors first, -1 past a family's
    number of colors."""
    color_pop = np.array([c[1] for c in COLORS])
    palette = np.array([COLOR_INDEX[c] for c in PALETTES[sub.palette]])
    order = _gumbel_order(rng, np.broadcast_to(color_pop[palette], (n_colors.size, palette.size)))
    ncol = min(palette.size, MAX_COLORS)
    picked = palette[order[:, :ncol]]
    return np.where(np.arange(ncol) < n_colors[:, None], picked, -1)


def item_prices(fam: Families, items: Items, fam_price: np.ndarray) -> np.ndarray:
    """Luggage grows more expensive with each size step; other variants share their family's price."""
    luggage = [SIZE_SYSTEM_NAMES.index("luggage"), SIZE_SYSTEM_NAMES.index("luggage_set")]
    step = np.where(np.isin(fam.size_system[items.family], luggage), 0.12, 0.0)
    price = fam_price[items.family] * (1 + step * items.size_slot)
    return np.floor(price) + 0.99
