"""How shoppers search, compare and buy: purchase missions, research and browsing sessions.

Every user has ``n_purchases`` purchase missions at days drawn from the shop's daily volume inside the
user's active stretch. A mission picks a subcategory from the user's tastes, reweighted by the calendar
season (C3), or, inside a holiday's shopping window, becomes a holiday mission (often a gift, bought for
someone of another gender or size). Most missions start with a search (sometimes a broad one refined by a
second); some come from a recommendation feed (no search); some buy again an article the user bought
before (basics, a favourite), a few a family bought before in another color. On the result page users
click with position bias, buy mostly from top organic results and what fits their tastes (brands,
colors, sizes, price tier, occasions, new arrivals), and before buying something new they click several
color/size variants of the product (C2). Sessions without purchase (research days before a mission,
window shopping, feed browsing) are added until the interaction count of the preset is reached.

Everything is vectorised over episodes (one search page or one feed), in chunks, so that the paper-scale
presets take seconds to minutes. This module runs the whole simulation; the phases live in
`shopper_intents` (what shoppers look for), `missions` and `browsing` (the sessions), `result_page`,
`clicks` and `episode_events` (what happens on one page), and `episode_run` (chunking).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from warehouse.generator.behaviour_params import BehaviourParams
from warehouse.generator.browsing import browse_sessions
from warehouse.generator.catalog import Catalog
from warehouse.generator.episodes import (
    ACTIONS,
    PURCHASE_MISSION,
    SEARCH,
    SESSION_KINDS,
    EventLog,
    Shop,
    merge_logs,
)
from warehouse.generator.fashion_calendar import day_seasons
from warehouse.generator.missions import purchase_missions
from warehouse.generator.presets import GeneratorPreset
from warehouse.generator.search import SearchEngine
from warehouse.generator.shopper_intents import IntentSampler
from warehouse.generator.users import Users

__all__ = ["ACTIONS", "SEARCH", "SESSION_KINDS", "BehaviourParams", "Shoppers", "Simulation"]


@dataclass
class Simulation:
    log: EventLog
    session_user: np.ndarray
    session_day: np.ndarray
    session_kind: np.ndarray  # index into SESSION_KINDS


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
        self.shop = Shop(
            preset=preset,
            catalog=catalog,
            users=users,
            engine=SearchEngine(catalog, preset),
            params=params or BehaviourParams(),
            rng=rng,
            day_season=day_seasons(catalog.start, catalog.n_days),
        )
        self.wants = IntentSampler(self.shop)

    def simulate(self) -> Simulation:
        log = EventLog()
        missions = purchase_missions(self.shop, self.wants, log)
        session_user = [missions.user]
        session_day = [missions.day]
        session_kind = [np.full(missions.n, PURCHASE_MISSION, dtype=np.int8)]
        budget = self.shop.preset.n_interactions - missions.interactions
        if budget > 0:
            browse_log = EventLog()
            browsed = browse_sessions(self.shop, self.wants, missions, budget, browse_log)
            merge_logs(log, browse_log, browsed.sessions)
            session_user.append(browsed.user)
            session_day.append(browsed.day)
            session_kind.append(browsed.kind)
        return Simulation(
            log=log,
            session_user=np.concatenate(session_user),
            session_day=np.concatenate(session_day),
            session_kind=np.concatenate(session_kind),
        )
