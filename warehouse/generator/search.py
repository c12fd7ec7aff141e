"""The shop's search engine: which products a query returns, in which order, with which ads.

Ranking is non-personalised: relevance of a family to the intent (gender, color availability, occasion,
season and holiday words, style adjective, material, subcategory) plus its popularity, a new-arrival
boost, a calendar term (in-season and upcoming-holiday products rank higher) and a little per-search
noise, so that the same query at the same time returns nearly the same top results (what the paper's
query-product memory relies on) and new products keep entering them (C1). Only families on sale for the
whole week of the search are listed, so every event falls between its item's first_seen and last_seen.
A search page lists 10-20 organic results (positions 1..K) and up to three sponsored ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from warehouse.generator.catalog import Catalog
from warehouse.generator.fashion_calendar import day_seasons, holiday_window_matrix
from warehouse.generator.presets import GeneratorPreset
from warehouse.generator.queries import Intents
from warehouse.generator.vocabulary import ALL_SEASON, SUBCATEGORIES, SUBCATEGORY_INDEX, UNISEX

SPONSORED_SLOTS = 3
# Display rank of sponsored slot k: before organic 1, after organic 4, after organic 8 (Amazon-like).
SPONSORED_DISPLAY = np.array([1, 9, 17])


@dataclass(frozen=True)
class RankingParams:
    """Weights of the ranking score (log-odds scale). Illustrative values chosen so that relevance
    dominates, popularity orders the relevant products, and new arrivals get a few weeks of exposure."""

    shortlist: int = 80  # candidates kept per (intent, week) before personal re-ranking and noise
    subcat_exact: float = 3.0
    subcat_neighbor: float = 1.0  # related subcategories fill thin result pages
    popularity: float = 0.3
    new_arrival: float = 1.8
    new_arrival_days: float = 21.0
    in_season: float = 0.4
    adjacent_season: float = -0.2
    off_season: float = -0.8
    holiday_upcoming: float = 1.0  # holiday edition within its holiday's shopping window
    holiday_passed: float = -0.6  # holiday edition outside it (clearance)
    gender_match: float = 1.5
    gender_unisex: float = 0.5
    gender_mismatch: float = -3.0
    color_match: float = 1.5
    color_miss: float = -1.0
    occasion_match: float = 1.0
    occasion_miss: float = -0.3
    season_word_match: float = 1.0
    season_word_all: float = 0.2
    season_word_miss: float = -1.0
    holiday_word_match: float = 2.5
    holiday_word_miss: float = -0.5
    adjective_match: float = 0.8
    material_match: float = 0.8
    brand_match: float = 2.5  # a brand in the query lists that brand's products first
    search_noise: float = 0.5  # Gumbel scale of the per-search reshuffle
    # weight of the shopper's personal boost (favourite brands, price tier, own size in stock): shops
    # personalise ranking, which also spreads purchases over more of a large catalog
    personalization: float = 1.0
    feed_noise: float = 0.8  # recommendation feeds are more varied than search pages


@dataclass
class Listing:
    """Result pages of many searches, columns in display order; family -1 marks an empty slot."""

    family: np.ndarray  # (n, slots) int32
    position: np.ndarray  # (n, slots) int16 organic position, 0 for sponsored or empty slots
    sponsored: np.ndarray  # (n, slots) bool


class SearchEngine:
    def __init__(self, catalog: Catalog, preset: GeneratorPreset, params: RankingParams | None = None):
        self.catalog = catalog
        self.params = params or RankingParams()
        self.n_days = catalog.n_days
        self.day_season = day_seasons(catalog.start, self.n_days)
        self.windows = holiday_window_matrix(catalog.start, self.n_days + 7)
        in_scope = [SUBCATEGORY_INDEX[s] for s in preset.subcategory_names()]
        self.by_subcat = {s: np.flatnonzero(catalog.fam_subcat == s) for s in in_scope}
        self.neighbors = {
            s: [
                SUBCATEGORY_INDEX[n]
                for n in SUBCATEGORIES[s].neighbors
                if SUBCATEGORY_INDEX[n] in self.by_subcat
            ]
            for s in in_scope
        }
        self.same_category = {
            s: [t for t in in_scope if SUBCATEGORIES[t].category == SUBCATEGORIES[s].category and t != s]
            for s in in_scope
        }
        self._pools: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    def live(self, families: np.ndarray, week: int) -> np.ndarray:
        """Families on sale on every day of the week (so any event that week is within its dates)."""
        c = self.catalog
        d0 = 7 * week
        return families[(c.fam_first_day[families] <= d0) & (c.fam_last_day[families] >= d0 + 6)]

    def pool(self, subcat: int, week: int) -> tuple[np.ndarray, np.ndarray]:
        """Live families a search in ``subcat`` can return that week, and their query-independent score."""
        key = (subcat, week)
        if key in self._pools:
            return self._pools[key]
        p, c = self.params, self.catalog
        fams = self.live(self.by_subcat[subcat], week)
        if fams.size < p.shortlist:
            fams = np.concatenate(
                [fams, *(self.live(self.by_subcat[t], week) for t in self.neighbors[subcat])]
            )
        if fams.size < p.shortlist:
            others = [t for t in self.same_category[subcat] if t not in self.neighbors[subcat]]
            fams = np.concatenate([fams, *(self.live(self.by_subcat[t], week) for t in others)])
        d0 = 7 * week
        mid = min(d0 + 3, self.n_days - 1)
        cal = self.day_season[mid]
        sub = c.fam_subcat[fams]
        score = np.where(
            sub == subcat,
            p.subcat_exact,
            np.where(np.isin(sub, self.neighbors[subcat]), p.subcat_neighbor, 0.0),
        )
        score = score + p.popularity * c.fam_log_pop[fams]
        age = np.maximum(d0 - c.fam_first_day[fams], 0)
        score += p.new_arrival * np.exp(-age / p.new_arrival_days)
        fs = c.fam_season[fams]
        dist = np.abs(fs.astype(int) - cal) % 4
        dist = np.minimum(dist, 4 - dist)
        score += np.where(
            fs == ALL_SEASON, 0.0, np.choose(dist, [p.in_season, p.adjacent_season, p.off_season])
        )
        fh = c.fam_holiday[fams]
        upcoming = self.windows[mid, np.maximum(fh, 0)]
        score += np.where(fh < 0, 0.0, np.where(upcoming, p.holiday_upcoming, p.holiday_passed))
        self._pools[key] = (fams, score.astype(np.float32))
        return self._pools[key]

    def shortlist(self, subcat: int, week: int, intents: Intents) -> tuple[np.ndarray, np.ndarray]:
        """Top ``shortlist`` families and scores for each intent (all of one subcategory and week)."""
        p, c = self.params, self.catalog
        fams, static = self.pool(subcat, week)
        L = p.shortlist
        out_f = np.full((intents.n, L), -1, dtype=np.int32)
        out_s = np.full((intents.n, L), -np.inf, dtype=np.float32)
        if fams.size == 0:
            return out_f, out_s
        fg, fs, fh = c.fam_gender[fams], c.fam_season[fams], c.fam_holiday[fams]
        own = c.fam_subcat[fams] == subcat

        def bit(mask: np.ndarray, i: int) -> np.ndarray:
            return ((mask >> i) & 1) == 1

        # each attribute's term depends only on the attribute's value: one row per distinct value, gathered
        terms = {
            "gender": lambda g: np.where(
                fg == g, p.gender_match, np.where(fg == UNISEX, p.gender_unisex, p.gender_mismatch)
            ),
            "color": lambda v: np.where(bit(c.fam_color_mask[fams], v), p.color_match, p.color_miss),
            "occasion": lambda v: np.where(bit(c.fam_occ_mask[fams], v), p.occasion_match, p.occasion_miss),
            "season": lambda v: np.where(
                fs == v,
                p.season_word_match,
                np.where(fs == ALL_SEASON, p.season_word_all, p.season_word_miss),
            ),
            "holiday": lambda v: np.where(fh == v, p.holiday_word_match, p.holiday_word_miss),
            "adjective": lambda v: np.where(own & bit(c.fam_adj_mask[fams], v), p.adjective_match, 0.0),
            "material": lambda v: np.where(c.fam_material[fams] == v, p.material_match, 0.0),
            "brand": lambda v: np.where(c.fam_brand[fams] == v, p.brand_match, 0.0),
        }
        score = np.broadcast_to(static, (intents.n, fams.size)).copy()
        for name, term in terms.items():
            values = getattr(intents, name).astype(np.int64)
            if (values < 0).all():
                continue
            uniq, inverse = np.unique(values, return_inverse=True)
            rows = np.stack([np.zeros(fams.size) if v < 0 else term(int(v)) for v in uniq]).astype(np.float32)
            score += rows[inverse]
        k = min(L, fams.size)
        if fams.size > L:
            top = np.argpartition(-score, L - 1, axis=1)[:, :L]
        else:
            top = np.broadcast_to(np.arange(fams.size), (intents.n, fams.size))
        top_scores = np.take_along_axis(score, top, axis=1)
        order = np.argsort(-top_scores, axis=1, kind="stable")
        out_f[:, :k] = fams[np.take_along_axis(top, order, axis=1)]
        out_s[:, :k] = np.take_along_axis(top_scores, order, axis=1)
        return out_f, out_s

    def shortlists(self, intents: Intents, day: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Shortlists for many searches at once, grouped by (subcategory, week) and distinct intent."""
        L = self.params.shortlist
        out_f = np.full((intents.n, L), -1, dtype=np.int32)
        out_s = np.full((intents.n, L), -np.inf, dtype=np.float32)
        week = day // 7
        group = intents.subcat.astype(np.int64) * 10_000 + week
        codes = intents.codes()
        order = np.lexsort((codes, group))
        g_sorted = group[order]
        bounds = np.flatnonzero(np.diff(g_sorted)) + 1
        starts = np.concatenate([[0], bounds])
        ends = np.concatenate([bounds, [order.size]])
        for a, b in zip(starts, ends, strict=True):
            rows = order[a:b]
            _, first, inverse = np.unique(codes[rows], return_index=True, return_inverse=True)
            reps = intents.take(rows[first])
            f, s = self.shortlist(int(intents.subcat[rows[0]]), int(week[rows[0]]), reps)
            out_f[rows], out_s[rows] = f[inverse], s[inverse]
        return out_f, out_s

    def listings(
        self,
        intents: Intents,
        day: np.ndarray,
        n_organic: np.ndarray,
        n_sponsored: np.ndarray,
        feed: np.ndarray,
        rng: np.random.Generator,
        personal: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> Listing:
        """Result pages: the shortlist re-ranked for the shopper (``personal`` maps the (n, shortlist)
        families to a score boost) and by per-search noise, cut to ``n_organic`` results, plus
        ``n_sponsored`` ads drawn from the shortlist entries that did not make the page."""
        p = self.params
        fam, score = self.shortlists(intents, day)
        n, L = fam.shape
        if personal is not None:
            score = score + p.personalization * personal(np.maximum(fam, 0))
        scale = np.where(feed, p.feed_noise, p.search_noise)[:, None]
        noisy = score - scale * np.log(-np.log(rng.random((n, L))))
        noisy[fam < 0] = -np.inf
        order = np.argsort(-noisy, axis=1, kind="stable")
        fam = np.take_along_axis(fam, order, axis=1)
        valid = np.take_along_axis(np.isfinite(noisy), order, axis=1)
        n_valid = valid.sum(axis=1)
        k = np.minimum(n_organic, n_valid)
        k_max = int(n_organic.max()) if n else 0
        organic = np.where(np.arange(k_max)[None, :] < k[:, None], fam[:, :k_max], -1)
        # ads: random picks among the shortlist entries below the page cut
        rest_keys = np.where((np.arange(L)[None, :] >= k[:, None]) & valid, rng.random((n, L)), np.inf)
        rest = np.argsort(rest_keys, axis=1, kind="stable")[:, :SPONSORED_SLOTS]
        n_rest = np.minimum((n_valid - k), SPONSORED_SLOTS)
        n_sp = np.where(feed, 0, np.minimum(n_sponsored, n_rest))
        ads = np.where(
            np.arange(SPONSORED_SLOTS)[None, :] < n_sp[:, None], np.take_along_axis(fam, rest, axis=1), -1
        )
        # interleave: organic position q has display rank 2q, ad k has SPONSORED_DISPLAY[k]
        families = np.concatenate([organic, ads], axis=1)
        display = np.concatenate(
            [
                np.broadcast_to(2 * np.arange(1, k_max + 1), (n, k_max)),
                np.broadcast_to(SPONSORED_DISPLAY, (n, SPONSORED_SLOTS)),
            ],
            axis=1,
        )
        display = np.where(families >= 0, display, 10_000)
        cols = np.argsort(display, axis=1, kind="stable")
        families = np.take_along_axis(families, cols, axis=1).astype(np.int32)
        is_ad = np.take_along_axis(
            np.concatenate([np.zeros((n, k_max), bool), np.ones((n, SPONSORED_SLOTS), bool)], axis=1),
            cols,
            axis=1,
        ) & (families >= 0)
        position = np.where((families >= 0) & ~is_ad, np.cumsum((families >= 0) & ~is_ad, axis=1), 0)
        return Listing(family=families, position=position.astype(np.int16), sponsored=is_ad)
