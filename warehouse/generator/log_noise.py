"""The faults that real click logs carry, added on purpose so that the warehouse's quarantine has work.

Production event streams repeat rows when a client retries, emit event types that the contract does not
know, reference products that were delisted from the catalog feed, and log searches whose query was lost.
The dbt staging models must route every such row to ``quarantine`` with its reason and keep the rest;
generating them makes that path run on every build of the synthetic data, not only in unit tests.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# Each kind of fault takes an equal share of the noise rows.
NOISE_KINDS = ("client_retry_duplicate", "unknown_action", "delisted_item", "search_without_query")
UNKNOWN_ACTIONS = ("wishlist", "share", "page_view")


def add_log_noise(
    events: pa.Table, share: float, rng: np.random.Generator
) -> tuple[pa.Table, dict[str, int]]:
    """Append about ``share * len(events)`` faulty rows; returns the table and the count of each kind.

    Faulty rows copy a real row of the log and break one thing in it, so they look like the rows around
    them (same user, session and time). New rows get event ids ``N...`` that never collide with ``E...``.
    """
    n_noise = int(round(share * events.num_rows))
    if n_noise == 0:
        return events, dict.fromkeys(NOISE_KINDS, 0)
    kinds = rng.integers(0, len(NOISE_KINDS), size=n_noise)
    action = events.column("action")
    item_rows = np.flatnonzero(
        pc.is_in(action, pa.array(["click", "purchase"])).to_numpy(zero_copy_only=False)
    )
    search_rows = np.flatnonzero(pc.equal(action, "search").to_numpy(zero_copy_only=False))

    fault: dict[str, Callable[[pa.Table, int], pa.Table]] = {
        "client_retry_duplicate": lambda rows, _: rows,
        "unknown_action": lambda rows, n: rows.set_column(
            rows.schema.get_field_index("action"),
            "action",
            pa.array(rng.choice(UNKNOWN_ACTIONS, size=n), type=pa.string()),
        ),
        "delisted_item": lambda rows, n: rows.set_column(
            rows.schema.get_field_index("item_id"),
            "item_id",
            pa.array([f"DELISTED{i:05d}" for i in rng.integers(0, 10**5, size=n)], type=pa.string()),
        ),
        "search_without_query": lambda rows, n: rows.set_column(
            rows.schema.get_field_index("query"), "query", pa.array(rng.choice(["", "  "], size=n))
        ),
    }
    pools = {
        "client_retry_duplicate": np.arange(events.num_rows),
        "unknown_action": item_rows,
        "delisted_item": item_rows,
        "search_without_query": search_rows,
    }

    parts, counts, next_id = [events], {}, 0
    for k, kind in enumerate(NOISE_KINDS):
        n = int((kinds == k).sum())
        counts[kind] = n
        if n == 0 or pools[kind].size == 0:
            counts[kind] = 0
            continue
        rows = fault[kind](events.take(pa.array(rng.choice(pools[kind], size=n))), n)
        if kind != "client_retry_duplicate":  # a retry repeats the row exactly, event id included
            ids = pa.array([f"N{i:09d}" for i in range(next_id, next_id + n)], type=pa.string())
            rows = rows.set_column(rows.schema.get_field_index("event_id"), "event_id", ids)
            next_id += n
        parts.append(rows.cast(events.schema))
    return pa.concat_tables(parts), counts
