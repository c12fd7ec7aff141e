"""`generate`: catalog -> users -> shopping sessions -> clock times -> Parquet files and a manifest."""

from __future__ import annotations

import dataclasses
import re
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from warehouse.generator.behaviour import ACTIONS, SESSION_KINDS, BehaviourParams, Shoppers
from warehouse.generator.catalog import build_catalog
from warehouse.generator.fashion_calendar import HOLIDAYS, holiday_occurrences
from warehouse.generator.item_images import write_item_images
from warehouse.generator.log_noise import add_log_noise
from warehouse.generator.presets import PRESETS, GeneratorPreset
from warehouse.generator.queries import Intents
from warehouse.generator.search import RankingParams
from warehouse.generator.timeline import schedule
from warehouse.generator.users import draw_users
from warehouse.generator.writer import events_table, write_raw

MANIFEST_VERSION = 1
INTERACTIONS = ("search", "click", "add_to_cart", "purchase")


@dataclass(frozen=True)
class GenerationResult:
    """What `generate` wrote, and how long it took."""

    out_dir: Path
    preset: str
    seed: int
    n_users: int
    n_items: int
    n_events: int
    n_interactions: int  # search + click + add_to_cart + purchase
    events_by_action: dict[str, int]
    seconds: float


def resolve_preset(preset: str | GeneratorPreset) -> GeneratorPreset:
    if isinstance(preset, GeneratorPreset):
        return preset
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[preset]


def generate(
    preset: str | GeneratorPreset, out_dir: Path, seed: int = 0, images: bool = True
) -> GenerationResult:
    """Write ``events.parquet``, ``items.parquet`` and ``generation_manifest.json`` into ``out_dir``, and
    with ``images`` one product image per item under ``out_dir``/images (``item_images``).

    The same preset and seed give identical files (on the same library versions).
    """
    started = time.perf_counter()
    spec = resolve_preset(preset)
    spec.validate()
    out_dir = Path(out_dir)
    catalog_rng, user_rng, behaviour_rng, clock_rng, noise_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence([seed, 0x5EED]).spawn(5)
    )
    catalog = build_catalog(spec, catalog_rng)
    users = draw_users(spec, catalog, user_rng)
    sim = Shoppers(spec, catalog, users, behaviour_rng).simulate()
    cols = sim.log.columns()
    timeline = schedule(
        cols["session"], cols["key"], cols["gap"], sim.session_user, sim.session_day, clock_rng
    )
    events = events_table(cols, sim, timeline, catalog, spec.n_users, spec.start)
    del cols
    events, noise_counts = add_log_noise(events, spec.noise_share, noise_rng)

    counts = {a: 0 for a in ACTIONS}
    vc = pc.value_counts(events.column("action")).to_pylist()
    counts.update({d["values"]: int(d["counts"]) for d in vc})
    n_interactions = sum(counts[a] for a in INTERACTIONS)
    if n_interactions > 1.05 * spec.n_interactions:
        warnings.warn(
            f"preset {spec.name!r}: purchases alone make {n_interactions:,} interactions, more than "
            f"n_interactions={spec.n_interactions:,}; lower mean_purchases_per_user or raise n_interactions",
            stacklevel=2,
        )
    manifest = {
        "generator": "fashionrec synthetic fashion logs",
        "manifest_version": MANIFEST_VERSION,
        "preset": _jsonable(dataclasses.asdict(spec)),
        "seed": seed,
        "counts": {
            "users": spec.n_users,
            "items": catalog.n_items,
            "families": catalog.n_families,
            "brands": len(catalog.brand_names),
            "events": events.num_rows,
            "interactions": n_interactions,
            "avg_sequence_length": round(n_interactions / spec.n_users, 3),
            "events_by_action": counts,
            "sessions": int(sim.session_user.size),
            "noise_rows": noise_counts,
            "sessions_by_kind": {k: int((sim.session_kind == i).sum()) for i, k in enumerate(SESSION_KINDS)},
        },
        "queries": query_truth(sim.log.queries, Intents.concat(sim.log.search_intents), catalog.brand_names),
        "holidays": [
            {
                "holiday": HOLIDAYS[o.holiday].name,
                "date": o.date.isoformat(),
                "window_days": HOLIDAYS[o.holiday].window_days,
            }
            for o in holiday_occurrences(spec.start, spec.end)
        ],
        "behaviour": _jsonable(dataclasses.asdict(BehaviourParams())),
        "ranking": _jsonable(dataclasses.asdict(RankingParams())),
    }
    items = catalog.table
    paths = write_item_images(items, out_dir) if images else pa.nulls(items.num_rows, pa.string())
    manifest["counts"]["images"] = items.num_rows - paths.null_count
    write_raw(out_dir, events, items.append_column("image_path", paths), manifest)
    return GenerationResult(
        out_dir=out_dir,
        preset=spec.name,
        seed=seed,
        n_users=spec.n_users,
        n_items=catalog.n_items,
        n_events=events.num_rows,
        n_interactions=n_interactions,
        events_by_action=counts,
        seconds=time.perf_counter() - started,
    )


