"""How shoppers search, compare and buy: purchase missions, research and browsing sessions.

Every user has ``n_purchases`` purchase missions at days drawn from the shop's daily volume inside the
user's active stretch. A mission picks a subcategory from the user's tastes, reweighted by the calendar
season (C3), or, inside a holiday's shopping window, becomes a holiday mission (often a gift, bought for
someone of another gender or size). Most missions start with a search (sometimes a broad one refined by a
second); some come from a recommendation feed (no search), a few re-buy a family bought before in
another color. On the result page users click with position bias, buy mostly from top organic results
and what fits their tastes (brands, colors, sizes, price tier, occasions, new arrivals), and before buying
they click several color/size variants of the product (C2). Sessions without purchase (research days
before a mission, window shopping, feed browsing) are added until the interaction count of the preset is
reached.

Everything is vectorised over episodes (one search page or one feed), in chunks, so that the paper-scale
presets take seconds to minutes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from warehouse.generator.catalog import MAX_COLORS, Catalog
from warehouse.generator.fashion_calendar import (
    HOLIDAYS,
    day_seasons,
    holiday_window_matrix,
    season_distance,
    shopping_volume,
)
from warehouse.generator.presets import GeneratorPreset
from warehouse.generator.queries import Intents, write_queries
from warehouse.generator.search import SearchEngine
from warehouse.generator.users import Users
from warehouse.generator.vocabulary import (
    ALL_SEASON,
    CATEGORIES,
    COLOR_INDEX,
    COLORS,
    MATERIAL_INDEX,
    OCCASION_INDEX,
    OCCASIONS,
    PALETTES,
    STYLES,
    SUBCATEGORIES,
    SUBCATEGORY_INDEX,
    UNISEX,
)

ACTIONS = ("search", "impression", "click", "add_to_cart", "purchase")
SEARCH, IMPRESSION, CLICK, CART, PURCHASE = range(5)
CHUNK = 20_000  # episodes simulated at once (bounds the (episodes x slots x colors) temporaries)


@dataclass(frozen=True)
class BehaviourParams:
    """Shopper behaviour. The values are design choices that make the paper's four properties visible
    (C1-C4, arXiv 2410.11327 section 3) at realistic magnitudes; none is measured from real logs."""

    # -- what a query mentions besides the subcategory (probabilities, scaled by the user's verbosity)
    p_gender: float = 0.55
    p_color: float = 0.4
    p_occasion: float = 0.3
    p_season: float = 0.25
    p_holiday_word: float = 0.7
    p_adjective: float = 0.3
    p_material: float = 0.1
    p_brand: float = 0.12  # one of the shopper's favourite brands ("rubzoo tank tops")
    feed_brand_share: float = 0.4  # recommendation feeds built around one of the shopper's favourite brands
    refine_share: float = 0.28  # missions that start with a broad search and refine it
    rephrase_share: float = 0.07  # ... and that retype the query once more
    # -- seasonal demand multiplier of a season-s family when the calendar is in the same / an adjacent /
    # the opposite season (swimwear sells in summer, coats in winter)
    season_demand: tuple[float, float, float] = (2.2, 0.6, 0.15)
    # -- click model: examination probability ~ position^-exam_power (position bias), ads are seen less
    exam_power: float = 0.9
    sponsored_exam: float = 0.9
    buy_position_power: float = 1.5  # purchases lean even more on top organic results (the paper's C4 note)
    buy_utility_scale: float = 1.3
    clicks_buy_page: float = 0.9  # mean clicks on other products of the page a purchase comes from
    clicks_refined_page: float = 0.6  # ... of a page the user refined away from
    clicks_browse_page: float = 1.1
    clicks_research_page: float = 1.3
    clicks_feed: float = 1.0
    # -- comparison before buying (C2): extra variant clicks of the bought family, P(0..4 variants)
    variant_clicks: tuple[float, ...] = (0.15, 0.3, 0.27, 0.16, 0.12)
    size_variant_share: float = 0.15  # a variant click that changes size instead of color
    other_variant_share: float = 0.2  # clicked non-bought products whose second color is clicked too
    # share of result slots that show the shopper's favourite color of the product instead of its lead color
    # (shops personalise swatches from browsing history, as they preselect the shopper's size)
    personal_display: float = 0.5
    display_bias: float = 0.7  # preference for buying the variant the page showed over a compared one
    cart_share: float = 0.55  # purchases preceded by an add-to-cart
    abandoned_cart_share: float = 0.06
    browse_cart_share: float = 0.07
    repeat_share: float = 0.12  # feed purchases that re-buy an earlier family in another color
    chase_share: float = 0.5  # research sessions click the product bought days later when it is listed
    research_days: tuple[int, int] = (1, 14)
    # -- utility of a product for a user (log-odds)
    w_brand: float = 1.6
    w_color: float = 0.6
    w_tier: float = 0.7
    w_occasion: float = 0.5
    w_gender: float = 2.5
    w_size: float = 1.5
    w_in_season: float = 0.4
    w_off_season: float = 0.8
    w_novelty: float = 1.6
    novelty_days: float = 21.0
    w_holiday: float = 1.5
    w_popularity: float = 0.3
    w_style: float = 0.6
    w_subcat: float = 1.0
    feed_page: int = 8
    sponsored_counts: tuple[float, ...] = (0.3, 0.35, 0.25, 0.1)  # P(0..3 ads on a page)


@dataclass
class Episodes:
    """One search page (visible) or one recommendation feed each; many per session."""

    session: np.ndarray
    order: np.ndarray  # rank of the episode within its session
    user: np.ndarray
    day: np.ndarray
    intents: Intents
    visible: np.ndarray  # a typed search (False: recommendation feed, no search row)
    buy: np.ndarray  # the episode ends in a purchase
    click_rate: np.ndarray  # mean clicks on products other than the bought one
    gift: np.ndarray  # bought for someone else: the user's own size does not apply
    holiday: np.ndarray  # holiday the mission shops for, -1 when none
    target_gender: np.ndarray
    insert_family: np.ndarray  # family put first on the feed and bought (re-buy), -1 when none
    chase_family: np.ndarray  # family clicked when it is listed (research before a purchase), -1 when none
    avoid_color: np.ndarray  # color not to buy again (re-buy in another color), -1 when none

    FIELDS = (
        "session",
        "order",
        "user",
        "day",
        "intents",
        "visible",
        "buy",
        "click_rate",
        "gift",
        "holiday",
        "target_gender",
        "insert_family",
        "chase_family",
        "avoid_color",
    )

    @property
    def n(self) -> int:
        return self.session.size

    def take(self, idx: np.ndarray) -> Episodes:
        return Episodes(
            *(getattr(self, f).take(idx) if f == "intents" else getattr(self, f)[idx] for f in self.FIELDS)
        )

    @staticmethod
    def concat(parts: list[Episodes]) -> Episodes:
        return Episodes(
            *(
                Intents.concat([p.intents for p in parts])
                if f == "intents"
                else np.concatenate([getattr(p, f) for p in parts])
                for f in Episodes.FIELDS
            )
        )


@dataclass
class EventLog:
    """Events as column chunks; ``key`` orders events within a session, ``gap`` is seconds after the
    previous event of the session. ``search`` indexes ``queries`` (-1: not from a search)."""

    chunks: list[dict[str, np.ndarray]] = field(default_factory=list)
    queries: list[str] = field(default_factory=list)
    search_intents: list[Intents] = field(default_factory=list)

    def add(self, **cols: np.ndarray) -> None:
        if cols["session"].size:
            self.chunks.append(cols)

    def columns(self) -> dict[str, np.ndarray]:
        names = ("session", "key", "gap", "action", "item", "search", "position", "sponsored")
        return {n: np.concatenate([c[n] for c in self.chunks]) if self.chunks else np.zeros(0) for n in names}


@dataclass
class EpisodeOutcome:
    bought_family: np.ndarray  # -1 when nothing was bought
    bought_item: np.ndarray
    bought_color: np.ndarray
    interactions: np.ndarray  # search + click + add_to_cart + purchase events of the episode


@dataclass
class Page:
    """Result pages of a chunk of episodes, (episodes, slots) arrays in display order."""

    family: np.ndarray  # -1: empty slot
    f: np.ndarray  # family with empty slots mapped to 0, for lookups (mask with `valid`)
    position: np.ndarray  # organic position, 0 for ads and feeds
    sponsored: np.ndarray
    valid: np.ndarray
    forced: np.ndarray  # (episodes,) the first slot holds a family to re-buy
    color_slot: np.ndarray  # variant shown: color slot within the family
    size_slot: np.ndarray  # ... and size slot
    n_sizes: np.ndarray
    fits: np.ndarray  # the family comes in the shopper's size
    best_color: np.ndarray  # the shopper's taste for the family's best-liked color
    shown: np.ndarray  # item shown


@dataclass
class Comparison:
    family: np.ndarray  # bought family per episode, -1 when none
    variant_items: np.ndarray  # (episodes, k) variants clicked before buying
    variant_ok: np.ndarray  # (episodes, k) which of them were clicked
    item: np.ndarray  # bought item, -1 when none
    color: np.ndarray  # its color


@dataclass
class Simulation:
    log: EventLog
    session_user: np.ndarray
    session_day: np.ndarray
    session_kind: np.ndarray  # index into SESSION_KINDS


SESSION_KINDS = ("purchase", "research", "browse", "feed")


class Shoppers:
    """Runs missions and sessions for all users against one catalog and search engine."""

    def __init__(
        self,
        preset: GeneratorPreset,
        catalog: Catalog,
        users: Users,
        rng: np.random.Generator,
        params: BehaviourParams | None = None,
    ):
        self.preset, self.catalog, self.users, self.rng = preset, catalog, users, rng
        self.p = params or BehaviourParams()
        self.engine = SearchEngine(catalog, preset)
        n_days = catalog.n_days
        self.n_days = n_days
        self.day_season = day_seasons(catalog.start, n_days)
        self.windows = holiday_window_matrix(catalog.start, n_days)
        volume = shopping_volume(catalog.start, n_days)
        self.volume_cdf = np.concatenate([[0.0], np.cumsum(volume)])
        self.in_scope = np.array([SUBCATEGORY_INDEX[s] for s in preset.subcategory_names()])
        scope = set(self.in_scope.tolist())
        # holiday -> in-scope subcategories that carry its editions
        self.holiday_subcats = np.zeros((len(HOLIDAYS), self.in_scope.size), dtype=bool)
        for h, hol in enumerate(HOLIDAYS):
            for j, s in enumerate(self.in_scope):
                self.holiday_subcats[h, j] = SUBCATEGORIES[s].name in hol.subcategories and s in scope
        # demand of each in-scope subcategory in each calendar season
        demand = np.zeros((self.in_scope.size, 4))
        for j, s in enumerate(self.in_scope):
            w = SUBCATEGORIES[s].seasons
            for cal in range(4):
                demand[j, cal] = w[ALL_SEASON] + sum(
                    w[k] * self.p.season_demand[season_distance(k, cal)] for k in range(4)
                )
        self.season_demand = demand
        # per subcategory vocab lookups used when drawing intents
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

    # ------------------------------------------------------------------ drawing helpers
    def _days_in_windows(self, start: np.ndarray, length: np.ndarray) -> np.ndarray:
        """Days drawn from the shop's daily volume, each within [start, start + length)."""
        lo, hi = self.volume_cdf[start], self.volume_cdf[np.minimum(start + length, self.n_days)]
        u = lo + self.rng.random(start.size) * (hi - lo)
        return np.clip(np.searchsorted(self.volume_cdf, u, side="right") - 1, 0, self.n_days - 1).astype(
            np.int32
        )

    def _pick(self, weights: np.ndarray) -> np.ndarray:
        """One column per row, drawn with probability proportional to the row's weights."""
        cum = np.cumsum(weights, axis=1)
        u = self.rng.random(weights.shape[0]) * cum[:, -1]
        return np.minimum((cum < u[:, None]).sum(axis=1), weights.shape[1] - 1)

    def _holidays(self, day: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per mission: the holiday it may shop for (-1: none) and whether it does."""
        share = np.array([h.mission_share for h in HOLIDAYS])
        active = self.windows[day] & self.holiday_subcats.any(axis=1)[None, :]
        w = active * share[None, :]
        any_active = w.sum(axis=1) > 0
        hol = np.where(any_active, self._pick(np.where(any_active[:, None], w, 1.0)), -1)
        is_hol = any_active & (self.rng.random(day.size) < share[np.maximum(hol, 0)])
        return hol.astype(np.int8), is_hol

    def _subcats(
        self, user: np.ndarray, day: np.ndarray, holiday: np.ndarray, is_hol: np.ndarray
    ) -> np.ndarray:
        aff = self.users.sub_affinity[user][:, self.in_scope]
        w = aff * self.season_demand[:, self.day_season[day]].T
        if is_hol.any():
            hmask = self.holiday_subcats[np.maximum(holiday, 0)]
            hw = (aff + 0.1 / np.maximum(hmask.sum(axis=1, keepdims=True), 1)) * hmask
            w = np.where(is_hol[:, None], hw, w)
        return self.in_scope[self._pick(w)].astype(np.int16)

    def draw_intents(
        self,
        subcat: np.ndarray,
        user: np.ndarray,
        day: np.ndarray,
        target_gender: np.ndarray,
        gift: np.ndarray,
        holiday: np.ndarray,
        is_hol: np.ndarray,
    ) -> Intents:
        p, rng, u = self.p, self.rng, self.users
        n = subcat.size
        verb = 0.5 + u.verbosity[user]
        none = np.full(n, -1, dtype=np.int16)

        def maybe(prob: float) -> np.ndarray:
            return rng.random(n) < prob * verb

        gender = np.where(maybe(p.p_gender), target_gender, -1).astype(np.int8)
        cw = np.where(gift[:, None], 1.0, u.color_pref[user]) * self.palette_mask[subcat]
        color = np.where(maybe(p.p_color), self._pick(cw), -1).astype(np.int16)
        own_occ = u.occ_mask[user] & self.occ_bits[subcat]
        occ_pool = np.where(own_occ != 0, own_occ, self.occ_bits[subcat])
        bits = ((occ_pool[:, None] >> np.arange(len(OCCASIONS))) & 1).astype(float)
        occasion = np.where(maybe(p.p_occasion), self._pick(bits), -1).astype(np.int16)
        cal = self.day_season[day]
        season = np.where(maybe(p.p_season) & self.seasonal[subcat, cal], cal, -1).astype(np.int8)
        holiday_word = np.where(is_hol & (rng.random(n) < p.p_holiday_word), holiday, -1).astype(np.int8)
        adjective = np.where(
            maybe(p.p_adjective), (rng.random(n) * self.n_adjectives[subcat]).astype(int), -1
        ).astype(np.int16)
        mat_idx = (rng.random(n) * self.n_materials[subcat]).astype(int)
        material = np.where(maybe(p.p_material), self.materials[subcat, mat_idx], none).astype(np.int16)
        brand = np.where(maybe(p.p_brand) & ~gift, self._favourite_brand(user, subcat), -1).astype(np.int32)
        return Intents(
            subcat.astype(np.int16), gender, color, occasion, season, holiday_word, adjective, material, brand
        )

    def _favourite_brand(self, user: np.ndarray, subcat: np.ndarray) -> np.ndarray:
        """One of the user's favourite brands of the subcategory's category, at random."""
        pick = self.rng.integers(0, self.users.brand_pref.shape[2], size=user.size)
        return self.users.brand_pref[user, self.subcat_category[subcat], pick]

    def broaden(self, intents: Intents) -> Intents:
        """The first, vaguer query of a refined search: fewer attributes than the final one."""
        n = intents.n
        drop_gender = self.rng.random(n) < 0.5
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

    # ------------------------------------------------------------------ episodes
    def run(self, ep: Episodes, log: EventLog, desc: str) -> EpisodeOutcome:
        """Simulate all episodes, in chunks of the same subcategory and week (the search engine ranks each
        (subcategory, week, intent) once per chunk); outcomes come back in the order of ``ep``."""
        fields = ("bought_family", "bought_item", "bought_color", "interactions")
        if ep.n == 0:
            empty = np.zeros(0, dtype=np.int64)
            return EpisodeOutcome(empty, empty, empty, empty)
        by_group = np.lexsort((ep.day // 7, ep.intents.subcat))
        outs = []
        for a in tqdm(range(0, ep.n, CHUNK), desc=desc, leave=False, disable=None):
            outs.append(self._run_chunk(ep.take(by_group[a : a + CHUNK]), log))
        merged = {f: np.concatenate([getattr(o, f) for o in outs]) for f in fields}
        back = np.empty(ep.n, dtype=np.int64)
        back[by_group] = np.arange(ep.n)
        return EpisodeOutcome(*(merged[f][back] for f in fields))

    def _run_chunk(self, ep: Episodes, log: EventLog) -> EpisodeOutcome:
        page = self._result_page(ep)
        util = self._utility(ep, page)
        bought_slot, clicked = self._clicks(ep, page, util)
        buy = self._compare_and_buy(ep, page, bought_slot)
        return self._emit(ep, page, clicked, bought_slot, buy, log)

    def _result_page(self, ep: Episodes) -> Page:
        """The page each episode sees, and which variant each slot shows: the query's color if the family
        has it, else the shopper's favourite color (personalised swatch) or the family's lead color; the
        shopper's size if the family has it and the purchase is for themselves, else a middle size."""
        p, rng, c, u = self.p, self.rng, self.catalog, self.users
        n = ep.n
        lo, hi = self.preset.organic_results
        n_organic = np.where(ep.visible, rng.integers(lo, hi + 1, size=n), p.feed_page)
        n_ads = rng.choice(len(p.sponsored_counts), size=n, p=p.sponsored_counts)
        listing = self.engine.listings(
            ep.intents, ep.day, n_organic, n_ads, ~ep.visible, rng, personal=lambda f: self._personal(ep, f)
        )
        fam, pos, ad = listing.family, listing.position, listing.sponsored
        forced = ep.insert_family >= 0
        fam[forced[:, None] & (fam == ep.insert_family[:, None])] = -1  # listed once, first
        fam[forced, 0], pos[forced, 0], ad[forced, 0] = ep.insert_family[forced], 1, False
        f = np.maximum(fam, 0)
        user = ep.user[:, None]
        colors = c.fam_colors[f]  # (n, slots, MAX_COLORS)
        want = ep.intents.color[:, None, None]
        match = (colors == want) & (want >= 0)
        color_pref = np.where(colors >= 0, u.color_pref[user[..., None], np.maximum(colors, 0)], 0.0)
        favourite = np.where(rng.random(fam.shape) < p.personal_display, color_pref.argmax(axis=2), 0)
        cslot = np.where(match.any(axis=2), match.argmax(axis=2), favourite)
        n_sizes = c.fam_n_sizes[f].astype(np.int64)
        own = u.size[user, c.fam_size_system[f]] - c.fam_size_start[f]
        fits = (own >= 0) & (own < n_sizes)
        sslot = np.where(fits & ~ep.gift[:, None], own, n_sizes // 2)
        return Page(
            family=fam,
            f=f,
            position=pos,
            sponsored=ad,
            valid=fam >= 0,
            forced=forced,
            color_slot=cslot,
            size_slot=sslot,
            n_sizes=n_sizes,
            fits=fits,
            best_color=color_pref.max(axis=2),
            shown=c.item_of(f, cslot, sslot),
        )

    def _personal(self, ep: Episodes, f: np.ndarray) -> np.ndarray:
        """(episodes, candidates) what the shop has learnt of the shopper: favourite brands, price level,
        size and style."""
        c, u = self.catalog, self.users
        user = ep.user[:, None]
        brand_hit = (u.brand_pref[user, c.fam_category[f]] == c.fam_brand[f][..., None]).any(axis=2)
        own = u.size[user, c.fam_size_system[f]] - c.fam_size_start[f]
        fits = (own >= 0) & (own < c.fam_n_sizes[f])
        style = np.log(u.style_pref[user, c.fam_style[f]] * len(STYLES) + 0.05)
        return 1.2 * brand_hit - 0.5 * np.abs(c.fam_tier[f] - u.tier[user]) + 0.5 * fits + 0.8 * style

    def _utility(self, ep: Episodes, page: Page) -> np.ndarray:
        """(episodes, slots) appeal of each listed family to its shopper, in log-odds."""
        p, c, u = self.p, self.catalog, self.users
        f, user = page.f, ep.user[:, None]
        brand_hit = (u.brand_pref[user, c.fam_category[f]] == c.fam_brand[f][..., None]).any(axis=2)
        util = p.w_brand * brand_hit
        util += p.w_color * np.log(page.best_color * len(COLORS) + 0.05)
        util -= p.w_tier * np.abs(c.fam_tier[f] - u.tier[user])
        util += p.w_occasion * ((c.fam_occ_mask[f] & u.occ_mask[user]) != 0)
        wrong_gender = (c.fam_gender[f] != ep.target_gender[:, None]) & (c.fam_gender[f] != UNISEX)
        util -= p.w_gender * wrong_gender
        util -= p.w_size * (~page.fits & ~ep.gift[:, None])
        cal = self.day_season[ep.day][:, None]
        fs = c.fam_season[f]
        dist = np.abs(fs.astype(int) - cal) % 4
        dist = np.minimum(dist, 4 - dist)
        util += np.where(fs == ALL_SEASON, 0.0, np.choose(dist, [p.w_in_season, 0.0, -p.w_off_season]))
        age = np.maximum(ep.day[:, None] - c.fam_first_day[f], 0)
        util += p.w_novelty * u.novelty[user] * np.exp(-age / p.novelty_days)
        util += p.w_holiday * ((c.fam_holiday[f] == ep.holiday[:, None]) & (ep.holiday[:, None] >= 0))
        util += p.w_popularity * c.fam_log_pop[f]
        util += p.w_style * np.log(u.style_pref[user, c.fam_style[f]] * len(STYLES) + 0.05)
        util += p.w_subcat * (c.fam_subcat[f] == ep.intents.subcat[:, None])
        return util

    def _clicks(self, ep: Episodes, page: Page, util: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The slot bought from (-1: none) and the clicked slots, under position bias x appeal."""
        p, rng = self.p, self.rng
        n, S = page.family.shape
        col = np.arange(S)[None, :]
        exam = np.where(
            page.sponsored,
            p.sponsored_exam * (col + 1.0) ** -p.exam_power,
            np.maximum(page.position, 1).astype(float) ** -p.exam_power,
        )
        exam = np.where(ep.visible[:, None], exam, (col + 1.0) ** -0.6)  # feeds: a gentler slope

        def gumbel() -> np.ndarray:
            return -np.log(-np.log(rng.random((n, S))))

        buy_key = np.where(
            page.valid, p.buy_position_power * np.log(exam) + p.buy_utility_scale * util + gumbel(), -np.inf
        )
        bought_slot = np.where(ep.buy & page.valid.any(axis=1), buy_key.argmax(axis=1), -1)
        bought_slot = np.where(ep.buy & page.forced, 0, bought_slot)
        has_buy = bought_slot >= 0
        # other clicks; research sessions click the family bought days later when it is listed
        click_key = np.where(page.valid, np.log(exam) + util + gumbel(), -np.inf)
        click_key[has_buy, bought_slot[has_buy]] = -np.inf
        chase = (page.family == ep.chase_family[:, None]) & (ep.chase_family[:, None] >= 0) & page.valid
        chasing = chase.any(axis=1) & (rng.random(n) < p.chase_share)
        click_key = np.where(chasing[:, None] & chase, np.inf, click_key)
        n_other = np.minimum(rng.poisson(ep.click_rate), page.valid.sum(axis=1) - has_buy)
        n_other = np.where(chasing, np.maximum(n_other, 1), n_other)
        rank = np.argsort(np.argsort(-click_key, axis=1, kind="stable"), axis=1, kind="stable")
        clicked = ((rank < n_other[:, None]) & np.isfinite(click_key)) | (click_key == np.inf)
        clicked[has_buy, bought_slot[has_buy]] = True
        return bought_slot, clicked

    def _compare_and_buy(self, ep: Episodes, page: Page, bought_slot: np.ndarray) -> Comparison:
        """C2: before buying, the shopper clicks other colors (in their size) or sizes of the family, then
        buys the compared color they like best, leaning to the one the page showed."""
        p, rng, c, u = self.p, self.rng, self.catalog, self.users
        n = ep.n
        rows = np.arange(n)
        has_buy = bought_slot >= 0
        b = np.maximum(bought_slot, 0)
        bf = page.f[rows, b]
        nc = c.fam_n_colors[bf].astype(np.int64)
        ns = page.n_sizes[rows, b]
        dc, ds = page.color_slot[rows, b], page.size_slot[rows, b]
        n_variants = rng.choice(len(p.variant_clicks), size=n, p=p.variant_clicks)
        slots = np.arange(MAX_COLORS)[None, :]
        other_colors = np.argsort(
            np.where((slots < nc[:, None]) & (slots != dc[:, None]), rng.random((n, MAX_COLORS)), np.inf),
            axis=1,
            kind="stable",
        )
        k_max = len(p.variant_clicks) - 1
        var_c = np.zeros((n, k_max), dtype=np.int64)
        var_s = np.zeros((n, k_max), dtype=np.int64)
        var_ok = np.zeros((n, k_max), dtype=bool)
        size_steps = (1, -1, 2, -2)  # the k-th size variant is this far from the displayed size
        for k in range(k_max):
            by_size = (k >= nc - 1) | (rng.random(n) < p.size_variant_share)
            var_c[:, k] = np.where(by_size, dc, other_colors[:, min(k, MAX_COLORS - 1)])
            var_s[:, k] = np.where(by_size, ds + size_steps[k % len(size_steps)], ds)
            var_ok[:, k] = has_buy & (k < n_variants) & (var_s[:, k] >= 0) & (var_s[:, k] < ns)
        cand_c = np.concatenate([dc[:, None], var_c], axis=1)
        cand_ok = np.concatenate([has_buy[:, None], var_ok & (var_s == ds[:, None])], axis=1)
        cand_color = c.fam_colors[bf[:, None], cand_c]
        pref = u.color_pref[ep.user[:, None], np.maximum(cand_color, 0)]
        key = 1.5 * np.log(pref + 1e-3) - np.log(-np.log(rng.random(cand_c.shape)))
        key[:, 0] += p.display_bias
        key = np.where(cand_ok, key, -np.inf)
        avoid = (cand_color == ep.avoid_color[:, None]) & (cand_ok.sum(axis=1) > 1)[:, None]
        chosen = cand_c[rows, np.where(avoid, -np.inf, key).argmax(axis=1)]
        return Comparison(
            family=np.where(has_buy, bf, -1),
            variant_items=c.item_of(bf[:, None], var_c, var_s),
            variant_ok=var_ok,
            item=np.where(has_buy, c.item_of(bf, chosen, ds), -1),
            color=np.where(has_buy, c.fam_colors[bf, chosen], -1),
        )

    def _emit(
        self,
        ep: Episodes,
        page: Page,
        clicked: np.ndarray,
        bought_slot: np.ndarray,
        buy: Comparison,
        log: EventLog,
    ) -> EpisodeOutcome:
        """Append the episode's events to ``log`` (with order keys and gaps) and count its interactions."""
        p, rng, c = self.p, self.rng, self.catalog
        n, S = page.family.shape
        has_buy = bought_slot >= 0
        # a second color of some clicked products that are not bought
        n_colors = c.fam_n_colors[page.f]
        other_var = clicked & (rng.random((n, S)) < p.other_variant_share) & (n_colors > 1)
        other_var[has_buy, bought_slot[has_buy]] = False
        alt_c = (
            page.color_slot + 1 + (rng.random((n, S)) * np.maximum(n_colors - 1, 1)).astype(int)
        ) % np.maximum(n_colors, 1)
        alt_item = c.item_of(page.f, alt_c, page.size_slot)
        # carts: most purchases go through the cart; some other clicked product is carted and left
        cart_buy = has_buy & (rng.random(n) < p.cart_share)
        other_clicked = clicked.copy()
        other_clicked[has_buy, bought_slot[has_buy]] = False
        abandon_rate = np.where(ep.buy, p.abandoned_cart_share, p.browse_cart_share)
        abandon = other_clicked.any(axis=1) & (rng.random(n) < abandon_rate)
        abandon_slot = np.where(other_clicked, rng.random((n, S)), -1.0).argmax(axis=1)

        vis = ep.visible
        search_no = np.full(n, -1, dtype=np.int64)
        search_no[vis] = len(log.queries) + np.arange(int(vis.sum()))
        log.queries.extend(
            write_queries(
                ep.intents.take(np.flatnonzero(vis)), ep.user[vis], self.users, self.catalog.brand_names, rng
            )
        )
        log.search_intents.append(ep.intents.take(np.flatnonzero(vis)))
        base = ep.order.astype(np.int64) * 1_000_000  # within an episode: search, page, clicks, cart, buy
        exp = rng.exponential

        def emit(r, key, gap, action, item, position=0, sponsored=False):
            log.add(
                session=ep.session[r].astype(np.int64),
                key=base[r] + key,
                gap=(np.zeros(r.size) + gap).astype(np.float32),
                action=np.full(r.size, action, np.int8),
                item=(np.zeros(r.size, np.int64) + item),
                search=search_no[r],
                position=(np.zeros(r.size, np.int16) + position).astype(np.int16),
                sponsored=np.zeros(r.size, bool) | sponsored,
            )

        r = np.flatnonzero(vis)
        emit(r, 0, 20 + exp(40.0, r.size), SEARCH, -1)
        rr, cc = np.nonzero(page.valid & vis[:, None])
        emit(
            rr, 1000 + cc, 0.0, IMPRESSION, page.shown[rr, cc], page.position[rr, cc], page.sponsored[rr, cc]
        )
        rr, cc = np.nonzero(clicked)
        emit(
            rr,
            100_000 + cc * 100,
            3 + exp(30.0, rr.size),
            CLICK,
            page.shown[rr, cc],
            np.where(vis[rr], page.position[rr, cc], 0),
            page.sponsored[rr, cc] & vis[rr],
        )
        rr, cc = np.nonzero(other_var)
        emit(rr, 100_000 + cc * 100 + 1, 2 + exp(15.0, rr.size), CLICK, alt_item[rr, cc])
        rr, kk = np.nonzero(buy.variant_ok)
        emit(
            rr,
            100_000 + bought_slot[rr] * 100 + 10 + kk,
            2 + exp(15.0, rr.size),
            CLICK,
            buy.variant_items[rr, kk],
        )
        r = np.flatnonzero(abandon)
        emit(r, 900_000, 3 + exp(20.0, r.size), CART, page.shown[r, abandon_slot[r]])
        r = np.flatnonzero(cart_buy)
        emit(r, 900_001, 3 + exp(20.0, r.size), CART, buy.item[r])
        # a purchase keeps its page position only when the bought variant is the one the page showed
        r = np.flatnonzero(has_buy)
        on_page = vis[r] & (buy.item[r] == page.shown[r, bought_slot[r]])
        emit(
            r,
            900_010,
            10 + exp(60.0, r.size),
            PURCHASE,
            buy.item[r],
            np.where(on_page, page.position[r, bought_slot[r]], 0),
            on_page & page.sponsored[r, bought_slot[r]],
        )

        interactions = (
            vis.astype(np.int64)
            + clicked.sum(axis=1)
            + other_var.sum(axis=1)
            + buy.variant_ok.sum(axis=1)
            + abandon
            + cart_buy
            + has_buy
        )
        return EpisodeOutcome(buy.family, buy.item, buy.color, interactions)

    # ------------------------------------------------------------------ sessions
    def _episodes(
        self,
        session,
        order,
        user,
        day,
        intents,
        visible,
        buy,
        click_rate,
        gift,
        holiday,
        target_gender,
        insert_family=None,
        chase_family=None,
        avoid_color=None,
    ) -> Episodes:
        n = session.size
        minus = np.full(n, -1, dtype=np.int32)
        return Episodes(
            session.astype(np.int64),
            order.astype(np.int16),
            user.astype(np.int32),
            day.astype(np.int32),
            intents,
            visible.astype(bool),
            buy.astype(bool),
            np.asarray(click_rate, dtype=float) + np.zeros(n),
            gift.astype(bool),
            holiday.astype(np.int8),
            target_gender.astype(np.int8),
            minus if insert_family is None else insert_family.astype(np.int32),
            minus if chase_family is None else chase_family.astype(np.int32),
            minus if avoid_color is None else avoid_color.astype(np.int32),
        )

    def simulate(self) -> Simulation:
        p, rng, u, c = self.p, self.rng, self.users, self.catalog
        log = EventLog()

        # ---- purchase missions, one session each, in time order per user
        m_user = np.repeat(np.arange(u.n), u.n_purchases)
        m_day = self._days_in_windows(u.window_start[m_user], u.window_len[m_user])
        order = np.lexsort((m_day, m_user))
        m_user, m_day = m_user[order], m_day[order]
        M = m_user.size
        hol, is_hol = self._holidays(m_day)
        m_subcat = self._subcats(m_user, m_day, hol, is_hol)
        own_gender = u.gender[m_user]
        gift_share = np.array([h.gift_share for h in HOLIDAYS])
        gift = is_hol & (rng.random(M) < gift_share[np.maximum(hol, 0)])
        gift_gender = np.array([{"Women": 0, "Men": 1}.get(h.gift_gender, -1) for h in HOLIDAYS])
        gg = gift_gender[np.maximum(hol, 0)]
        tgt = np.where(gift, np.where(gg >= 0, gg, 1 - own_gender), own_gender).astype(np.int8)
        m_hol = np.where(is_hol, hol, -1)
        full = self.draw_intents(m_subcat, m_user, m_day, tgt, gift, m_hol, is_hol)
        direct = rng.random(M) < self.preset.direct_purchase_share
        repeat = direct & (rng.random(M) < p.repeat_share)

        # search missions: optional broad first query, optional retyped query, then the buying search
        srch = np.flatnonzero(~direct)
        refine = rng.random(srch.size) < p.refine_share
        retype = refine & (rng.random(srch.size) < p.rephrase_share / p.refine_share)
        n_pages = 1 + refine + retype
        parts = []
        for j in range(3):
            has = n_pages > j
            m = srch[has]
            last = n_pages[has] == j + 1
            intents = full.take(m)
            if j == 0:
                broad = self.broaden(intents)
                intents = Intents.concat([broad, intents]).take(
                    np.where(last, np.arange(m.size) + m.size, np.arange(m.size))
                )
            parts.append(
                self._episodes(
                    m,
                    np.full(m.size, j),
                    m_user[m],
                    m_day[m],
                    intents,
                    np.ones(m.size, bool),
                    last,
                    np.where(last, p.clicks_buy_page, p.clicks_refined_page),
                    gift[m],
                    m_hol[m],
                    tgt[m],
                )
            )
        feed = np.flatnonzero(direct & ~repeat)
        parts.append(
            self._episodes(
                feed,
                np.zeros(feed.size),
                m_user[feed],
                m_day[feed],
                self._feed_intents(m_subcat[feed], tgt[feed], m_user[feed]),
                np.zeros(feed.size, bool),
                np.ones(feed.size, bool),
                p.clicks_feed,
                gift[feed],
                m_hol[feed],
                tgt[feed],
            )
        )
        first_pass = Episodes.concat(parts)
        out = self.run(first_pass, log, "purchase missions")
        bought_family = np.full(M, -1, dtype=np.int64)
        bought_color = np.full(M, -1, dtype=np.int64)
        buyer = first_pass.buy
        bought_family[first_pass.session[buyer]] = out.bought_family[buyer]
        bought_color[first_pass.session[buyer]] = out.bought_color[buyer]
        interactions = int(out.interactions.sum())

        # re-buys: the user's latest earlier purchase, in another color, if that family is still on sale
        rep = np.flatnonzero(repeat)
        if rep.size:
            idx = np.where(~repeat & (bought_family >= 0), np.arange(M), -1)
            prev = np.maximum.accumulate(idx)[rep]
            fam = np.where(prev >= 0, bought_family[np.maximum(prev, 0)], -1)
            week0 = 7 * (m_day[rep] // 7)
            ok = (prev >= 0) & (m_user[np.maximum(prev, 0)] == m_user[rep]) & (fam >= 0)
            f = np.maximum(fam, 0)
            ok &= (c.fam_first_day[f] <= week0) & (c.fam_last_day[f] >= week0 + 6)
            subcat = np.where(ok, c.fam_subcat[f], m_subcat[rep]).astype(np.int16)
            eps = self._episodes(
                rep,
                np.zeros(rep.size),
                m_user[rep],
                m_day[rep],
                self._feed_intents(subcat, tgt[rep], m_user[rep]),
                np.zeros(rep.size, bool),
                np.ones(rep.size, bool),
                p.clicks_feed,
                gift[rep],
                m_hol[rep],
                tgt[rep],
                insert_family=np.where(ok, fam, -1),
                avoid_color=np.where(ok, bought_color[np.maximum(prev, 0)], -1),
            )
            out = self.run(eps, log, "re-buys")
            bought_family[rep] = out.bought_family
            interactions += int(out.interactions.sum())

        session_user = [m_user]
        session_day = [m_day]
        session_kind = [np.zeros(M, dtype=np.int8)]

        # ---- sessions without purchase, until the preset's interaction count is reached
        budget = self.preset.n_interactions - interactions
        if budget > 0:
            browse_log = EventLog()
            sim = self._browse(
                budget, M, m_user, m_day, m_subcat, full, tgt, gift, m_hol, bought_family, browse_log
            )
            kept_sessions, b_user, b_day, b_kind, used = sim
            _merge_logs(log, browse_log, kept_sessions)
            session_user.append(b_user)
            session_day.append(b_day)
            session_kind.append(b_kind)
            interactions += used
        return Simulation(
            log=log,
            session_user=np.concatenate(session_user),
            session_day=np.concatenate(session_day),
            session_kind=np.concatenate(session_kind),
        )

    def _feed_intents(self, subcat: np.ndarray, gender: np.ndarray, user: np.ndarray) -> Intents:
        """A recommendation feed's query: the subcategory for the gender, often from a favourite brand."""
        n = subcat.size
        none8, none16 = np.full(n, -1, dtype=np.int8), np.full(n, -1, dtype=np.int16)
        brand = np.where(
            self.rng.random(n) < self.p.feed_brand_share, self._favourite_brand(user, subcat), -1
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

    def _browse(self, budget, M, m_user, m_day, m_subcat, full, tgt, gift, m_hol, bought_family, log):
        """Research, window-shopping and feed sessions; simulates a surplus, keeps a prefix within budget."""
        p, rng, u = self.p, self.rng, self.users
        n_cand = int(budget / 2.0 * 1.25) + 16
        # research: days before a purchase mission, same intent, chasing the family bought later
        research = np.flatnonzero(rng.random(M) < self.preset.research_share)
        research = research[m_day[research] >= p.research_days[0]]
        research = research[: int(n_cand * 0.7)]
        r_day = m_day[research] - rng.integers(p.research_days[0], p.research_days[1] + 1, size=research.size)
        r_day = np.maximum(r_day, 0)
        r_int = full.take(research)
        vague = rng.random(research.size) < 0.5
        r_int = Intents.concat([r_int, self.broaden(r_int)]).take(
            np.where(vague, np.arange(research.size) + research.size, np.arange(research.size))
        )
        # window shopping (typed searches) and feed browsing, by active users on volume-weighted days
        n_win = max(n_cand - research.size, n_cand // 3)
        weights = u.n_purchases + 1.0
        w_user = rng.choice(u.n, size=n_win, p=weights / weights.sum())
        w_day = self._days_in_windows(u.window_start[w_user], u.window_len[w_user])
        hol, is_hol = self._holidays(w_day)
        is_hol &= rng.random(n_win) < 0.5
        w_hol = np.where(is_hol, hol, -1).astype(np.int8)
        w_sub = self._subcats(w_user, w_day, hol, is_hol)
        w_gender = u.gender[w_user]
        w_gift = np.zeros(n_win, bool)
        w_int = self.draw_intents(w_sub, w_user, w_day, w_gender, w_gift, w_hol, is_hol)
        w_visible = rng.random(n_win) < 0.8
        w_int = Intents.concat([w_int, self._feed_intents(w_sub, w_gender, w_user)]).take(
            np.where(w_visible, np.arange(n_win), np.arange(n_win) + n_win)
        )

        n_sess = research.size + n_win
        sess = M + rng.permutation(n_sess)  # random order, so a budget cut keeps a random subset
        user = np.concatenate([m_user[research], w_user])
        day = np.concatenate([r_day, w_day]).astype(np.int32)
        kind = np.concatenate([np.full(research.size, 1), np.where(w_visible, 2, 3)]).astype(np.int8)
        visible = np.concatenate([np.ones(research.size, bool), w_visible])
        rate = np.concatenate(
            [
                np.full(research.size, p.clicks_research_page),
                np.where(w_visible, p.clicks_browse_page, p.clicks_feed),
            ]
        )
        eps = self._episodes(
            sess,
            np.zeros(n_sess),
            user,
            day,
            Intents.concat([r_int, w_int]),
            visible,
            np.zeros(n_sess, bool),
            rate,
            np.concatenate([gift[research], w_gift]),
            np.concatenate([m_hol[research], w_hol]),
            np.concatenate([tgt[research], w_gender]),
            chase_family=np.concatenate([bought_family[research], np.full(n_win, -1)]),
        )
        # a few browsing sessions retype their query once more
        again = np.flatnonzero(visible & (rng.random(n_sess) < 0.15))
        second = eps.take(again)
        second.order = np.ones(again.size, dtype=np.int16)
        second.chase_family = np.full(again.size, -1, dtype=np.int32)
        all_eps = Episodes.concat([eps, second])
        out = self.run(all_eps, log, "browsing sessions")
        per_session = np.bincount(all_eps.session - M, weights=out.interactions, minlength=n_sess)
        cum = np.cumsum(per_session)
        n_keep = int(np.searchsorted(cum, budget, side="right"))
        kept = np.zeros(n_sess, bool)
        kept[:n_keep] = True
        used = int(cum[n_keep - 1]) if n_keep else 0
        # candidates got session ids M + a permutation, and the kept ones are M .. M + n_keep - 1
        cand_of_sess = np.empty(n_sess, dtype=np.int64)
        cand_of_sess[sess - M] = np.arange(n_sess)
        kept_ids = np.flatnonzero(kept) + M
        b_cand = cand_of_sess[kept_ids - M]
        return kept_ids, user[b_cand], day[b_cand], kind[b_cand], used


def _merge_logs(log: EventLog, extra: EventLog, kept_sessions: np.ndarray) -> None:
    """Append the events of ``kept_sessions`` from ``extra``, renumbering sessions and searches densely."""
    if not extra.chunks:
        return
    cols = extra.columns()
    first = int(kept_sessions.min()) if kept_sessions.size else 0
    remap = np.full(int(cols["session"].max()) + 1, -1, dtype=np.int64)
    remap[kept_sessions] = first + np.arange(kept_sessions.size)
    keep = remap[cols["session"]] >= 0
    cols = {k: v[keep] for k, v in cols.items()}
    cols["session"] = remap[cols["session"]]
    used_searches = np.unique(cols["search"][cols["search"] >= 0])
    search_map = np.full(len(extra.queries), -1, dtype=np.int64)
    search_map[used_searches] = len(log.queries) + np.arange(used_searches.size)
    cols["search"] = np.where(cols["search"] >= 0, search_map[np.maximum(cols["search"], 0)], -1)
    log.queries.extend(extra.queries[i] for i in used_searches.tolist())
    all_intents = Intents.concat(extra.search_intents)
    log.search_intents.append(all_intents.take(used_searches))
    log.add(**cols)
