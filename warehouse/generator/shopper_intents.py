"""What shoppers look for: the days they shop on, the holiday and subcategory of a mission (C3) and the
intent behind each search or recommendation feed (which attributes the query mentions)."""

from __future__ import annotations

import numpy as np

from warehouse.generator.episodes import Shop
from warehouse.generator.fashion_calendar import (
    HOLIDAYS,
    holiday_window_matrix,
    season_distance,
    shopping_volume,
)
from warehouse.generator.queries import Intents
from warehouse.generator.vocabulary import (
    ALL_SEASON,
    CATEGORIES,
    COLOR_INDEX,
    COLORS,
    MATERIAL_INDEX,
    OCCASION_INDEX,
    OCCASIONS,
    PALETTES,
    SUBCATEGORIES,
    SUBCATEGORY_INDEX,
)


def pick(rng: np.random.Generator, weights: np.ndarray) -> np.ndarray:
    """One column per row, drawn with probability proportional to the row's weights."""
    cum = np.cumsum(weights, axis=1)
    u = rng.random(weights.shape[0]) * cum[:, -1]
    return np.minimum((cum < u[:, None]).sum(axis=1), weights.shape[1] - 1)


def _holiday_subcats(in_scope: np.ndarray) -> np.ndarray:
    """(holidays, in-scope subcategories): the subcategory carries editions of the holiday."""
    table = np.zeros((len(HOLIDAYS), in_scope.size), dtype=bool)
    for h, hol in enumerate(HOLIDAYS):
        for j, s in enumerate(in_scope):
            table[h, j] = SUBCATEGORIES[s].name in hol.subcategories
    return table


def _season_demand(in_scope: np.ndarray, season_demand: tuple[float, float, float]) -> np.ndarray:
    """(in-scope subcategories, calendar seasons): demand of the subcategory in the season."""
    demand = np.zeros((in_scope.size, 4))
    for j, s in enumerate(in_scope):
        w = SUBCATEGORIES[s].seasons
        for cal in range(4):
            demand[j, cal] = w[ALL_SEASON] + sum(
                w[k] * season_demand[season_distance(k, cal)] for k in range(4)
            )
    return demand