_PUNCT = re.compile(r"[^\w]+")


def normalize_query(q: str) -> str:
    """Lower-case, punctuation to spaces, whitespace collapsed (the dbt macro normalize_query)."""
    return " ".join(_PUNCT.sub(" ", q.lower()).split())


def query_truth(queries: list[str], intents: Intents, brand_names: list[str], top: int = 15) -> dict:
    """Generator-side truth about C4: how many distinct strings each search intent was typed as."""
    if not queries:
        return {"searches": 0, "intents": 0}
    codes = intents.codes()
    table = pa.table(
        {
            "code": codes,
            "query": pa.array(queries, type=pa.string()),
            "norm": pa.array([normalize_query(q) for q in queries], type=pa.string()),
        }
    )
    per = table.group_by("code").aggregate(
        [("query", "count"), ("query", "count_distinct"), ("norm", "count_distinct")]
    )
    n_searches = per.column("query_count").to_numpy()
    n_distinct = per.column("query_count_distinct").to_numpy()
    n_norm = per.column("norm_count_distinct").to_numpy()
    multi = n_searches >= 2
    first_row = {}
    for i, code in enumerate(codes.tolist()):
        first_row.setdefault(code, i)
    order = np.lexsort((per.column("code").to_numpy(), -n_searches))[:top]
    top_intents = []
    for j in order.tolist():
        code = int(per.column("code")[j].as_py())
        rows = np.flatnonzero(codes == code)
        examples = list(dict.fromkeys(queries[r] for r in rows.tolist()))[:6]
        top_intents.append(
            {
                "intent": intents.label(first_row[code], brand_names),
                "searches": int(n_searches[j]),
                "distinct_strings": int(n_distinct[j]),
                "examples": examples,
            }
        )
    return {
        "searches": len(queries),
        "distinct_strings": len(set(queries)),
        "distinct_normalized": len(set(table.column("norm").to_pylist())),
        "intents": int(per.num_rows),
        "intents_searched_twice_or_more": int(multi.sum()),
        "mean_distinct_strings_per_intent": round(float(n_distinct.mean()), 3),
        "mean_distinct_strings_per_repeated_intent": round(float(n_distinct[multi].mean()), 3)
        if multi.any()
        else None,
        "mean_distinct_normalized_per_repeated_intent": round(float(n_norm[multi].mean()), 3)
        if multi.any()
        else None,
        "share_repeated_intents_with_2plus_strings": round(float((n_distinct[multi] >= 2).mean()), 3)
        if multi.any()
        else None,
        "mean_searches_per_intent": round(float(n_searches.mean()), 3),
        "top_intents": top_intents,
    }


def _jsonable(obj):
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if hasattr(obj, "isoformat"):
        return obj.isoformat()
    return obj
