"""Where a prompt's candidate ids come from when the query memory has none for it.

The paper's candidates are the query memory's (``recommender.query_memory``): products that similar past
searches listed first. Logs without searches (a purchase-only export) leave the memory empty, so no
target gets any. Then each target takes, in order, until it has as many as the memory would give
(Q x V):

- ``history``: the items of the user's own events before the target, most recent first, within the
  target's category (what the user already looked at or bought: repeat and variant purchases);
- ``popular``: the category's most purchased items among the train targets, most first (the
  ``popularity`` baseline's counts, so no valid or test purchase leaks in);
- ``family``: the variants (items of one ``parent_id``: the same product in other colors and sizes) of
  the user's latest items in the target's category, the latest item's family first.

A target with memory candidates keeps exactly those. By default the fallback fills targets only when the
memory is empty (``when='empty_memory'``): in logs with searches, the few targets without a query before
them keep an empty list, as before, so results on such logs do not move; ``when='no_candidates'`` fills
every target the memory gives none. Each source is one small function of the targets, a
:class:`Fallback` and a length; :func:`combine_candidates` merges their lists and records which sources
filled each one (``candidate_source``: ``memory``, ``history``, ``popular``, a mix such as
``history+popular``, or ``none``). A new source is one more function in :data:`FALLBACK_SOURCES`.

Any source can also be *added* after every list (``Fallback.added``, at most ``n_added`` more ids): the
switch that widens the memory's candidates with what the user recently looked at, and its families
(``memory+family``). Added ids come after the list's own, so its first place, a strong prior, stays first.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from recommender.ranking import catalog_by_category, popular_items, popularity_counts

MEMORY, HISTORY, POPULAR, FAMILY = "memory", "history", "popular", "family"
NO_SOURCE = "none"  # a target that no source gave a candidate
SOURCE_SEPARATOR = "+"
# when the fallback sources fill a target that the memory gives nothing
FALLBACK_WHEN = ("empty_memory", "no_candidates", "never")


def history_candidates(targets: pd.DataFrame, fallback: Fallback, limit: int) -> list[list[str]]:
    """Per target (``prompt_inputs`` rows: category and history, the events before the target oldest
    first), the distinct items of its events in the target's category, most recent first, at most
    ``limit``."""
    out: list[list[str]] = []
    for category, history in zip(targets["category"], targets["history"], strict=True):
        seen: dict[str, None] = {}
        for event in reversed(list(history if history is not None else [])):
            item = event.get("item_id")
            if item is not None and event.get("category") == category and len(seen) < limit:
                seen.setdefault(item)
        out.append(list(seen))
    return out


def popular_candidates(targets: pd.DataFrame, fallback: Fallback, limit: int) -> list[list[str]]:
    """Per target, its category's ``limit`` most purchased train items (ties by item_id), only items
    bought at least once."""
    counts = popularity_counts(fallback.train_targets)
    top = popular_items(counts, catalog_by_category(fallback.items), limit)
    bought = {
        category: [i for i in items.tolist() if counts.get(i, 0) > 0] for category, items in top.items()
    }
    return [list(bought.get(str(category), [])) for category in targets["category"]]


def family_candidates(targets: pd.DataFrame, fallback: Fallback, limit: int) -> list[list[str]]:
    """Per target, the families of the user's distinct items in the target's category, latest first: each
    item, then the other items of its ``parent_id`` by item_id; at most ``limit``. Without a
    ``parent_id`` column in the catalog every item is its own family."""
    items = fallback.items
    parents = items["parent_id"] if "parent_id" in items.columns else items["item_id"]
    parent_of = dict(zip(items["item_id"], parents, strict=True))
    members: dict[str, list[str]] = {}
    for item, parent in sorted(parent_of.items()):
        members.setdefault(parent, []).append(item)
    out: list[list[str]] = []
    for own in history_candidates(targets, fallback, limit):
        found: dict[str, None] = {}
        for item in own:
            for member in [item, *members.get(parent_of.get(item, item), [])]:
                if len(found) < limit:
                    found.setdefault(member)
        out.append(list(found))
    return out


CandidateSource = Callable[[pd.DataFrame, "Fallback", int], list[list[str]]]
# the sources that fill a list the memory left empty, in the order they fill it
FALLBACK_SOURCES: Mapping[str, CandidateSource] = {HISTORY: history_candidates, POPULAR: popular_candidates}
# every source, as a fallback or added after every list
CANDIDATE_SOURCES: Mapping[str, CandidateSource] = {**FALLBACK_SOURCES, FAMILY: family_candidates}


@dataclass(frozen=True)
class Fallback:
    """What the sources besides the memory draw from besides the targets; which of them fill a list the
    memory left empty, and when; which are added after every list, and how many ids they may add."""

    train_targets: pd.DataFrame  # splits rows of the train split: target_item_id
    # item_id, category (the catalog the popular items are ranked in), optionally parent_id (families)
    items: pd.DataFrame
    sources: tuple[str, ...] = tuple(FALLBACK_SOURCES)
    when: str = "empty_memory"
    added: tuple[str, ...] = ()
    n_added: int = 6

    def __post_init__(self) -> None:
        unknown = [name for name in (*self.sources, *self.added) if name not in CANDIDATE_SOURCES]
        if unknown:
            raise ValueError(f"unknown candidate source(s) {unknown}; choose from {list(CANDIDATE_SOURCES)}")
        if self.n_added < 0:
            raise ValueError(f"n_added={self.n_added}: the ids added after a list cannot be negative")
        if self.when not in FALLBACK_WHEN:
            raise ValueError(f"fallback when={self.when!r} is not one of {FALLBACK_WHEN}")

    def applies(self, memory_rows: int) -> bool:
        """Whether targets without memory candidates are filled, for a memory of ``memory_rows`` queries."""
        return self.when == "no_candidates" or (self.when == "empty_memory" and memory_rows == 0)

    def candidates(self, targets: pd.DataFrame, limit: int) -> list[tuple[str, list[list[str]]]]:
        """Each source's lists for ``targets``, in the order they fill a list."""
        return [(name, CANDIDATE_SOURCES[name](targets, self, limit)) for name in self.sources]

    def added_candidates(self, targets: pd.DataFrame) -> list[tuple[str, list[list[str]]]]:
        """Each added source's lists for ``targets`` (each up to ``n_added`` ids), in the order they add."""
        return [(name, CANDIDATE_SOURCES[name](targets, self, self.n_added)) for name in self.added]


