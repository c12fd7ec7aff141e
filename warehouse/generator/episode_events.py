"""The event rows of an episode: its search and impressions, clicks (a second color of some clicked
products too), carts (most purchases go through one, some are left) and the purchase, each with an order
key within the session and a gap in seconds after the previous event."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from warehouse.generator.clicks import Comparison
from warehouse.generator.episodes import (
    CART,
    CLICK,
    IMPRESSION,
    PURCHASE,
    SEARCH,
    EpisodeOutcome,
    Episodes,
    EventLog,
    Shop,
)
from warehouse.generator.queries import write_queries
from warehouse.generator.result_page import Page


@dataclass
class _Rows:
    """Appends events of the chunk's episodes ``r`` to the log; ``key`` orders them within the episode."""

    log: EventLog
    ep: Episodes
    search_no: np.ndarray  # index into the log's queries, -1 for feeds

    def __post_init__(self) -> None:
        # within an episode: search, page, clicks, cart, buy
        self.base = self.ep.order.astype(np.int64) * 1_000_000

    def add(self, r, key, gap, action, item, position=0, sponsored=False) -> None:
        self.log.add(
            session=self.ep.session[r].astype(np.int64),
            key=self.base[r] + key,
            gap=(np.zeros(r.size) + gap).astype(np.float32),
            action=np.full(r.size, action, np.int8),
            item=(np.zeros(r.size, np.int64) + item),
            search=self.search_no[r],
            position=(np.zeros(r.size, np.int16) + position).astype(np.int16),
            sponsored=np.zeros(r.size, bool) | sponsored,
        )


def emit_events(
    shop: Shop,
    ep: Episodes,
    page: Page,
    clicked: np.ndarray,
    bought_slot: np.ndarray,
    buy: Comparison,
    log: EventLog,
) -> EpisodeOutcome:
    """Append the episodes' events to ``log`` and count their interactions."""
    has_buy = bought_slot >= 0
    other_var, alt_item = _second_colors(shop, page, clicked, has_buy, bought_slot)
    cart_buy, abandon, abandon_slot = _carts(shop, ep, clicked, has_buy, bought_slot)
    rows = _Rows(log, ep, _searches(shop, ep, log))
    exp = shop.rng.exponential
    vis = ep.visible
    r = np.flatnonzero(vis)
    rows.add(r, 0, 20 + exp(40.0, r.size), SEARCH, -1)
    rr, cc = np.nonzero(page.valid & vis[:, None])
    rows.add(
        rr, 1000 + cc, 0.0, IMPRESSION, page.shown[rr, cc], page.position[rr, cc], page.sponsored[rr, cc]
    )
    rr, cc = np.nonzero(clicked)
    rows.add(
        rr,
        100_000 + cc * 100,
        3 + exp(30.0, rr.size),
        CLICK,
        page.shown[rr, cc],
        np.where(vis[rr], page.position[rr, cc], 0),
        page.sponsored[rr, cc] & vis[rr],
    )
    rr, cc = np.nonzero(other_var)
    rows.add(rr, 100_000 + cc * 100 + 1, 2 + exp(15.0, rr.size), CLICK, alt_item[rr, cc])
    rr, kk = np.nonzero(buy.variant_ok)
    rows.add(
        rr,
        100_000 + bought_slot[rr] * 100 + 10 + kk,
        2 + exp(15.0, rr.size),
        CLICK,
        buy.variant_items[rr, kk],
    )
    r = np.flatnonzero(abandon)
    rows.add(r, 900_000, 3 + exp(20.0, r.size), CART, page.shown[r, abandon_slot[r]])
    r = np.flatnonzero(cart_buy)
    rows.add(r, 900_001, 3 + exp(20.0, r.size), CART, buy.item[r])
    # a purchase keeps its page position only when the bought variant is the one the page showed
    r = np.flatnonzero(has_buy)
    on_page = vis[r] & (buy.item[r] == page.shown[r, bought_slot[r]])
    rows.add(
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


def _second_colors(
    shop: Shop, page: Page, clicked: np.ndarray, has_buy: np.ndarray, bought_slot: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Which clicked, not bought products get a second color clicked, and the item of that color."""
    rng = shop.rng
    n, S = page.family.shape
    n_colors = shop.catalog.fam_n_colors[page.f]
    other_var = clicked & (rng.random((n, S)) < shop.params.other_variant_share) & (n_colors > 1)
    other_var[has_buy, bought_slot[has_buy]] = False
    alt_c = (
        page.color_slot + 1 + (rng.random((n, S)) * np.maximum(n_colors - 1, 1)).astype(int)
    ) % np.maximum(n_colors, 1)
    return other_var, shop.catalog.item_of(page.f, alt_c, page.size_slot)


def _carts(
    shop: Shop, ep: Episodes, clicked: np.ndarray, has_buy: np.ndarray, bought_slot: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(purchase goes through the cart, another clicked product is carted and left, its slot)."""
    p, rng = shop.params, shop.rng
    n, S = clicked.shape
    cart_buy = has_buy & (rng.random(n) < p.cart_share)
    other_clicked = clicked.copy()
    other_clicked[has_buy, bought_slot[has_buy]] = False
    abandon_rate = np.where(ep.buy, p.abandoned_cart_share, p.browse_cart_share)
    abandon = other_clicked.any(axis=1) & (rng.random(n) < abandon_rate)
    abandon_slot = np.where(other_clicked, rng.random((n, S)), -1.0).argmax(axis=1)
    return cart_buy, abandon, abandon_slot


def _searches(shop: Shop, ep: Episodes, log: EventLog) -> np.ndarray:
    """Write the typed queries of the visible episodes into the log; their indexes there, -1 for feeds."""
    vis = ep.visible
    search_no = np.full(ep.n, -1, dtype=np.int64)
    search_no[vis] = len(log.queries) + np.arange(int(vis.sum()))
    intents = ep.intents.take(np.flatnonzero(vis))
    log.queries.extend(write_queries(intents, ep.user[vis], shop.users, shop.catalog.brand_names, shop.rng))
    log.search_intents.append(intents)
    return search_no
