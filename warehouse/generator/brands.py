"""Brands: invented marketplace-style names, a price tier and a heavy-tailed popularity per brand, and
which brand makes each family."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TIER_SHARE = (0.45, 0.40, 0.15)  # budget, mid, premium
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
class Brands:
    names: list[str]
    category: np.ndarray  # each brand sells in one category
    tier: np.ndarray
    log_pop: np.ndarray
    of_family: np.ndarray  # the brand of each family


def draw_brands(rng: np.random.Generator, present: list[int], fam_category: np.ndarray) -> Brands:
    """Per category, one brand per 25 families (at least 12); families draw brands by popularity."""
    per_category = [max(12, int(np.sum(fam_category == c) / 25)) for c in present]
    names = brand_names(rng, sum(per_category))
    category = np.concatenate([np.full(k, c) for c, k in zip(present, per_category, strict=True)])
    tier = rng.choice(3, size=category.size, p=TIER_SHARE).astype(np.int8)
    log_pop = rng.normal(0.0, 1.1, size=category.size)
    of_family = np.empty(fam_category.size, dtype=np.int32)
    for c in present:
        ids = np.flatnonzero(category == c)
        p = np.exp(log_pop[ids])
        rows = np.flatnonzero(fam_category == c)
        of_family[rows] = rng.choice(ids, size=rows.size, p=p / p.sum())
    return Brands(names=names, category=category, tier=tier, log_pop=log_pop, of_family=of_family)


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
