"""The synthetic catalog: fictional brands, product families and their color x size variants.

A family (parent_id) is one product that is sold in several colors and sizes; its variants are the items.
Families launch throughout the period and retire (C1): seasonal ones shortly before their season and
until soon after it, holiday editions weeks before their holiday and until just after it, all-season ones
at any time for a lognormal lifetime. Items of a family are stored contiguously, color-major, so that
the item of (family, color slot, size slot) is ``item_start + color_slot * n_sizes + size_slot``.

This module assembles the catalog and its items table; the draws live in `catalog_families` (families
and variants), `brands`, `family_calendar` (holidays, seasons, sale days), `family_attributes` and
`titles`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pyarrow as pa

from warehouse.generator.brands import Brands, draw_brands
from warehouse.generator.catalog_families import MAX_COLORS, Families, Items, draw_families, expand_items
from warehouse.generator.family_attributes import Attributes, draw_attributes, item_prices
from warehouse.generator.family_calendar import NEVER, FamilyCalendar, family_calendar
from warehouse.generator.fashion_calendar import HOLIDAY_NAMES
from warehouse.generator.identifiers import asin_like_ids
from warehouse.generator.presets import GeneratorPreset
from warehouse.generator.titles import item_titles, title_stems
from warehouse.generator.vocabulary import (
    CATEGORIES,
    COLOR_NAMES,
    GENDERS,
    MATERIALS,
    OCCASIONS,
    SEASONS,
    SIZE_SYSTEM_NAMES,
    SIZE_SYSTEMS,
    STYLES,
    SUBCATEGORIES,
    SUBCATEGORY_INDEX,
)

__all__ = ["MAX_COLORS", "NEVER", "Catalog", "build_catalog"]


@dataclass
class Catalog:
    """Families and items as parallel numpy arrays, plus the Arrow table written to items.parquet."""

    start: date
    n_days: int
    brand_names: list[str]
    brand_tier: np.ndarray
    brand_category: np.ndarray
    brand_log_pop: np.ndarray
    # families
    fam_subcat: np.ndarray
    fam_category: np.ndarray
    fam_brand: np.ndarray
    fam_tier: np.ndarray
    fam_gender: np.ndarray
    fam_season: np.ndarray
    fam_holiday: np.ndarray  # -1: not a holiday edition
    fam_occ_mask: np.ndarray  # bit i: OCCASIONS[i]
    fam_adj_mask: np.ndarray  # bit i: the subcategory's adjectives[i]
    fam_material: np.ndarray
    fam_style: np.ndarray  # index into STYLES
    fam_colors: np.ndarray  # (n_families, MAX_COLORS) color indices, lead color first, -1 padded
    fam_n_colors: np.ndarray
    fam_color_mask: np.ndarray  # bit c: COLOR_NAMES[c]
    fam_size_system: np.ndarray
    fam_size_start: np.ndarray
    fam_n_sizes: np.ndarray
    fam_item_start: np.ndarray
    fam_n_items: np.ndarray  # n_colors * n_sizes except for the last family, cut to hit n_items
    fam_first_day: np.ndarray  # days since start; may be negative (launched before the period)
    fam_last_day: np.ndarray  # days since start, NEVER when still sold at the end
    fam_log_pop: np.ndarray
    fam_price: np.ndarray
    # items
    item_family: np.ndarray
    item_color: np.ndarray
    item_size: np.ndarray  # index into the family's size system
    item_ids: pa.StringArray
    parent_ids: pa.StringArray
    table: pa.Table

    @property
    def n_families(self) -> int:
        return self.fam_subcat.size

    @property
    def n_items(self) -> int:
        return self.item_family.size

    def item_of(self, family: np.ndarray, color_slot: np.ndarray, size_slot: np.ndarray) -> np.ndarray:
        """Item index of (family, color slot, size slot); the family's first item where the cut removed it."""
        idx = color_slot.astype(np.int64) * self.fam_n_sizes[family] + size_slot
        idx = np.where((idx >= 0) & (idx < self.fam_n_items[family]), idx, 0)
        return self.fam_item_start[family] + idx


