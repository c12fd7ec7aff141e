"""What each episode sees: the listing the search engine (or the feed) returns, the color and size
variant each slot shows, and how much each listed family appeals to the shopper."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from warehouse.generator.episodes import Episodes, Shop
from warehouse.generator.vocabulary import ALL_SEASON, COLORS, STYLES, UNISEX


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


def result_page(shop: Shop, ep: Episodes) -> Page:
    """The page each episode sees, and which variant each slot shows: the query's color if the family
    has it, else the shopper's favourite color (personalised swatch) or the family's lead color; the
    shopper's size if the family has it and the purchase is for themselves, else a middle size; a
    re-bought article as it is."""
    p, rng, c, u = shop.params, shop.rng, shop.catalog, shop.users
    fam, pos, ad, forced = _listing(shop, ep)
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
    # a re-bought article is shown as it was bought (first slot)
    again = np.flatnonzero(ep.rebuy_item >= 0)
    offset = ep.rebuy_item[again] - c.fam_item_start[f[again, 0]]
    cslot[again, 0], sslot[again, 0] = offset // n_sizes[again, 0], offset % n_sizes[again, 0]
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


def _listing(shop: Shop, ep: Episodes) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(family, position, sponsored) per slot, with a re-buy's family moved to the first slot, and
    whether the episode has such a forced first slot."""
    p, rng = shop.params, shop.rng
    n = ep.n
    lo, hi = shop.preset.organic_results
    n_organic = np.where(ep.visible, rng.integers(lo, hi + 1, size=n), p.feed_page)
    n_ads = rng.choice(len(p.sponsored_counts), size=n, p=p.sponsored_counts)
    listing = shop.engine.listings(
        ep.intents, ep.day, n_organic, n_ads, ~ep.visible, rng, personal=lambda f: _personal(shop, ep, f)
    )
    fam, pos, ad = listing.family, listing.position, listing.sponsored
    forced = ep.insert_family >= 0
    fam[forced[:, None] & (fam == ep.insert_family[:, None])] = -1  # listed once, first
    fam[forced, 0], pos[forced, 0], ad[forced, 0] = ep.insert_family[forced], 1, False
    return fam, pos, ad, forced


def _personal(shop: Shop, ep: Episodes, f: np.ndarray) -> np.ndarray:
    """(episodes, candidates) what the shop has learnt of the shopper: favourite brands, price level,
    size and style."""
    c, u = shop.catalog, shop.users
    user = ep.user[:, None]
    brand_hit = (u.brand_pref[user, c.fam_category[f]] == c.fam_brand[f][..., None]).any(axis=2)
    own = u.size[user, c.fam_size_system[f]] - c.fam_size_start[f]
    fits = (own >= 0) & (own < c.fam_n_sizes[f])
    style = np.log(u.style_pref[user, c.fam_style[f]] * len(STYLES) + 0.05)
    return 1.2 * brand_hit - 0.5 * np.abs(c.fam_tier[f] - u.tier[user]) + 0.5 * fits + 0.8 * style


def utility(shop: Shop, ep: Episodes, page: Page) -> np.ndarray:
    """(episodes, slots) appeal of each listed family to its shopper, in log-odds."""
    p, c, u = shop.params, shop.catalog, shop.users
    f, user = page.f, ep.user[:, None]
    brand_hit = (u.brand_pref[user, c.fam_category[f]] == c.fam_brand[f][..., None]).any(axis=2)
    util = p.w_brand * brand_hit
    util += p.w_color * np.log(page.best_color * len(COLORS) + 0.05)
    util -= p.w_tier * np.abs(c.fam_tier[f] - u.tier[user])
    util += p.w_occasion * ((c.fam_occ_mask[f] & u.occ_mask[user]) != 0)
    wrong_gender = (c.fam_gender[f] != ep.target_gender[:, None]) & (c.fam_gender[f] != UNISEX)
    util -= p.w_gender * wrong_gender
    util -= p.w_size * (~page.fits & ~ep.gift[:, None])
    util += _season_fit(shop, ep, page)
    age = np.maximum(ep.day[:, None] - c.fam_first_day[f], 0)
    util += p.w_novelty * u.novelty[user] * np.exp(-age / p.novelty_days)
    util += p.w_holiday * ((c.fam_holiday[f] == ep.holiday[:, None]) & (ep.holiday[:, None] >= 0))
    util += p.w_popularity * c.fam_log_pop[f]
    util += p.w_style * np.log(u.style_pref[user, c.fam_style[f]] * len(STYLES) + 0.05)
    util += p.w_subcat * (c.fam_subcat[f] == ep.intents.subcat[:, None])
    return util


def _season_fit(shop: Shop, ep: Episodes, page: Page) -> np.ndarray:
    """Appeal of a seasonal family in its own season, none in an adjacent one, less in the opposite one."""
    p = shop.params
    cal = shop.day_season[ep.day][:, None]
    fs = shop.catalog.fam_season[page.f]
    dist = np.abs(fs.astype(int) - cal) % 4
    dist = np.minimum(dist, 4 - dist)
    return np.where(fs == ALL_SEASON, 0.0, np.choose(dist, [p.w_in_season, 0.0, -p.w_off_season]))
