"""The synthetic catalog: fictional brands, product families and their color x size variants.

A family (parent_id) is one product that is sold in several colors and sizes; its variants are the items.
Families launch throughout the period and retire (C1): seasonal ones shortly before their season and
until soon after it, holiday editions weeks before their holiday and until just after it, all-season ones
at any time for a lognormal lifetime. Items of a family are stored contiguously, color-major, so that
the item of (family, color slot, size slot) is ``item_start + color_slot * n_sizes + size_slot``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pyarrow as pa

from warehouse.generator.fashion_calendar import (
    HOLIDAY_NAMES,
    HOLIDAY_SEASON,
    HOLIDAYS,
    SEASON_FIRST_MONTH,
    holiday_occurrences,
)
from warehouse.generator.identifiers import asin_like_ids
from warehouse.generator.presets import GeneratorPreset
from warehouse.generator.vocabulary import (
    ALL_SEASON,
    CATEGORIES,
    COLOR_INDEX,
    COLOR_NAMES,
    COLORS,
    GENDER_TITLE_WORDS,
    GENDERS,
    MATERIAL_INDEX,
    MATERIALS,
    OCCASION_INDEX,
    OCCASIONS,
    ONE_SIZE,
    PALETTES,
    SEASON_TITLE_WORDS,
    SEASONS,
    SIZE_SYSTEM_NAMES,
    SIZE_SYSTEMS,
    STYLES,
    SUBCATEGORIES,
    SUBCATEGORY_INDEX,
)

# "Still sold" sentinel for last sale days (last_seen is null in items.parquet).
NEVER = np.int32(10**6)
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
TIER_PRICE = np.array([0.65, 1.0, 1.7])  # budget, mid, premium brand price multipliers
TIER_SHARE = (0.45, 0.40, 0.15)
# Real fashion brands that the syllable generator must never produce.
_REAL_BRANDS = {
    "NIKE",
    "ADIDAS",
    "PUMA",
    "GUCCI",
    "PRADA",
    "ZARA",
    "COACH",
    "FOSSIL",
    "VANS",
    "ASICS",
    "FILA",
    "REEBOK",
    "CROCS",
    "UGG",
    "LEVI",
    "DIOR",
    "FENDI",
    "CELINE",
    "CHANEL",
    "HERMES",
    "MANGO",
    "GAP",
    "TUMI",
    "SAMSONITE",
    "KIPLING",
    "TIMEX",
    "SEIKO",
    "CASIO",
    "ROLEX",
    "PANDORA",
    "SWAROVSKI",
    "HANES",
    "GILDAN",
    "SPEEDO",
    "ROXY",
    "LACOSTE",
    "DIESEL",
    "GUESS",
    "NAUTICA",
    "KENZO",
    "LOEWE",
    "BALMAIN",
    "VALENTINO",
    "VERSACE",
    "ARMANI",
    "BOSS",
    "SKECHERS",
    "SAUCONY",
    "HOKA",
    "ONITSUKA",
}


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


def brand_names(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` distinct invented all-caps brand names in the style of marketplace sellers (RUBZOO, TIMESON)."""
    onsets = "B D F G K L M N P R S T V Z CH BR TR GR KL SH FL Y H J W X".split()
    vowels = "A E I O U OO EE AI IA Y".split()
    codas = ["", ""] + "N R X S L M K Z NG SON".split()
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < n:
        k = 2 * (n - len(names)) + 64  # enough candidates for the names still missing, after rejections
        n_syll = rng.choice([2, 2, 2, 3], size=k)
        parts = [
            rng.integers(0, len(onsets), size=(k, 3)),
            rng.integers(0, len(vowels), size=(k, 3)),
            rng.integers(0, len(codas), size=(k, 3)),
        ]
        for i in range(k):
            name = "".join(
                onsets[parts[0][i, j]]
                + vowels[parts[1][i, j]]
                + (codas[parts[2][i, j]] if j == n_syll[i] - 1 or rng.random() < 0.3 else "")
                for j in range(n_syll[i])
            )
            if 5 <= len(name) <= 9 and name not in seen and name not in _REAL_BRANDS:
                seen.add(name)
                names.append(name)
                if len(names) == n:
                    break
    return names


