"""C4 queries: how many distinct strings the searches are typed as, and, from the generator's manifest
(which knows the intent behind every query), how many distinct strings each search intent gets."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

from warehouse.generator.stats_db import one

_MANIFEST_KEYS = (
    "intents",
    "intents_searched_twice_or_more",
    "mean_distinct_strings_per_intent",
    "mean_distinct_strings_per_repeated_intent",
    "mean_distinct_normalized_per_repeated_intent",
    "share_repeated_intents_with_2plus_strings",
    "mean_searches_per_intent",
)


def query_diversity(con: duckdb.DuckDBPyConnection, raw_dir: Path) -> dict:
    c4 = one(
        con,
        """
        with q as (select query, regexp_replace(trim(regexp_replace(lower(query), '[^a-z0-9]+', ' ', 'g')),
                                                '\\s+', ' ', 'g') as norm
                   from events where action = 'search')
        select count(*) as searches, count(distinct query) as distinct_strings,
               count(distinct norm) as distinct_normalized from q""",
    )
    c4["searches_per_distinct_string"] = (
        round(c4["searches"] / c4["distinct_strings"], 2) if c4["distinct_strings"] else None
    )
    manifest_path = raw_dir / "generation_manifest.json"
    if manifest_path.exists():
        truth = json.loads(manifest_path.read_text()).get("queries", {})
        for key in _MANIFEST_KEYS:
            c4[key] = truth.get(key)
        c4["example_intents"] = truth.get("top_intents", [])[:3]
    return c4
