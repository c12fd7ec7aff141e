"""Sessions without purchase — research days before a mission, window shopping and feed browsing —
simulated in surplus and cut to the interactions the preset has left after the purchase missions."""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from warehouse.generator.episode_run import run_episodes
from warehouse.generator.episodes import BROWSE, FEED, RESEARCH, Episodes, EventLog, Shop
from warehouse.generator.missions import Missions
from warehouse.generator.queries import Intents
from warehouse.generator.shopper_intents import IntentSampler


@dataclass
class Browsing:
    """The browsing sessions kept within the budget; their ids follow the missions' ids."""

    sessions: np.ndarray
    user: np.ndarray
    day: np.ndarray
    kind: np.ndarray  # index into SESSION_KINDS


@dataclass
class _Candidates:
    """Browsing sessions to simulate, before they get session ids."""

    user: np.ndarray
    day: np.ndarray
    intents: Intents
    kind: np.ndarray  # index into SESSION_KINDS
    visible: np.ndarray
    click_rate: np.ndarray
    gift: np.ndarray
    holiday: np.ndarray
    target_gender: np.ndarray
    chase_family: np.ndarray  # the family the research session's mission bought later, -1 when none

    @property
    def n(self) -> int:
        return self.user.size

    @staticmethod
    def concat(a: _Candidates, b: _Candidates) -> _Candidates:
        return _Candidates(
            *(
                Intents.concat([a.intents, b.intents])
                if f.name == "intents"
                else np.concatenate([getattr(a, f.name), getattr(b, f.name)])
                for f in fields(_Candidates)
            )
        )


def browse_sessions(
    shop: Shop, wants: IntentSampler, missions: Missions, budget: int, log: EventLog
) -> Browsing:
    """Simulate about 25% more browsing sessions than ``budget`` interactions need into ``log``, in random
    order, and keep the prefix that fits the budget (so the cut keeps a random subset)."""
    rng = shop.rng
    n_cand = int(budget / 2.0 * 1.25) + 16
    research = _research(shop, wants, missions, n_cand)
    window = _window_shopping(shop, wants, max(n_cand - research.n, n_cand // 3))
    cand = _Candidates.concat(research, window)
    first = missions.n
    sess = first + rng.permutation(cand.n)
    eps = Episodes.of(
        sess,
        np.zeros(cand.n),
        cand.user,
        cand.day,
        cand.intents,
        cand.visible,
        np.zeros(cand.n, bool),
        cand.click_rate,
        cand.gift,
        cand.holiday,
        cand.target_gender,
        chase_family=cand.chase_family,
    )
    # a few browsing sessions retype their query once more
    again = np.flatnonzero(cand.visible & (rng.random(cand.n) < 0.15))
    second = eps.take(again)
    second.order = np.ones(again.size, dtype=np.int16)
    second.chase_family = np.full(again.size, -1, dtype=np.int32)
    all_eps = Episodes.concat([eps, second])
    out = run_episodes(shop, all_eps, log, "browsing sessions")
    per_session = np.bincount(all_eps.session - first, weights=out.interactions, minlength=cand.n)
    n_keep = int(np.searchsorted(np.cumsum(per_session), budget, side="right"))
    cand_of_sess = np.empty(cand.n, dtype=np.int64)
    cand_of_sess[sess - first] = np.arange(cand.n)
    kept = cand_of_sess[:n_keep]
    return Browsing(
        sessions=first + np.arange(n_keep),
        user=cand.user[kept],
        day=cand.day.astype(np.int32)[kept],
        kind=cand.kind.astype(np.int8)[kept],
    )


def _research(shop: Shop, wants: IntentSampler, missions: Missions, n_cand: int) -> _Candidates:
    """Research sessions a few days before a purchase mission, for the same intent or a vaguer one,
    chasing the family the mission bought; an article bought again needs no research."""
    p, rng, m = shop.params, shop.rng, missions
    research = np.flatnonzero((rng.random(m.n) < shop.preset.research_share) & ~m.rebuy)
    research = research[m.day[research] >= p.research_days[0]]
    research = research[: int(n_cand * 0.7)]
    n = research.size
    day = m.day[research] - rng.integers(p.research_days[0], p.research_days[1] + 1, size=n)
    day = np.maximum(day, 0)
    intents = m.intents.take(research)
    vague = rng.random(n) < 0.5
    intents = Intents.concat([intents, wants.broaden(intents)]).take(
        np.where(vague, np.arange(n) + n, np.arange(n))
    )
    return _Candidates(
        user=m.user[research],
        day=day,
        intents=intents,
        kind=np.full(n, RESEARCH),
        visible=np.ones(n, bool),
        click_rate=np.full(n, p.clicks_research_page),
        gift=m.gift[research],
        holiday=m.holiday[research],
        target_gender=m.target_gender[research],
        chase_family=m.bought_family[research],
    )


def _window_shopping(shop: Shop, wants: IntentSampler, n: int) -> _Candidates:
    """Typed searches (window shopping) and feed browsing by active users on volume-weighted days, for
    themselves, half of them inside a holiday window shopping for it."""
    p, rng, u = shop.params, shop.rng, shop.users
    weights = u.n_purchases + 1.0
    user = rng.choice(u.n, size=n, p=weights / weights.sum())
    day = wants.days_in_windows(u.window_start[user], u.window_len[user])
    hol, is_hol = wants.holidays(day)
    is_hol &= rng.random(n) < 0.5
    holiday = np.where(is_hol, hol, -1).astype(np.int8)
    subcat = wants.subcats(user, day, hol, is_hol)
    gender = u.gender[user]
    gift = np.zeros(n, bool)
    intents = wants.draw(subcat, user, day, gender, gift, holiday, is_hol)
    visible = rng.random(n) < 0.8
    intents = Intents.concat([intents, wants.feed(subcat, gender, user)]).take(
        np.where(visible, np.arange(n), np.arange(n) + n)
    )
    return _Candidates(
        user=user,
        day=day,
        intents=intents,
        kind=np.where(visible, BROWSE, FEED),
        visible=visible,
        click_rate=np.where(visible, p.clicks_browse_page, p.clicks_feed),
        gift=gift,
        holiday=holiday,
        target_gender=gender,
        chase_family=np.full(n, -1),
    )