SourceLists = Sequence[tuple[str, Sequence[list[str]]]]  # (source name, one list per target)


def _merge(merged: dict[str, None], sources: SourceLists, row: int, limit: int) -> list[str]:
    """Adds the ``row``-th list of every source to ``merged`` in order, each item once, while it holds
    fewer than ``limit``; returns the names of the sources that added any."""
    used = []
    for name, candidates in sources:
        before = len(merged)
        for item in candidates[row]:
            if len(merged) >= limit:
                break
            merged.setdefault(item)
        if len(merged) > before:
            used.append(name)
    return used


def combine_candidates(
    memory: Sequence[list[str]],
    fallbacks: SourceLists,
    limit: int,
    added: SourceLists = (),
    n_added: int = 0,
) -> tuple[list[list[str]], list[str]]:
    """Per target, the memory's list when it has any; else the ``fallbacks``' lists in order, each item
    once, up to ``limit``; then the ``added`` sources' ids not yet in it, at most ``n_added`` more.
    Returns the lists and, per target, the sources that filled them joined by ``+`` (``memory``,
    ``history``, ``history+popular``, ``memory+family``, ...; ``none`` when every source was empty)."""
    lists: list[list[str]] = []
    sources: list[str] = []
    for row, found in enumerate(memory):
        merged: dict[str, None] = dict.fromkeys(found)
        used = [MEMORY] if found else _merge(merged, fallbacks, row, limit)
        used += _merge(merged, added, row, len(merged) + n_added)
        lists.append(list(merged))
        sources.append(SOURCE_SEPARATOR.join(used) or NO_SOURCE)
    return lists, sources


def source_shares(sources: Sequence[str]) -> dict[str, float]:
    """The share of targets whose candidates came from each source (or mix), largest first."""
    if not len(sources):
        return {}
    counts = pd.Series(np.asarray(sources, dtype=object)).value_counts(normalize=True, sort=False)
    return {
        name: round(float(share), 4) for name, share in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    }
