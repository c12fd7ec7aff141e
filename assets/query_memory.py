"""The query-product memory (arXiv 2410.11327 §4.2), group ``features``: every normalised query embedded
into LanceDB with its best organic listings, and the candidate ids it gives each prompt target
(``recommender.query_memory``). The asset records the LanceDB table version it wrote and read back.
"""

import dagster as dg
import numpy as np
import pandas as pd
from dagster_duckdb import DuckDBResource
from pydantic import Field

from assets.config import CRITICAL_PATH, user_errors
from assets.resources import LanceDBResource, PipelineSettings
from assets.vector_checks import FEATURES_GROUP
from fashionrec.layout import QUERY_MEMORY_TABLE
from recommender.candidate_sources import FALLBACK_SOURCES, FALLBACK_WHEN, Fallback, source_shares
from recommender.encoder_specs import DEFAULT_ENCODER_SPEC, build_encoder
from recommender.query_memory import (
    MemoryManifest,
    MemorySettings,
    build_memory_and_candidates,
    candidates_table,
)
from recommender.vector_store import DEFAULT_INDEX_THRESHOLD
from warehouse.marts import read_items, read_splits, replace_table


def rounded_metric(value: float) -> float:
    """Four decimals; NaN (nothing to measure, e.g. logs without searches) stays NaN."""
    return round(float(value), 4) if np.isfinite(value) else float("nan")


class QueryMemoryConfig(dg.Config):
    """Query-product memory settings (paper §4.2)."""

    encoder: str = Field(
        default=DEFAULT_ENCODER_SPEC,
        description="Query encoder spec: 'sentence_transformers[:PATH]' (default: bundled MiniLM) or "
        "'open_clip:ARCH@PRETRAINED' (the paper's CLIP).",
    )
    neighbours: int = Field(default=MemorySettings.neighbours, description="Q: nearest stored queries.")
    items_per_query: int = Field(
        default=MemorySettings.items_per_query, description="V: top organic products per neighbour."
    )
    max_stored_items: int = Field(
        default=MemorySettings.max_stored_items, description="Listings kept per query for time filtering."
    )
    cutoff: str = Field(
        default="target_ts",
        description="prompt_inputs column giving the prediction time: listings first shown at or after it "
        "are invisible ('target_ts' or the stricter 'latest_query_ts').",
    )
    index_threshold: int = Field(
        default=DEFAULT_INDEX_THRESHOLD, description="Rows from which an IVF-PQ index is built."
    )
    fallback_sources: list[str] = Field(
        default=list(FALLBACK_SOURCES),
        description="Where a target's candidates come from when the memory gives it none, in the order they "
        "fill its Q x V: 'history' (the user's items before the target in its category, latest first), "
        "'popular' (the category's most purchased train items).",
    )
    fallback_when: str = Field(
        default=FALLBACK_WHEN[0],
        description="'empty_memory' (only when the logs give no query memory, e.g. purchases only: logs "
        "with searches keep their candidates as they are), 'no_candidates' (every target the memory gives "
        "none) or 'never'.",
    )
    added_sources: list[str] = Field(
        default=[],
        description="Sources added after every target's candidates (the ablation switch that widens the "
        "memory's): 'family' (the variants of the user's latest items in the target's category), "
        "'history', 'popular'. Empty: the paper's candidates.",
    )
    added_candidates: int = Field(
        default=Fallback.n_added, description="At most this many ids the added sources append to a list."
    )


