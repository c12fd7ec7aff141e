"""Purchase missions, one session each: when a user shops, for what and for whom (gifts on holidays), how
the session gets to the product (a search, maybe refined, or a recommendation feed) and re-buys: the same
article again (basics, a favourite) or an earlier family in another color."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from warehouse.generator.catalog import Catalog
from warehouse.generator.episode_run import run_episodes
from warehouse.generator.episodes import Episodes, EventLog, Shop
from warehouse.generator.fashion_calendar import HOLIDAYS
from warehouse.generator.queries import Intents
from warehouse.generator.shopper_intents import IntentSampler
from warehouse.generator.users import MAX_PURCHASES


@dataclass
class Missions:
    """Purchase missions in time order per user; a mission's index is its session id."""

    user: np.ndarray
    day: np.ndarray
    subcat: np.ndarray
    intents: Intents  # what the buying search asks for
    target_gender: np.ndarray
    gift: np.ndarray
    holiday: np.ndarray  # holiday the mission shops for, -1 when none
    bought_family: np.ndarray  # -1 when nothing was bought
    bought_item: np.ndarray  # -1 when nothing was bought
    rebuy: np.ndarray  # bought again an article the user had bought before
    interactions: int = 0  # search + click + add_to_cart + purchase events of all missions

    @property
    def n(self) -> int:
        return self.user.size


def purchase_missions(shop: Shop, wants: IntentSampler, log: EventLog) -> Missions:
    """Draw every user's missions and simulate them into ``log``."""
    p, rng = shop.params, shop.rng
    m = _draw_missions(shop, wants)
    # an article re-buy is the user's own purchase, never their first
    later = np.r_[False, m.user[1:] == m.user[:-1]] & ~m.gift
    article = later & (rng.random(m.n) < p.article_rebuy_share)
    direct = ~article & (rng.random(m.n) < shop.preset.direct_purchase_share)
    family = direct & (rng.random(m.n) < p.family_rebuy_share)
    first_pass = Episodes.concat(
        [
            *_search_pages(shop, wants, m, np.flatnonzero(~direct & ~article)),
            _feeds(shop, wants, m, direct & ~family),
        ]
    )
    out = run_episodes(shop, first_pass, log, "purchase missions")
    bought_color = np.full(m.n, -1, dtype=np.int64)
    buyer = first_pass.buy
    m.bought_family[first_pass.session[buyer]] = out.bought_family[buyer]
    m.bought_item[first_pass.session[buyer]] = out.bought_item[buyer]
    bought_color[first_pass.session[buyer]] = out.bought_color[buyer]
    m.interactions = int(out.interactions.sum())
    _family_rebuys(shop, wants, m, family, bought_color, log)
    _article_rebuys(shop, wants, m, article, log)
    return m


def _draw_missions(shop: Shop, wants: IntentSampler) -> Missions:
    """Days from the shop's volume inside each user's active stretch, then holiday, subcategory, gift
    and the intent of each mission."""
    u = shop.users
    user = np.repeat(np.arange(u.n), u.n_purchases)
    day = wants.days_in_windows(u.window_start[user], u.window_len[user])
    order = np.lexsort((day, user))
    user, day = user[order], day[order]
    hol, is_hol = wants.holidays(day)
    subcat = wants.subcats(user, day, hol, is_hol)
    gift, target = _gifts(shop.rng, u.gender[user], hol, is_hol)
    holiday = np.where(is_hol, hol, -1)
    intents = wants.draw(subcat, user, day, target, gift, holiday, is_hol)
    none = np.full(user.size, -1, dtype=np.int64)
    return Missions(
        user, day, subcat, intents, target, gift, holiday, none, none.copy(), np.zeros(user.size, bool)
    )


