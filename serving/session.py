"""A live session's events in the shape of a ``prompt_inputs`` row, so it renders like a training prompt.

The ``user_sequences`` and ``prompt_inputs`` marts order a user's events by time, drop impressions, give
every item event its catalog attributes and keep the latest ``max_history_events`` events before the
target; the last search query counts at any distance back. :func:`session_history` does the same for
the events of one request. An event whose item the catalog does not hold is dropped with a warning
(staging would quarantine it) instead of failing the request.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from recommender.prompts import ITEM_ACTIONS
from serving.schemas import SessionEventBase


@dataclass(frozen=True)
class SessionHistory:
    """A live session as the ``prompt_inputs`` mart describes a target's past."""

    history: list[dict[str, Any]]  # the history structs, oldest first, at most max_history_events
    latest_query: str | None  # the last search of the whole session, even when outside the window
    latest_item_category: str | None
    warnings: list[str]


def as_utc(ts: datetime) -> datetime:
    """A time without zone is UTC (the raw-data contract)."""
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def session_history(
    events: Sequence[SessionEventBase], items: dict[str, dict[str, Any]], max_history_events: int
) -> SessionHistory:
    """Sort by time, drop what the ``user_sequences`` mart drops, describe items from the catalog."""
    warnings: list[str] = []
    kept: list[dict[str, Any]] = []
    impressions = 0
    order = sorted(range(len(events)), key=lambda i: as_utc(events[i].ts))  # stable: equal times keep order
    for i in order:
        event = events[i]
        if event.action == "impression":
            impressions += 1
            continue
        described: dict[str, Any] = {"ts": as_utc(event.ts), "action": event.action, "query": event.query}
        if event.action in ITEM_ACTIONS:
            item = items.get(event.item_id)
            if item is None:
                warnings.append(f"events[{i}].item_id {event.item_id!r} is not in the catalog; event ignored")
                continue
            described.update(item)
        kept.append(described)
    if impressions:
        warnings.append(
            f"{impressions} impression event(s) ignored: prompts show searches, clicks, carts, purchases"
        )
    searches = [event["query"] for event in kept if event["action"] == "search"]
    item_events = [event for event in kept if event["action"] in ITEM_ACTIONS]
    window = kept[-max_history_events:]
    for seq_no, event in enumerate(window, start=len(kept) - len(window) + 1):
        event["seq_no"] = seq_no
    return SessionHistory(
        history=window,
        latest_query=searches[-1] if searches else None,
        latest_item_category=item_events[-1].get("category") if item_events else None,
        warnings=warnings,
    )
