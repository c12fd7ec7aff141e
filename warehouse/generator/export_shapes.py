"""Generated logs reshaped as other shops export them, to run the pipeline on what real logs lack.

A retailer's order export is the commonest log a new user has: purchases only (no searches, impressions
or clicks, so no search ids, queries, positions or sponsored flags) and a thin product feed (no season,
holiday or occasion tags; the rest of what defines a product written into a free-text description).
:func:`to_purchases_only` turns the generator's files into that shape, in place; the same generated files
give the same reshaped files.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from warehouse.generator.writer import EVENTS_SCHEMA, ITEMS_SCHEMA

PURCHASES_ONLY = "purchases_only"
PURCHASE_EVENT_COLUMNS = ("event_id", "user_id", "session_id", "ts", "action", "item_id")
# attributes an order export rarely carries; gender, material and style go into the description instead
DROPPED_ITEM_COLUMNS = ("season", "holiday", "occasion", "last_seen", "gender", "material", "style")
_GENDER_WORDS = {"Women": "women's", "Men": "men's", "Unisex": "unisex"}


def purchase_events(events: pa.Table) -> pa.Table:
    """Only the ``purchase`` rows (faulty copies of purchases included, for the quarantine), with the
    columns an order export has."""
    kept = events.filter(pc.equal(events.column("action"), "purchase"))
    return kept.select(list(PURCHASE_EVENT_COLUMNS))


def item_description(row: dict) -> str:
    """One product's free text from what defines it, e.g. "Classic women's sneakers by SHINAFUM in red
    suede, size 10." Missing parts are left out."""

    def word(key: str) -> str:
        return str(row.get(key) or "").strip()

    kind = " ".join(
        part for part in (word("style"), _GENDER_WORDS.get(word("gender"), word("gender").lower())) if part
    )
    text = " ".join(part for part in (kind, word("subcategory").lower() or "item") if part)
    text = text[:1].upper() + text[1:]
    if word("brand"):
        text += f" by {word('brand')}"
    made_of = " ".join(part for part in (word("color").lower(), word("material").lower()) if part)
    if made_of:
        text += f" in {made_of}"
    if word("size"):
        text += f", size {word('size')}"
    return text + "."


def sparse_items(items: pa.Table) -> pa.Table:
    """The catalog without the calendar and occasion tags, with a ``description`` column instead of
    gender, material and style."""
    descriptions = pa.array([item_description(row) for row in items.to_pylist()], type=pa.string())
    kept = [name for name in items.column_names if name not in DROPPED_ITEM_COLUMNS]
    return items.select(kept).append_column("description", descriptions)


def to_purchases_only(raw_dir: Path) -> dict[str, int]:
    """Rewrite ``raw_dir``'s generated ``events.parquet`` and ``items.parquet`` as a purchase-only export
    (:func:`purchase_events`, :func:`sparse_items`) and note the shape in ``generation_manifest.json``.
    Returns the rows written per file."""
    raw_dir = Path(raw_dir)
    events_path, items_path = raw_dir / "events.parquet", raw_dir / "items.parquet"
    if not events_path.is_file() or not items_path.is_file():
        raise FileNotFoundError(
            f"no generated events.parquet and items.parquet in {raw_dir}; run `fashionrec generate` first"
        )
    events = pq.read_table(events_path)
    if "search_id" not in events.column_names:
        raise ValueError(f"{events_path} is already purchase-only; generate the logs again to reshape them")
    events = purchase_events(events.cast(EVENTS_SCHEMA))
    items = sparse_items(pq.read_table(items_path).cast(ITEMS_SCHEMA))
    for path, table in ((events_path, events), (items_path, items)):
        tmp = path.with_name(f".{path.name}.tmp")  # written whole, then swapped in, as the generator does
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, path)
    written = {"events": events.num_rows, "items": items.num_rows}
    manifest_path = raw_dir / "generation_manifest.json"
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text())
        manifest["export_shape"] = {
            "name": PURCHASES_ONLY,
            "event_columns": list(PURCHASE_EVENT_COLUMNS),
            "dropped_item_columns": list(DROPPED_ITEM_COLUMNS),
            "rows": written,
        }
        tmp = manifest_path.with_name(f".{manifest_path.name}.tmp")
        tmp.write_text(json.dumps(manifest, indent=2, default=str) + "\n")
        os.replace(tmp, manifest_path)
    return written
