"""What the session simulation passes between its phases: the shop every episode runs against, the
episodes to simulate (one search page or one recommendation feed each), the event log they write and
what each episode ended in."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from warehouse.generator.behaviour_params import BehaviourParams
from warehouse.generator.catalog import Catalog
from warehouse.generator.presets import GeneratorPreset
from warehouse.generator.queries import Intents
from warehouse.generator.search import SearchEngine
from warehouse.generator.users import Users

ACTIONS = ("search", "impression", "click", "add_to_cart", "purchase")
SEARCH, IMPRESSION, CLICK, CART, PURCHASE = range(5)
SESSION_KINDS = ("purchase", "research", "browse", "feed")
PURCHASE_MISSION, RESEARCH, BROWSE, FEED = range(4)


@dataclass(frozen=True)
class Shop:
    """What every episode runs against; ``rng`` is shared, so the phases draw in a fixed order."""

    preset: GeneratorPreset
    catalog: Catalog
    users: Users
    engine: SearchEngine
    params: BehaviourParams
    rng: np.random.Generator
    day_season: np.ndarray  # calendar season of each day of the period


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
    rebuy_item: np.ndarray  # item of insert_family bought again as it is (re-buy of an article), -1 when none

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
        "rebuy_item",
    )

    @classmethod
    def of(
        cls,
        session: np.ndarray,
        order: np.ndarray,
        user: np.ndarray,
        day: np.ndarray,
        intents: Intents,
        visible: np.ndarray,
        buy: np.ndarray,
        click_rate: np.ndarray | float,
        gift: np.ndarray,
        holiday: np.ndarray,
        target_gender: np.ndarray,
        insert_family: np.ndarray | None = None,
        chase_family: np.ndarray | None = None,
        avoid_color: np.ndarray | None = None,
        rebuy_item: np.ndarray | None = None,
    ) -> Episodes:
        """Episodes with the column types the phases expect; a scalar click rate applies to all."""
        n = session.size
        minus = np.full(n, -1, dtype=np.int32)
        return cls(
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
            minus if rebuy_item is None else rebuy_item.astype(np.int32),
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


def merge_logs(log: EventLog, extra: EventLog, kept_sessions: np.ndarray) -> None:
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
