"""Product families and their color x size variants: each family's subcategory, gender, size run and
number of colors, drawn until the families hold the preset's item count, and the items they expand to."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from warehouse.generator.presets import GeneratorPreset
from warehouse.generator.vocabulary import (
    CATEGORIES,
    PALETTES,
    SIZE_SYSTEM_NAMES,
    SIZE_SYSTEMS,
    SUBCATEGORIES,
)

MAX_COLORS = 10

# Catalog share of each category when a preset mixes them (illustrative; Amazon fashion is apparel-heavy).
CATEGORY_SHARE = {"Clothing": 0.40, "Footwear": 0.22, "Accessories & Jewelry": 0.22, "Luggage & Bags": 0.16}
# Mean number of extra colors per family beyond the first, per category (design choice: the paper's
# Figure 1 shows a dress with 30 colors; most families have a handful).
EXTRA_COLORS = {"Clothing": 2.2, "Footwear": 1.8, "Accessories & Jewelry": 1.5, "Luggage & Bags": 2.5}
# Number of consecutive sizes a family is sold in: (choices, probabilities) per size system.
SIZE_RUNS: dict[str, tuple[tuple[int, ...], tuple[float, ...]]] = {
    "letter": ((4, 5, 6), (0.3, 0.4, 0.3)),
    "shoe_women": ((7, 9, 11, 13), (0.2, 0.3, 0.3, 0.2)),
    "shoe_men": ((7, 9, 11, 13), (0.2, 0.3, 0.3, 0.2)),
    "ring": ((4, 5, 6), (0.3, 0.3, 0.4)),
    "luggage": ((1, 2, 3), (0.35, 0.2, 0.45)),
    "luggage_set": ((1, 2), (0.6, 0.4)),
    "laptop": ((1, 2, 3), (0.4, 0.4, 0.2)),
    "bag": ((1, 2, 3), (0.5, 0.3, 0.2)),
    "chain": ((1, 2, 3), (0.5, 0.2, 0.3)),
    "one": ((1,), (1.0,)),
}


@dataclass
class Families:
    """Per family: what it is and where its items lie (contiguous, color-major)."""

    subcat: np.ndarray
    category: np.ndarray
    gender: np.ndarray
    size_system: np.ndarray
    size_start: np.ndarray  # first size of the family's run within its size system
    n_sizes: np.ndarray
    n_colors: np.ndarray
    n_items: np.ndarray  # n_colors * n_sizes except for the last family, cut to hit n_items
    item_start: np.ndarray

    @property
    def n(self) -> int:
        return self.subcat.size


@dataclass
class Items:
    """Per item: its family, color and place in the family's size run."""

    family: np.ndarray
    color: np.ndarray
    size_slot: np.ndarray  # within the family's run
    size: np.ndarray  # index into the family's size system


def draw_families(
    preset: GeneratorPreset,
    subcats: np.ndarray,
    sub_cat: np.ndarray,
    present: list[int],
    rng: np.random.Generator,
) -> Families:
    """Families of the in-scope ``subcats`` (of categories ``sub_cat``; ``present`` lists those
    categories), drawn in batches until their variants hold ``preset.n_items`` items."""
    sub_weight = _subcategory_weights(subcats, sub_cat, present)
    batches = []
    total = 0
    while total < preset.n_items:
        batch = _draw_batch(preset, subcats, sub_weight, max(64, int((preset.n_items - total) / 4)), rng)
        batches.append(batch)
        *_, batch_sizes, batch_colors = batch
        total += int((batch_colors.astype(np.int64) * batch_sizes).sum())
    sl, gender, size_system, n_sizes, n_colors = (np.concatenate(cols) for cols in zip(*batches, strict=True))
    sizes_full = n_colors.astype(np.int64) * n_sizes
    ends = np.cumsum(sizes_full)
    n_fam = int(np.searchsorted(ends, preset.n_items) + 1)
    sl, gender, size_system = sl[:n_fam], gender[:n_fam], size_system[:n_fam]
    n_sizes, n_colors = n_sizes[:n_fam], n_colors[:n_fam]
    n_items = sizes_full[:n_fam].copy()
    n_items[-1] -= int(ends[n_fam - 1] - preset.n_items)
    # size window within the system
    sys_len = np.array([len(SIZE_SYSTEMS[n]) for n in SIZE_SYSTEM_NAMES])[size_system]
    size_start = (rng.random(n_fam) * (sys_len - n_sizes + 1)).astype(np.int16)
    return Families(
        subcat=subcats[sl].astype(np.int16),
        category=sub_cat[sl].astype(np.int8),
        gender=gender,
        size_system=size_system,
        size_start=size_start,
        n_sizes=n_sizes,
        n_colors=n_colors,
        n_items=n_items,
        item_start=np.concatenate([[0], np.cumsum(n_items)[:-1]]),
    )