def _gumbel_order(rng: np.random.Generator, weights: np.ndarray) -> np.ndarray:
    """Per row, column indices in the order of a weighted draw without replacement (Gumbel top-k)."""
    with np.errstate(divide="ignore"):
        keys = np.log(weights) - np.log(-np.log(rng.random(weights.shape)))
    return np.argsort(-keys, axis=1, kind="stable")


def _season_occurrences(start: date, n_days: int, season: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(first day, last day, weight) of each occurrence of a season around the period, in days since start."""
    first_month = SEASON_FIRST_MONTH[season]
    firsts, lasts, weights = [], [], []
    for year in range(start.year - 1, start.year + n_days // 365 + 2):
        s = date(year, first_month, 1)
        e = date(year + (first_month + 3 > 12), (first_month + 2) % 12 + 1, 1) - timedelta(days=1)
        fs, ls = (s - start).days, (e - start).days
        # Launches come up to ~2 months before the season; weight by how much of that lies in the period.
        overlap = min(ls, n_days - 1) - max(fs - 60, 0)
        if overlap > 0:
            firsts.append(fs)
            lasts.append(ls)
            weights.append(overlap)
    return np.array(firsts), np.array(lasts), np.array(weights, dtype=float)


def build_catalog(preset: GeneratorPreset, rng: np.random.Generator) -> Catalog:
    """Draw brands, families and items until the catalog holds exactly ``preset.n_items`` items."""
    start, n_days = preset.start, (preset.end - preset.start).days + 1
    subcats = np.array([SUBCATEGORY_INDEX[s] for s in preset.subcategory_names()])
    sub_cat = np.array([CATEGORIES.index(SUBCATEGORIES[s].category) for s in subcats])
    present = sorted(set(sub_cat.tolist()))
    cat_share = np.array([CATEGORY_SHARE[CATEGORIES[c]] for c in present])
    cat_share = dict(zip(present, cat_share / cat_share.sum(), strict=True))
    sub_weight = np.array([SUBCATEGORIES[s].share for s in subcats], dtype=float)
    for c in present:
        in_c = sub_cat == c
        sub_weight[in_c] *= cat_share[c] / sub_weight[in_c].sum()

    # --- families: subcategory, gender, size run, colors; drawn in batches until the items suffice
    fam_sub_local: list[np.ndarray] = []
    fam_gender_l, fam_sys_l, fam_nsz_l, fam_nco_l = [], [], [], []
    total = 0
    while total < preset.n_items:
        batch = max(64, int((preset.n_items - total) / 4))
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
        n_items = n_colors.astype(np.int64) * n_sizes
        fam_sub_local.append(sl)
        fam_gender_l.append(g)
        fam_sys_l.append(system)
        fam_nsz_l.append(n_sizes)
        fam_nco_l.append(n_colors)
        total += int(n_items.sum())
    sl = np.concatenate(fam_sub_local)
    fam_gender = np.concatenate(fam_gender_l)
    fam_size_system = np.concatenate(fam_sys_l)
    fam_n_sizes = np.concatenate(fam_nsz_l)
    fam_n_colors = np.concatenate(fam_nco_l)
    sizes_full = fam_n_colors.astype(np.int64) * fam_n_sizes
    ends = np.cumsum(sizes_full)
    n_fam = int(np.searchsorted(ends, preset.n_items) + 1)
    sl, fam_gender, fam_size_system = sl[:n_fam], fam_gender[:n_fam], fam_size_system[:n_fam]
    fam_n_sizes, fam_n_colors = fam_n_sizes[:n_fam], fam_n_colors[:n_fam]
    fam_n_items = sizes_full[:n_fam].copy()
    fam_n_items[-1] -= int(ends[n_fam - 1] - preset.n_items)
    fam_item_start = np.concatenate([[0], np.cumsum(fam_n_items)[:-1]])
    fam_subcat = subcats[sl].astype(np.int16)
    fam_category = sub_cat[sl].astype(np.int8)

    # size window within the system
    sys_len = np.array([len(SIZE_SYSTEMS[n]) for n in SIZE_SYSTEM_NAMES])[fam_size_system]
    fam_size_start = (rng.random(n_fam) * (sys_len - fam_n_sizes + 1)).astype(np.int16)

    # --- brands: per category, tier and a heavy-tailed popularity; families draw brands by popularity
    names = brand_names(rng, sum(max(12, int(np.sum(fam_category == c) / 25)) for c in present))
    brand_category = np.concatenate(
        [np.full(max(12, int(np.sum(fam_category == c) / 25)), c) for c in present]
    )
    n_brands = brand_category.size
    brand_tier = rng.choice(3, size=n_brands, p=TIER_SHARE).astype(np.int8)
    brand_log_pop = rng.normal(0.0, 1.1, size=n_brands)
    fam_brand = np.empty(n_fam, dtype=np.int32)
    for c in present:
        ids = np.flatnonzero(brand_category == c)
        p = np.exp(brand_log_pop[ids])
        rows = np.flatnonzero(fam_category == c)
        fam_brand[rows] = rng.choice(ids, size=rows.size, p=p / p.sum())
    fam_tier = brand_tier[fam_brand]

    # --- holiday editions
    fam_holiday = np.full(n_fam, -1, dtype=np.int8)
    occurrences = holiday_occurrences(start, preset.end)
    eligible = {
        s: [hi for hi, h in enumerate(HOLIDAYS) if SUBCATEGORIES[s].name in h.subcategories] for s in subcats
    }
    eligible_share = np.mean([bool(eligible[s]) for s in fam_subcat]) if n_fam else 0.0
    p_holiday = min(0.5, preset.holiday_family_share / max(eligible_share, 1e-9))
    fam_holiday_day = np.zeros(n_fam, dtype=np.int32)
    for s in subcats:
        hols = [h for h in eligible[s] if any(o.holiday == h for o in occurrences)]
        rows = np.flatnonzero(fam_subcat == s)
        if not hols or rows.size == 0:
            continue
        share = 0.6 if SUBCATEGORIES[s].name == "Costumes" else p_holiday
        chosen = rows[rng.random(rows.size) < share]
        w = np.array([HOLIDAYS[h].catalog_weight for h in hols])
        fam_holiday[chosen] = np.array(hols)[rng.choice(len(hols), size=chosen.size, p=w / w.sum())]
        for h in hols:
            days = np.array([o.day for o in occurrences if o.holiday == h])
            r = chosen[fam_holiday[chosen] == h]
            fam_holiday_day[r] = days[rng.integers(0, days.size, size=r.size)]

    # --- season: holiday editions follow their holiday, the rest their subcategory
    fam_season = np.empty(n_fam, dtype=np.int8)
    for s in subcats:
        rows = np.flatnonzero(fam_subcat == s)
        fam_season[rows] = rng.choice(len(SEASONS), size=rows.size, p=SUBCATEGORIES[s].seasons)
    is_hol = fam_holiday >= 0
    hol_season = np.array([HOLIDAY_SEASON[n] for n in HOLIDAY_NAMES])
    keep_hol_season = is_hol & (rng.random(n_fam) < 0.6)
    fam_season[keep_hol_season] = hol_season[fam_holiday[keep_hol_season]]
    fam_season[is_hol & ~keep_hol_season] = ALL_SEASON

    # --- launch and retirement days (C1)
    first = np.empty(n_fam, dtype=np.int64)
    last = np.empty(n_fam, dtype=np.int64)
    u = rng.random((n_fam, 4))
    # holiday editions: 4-10 weeks before the holiday until 3-21 days after; some stay on as basics
    h = is_hol
    first[h] = fam_holiday_day[h] - (28 + u[h, 0] * 42).astype(np.int64)
    stays = u[h, 2] < 0.15
    last[h] = fam_holiday_day[h] + np.where(stays, 60 + u[h, 1] * 140, 3 + u[h, 1] * 18).astype(np.int64)
    # seasonal families: from 2-11 weeks before a season until up to 6 weeks after; 20% carried to next year
    for season in range(4):
        rows = np.flatnonzero(~is_hol & (fam_season == season))
        if rows.size == 0:
            continue
        fs, ls, w = _season_occurrences(start, n_days, season)
        occ = rng.choice(fs.size, size=rows.size, p=w / w.sum())
        first[rows] = fs[occ] - (14 + u[rows, 0] * 61).astype(np.int64)
        carried = u[rows, 2] < 0.2
        last[rows] = ls[occ] + (-15 + u[rows, 1] * 60).astype(np.int64) + np.where(carried, 365, 0)
    # all-season families: a quarter are the catalog the period starts with, the rest launch during it
    rows = np.flatnonzero(~is_hol & (fam_season == ALL_SEASON))
    established = u[rows, 2] < 0.25
    first[rows] = np.where(established, -(u[rows, 0] * 300), u[rows, 0] * (n_days - 7)).astype(np.int64)
    life = np.exp(np.log(np.where(established, 240.0, 150.0)) + 0.6 * rng.standard_normal(rows.size))
    last[rows] = first[rows] + life.astype(np.int64)
    # every family is on sale for at least three weeks inside the period
    first = np.minimum(first, n_days - 21)
    last = np.maximum(last, np.maximum(first, 0) + 21)
    fam_first_day = first.astype(np.int32)
    fam_last_day = np.where(last >= n_days, NEVER, last).astype(np.int32)

    # --- occasions, adjectives, material, colors, popularity, price
    fam_occ_mask = np.zeros(n_fam, dtype=np.int64)
    fam_adj_mask = np.zeros(n_fam, dtype=np.int32)
    fam_material = np.empty(n_fam, dtype=np.int16)
    fam_colors = np.full((n_fam, MAX_COLORS), -1, dtype=np.int16)
    fam_price = np.empty(n_fam)
    fam_feature = np.full(n_fam, -1, dtype=np.int16)
    color_pop = np.array([c[1] for c in COLORS])
    for s in subcats:
        sub = SUBCATEGORIES[s]
        rows = np.flatnonzero(fam_subcat == s)
        if rows.size == 0:
            continue
        n_occ = len(sub.occasions)
        k = np.minimum(1 + rng.binomial(3, 0.45, size=rows.size), n_occ)
        order = _gumbel_order(rng, np.broadcast_to(1 / np.sqrt(np.arange(1, n_occ + 1)), (rows.size, n_occ)))
        occ_bits = np.array([1 << OCCASION_INDEX[o] for o in sub.occasions], dtype=np.int64)
        for j in range(min(4, n_occ)):
            fam_occ_mask[rows] |= np.where(j < k, occ_bits[order[:, j]], 0)
        n_adj = len(sub.adjectives)
        order = _gumbel_order(rng, np.ones((rows.size, n_adj)))
        fam_adj_mask[rows] = (1 << order[:, 0]) | np.where(
            rng.random(rows.size) < 0.4, 1 << order[:, 1 % n_adj], 0
        )
        mats = np.array([MATERIAL_INDEX[m] for m in sub.materials])
        fam_material[rows] = mats[rng.integers(0, mats.size, size=rows.size)]
        fam_feature[rows] = np.where(
            rng.random(rows.size) < 0.6, rng.integers(0, len(sub.features), rows.size), -1
        )
        palette = np.array([COLOR_INDEX[c] for c in PALETTES[sub.palette]])
        order = _gumbel_order(rng, np.broadcast_to(color_pop[palette], (rows.size, palette.size)))
        ncol = min(palette.size, MAX_COLORS)
        picked = palette[order[:, :ncol]]
        fam_colors[rows, :ncol] = np.where(np.arange(ncol) < fam_n_colors[rows, None], picked, -1)
        lo, hi = sub.price
        base = np.exp(np.log(lo) + rng.random(rows.size) * (np.log(hi) - np.log(lo)))
        fam_price[rows] = base * TIER_PRICE[fam_tier[rows]] * np.exp(0.1 * rng.standard_normal(rows.size))
    fam_color_mask = np.zeros(n_fam, dtype=np.int64)
    for j in range(MAX_COLORS):
        c = fam_colors[:, j]
        fam_color_mask |= np.where(c >= 0, np.left_shift(1, np.maximum(c, 0).astype(np.int64)), 0)
    fam_log_pop = (rng.normal(0.0, 1.0, size=n_fam) + 0.3 * brand_log_pop[fam_brand]).astype(np.float32)
    # a brand keeps a house style for most of its products
    brand_style = rng.integers(0, len(STYLES), size=n_brands)
    fam_style = np.where(rng.random(n_fam) < 0.6, brand_style[fam_brand], rng.integers(0, len(STYLES), n_fam))
    fam_style = fam_style.astype(np.int8)

    # --- items
    item_family = np.repeat(np.arange(n_fam, dtype=np.int32), fam_n_items)
    within = np.arange(preset.n_items) - fam_item_start[item_family]
    item_color_slot = within // fam_n_sizes[item_family]
    item_size = (fam_size_start[item_family] + within % fam_n_sizes[item_family]).astype(np.int16)
    item_color = fam_colors[item_family, item_color_slot]
    # luggage grows more expensive with each size step; other variants share their family's price
    step = np.where(
        np.isin(
            fam_size_system[item_family],
            [SIZE_SYSTEM_NAMES.index("luggage"), SIZE_SYSTEM_NAMES.index("luggage_set")],
        ),
        0.12,
        0.0,
    )
    price = fam_price[item_family] * (1 + step * (within % fam_n_sizes[item_family]))
    price = np.floor(price) + 0.99

    ids = asin_like_ids(rng, n_fam + preset.n_items)
    parent_ids, item_ids = ids.slice(0, n_fam), ids.slice(n_fam)
    stems = _title_stems(
        rng,
        [names[b] for b in fam_brand.tolist()],
        fam_subcat,
        fam_gender,
        fam_season,
        fam_holiday,
        fam_occ_mask,
        fam_adj_mask,
        fam_material,
        fam_feature,
    )
    size_names = [SIZE_SYSTEMS[n] for n in SIZE_SYSTEM_NAMES]
    sys_of_item = fam_size_system[item_family]
    size_strings = [size_names[s][z] for s, z in zip(sys_of_item.tolist(), item_size.tolist(), strict=True)]
    titles = [
        f"{stems[f]} {COLOR_NAMES[c]}" + ("" if z == ONE_SIZE else f" {z}")
        for f, c, z in zip(item_family.tolist(), item_color.tolist(), size_strings, strict=True)
    ]
    occasion_strings = [
        ", ".join(sorted(OCCASIONS[i] for i in range(len(OCCASIONS)) if m >> i & 1))
        for m in fam_occ_mask.tolist()
    ]
    epoch = (start - date(1970, 1, 1)).days  # date32 counts days since 1970-01-01
    first_seen = (epoch + fam_first_day[item_family]).astype(np.int32)
    last_day = fam_last_day[item_family]
    last_seen = (epoch + np.minimum(last_day, n_days)).astype(np.int32)
    fam_take = pa.array(item_family)

    def by_family(values: list[str]) -> pa.Array:
        return pa.array(values, type=pa.string()).take(fam_take)

    table = pa.table(
        {
            "item_id": item_ids,
            "title": pa.array(titles, type=pa.string()),
            "category": pa.array(list(CATEGORIES)).take(pa.array(fam_category[item_family])),
            "subcategory": pa.array([s.name for s in SUBCATEGORIES]).take(pa.array(fam_subcat[item_family])),
            "brand": pa.array(names).take(pa.array(fam_brand[item_family])),
            "color": pa.array(list(COLOR_NAMES)).take(pa.array(item_color)),
            "size": pa.array(size_strings, type=pa.string()),
            "season": pa.array(list(SEASONS)).take(pa.array(fam_season[item_family])),
            "holiday": pa.array([""] + list(HOLIDAY_NAMES)).take(pa.array(fam_holiday[item_family] + 1)),
            "occasion": by_family(occasion_strings),
            "price": pa.array(price, type=pa.float64()),
            "parent_id": parent_ids.take(fam_take),
            "first_seen": pa.array(first_seen, type=pa.date32()),
            "last_seen": pa.array(last_seen, type=pa.date32(), mask=last_day == NEVER),
            "gender": pa.array(list(GENDERS)).take(pa.array(fam_gender[item_family])),
            "material": pa.array(list(MATERIALS)).take(pa.array(fam_material[item_family])),
            "style": pa.array(list(STYLES)).take(pa.array(fam_style[item_family])),
        }
    )
    return Catalog(
        start=start,
        n_days=n_days,
        brand_names=names,
        brand_tier=brand_tier,
        brand_category=brand_category,
        brand_log_pop=brand_log_pop,
        fam_subcat=fam_subcat,
        fam_category=fam_category,
        fam_brand=fam_brand,
        fam_tier=fam_tier,
        fam_gender=fam_gender,
        fam_season=fam_season,
        fam_holiday=fam_holiday,
        fam_occ_mask=fam_occ_mask,
        fam_adj_mask=fam_adj_mask,
        fam_material=fam_material,
        fam_style=fam_style,
        fam_colors=fam_colors,
        fam_n_colors=fam_n_colors,
        fam_color_mask=fam_color_mask,
        fam_size_system=fam_size_system,
        fam_size_start=fam_size_start,
        fam_n_sizes=fam_n_sizes,
        fam_item_start=fam_item_start,
        fam_n_items=fam_n_items,
        fam_first_day=fam_first_day,
        fam_last_day=fam_last_day,
        fam_log_pop=fam_log_pop,
        fam_price=fam_price,
        item_family=item_family,
        item_color=item_color,
        item_size=item_size,
        item_ids=item_ids,
        parent_ids=parent_ids,
        table=table,
    )


def _title_stems(
    rng: np.random.Generator,
    brand_of_family: list[str],
    fam_subcat: np.ndarray,
    fam_gender: np.ndarray,
    fam_season: np.ndarray,
    fam_holiday: np.ndarray,
    fam_occ_mask: np.ndarray,
    fam_adj_mask: np.ndarray,
    fam_material: np.ndarray,
    fam_feature: np.ndarray,
) -> list[str]:
    """Amazon-style keyword titles without color and size, e.g.
    "RUBZOO Women's Sleeveless Chiffon Tank Tops Casual Summer V Neck"."""
    n = fam_subcat.size
    u = rng.random((n, 8))
    stems = []
    for f in range(n):
        sub = SUBCATEGORIES[fam_subcat[f]]
        gender = GENDERS[fam_gender[f]]
        nouns = sub.men_title_nouns if gender == "Men" and sub.men_title_nouns else sub.title_nouns
        noun = nouns[int(u[f, 0] * len(nouns))]
        adjs = [a for i, a in enumerate(sub.adjectives) if fam_adj_mask[f] >> i & 1]
        material = MATERIALS[fam_material[f]] if u[f, 1] < 0.55 else ""
        gender_words = GENDER_TITLE_WORDS[gender]
        g = gender_words[int(u[f, 2] * len(gender_words))]
        occs = [o for i, o in enumerate(OCCASIONS) if fam_occ_mask[f] >> i & 1][: 1 + int(u[f, 3] * 3)]
        season = fam_season[f]
        season_word = ""
        if season != ALL_SEASON and u[f, 4] < 0.7:
            words = SEASON_TITLE_WORDS[SEASONS[season]]
            season_word = words[int(u[f, 5] * len(words))]
        holiday_word = ""
        if fam_holiday[f] >= 0:
            words = HOLIDAYS[fam_holiday[f]].title_words
            holiday_word = words[int(u[f, 6] * len(words))]
        feature = sub.features[fam_feature[f]] if fam_feature[f] >= 0 else ""
        # "for Women" reads after the noun ("Chiffon Blouses for Women"), "Women's" before it
        head = [*adjs, material, noun, g] if g.startswith("for ") else [g, *adjs, material, noun]
        if u[f, 7] < 0.5:
            tail = [holiday_word, *occs, season_word, feature]
        else:
            tail = [holiday_word, season_word, *occs, feature]
        stems.append(" ".join([brand_of_family[f], *(w for w in head + tail if w)]))
    return stems
