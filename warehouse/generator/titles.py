"""Item titles in the style of marketplace listings: a keyword stem per family (brand, gender, style
words, noun, occasions, season or holiday words, feature), then the variant's color and size."""

from __future__ import annotations

import numpy as np

from warehouse.generator.fashion_calendar import HOLIDAYS
from warehouse.generator.vocabulary import (
    ALL_SEASON,
    COLOR_NAMES,
    GENDER_TITLE_WORDS,
    GENDERS,
    MATERIALS,
    OCCASIONS,
    ONE_SIZE,
    SEASON_TITLE_WORDS,
    SEASONS,
    SUBCATEGORIES,
)


def item_titles(
    stems: list[str], item_family: np.ndarray, item_color: np.ndarray, size_strings: list[str]
) -> list[str]:
    """The family's stem, the color, and the size unless the item comes in one size."""
    return [
        f"{stems[f]} {COLOR_NAMES[c]}" + ("" if z == ONE_SIZE else f" {z}")
        for f, c, z in zip(item_family.tolist(), item_color.tolist(), size_strings, strict=True)
    ]


def title_stems(
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
