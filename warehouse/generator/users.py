"""Shoppers with stable latent tastes: what they buy; which brands, styles, colors, sizes, prices, occasions.

Tastes are fixed for the whole period, so a user's history (the brands, colors and sizes clicked and
bought, the subcategories searched) predicts the next purchase; the calendar (season, holidays), new
launches and gifts for other people keep it from being trivial. Each user also has a way of typing
queries (favourite synonyms, word order, plural habit, typos, casing) used by `queries.QueryWriter`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from warehouse.generator.catalog import Catalog
from warehouse.generator.presets import GeneratorPreset
from warehouse.generator.vocabulary import (
    CATEGORIES,
    COLORS,
    OCCASIONS,
    SIZE_SYSTEM_NAMES,
    SIZE_SYSTEMS,
    STYLES,
    SUBCATEGORIES,
    SUBCATEGORY_INDEX,
)

# Size preference per size system: (mean index, sd) for women and men shoppers. Letter sizes: women
# around S/M, men around L; shoe sizes: women's 8, men's 10 (US), and a men's size is a women's size
# minus 1.5 (so most women fall below the men's/unisex range, most men above the women's); the rest
# centred on the middle size.
SIZE_TASTE: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {
    "letter": ((1.7, 1.0), (2.8, 1.0)),
    "shoe_women": ((6.0, 2.4), (12.0, 2.4)),
    "shoe_men": ((0.0, 2.4), (6.0, 2.4)),
    "ring": ((2.0, 1.1), (4.0, 1.1)),
    "luggage": ((1.0, 0.9), (1.0, 0.9)),
    "luggage_set": ((0.8, 0.7), (0.8, 0.7)),
    "laptop": ((1.0, 0.6), (1.0, 0.6)),
    "bag": ((1.0, 0.8), (1.2, 0.8)),
    "chain": ((1.0, 0.8), (1.5, 0.8)),
    "one": ((0.0, 0.0), (0.0, 0.0)),
}
WOMEN_SHARE = 0.62  # Amazon fashion skews female; illustrative
MAX_PURCHASES = 40
N_QUERY_TEMPLATES = 6
CASE_STYLES = (0.82, 0.08, 0.07, 0.03)  # lower, Title Case, Sentence case, UPPER


@dataclass
class Users:
    gender: np.ndarray  # 0 women, 1 men
    sub_affinity: np.ndarray  # (n, len(SUBCATEGORIES)) shopping share per subcategory, rows sum to 1
    brand_pref: np.ndarray  # (n, len(CATEGORIES), 3) favourite brand ids per category, -1 where none
    tier: np.ndarray  # preferred price tier in [0, 2] (budget .. premium)
    color_pref: np.ndarray  # (n, len(COLORS)) color taste, rows sum to 1
    style_pref: np.ndarray  # (n, len(STYLES)) style taste, rows sum to 1
    occ_mask: np.ndarray  # favourite occasions, bit i = OCCASIONS[i]
    size: np.ndarray  # (n, len(SIZE_SYSTEM_NAMES)) preferred size index in each size system
    novelty: np.ndarray  # appetite for new launches (multiplies the new-arrival utility)
    n_purchases: np.ndarray
    window_start: np.ndarray  # first active day (days since period start)
    window_len: np.ndarray  # active days
    # how the user types queries
    typo_rate: np.ndarray
    case_style: np.ndarray
    noun_habit: np.ndarray
    plural_rate: np.ndarray
    template_habit: np.ndarray
    gender_form: np.ndarray
    verbosity: np.ndarray
    habit_strength: np.ndarray

    @property
    def n(self) -> int:
        return self.gender.size


def draw_users(preset: GeneratorPreset, catalog: Catalog, rng: np.random.Generator) -> Users:
    n = preset.n_users
    n_days = catalog.n_days
    gender = (rng.random(n) >= WOMEN_SHARE).astype(np.int8)

    # subcategory affinity: a category mix, then a concentrated mix of subcategories within it, damped
    # for subcategories that are not made for the user's gender (those are bought as gifts)
    in_scope = np.array([SUBCATEGORY_INDEX[s] for s in preset.subcategory_names()])
    sub_cat = np.array([CATEGORIES.index(s.category) for s in SUBCATEGORIES])
    fam_count = np.bincount(catalog.fam_subcat, minlength=len(SUBCATEGORIES)).astype(float)
    base = np.zeros(len(SUBCATEGORIES))
    base[in_scope] = np.maximum(fam_count[in_scope], 1.0)
    cats = sorted(set(sub_cat[in_scope].tolist()))
    cat_base = np.array([base[sub_cat == c].sum() for c in cats])
    cat_aff = rng.gamma(2.0 * cat_base / cat_base.sum() * len(cats), size=(n, len(cats))) + 1e-6
    cat_aff /= cat_aff.sum(axis=1, keepdims=True)
    sub_aff = np.zeros((n, len(SUBCATEGORIES)))
    for j, c in enumerate(cats):
        cols = in_scope[sub_cat[in_scope] == c]
        alpha = 3.0 * base[cols] / base[cols].sum()
        share = rng.gamma(alpha, size=(n, cols.size)) + 1e-6
        sub_aff[:, cols] = share / share.sum(axis=1, keepdims=True) * cat_aff[:, [j]]
    suit = np.array([[s.genders[0] + s.genders[2], s.genders[1] + s.genders[2]] for s in SUBCATEGORIES])
    sub_aff *= suit[:, gender].T + 0.03
    sub_aff /= sub_aff.sum(axis=1, keepdims=True)

    # price tier and favourite brands (popular brands near the user's tier)
    tier = np.clip(rng.normal(0.8, 0.6, size=n), 0.0, 2.0)
    brand_pref = np.full((n, len(CATEGORIES), 3), -1, dtype=np.int32)
    tier_bucket = np.rint(tier).astype(int)
    for c in cats:
        ids = np.flatnonzero(catalog.brand_category == c)
        for t in range(3):
            rows = np.flatnonzero(tier_bucket == t)
            w = np.exp(0.7 * catalog.brand_log_pop[ids] - 1.2 * np.abs(catalog.brand_tier[ids] - t))
            brand_pref[rows, c] = rng.choice(ids, size=(rows.size, 3), p=w / w.sum())

    color_pop = np.array([c[1] for c in COLORS])
    color_pref = rng.gamma(0.45 * color_pop / color_pop.mean(), size=(n, len(COLORS))) + 1e-4
    color_pref /= color_pref.sum(axis=1, keepdims=True)

    style_pref = rng.gamma(0.5, size=(n, len(STYLES))) + 1e-4
    style_pref /= style_pref.sum(axis=1, keepdims=True)

    occ_order = np.argsort(rng.random((n, len(OCCASIONS))), axis=1)[:, :3]
    occ_mask = np.bitwise_or.reduce(np.left_shift(1, occ_order.astype(np.int64)), axis=1)

    size = np.zeros((n, len(SIZE_SYSTEM_NAMES)), dtype=np.int16)
    for j, name in enumerate(SIZE_SYSTEM_NAMES):
        (mw, sw), (mm, sm) = SIZE_TASTE[name]
        mean = np.where(gender == 0, mw, mm)
        sd = np.where(gender == 0, sw, sm)
        size[:, j] = np.clip(np.rint(mean + sd * rng.standard_normal(n)), 0, len(SIZE_SYSTEMS[name]) - 1)

    novelty = np.exp(0.5 * rng.standard_normal(n))

    # activity: overdispersed purchase counts (a few heavy shoppers), active over a stretch of the period
    mean_extra = preset.mean_purchases_per_user - 1.0
    lam = rng.gamma(1.5, mean_extra / 1.5, size=n) if mean_extra > 0 else np.zeros(n)
    n_purchases = np.minimum(1 + rng.poisson(lam), MAX_PURCHASES)
    window_len = np.clip(30 + n_purchases * rng.exponential(50.0, size=n), 30, n_days).astype(np.int32)
    window_start = (rng.random(n) * (n_days - window_len + 1)).astype(np.int32)

    return Users(
        gender=gender,
        sub_affinity=sub_aff,
        brand_pref=brand_pref,
        tier=tier,
        color_pref=color_pref,
        style_pref=style_pref,
        occ_mask=occ_mask,
        size=size,
        novelty=novelty,
        n_purchases=n_purchases,
        window_start=window_start,
        window_len=window_len,
        typo_rate=rng.beta(1.0, 10.0, size=n),
        case_style=rng.choice(len(CASE_STYLES), size=n, p=CASE_STYLES).astype(np.int8),
        noun_habit=rng.integers(0, 1 << 30, size=n),
        plural_rate=rng.beta(3.0, 1.5, size=n),
        template_habit=rng.integers(0, N_QUERY_TEMPLATES, size=n).astype(np.int8),
        gender_form=rng.integers(0, 1 << 16, size=n),
        verbosity=rng.beta(2.0, 3.0, size=n),
        habit_strength=rng.uniform(0.4, 0.9, size=n),
    )