def configured_fallback(config: QueryMemoryConfig, train_splits, items) -> Fallback:
    """The candidate sources the config names, over the train split's purchases and the catalog."""
    return Fallback(
        train_splits,
        items,
        tuple(config.fallback_sources),
        config.fallback_when,
        tuple(config.added_sources),
        config.added_candidates,
    )


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            QUERY_MEMORY_TABLE,
            group_name=FEATURES_GROUP,
            deps=["query_listings"],
            kinds={"lancedb"},
            description="LanceDB table query_memory: one row per normalised query with its vector and its "
            "best organic listings (item_ids, item_first_shown_at).",
        ),
        dg.AssetSpec(
            "prompt_candidates",
            group_name=FEATURES_GROUP,
            deps=[QUERY_MEMORY_TABLE, "prompt_inputs"],
            kinds={"duckdb"},
            description="One row per prompt_inputs target: candidate_item_ids from the query memory (only "
            "listings first shown before the prediction time), else from the fallback sources, "
            "n_candidates, target_in_candidates, candidate_source (memory, history, popular or a mix).",
        ),
    ],
    can_subset=False,
    op_tags=CRITICAL_PATH,
)
def query_memory(
    context: dg.AssetExecutionContext,
    config: QueryMemoryConfig,
    duckdb: DuckDBResource,
    lancedb: LanceDBResource,
    settings: PipelineSettings,
):
    """Embed every normalised query, store its top products, and compute each prompt's candidates (from
    the fallback sources where the memory gives none and the fallback applies)."""
    memory_settings = MemorySettings(config.neighbours, config.items_per_query, config.max_stored_items)
    with duckdb.get_connection() as con:
        listings, prompts = read_memory_inputs(con)
        splits, items = read_splits(con), read_items(con)
    encoder = build_encoder(config.encoder)
    with user_errors():
        fallback = configured_fallback(config, splits[splits["split"] == "train"], items)
        built = build_memory_and_candidates(
            lancedb.connect(),
            listings,
            prompts,
            encoder,
            memory_settings,
            cutoff_column=config.cutoff,
            index_threshold=config.index_threshold,
            fallback=fallback,
        )
    MemoryManifest.of(encoder, memory_settings).save(settings.artifacts.query_memory_manifest)
    with duckdb.get_connection() as con:
        replace_table(con, "prompt_candidates", candidates_table(built.candidates))
    hits = built.valid_quality["valid_hit_rate"]
    context.log.info(f"query memory: {built.written.rows} queries, valid hit rate {hits:.3f}")
    yield dg.MaterializeResult(
        asset_key=QUERY_MEMORY_TABLE,
        metadata={
            **built.written.metadata(),
            "dagster/row_count": built.written.rows,
            "encoder": encoder.spec,
            "dim": encoder.dim,
        },
    )
    yield dg.MaterializeResult(asset_key="prompt_candidates", metadata=candidates_metadata(built, config))


def read_memory_inputs(con) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``query_listings`` and ``prompt_inputs`` as the memory and the candidates read them; ordered, so
    that the strings reach the encoder in the same batches on every run."""
    listings = con.execute(
        "select query_norm, item_id, organic_rank, first_shown_at from query_listings "
        "order by query_norm, organic_rank, item_id"
    ).df()
    prompts = con.execute(
        "select target_id, split, category, target_item_id, latest_query, latest_query_ts, target_ts, "
        "history from prompt_inputs order by target_id"
    ).df()
    return listings, prompts


def candidates_metadata(built, config: QueryMemoryConfig) -> dict:
    candidates, seconds = built.candidates, built.lookup_seconds
    return {
        "dagster/row_count": len(candidates),
        "Q_neighbours": config.neighbours,
        "V_items_per_query": config.items_per_query,
        "cutoff": config.cutoff,
        "memory_lancedb_version": built.written.version,
        "lookup_seconds": round(seconds, 3),
        "lookups_per_second": round(len(candidates) / seconds, 1) if seconds > 0 else 0.0,
        "share_with_candidates": float((candidates["n_candidates"] > 0).mean()) if len(candidates) else 0.0,
        "fallback_when": config.fallback_when,
        "added_sources": dg.MetadataValue.json(config.added_sources),
        "added_candidates": config.added_candidates,
        "candidate_sources": dg.MetadataValue.json(source_shares(candidates["candidate_source"].tolist())),
        **{k: rounded_metric(v) for k, v in built.valid_quality.items()},
    }
