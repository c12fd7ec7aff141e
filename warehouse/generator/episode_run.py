"""Runs episodes through a visit's phases — result page, clicks, comparison, events — in chunks of the
same subcategory and week, so that the search engine ranks each (subcategory, week, intent) once per chunk."""

from __future__ import annotations

import numpy as np
from tqdm import tqdm

from warehouse.generator.clicks import clicks, compare_and_buy
from warehouse.generator.episode_events import emit_events
from warehouse.generator.episodes import EpisodeOutcome, Episodes, EventLog, Shop
from warehouse.generator.result_page import result_page, utility

CHUNK = 20_000  # episodes simulated at once (bounds the (episodes x slots x colors) temporaries)


def run_episodes(shop: Shop, ep: Episodes, log: EventLog, desc: str) -> EpisodeOutcome:
    """Simulate all episodes into ``log``; outcomes come back in the order of ``ep``."""
    fields = ("bought_family", "bought_item", "bought_color", "interactions")
    if ep.n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return EpisodeOutcome(empty, empty, empty, empty)
    by_group = np.lexsort((ep.day // 7, ep.intents.subcat))
    outs = []
    for a in tqdm(range(0, ep.n, CHUNK), desc=desc, leave=False, disable=None):
        outs.append(_run_chunk(shop, ep.take(by_group[a : a + CHUNK]), log))
    merged = {f: np.concatenate([getattr(o, f) for o in outs]) for f in fields}
    back = np.empty(ep.n, dtype=np.int64)
    back[by_group] = np.arange(ep.n)
    return EpisodeOutcome(*(merged[f][back] for f in fields))


def _run_chunk(shop: Shop, ep: Episodes, log: EventLog) -> EpisodeOutcome:
    page = result_page(shop, ep)
    util = utility(shop, ep, page)
    bought_slot, clicked = clicks(shop, ep, page, util)
    buy = compare_and_buy(shop, ep, page, bought_slot)
    return emit_events(shop, ep, page, clicked, bought_slot, buy, log)
