"""Online query-memory lookups for single sessions: the LanceDB table searched with a time prefilter.

The batch path (every prompt of the warehouse) is ``recommender.query_memory.prompt_candidates``; both give
the same candidates for the same query and time (``tests/test_query_memory.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from fashionrec.layout import QUERY_MEMORY_TABLE
from recommender.encoder_specs import build_encoder
from recommender.encoders import TextEncoder
from recommender.query_memory import MemoryManifest, MemorySettings, normalize_query, to_utc_ns

if TYPE_CHECKING:
    import lancedb


class QueryMemoryLookup:
    """Online lookups for single sessions, searching the LanceDB table with a time prefilter."""

    def __init__(self, table: lancedb.table.Table, encoder: TextEncoder, settings: MemorySettings) -> None:
        self.table = table
        self.encoder = encoder
        self.settings = settings

    @classmethod
    def open(
        cls, db: lancedb.DBConnection, manifest_path: Path, encoder: TextEncoder | None = None
    ) -> QueryMemoryLookup:
        """The stored memory with the encoder recorded in its manifest (or a given, identical one)."""
        manifest = MemoryManifest.load(manifest_path)
        encoder = encoder or build_encoder(manifest.encoder_spec, show_progress=False)
        if encoder.dim != manifest.dim:
            raise ValueError(
                f"query encoder {encoder.spec} gives {encoder.dim}-d vectors but the memory holds "
                f"{manifest.dim}-d vectors from {manifest.encoder_spec}; rebuild the query_memory asset"
            )
        return cls(db.open_table(QUERY_MEMORY_TABLE), encoder, manifest.settings)

    def lookup_many(
        self, queries: Sequence[str | None], at: Sequence[datetime] | None = None
    ) -> list[list[str]]:
        """Candidate ids per query; ``at`` (default: now) hides listings first shown at or after it."""
        at = list(at) if at is not None else [datetime.now(UTC)] * len(queries)
        out: list[list[str]] = []
        for query, when in zip(queries, at, strict=True):
            norm = normalize_query(query)
            if norm is None:
                out.append([])
                continue
            cutoff = pd.Timestamp(when)
            cutoff = cutoff.tz_localize("UTC") if cutoff.tzinfo is None else cutoff.tz_convert("UTC")
            vector = self.encoder.encode([norm])[0]
            found = (
                self.table.search(vector)
                .distance_type("cosine")
                .where(
                    f"first_shown_at < TIMESTAMP '{cutoff.strftime('%Y-%m-%d %H:%M:%S.%f')}'", prefilter=True
                )
                .select(["item_ids", "item_first_shown_at", "_distance"])
                .limit(self.settings.neighbours)
                .to_arrow()
            )
            cutoff_ns = np.int64(cutoff.value)
            seen: dict[str, None] = {}
            for ids, times in zip(
                found["item_ids"].to_pylist(), found["item_first_shown_at"].to_pylist(), strict=True
            ):
                visible = np.array(ids, dtype=object)[to_utc_ns(times) < cutoff_ns][
                    : self.settings.items_per_query
                ]
                seen.update(dict.fromkeys(visible.tolist()))
            out.append(list(seen))
        return out

    def lookup(self, query: str | None, at: datetime | None = None) -> list[str]:
        """Candidate ids for one session's latest query at time ``at`` (default: now)."""
        return self.lookup_many([query], None if at is None else [at])[0]
