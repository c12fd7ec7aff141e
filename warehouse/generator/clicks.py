"""Which listed products a shopper clicks and buys from (position bias x appeal, C4), and the color and
size variants of the bought family compared before buying (C2)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from warehouse.generator.behaviour_params import BehaviourParams
from warehouse.generator.catalog import MAX_COLORS
from warehouse.generator.episodes import Episodes, Shop
from warehouse.generator.result_page import Page


@dataclass
class Comparison:
    family: np.ndarray  # bought family per episode, -1 when none
    variant_items: np.ndarray  # (episodes, k) variants clicked before buying
    variant_ok: np.ndarray  # (episodes, k) which of them were clicked
    item: np.ndarray  # bought item, -1 when none
    color: np.ndarray  # its color


def clicks(shop: Shop, ep: Episodes, page: Page, util: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The slot bought from (-1: none) and the clicked slots, under position bias x appeal."""
    p, rng = shop.params, shop.rng
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


def compare_and_buy(shop: Shop, ep: Episodes, page: Page, bought_slot: np.ndarray) -> Comparison:
    """C2: before buying, the shopper clicks other colors (in their size) or sizes of the family, then
    buys the compared color they like best, leaning to the one the page showed."""
    p, rng, c, u = shop.params, shop.rng, shop.catalog, shop.users
    n = ep.n
    rows = np.arange(n)
    has_buy = bought_slot >= 0
    b = np.maximum(bought_slot, 0)
    bf = page.f[rows, b]
    nc = c.fam_n_colors[bf].astype(np.int64)
    ns = page.n_sizes[rows, b]
    dc, ds = page.color_slot[rows, b], page.size_slot[rows, b]
    # a re-bought article is bought as it is, without comparing
    var_c, var_s, var_ok = _variants(p, rng, has_buy & (ep.rebuy_item < 0), nc, ns, dc, ds)
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


def _variants(
    p: BehaviourParams,
    rng: np.random.Generator,
    has_buy: np.ndarray,
    nc: np.ndarray,
    ns: np.ndarray,
    dc: np.ndarray,
    ds: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(color slot, size slot, clicked) of each variant compared before buying, (episodes, k) each: other
    colors in the displayed size first, a size step where the family runs out of colors or by choice.
    ``nc``/``ns`` count the bought family's colors and sizes, ``dc``/``ds`` are the displayed slots."""
    n = has_buy.size
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
    return var_c, var_s, var_ok
