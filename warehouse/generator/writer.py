"""Arrow tables in the raw-data contract (docs/raw-data.md) and the files they land in."""

from __future__ import annotations

import json
import os
from datetime import UTC, date, datetime, time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from warehouse.generator.behaviour import ACTIONS, SEARCH, Simulation
from warehouse.generator.catalog import Catalog
from warehouse.generator.identifiers import padded_ids
from warehouse.generator.timeline import Timeline

EVENTS_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("user_id", pa.string()),
        ("session_id", pa.string()),
        ("ts", pa.timestamp("us", tz="UTC")),
        ("action", pa.string()),
        ("query", pa.string()),
        ("search_id", pa.string()),
        ("item_id", pa.string()),
        ("position", pa.int32()),
        ("is_sponsored", pa.bool_()),
    ]
)
ITEMS_SCHEMA = pa.schema(
    [
        ("item_id", pa.string()),
        ("title", pa.string()),
        ("category", pa.string()),
        ("subcategory", pa.string()),
        ("brand", pa.string()),
        ("color", pa.string()),
        ("size", pa.string()),
        ("season", pa.string()),
        ("holiday", pa.string()),
        ("occasion", pa.string()),
        ("price", pa.float64()),
        ("parent_id", pa.string()),
        ("first_seen", pa.date32()),
        ("last_seen", pa.date32()),
        ("gender", pa.string()),
        ("material", pa.string()),
        ("style", pa.string()),  # an extra attribute; the raw-data contract keeps extra item columns
        ("image_path", pa.string()),  # relative to the raw directory; null when drawn without images
    ]
)


def _width(n: int) -> int:
    return max(6, len(str(max(n - 1, 0))))


def _nullable_take(values: pa.Array, index: np.ndarray) -> pa.Array:
    """``values[index]`` with null where ``index`` < 0."""
    return values.take(pa.array(np.maximum(index, 0), mask=index < 0))


def events_table(
    cols: dict[str, np.ndarray],
    sim: Simulation,
    timeline: Timeline,
    catalog: Catalog,
    n_users: int,
    start: date,
) -> pa.Table:
    """One row per event (``cols`` = ``sim.log.columns()``), ordered by time; ids numbered in that order."""
    o = timeline.order
    session, key = cols["session"][o], cols["key"][o]
    seconds = timeline.event_seconds
    micros = np.rint(seconds * 1e6).astype(np.int64)
    by_time = np.lexsort((key, session, micros))
    session, micros = session[by_time], micros[by_time]
    action = cols["action"][o][by_time]
    item = cols["item"][o][by_time]
    search = cols["search"][o][by_time]
    position = cols["position"][o][by_time].astype(np.int32)
    sponsored = cols["sponsored"][o][by_time]
    n = session.size

    # sessions and searches are numbered by when they start
    session_rank = np.empty(sim.session_user.size, dtype=np.int64)
    session_rank[np.lexsort((np.arange(sim.session_user.size), timeline.session_start))] = np.arange(
        sim.session_user.size
    )
    is_search = action == SEARCH
    search_rank = np.full(len(sim.log.queries), -1, dtype=np.int64)
    search_rank[search[is_search]] = np.arange(int(is_search.sum()))
    n_searches = int(is_search.sum())
    search_ids = padded_ids("Q", np.arange(n_searches), _width(n_searches))
    search_index = np.where(search >= 0, search_rank[np.maximum(search, 0)], -1)
    log_index_by_rank = np.empty(n_searches, dtype=np.int64)
    log_index_by_rank[search_rank[search_rank >= 0]] = np.flatnonzero(search_rank >= 0)
    ordered_queries = pa.array(sim.log.queries, type=pa.string()).take(pa.array(log_index_by_rank))

    epoch = int(datetime.combine(start, time(0), tzinfo=UTC).timestamp() * 1_000_000)
    user_ids = padded_ids("U", np.arange(n_users), _width(n_users))
    session_ids = padded_ids("S", np.arange(sim.session_user.size), _width(sim.session_user.size))
    table = pa.table(
        {
            "event_id": padded_ids("E", np.arange(n), _width(n)),
            "user_id": user_ids.take(pa.array(sim.session_user[session])),
            "session_id": session_ids.take(pa.array(session_rank[session])),
            "ts": pa.array(epoch + micros, type=pa.timestamp("us", tz="UTC")),
            "action": pa.array(list(ACTIONS)).take(pa.array(action)),
            "query": _nullable_take(ordered_queries, np.where(is_search, search_index, -1)),
            "search_id": _nullable_take(search_ids, search_index),
            "item_id": _nullable_take(catalog.item_ids, item),
            "position": pa.array(position, mask=position <= 0, type=pa.int32()),
            "is_sponsored": pa.array(sponsored, type=pa.bool_()),
        }
    )
    return table.cast(EVENTS_SCHEMA)


def write_raw(out_dir: Path, events: pa.Table, items: pa.Table, manifest: dict) -> None:
    """Write events.parquet, items.parquet and generation_manifest.json, each atomically."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, table in (("events.parquet", events), ("items.parquet", items.cast(ITEMS_SCHEMA))):
        tmp = out_dir / f".{name}.tmp"
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, out_dir / name)
    tmp = out_dir / ".generation_manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=2, default=str) + "\n")
    os.replace(tmp, out_dir / "generation_manifest.json")