def _subcategory_weights(subcats: np.ndarray, sub_cat: np.ndarray, present: list[int]) -> np.ndarray:
    """Draw weight of each subcategory: its share within its category times the category's share."""
    cat_share = np.array([CATEGORY_SHARE[CATEGORIES[c]] for c in present])
    cat_share = dict(zip(present, cat_share / cat_share.sum(), strict=True))
    sub_weight = np.array([SUBCATEGORIES[s].share for s in subcats], dtype=float)
    for c in present:
        in_c = sub_cat == c
        sub_weight[in_c] *= cat_share[c] / sub_weight[in_c].sum()
    return sub_weight


def _draw_batch(
    preset: GeneratorPreset, subcats: np.ndarray, sub_weight: np.ndarray, batch: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(subcategory as an index into ``subcats``, gender, size system, number of sizes, number of colors)
    of ``batch`` families."""
    sl = rng.choice(subcats.size, size=batch, p=sub_weight)
    g = np.empty(batch, dtype=np.int8)
    system = np.empty(batch, dtype=np.int8)
    n_sizes = np.empty(batch, dtype=np.int16)
    n_colors = np.empty(batch, dtype=np.int16)
    for local in np.unique(sl):
        sub = SUBCATEGORIES[subcats[local]]
        rows = np.flatnonzero(sl == local)
        g[rows] = rng.choice(3, size=rows.size, p=np.array(sub.genders) / sum(sub.genders))
        names = np.array([sub.sizes] * rows.size, dtype=object)
        if sub.sizes == "shoe_women":
            names[g[rows] != 0] = "shoe_men"
        for sys_name in np.unique(names):
            r = rows[names == sys_name]
            system[r] = SIZE_SYSTEM_NAMES.index(sys_name)
            choices, probs = SIZE_RUNS[sys_name]
            n_sizes[r] = rng.choice(choices, size=r.size, p=probs)
        palette = len(PALETTES[sub.palette])
        extra = EXTRA_COLORS[sub.category]
        n_colors[rows] = np.minimum(1 + rng.poisson(extra, size=rows.size), min(palette, MAX_COLORS))
    if preset.max_variants_per_family is not None:
        cap = preset.max_variants_per_family
        n_colors = np.minimum(n_colors, cap)
        n_sizes = np.minimum(n_sizes, np.maximum(1, cap // n_colors))
    return sl, g, system, n_sizes, n_colors


def expand_items(fam: Families, fam_colors: np.ndarray, n_items: int) -> Items:
    """The items of all families, family after family, color-major within one."""
    family = np.repeat(np.arange(fam.n, dtype=np.int32), fam.n_items)
    within = np.arange(n_items) - fam.item_start[family]
    color_slot = within // fam.n_sizes[family]
    size_slot = within % fam.n_sizes[family]
    return Items(
        family=family,
        color=fam_colors[family, color_slot],
        size_slot=size_slot,
        size=(fam.size_start[family] + size_slot).astype(np.int16),
    )