def build_catalog(preset: GeneratorPreset, rng: np.random.Generator) -> Catalog:
    """Draw brands, families and items until the catalog holds exactly ``preset.n_items`` items."""
    start, n_days = preset.start, (preset.end - preset.start).days + 1
    subcats = np.array([SUBCATEGORY_INDEX[s] for s in preset.subcategory_names()])
    sub_cat = np.array([CATEGORIES.index(SUBCATEGORIES[s].category) for s in subcats])
    present = sorted(set(sub_cat.tolist()))
    fam = draw_families(preset, subcats, sub_cat, present, rng)
    brands = draw_brands(rng, present, fam.category)
    fam_tier = brands.tier[brands.of_family]
    cal = family_calendar(preset, n_days, subcats, fam.subcat, rng)
    attrs = draw_attributes(rng, subcats, fam, fam_tier, brands)
    items = expand_items(fam, attrs.colors, preset.n_items)
    ids = asin_like_ids(rng, fam.n + preset.n_items)
    parent_ids, item_ids = ids.slice(0, fam.n), ids.slice(fam.n)
    stems = title_stems(
        rng,
        [brands.names[b] for b in brands.of_family.tolist()],
        fam.subcat,
        fam.gender,
        cal.season,
        cal.holiday,
        attrs.occ_mask,
        attrs.adj_mask,
        attrs.material,
        attrs.feature,
    )
    table = _items_table(start, n_days, fam, brands, cal, attrs, items, stems, parent_ids, item_ids)
    return Catalog(
        start=start,
        n_days=n_days,
        brand_names=brands.names,
        brand_tier=brands.tier,
        brand_category=brands.category,
        brand_log_pop=brands.log_pop,
        fam_subcat=fam.subcat,
        fam_category=fam.category,
        fam_brand=brands.of_family,
        fam_tier=fam_tier,
        fam_gender=fam.gender,
        fam_season=cal.season,
        fam_holiday=cal.holiday,
        fam_occ_mask=attrs.occ_mask,
        fam_adj_mask=attrs.adj_mask,
        fam_material=attrs.material,
        fam_style=attrs.style,
        fam_colors=attrs.colors,
        fam_n_colors=fam.n_colors,
        fam_color_mask=attrs.color_mask,
        fam_size_system=fam.size_system,
        fam_size_start=fam.size_start,
        fam_n_sizes=fam.n_sizes,
        fam_item_start=fam.item_start,
        fam_n_items=fam.n_items,
        fam_first_day=cal.first_day,
        fam_last_day=cal.last_day,
        fam_log_pop=attrs.log_pop,
        fam_price=attrs.price,
        item_family=items.family,
        item_color=items.color,
        item_size=items.size,
        item_ids=item_ids,
        parent_ids=parent_ids,
        table=table,
    )


def _items_table(
    start: date,
    n_days: int,
    fam: Families,
    brands: Brands,
    cal: FamilyCalendar,
    attrs: Attributes,
    items: Items,
    stems: list[str],
    parent_ids: pa.StringArray,
    item_ids: pa.StringArray,
) -> pa.Table:
    """The rows of items.parquet, one per item."""
    item_family = items.family
    size_names = [SIZE_SYSTEMS[n] for n in SIZE_SYSTEM_NAMES]
    sys_of_item = fam.size_system[item_family]
    size_strings = [size_names[s][z] for s, z in zip(sys_of_item.tolist(), items.size.tolist(), strict=True)]
    occasion_strings = [
        ", ".join(sorted(OCCASIONS[i] for i in range(len(OCCASIONS)) if m >> i & 1))
        for m in attrs.occ_mask.tolist()
    ]
    epoch = (start - date(1970, 1, 1)).days  # date32 counts days since 1970-01-01
    first_seen = (epoch + cal.first_day[item_family]).astype(np.int32)
    last_day = cal.last_day[item_family]
    last_seen = (epoch + np.minimum(last_day, n_days)).astype(np.int32)
    fam_take = pa.array(item_family)

    def by_family(values: list[str]) -> pa.Array:
        return pa.array(values, type=pa.string()).take(fam_take)

    return pa.table(
        {
            "item_id": item_ids,
            "title": pa.array(item_titles(stems, item_family, items.color, size_strings), type=pa.string()),
            "category": pa.array(list(CATEGORIES)).take(pa.array(fam.category[item_family])),
            "subcategory": pa.array([s.name for s in SUBCATEGORIES]).take(pa.array(fam.subcat[item_family])),
            "brand": pa.array(brands.names).take(pa.array(brands.of_family[item_family])),
            "color": pa.array(list(COLOR_NAMES)).take(pa.array(items.color)),
            "size": pa.array(size_strings, type=pa.string()),
            "season": pa.array(list(SEASONS)).take(pa.array(cal.season[item_family])),
            "holiday": pa.array([""] + list(HOLIDAY_NAMES)).take(pa.array(cal.holiday[item_family] + 1)),
            "occasion": by_family(occasion_strings),
            "price": pa.array(item_prices(fam, items, attrs.price), type=pa.float64()),
            "parent_id": parent_ids.take(fam_take),
            "first_seen": pa.array(first_seen, type=pa.date32()),
            "last_seen": pa.array(last_seen, type=pa.date32(), mask=last_day == NEVER),
            "gender": pa.array(list(GENDERS)).take(pa.array(fam.gender[item_family])),
            "material": pa.array(list(MATERIALS)).take(pa.array(attrs.material[item_family])),
            "style": pa.array(list(STYLES)).take(pa.array(attrs.style[item_family])),
        }
    )