def _gifts(
    rng: np.random.Generator, own_gender: np.ndarray, hol: np.ndarray, is_hol: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Which holiday missions buy a gift, and the gender each mission shops for: a gift is for the
    holiday's gift gender where it has one (Mother's Day), else for someone of the other gender."""
    gift_share = np.array([h.gift_share for h in HOLIDAYS])
    gift = is_hol & (rng.random(hol.size) < gift_share[np.maximum(hol, 0)])
    gift_gender = np.array([{"Women": 0, "Men": 1}.get(h.gift_gender, -1) for h in HOLIDAYS])
    gg = gift_gender[np.maximum(hol, 0)]
    target = np.where(gift, np.where(gg >= 0, gg, 1 - own_gender), own_gender).astype(np.int8)
    return gift, target


def _episodes(
    m: Missions,
    idx: np.ndarray,
    order: np.ndarray,
    intents: Intents,
    visible: np.ndarray,
    buy: np.ndarray,
    click_rate: np.ndarray | float,
    **extra: np.ndarray,
) -> Episodes:
    """Episodes of the missions ``idx``, in their sessions."""
    return Episodes.of(
        idx,
        order,
        m.user[idx],
        m.day[idx],
        intents,
        visible,
        buy,
        click_rate,
        m.gift[idx],
        m.holiday[idx],
        m.target_gender[idx],
        **extra,
    )


def _search_pages(shop: Shop, wants: IntentSampler, m: Missions, srch: np.ndarray) -> list[Episodes]:
    """Search missions ``srch``: an optional broad first query, an optional retyped one, then the buying
    search; episode j holds the j-th page of the missions that have one."""
    p, rng = shop.params, shop.rng
    refine = rng.random(srch.size) < p.refine_share
    retype = refine & (rng.random(srch.size) < p.rephrase_share / p.refine_share)
    n_pages = 1 + refine + retype
    parts = []
    for j in range(3):
        has = n_pages > j
        idx = srch[has]
        last = n_pages[has] == j + 1
        intents = m.intents.take(idx)
        if j == 0:
            broad = wants.broaden(intents)
            intents = Intents.concat([broad, intents]).take(
                np.where(last, np.arange(idx.size) + idx.size, np.arange(idx.size))
            )
        rate = np.where(last, p.clicks_buy_page, p.clicks_refined_page)
        parts.append(_episodes(m, idx, np.full(idx.size, j), intents, np.ones(idx.size, bool), last, rate))
    return parts


def _feeds(shop: Shop, wants: IntentSampler, m: Missions, mask: np.ndarray) -> Episodes:
    """Missions bought straight from a recommendation feed of the subcategory."""
    feed = np.flatnonzero(mask)
    intents = wants.feed(m.subcat[feed], m.target_gender[feed], m.user[feed])
    n = feed.size
    return _episodes(
        m, feed, np.zeros(n), intents, np.zeros(n, bool), np.ones(n, bool), shop.params.clicks_feed
    )


def _on_sale_all_week(c: Catalog, family: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Whether each family is on sale the whole week of ``day`` (a re-buy is shown all that week)."""
    week0 = 7 * (day // 7)
    return (c.fam_first_day[family] <= week0) & (c.fam_last_day[family] >= week0 + 6)


def _family_rebuys(
    shop: Shop, wants: IntentSampler, m: Missions, repeat: np.ndarray, bought_color: np.ndarray, log: EventLog
) -> None:
    """Re-buys ``repeat``: the user's latest earlier purchase, in another color, if that family is still
    on sale all week; otherwise a feed of the mission's subcategory."""
    rep = np.flatnonzero(repeat)
    if not rep.size:
        return
    c = shop.catalog
    idx = np.where(~repeat & (m.bought_family >= 0), np.arange(m.n), -1)
    prev = np.maximum.accumulate(idx)[rep]
    fam = np.where(prev >= 0, m.bought_family[np.maximum(prev, 0)], -1)
    ok = (prev >= 0) & (m.user[np.maximum(prev, 0)] == m.user[rep]) & (fam >= 0)
    f = np.maximum(fam, 0)
    ok &= _on_sale_all_week(c, f, m.day[rep])
    subcat = np.where(ok, c.fam_subcat[f], m.subcat[rep]).astype(np.int16)
    _run_feeds(
        shop,
        wants,
        m,
        rep,
        subcat,
        log,
        "re-buys in another color",
        insert_family=np.where(ok, fam, -1),
        avoid_color=np.where(ok, bought_color[np.maximum(prev, 0)], -1),
    )


def _run_feeds(
    shop: Shop,
    wants: IntentSampler,
    m: Missions,
    rep: np.ndarray,
    subcat: np.ndarray,
    log: EventLog,
    label: str,
    **placed: np.ndarray,
) -> None:
    """Missions ``rep`` shop from a feed of ``subcat`` (``placed``: what the feed shows first, see
    :func:`_episodes`); what they bought is written back into ``m``."""
    eps = _episodes(
        m,
        rep,
        np.zeros(rep.size),
        wants.feed(subcat, m.target_gender[rep], m.user[rep]),
        np.zeros(rep.size, bool),
        np.ones(rep.size, bool),
        shop.params.clicks_feed,
        **placed,
    )
    out = run_episodes(shop, eps, log, label)
    m.bought_family[rep] = out.bought_family
    m.bought_item[rep] = out.bought_item
    m.interactions += int(out.interactions.sum())


def _article_rebuys(
    shop: Shop, wants: IntentSampler, m: Missions, article: np.ndarray, log: EventLog
) -> None:
    """Re-buys ``article``: one of the user's earlier purchases for themselves, drawn uniformly (an article
    bought twice is twice as likely to be bought again), bought again from a feed where it comes first,
    without comparing variants. Holiday editions are not re-bought, and the article must be on sale all
    week; a mission without such a purchase before it becomes a feed of its own subcategory."""
    rep = np.flatnonzero(article)
    if not rep.size:
        return
    c, rng = shop.catalog, shop.rng
    # earlier missions of the same user sit right before a mission (missions are sorted by user, day)
    back = np.arange(1, MAX_PURCHASES)
    prev = rep[:, None] - back[None, :]
    p = np.maximum(prev, 0)
    item, fam = m.bought_item[p], np.maximum(m.bought_family[p], 0)
    ok = (prev >= 0) & (m.user[p] == m.user[rep][:, None]) & (item >= 0) & ~m.gift[p]
    ok &= (c.fam_holiday[fam] < 0) & _on_sale_all_week(c, fam, m.day[rep][:, None])
    pick = np.where(ok, rng.random(ok.shape), -1.0).argmax(axis=1)
    found = ok[np.arange(rep.size), pick]
    item = np.where(found, item[np.arange(rep.size), pick], -1)
    fam = np.where(found, fam[np.arange(rep.size), pick], -1)
    subcat = np.where(found, c.fam_subcat[np.maximum(fam, 0)], m.subcat[rep]).astype(np.int16)
    _run_feeds(shop, wants, m, rep, subcat, log, "re-buys of an article", insert_family=fam, rebuy_item=item)
    m.rebuy[rep] = found