class IntentSampler:
    """Calendar and vocabulary lookups, per subcategory, and the draws of what shoppers look for."""

    def __init__(self, shop: Shop):
        self.shop = shop
        start, n_days = shop.catalog.start, shop.catalog.n_days
        self.n_days = n_days
        self.windows = holiday_window_matrix(start, n_days)
        self.volume_cdf = np.concatenate([[0.0], np.cumsum(shopping_volume(start, n_days))])
        self.in_scope = np.array([SUBCATEGORY_INDEX[s] for s in shop.preset.subcategory_names()])
        self.holiday_subcats = _holiday_subcats(self.in_scope)
        self.season_demand = _season_demand(self.in_scope, shop.params.season_demand)
        n_sub = len(SUBCATEGORIES)
        self.palette_mask = np.zeros((n_sub, len(COLORS)), dtype=bool)
        self.occ_bits = np.zeros(n_sub, dtype=np.int64)
        self.n_adjectives = np.zeros(n_sub, dtype=np.int16)
        self.materials = np.full((n_sub, 8), -1, dtype=np.int16)
        self.n_materials = np.zeros(n_sub, dtype=np.int16)
        self.seasonal = np.zeros((n_sub, 4), dtype=bool)
        for s, sub in enumerate(SUBCATEGORIES):
            self.palette_mask[s, [COLOR_INDEX[c] for c in PALETTES[sub.palette]]] = True
            for o in sub.occasions:
                self.occ_bits[s] |= 1 << OCCASION_INDEX[o]
            self.n_adjectives[s] = len(sub.adjectives)
            self.materials[s, : len(sub.materials)] = [MATERIAL_INDEX[m] for m in sub.materials]
            self.n_materials[s] = len(sub.materials)
            self.seasonal[s] = np.array(sub.seasons[:4]) >= 0.15
        self.subcat_category = np.array([CATEGORIES.index(s.category) for s in SUBCATEGORIES])

    def days_in_windows(self, start: np.ndarray, length: np.ndarray) -> np.ndarray:
        """Days drawn from the shop's daily volume, each within [start, start + length)."""
        lo, hi = self.volume_cdf[start], self.volume_cdf[np.minimum(start + length, self.n_days)]
        u = lo + self.shop.rng.random(start.size) * (hi - lo)
        return np.clip(np.searchsorted(self.volume_cdf, u, side="right") - 1, 0, self.n_days - 1).astype(
            np.int32
        )

    def holidays(self, day: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per mission: the holiday it may shop for (-1: none) and whether it does."""
        rng = self.shop.rng
        share = np.array([h.mission_share for h in HOLIDAYS])
        active = self.windows[day] & self.holiday_subcats.any(axis=1)[None, :]
        w = active * share[None, :]
        any_active = w.sum(axis=1) > 0
        hol = np.where(any_active, pick(rng, np.where(any_active[:, None], w, 1.0)), -1)
        is_hol = any_active & (rng.random(day.size) < share[np.maximum(hol, 0)])
        return hol.astype(np.int8), is_hol

    def subcats(
        self, user: np.ndarray, day: np.ndarray, holiday: np.ndarray, is_hol: np.ndarray
    ) -> np.ndarray:
        """The subcategory of each mission: the user's tastes x the calendar season's demand, or, for a
        holiday mission, the subcategories that carry the holiday's editions."""
        aff = self.shop.users.sub_affinity[user][:, self.in_scope]
        w = aff * self.season_demand[:, self.shop.day_season[day]].T
        if is_hol.any():
            hmask = self.holiday_subcats[np.maximum(holiday, 0)]
            hw = (aff + 0.1 / np.maximum(hmask.sum(axis=1, keepdims=True), 1)) * hmask
            w = np.where(is_hol[:, None], hw, w)
        return self.in_scope[pick(self.shop.rng, w)].astype(np.int16)

    def draw(
        self,
        subcat: np.ndarray,
        user: np.ndarray,
        day: np.ndarray,
        target_gender: np.ndarray,
        gift: np.ndarray,
        holiday: np.ndarray,
        is_hol: np.ndarray,
    ) -> Intents:
        """A typed search's intent: the subcategory plus the attributes this user tends to mention."""
        p, rng, u = self.shop.params, self.shop.rng, self.shop.users
        n = subcat.size
        verb = 0.5 + u.verbosity[user]
        none = np.full(n, -1, dtype=np.int16)

        def maybe(prob: float) -> np.ndarray:
            return rng.random(n) < prob * verb

        gender = np.where(maybe(p.p_gender), target_gender, -1).astype(np.int8)
        cw = np.where(gift[:, None], 1.0, u.color_pref[user]) * self.palette_mask[subcat]
        color = np.where(maybe(p.p_color), pick(rng, cw), -1).astype(np.int16)
        own_occ = u.occ_mask[user] & self.occ_bits[subcat]
        occ_pool = np.where(own_occ != 0, own_occ, self.occ_bits[subcat])
        bits = ((occ_pool[:, None] >> np.arange(len(OCCASIONS))) & 1).astype(float)
        occasion = np.where(maybe(p.p_occasion), pick(rng, bits), -1).astype(np.int16)
        cal = self.shop.day_season[day]
        season = np.where(maybe(p.p_season) & self.seasonal[subcat, cal], cal, -1).astype(np.int8)
        holiday_word = np.where(is_hol & (rng.random(n) < p.p_holiday_word), holiday, -1).astype(np.int8)
        adjective = np.where(
            maybe(p.p_adjective), (rng.random(n) * self.n_adjectives[subcat]).astype(int), -1
        ).astype(np.int16)
        mat_idx = (rng.random(n) * self.n_materials[subcat]).astype(int)
        material = np.where(maybe(p.p_material), self.materials[subcat, mat_idx], none).astype(np.int16)
        brand = np.where(maybe(p.p_brand) & ~gift, self.favourite_brand(user, subcat), -1).astype(np.int32)
        return Intents(
            subcat.astype(np.int16), gender, color, occasion, season, holiday_word, adjective, material, brand
        )

    def favourite_brand(self, user: np.ndarray, subcat: np.ndarray) -> np.ndarray:
        """One of the user's favourite brands of the subcategory's category, at random."""
        brand_pref = self.shop.users.brand_pref
        pick_one = self.shop.rng.integers(0, brand_pref.shape[2], size=user.size)
        return brand_pref[user, self.subcat_category[subcat], pick_one]

    def broaden(self, intents: Intents) -> Intents:
        """The first, vaguer query of a refined search: fewer attributes than the final one."""
        n = intents.n
        drop_gender = self.shop.rng.random(n) < 0.5
        none8, none16 = np.full(n, -1, dtype=np.int8), np.full(n, -1, dtype=np.int16)
        return Intents(
            intents.subcat,
            np.where(drop_gender, none8, intents.gender),
            none16,
            none16,
            none8,
            intents.holiday,
            none16,
            none16,
            np.full(n, -1, dtype=np.int32),
        )

    def feed(self, subcat: np.ndarray, gender: np.ndarray, user: np.ndarray) -> Intents:
        """A recommendation feed's query: the subcategory for the gender, often from a favourite brand."""
        n = subcat.size
        none8, none16 = np.full(n, -1, dtype=np.int8), np.full(n, -1, dtype=np.int16)
        brand = np.where(
            self.shop.rng.random(n) < self.shop.params.feed_brand_share,
            self.favourite_brand(user, subcat),
            -1,
        )
        return Intents(
            subcat.astype(np.int16),
            gender.astype(np.int8),
            none16,
            none16,
            none8,
            none8,
            none16,
            none16,
            brand.astype(np.int32),
        )
