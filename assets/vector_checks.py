"""Asset checks of the feature group's tables: every vector table holds one row per expected key (catalog
item or stored query), the dimension its encoder or model gives, unit norm and no NaN; every prompt target
has one candidate row. The dimension comes from the manifest or model record saved next to the vectors.
"""

import json
from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource

from assets.resources import LanceDBResource, PipelineSettings
from fashionrec.layout import (
    CONFIG_FILE,
    ITEM_ID_VECTORS,
    ITEM_IMAGE_VECTORS,
    ITEM_TITLE_VECTORS,
    QUERY_MEMORY_TABLE,
)
from recommender.vector_audit import check_vector_table

FEATURES_GROUP = "features"


def recorded_dim(path: Path, field: str) -> int | None:
    """The dimension recorded under ``field`` (dotted) in a JSON manifest; None before it is written."""
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    for part in field.split("."):
        record = record[part]
    return int(record)


def _check(lancedb: LanceDBResource, table: str, key: str, keys: set[str], dim: int | None):
    report = check_vector_table(lancedb.connect(), table, key, keys, dim)
    return dg.AssetCheckResult(passed=not report.problems, metadata=report.metadata())


def _column(duckdb: DuckDBResource, sql: str) -> set[str]:
    with duckdb.get_connection() as con:
        return {row[0] for row in con.execute(sql).fetchall()}


CATALOG_ITEMS = "select item_id from items"


@dg.asset_check(
    asset=QUERY_MEMORY_TABLE,
    description="One row per normalised query in query_listings; encoder dimension; unit norm; no NaN.",
)
def query_memory_vectors_check(
    duckdb: DuckDBResource, lancedb: LanceDBResource, settings: PipelineSettings
) -> dg.AssetCheckResult:
    queries = _column(duckdb, "select distinct query_norm from query_listings where query_norm is not null")
    dim = recorded_dim(settings.artifacts.query_memory_manifest, "dim")
    return _check(lancedb, QUERY_MEMORY_TABLE, "query_norm", queries, dim)


@dg.asset_check(asset="prompt_candidates", description="One row per prompt_inputs target.")
def prompt_candidates_check(duckdb: DuckDBResource) -> dg.AssetCheckResult:
    with duckdb.get_connection() as con:
        rows, distinct, prompts, orphans = con.execute(
            "select (select count(*) from prompt_candidates), "
            "(select count(distinct target_id) from prompt_candidates), "
            "(select count(*) from prompt_inputs), "
            "(select count(*) from prompt_candidates anti join prompt_inputs using (target_id))"
        ).fetchone()
    return dg.AssetCheckResult(
        passed=rows == distinct == prompts and orphans == 0,
        metadata={
            "rows": rows,
            "distinct_targets": distinct,
            "prompt_inputs_rows": prompts,
            "orphans": orphans,
        },
    )


@dg.asset_check(
    asset=ITEM_TITLE_VECTORS,
    description="One row per catalog item; title encoder dimension; unit norm; no NaN.",
)
def item_title_vectors_check(
    duckdb: DuckDBResource, lancedb: LanceDBResource, settings: PipelineSettings
) -> dg.AssetCheckResult:
    dim = recorded_dim(settings.artifacts.title_vectors_manifest(), "dim")
    return _check(lancedb, ITEM_TITLE_VECTORS, "item_id", _column(duckdb, CATALOG_ITEMS), dim)


@dg.asset_check(
    asset=ITEM_ID_VECTORS, description="One row per catalog item; CORE embedding size; unit norm; no NaN."
)
def item_id_vectors_check(
    duckdb: DuckDBResource, lancedb: LanceDBResource, settings: PipelineSettings
) -> dg.AssetCheckResult:
    dim = recorded_dim(settings.artifacts.core / CONFIG_FILE, "config.embedding_size")
    return _check(lancedb, ITEM_ID_VECTORS, "item_id", _column(duckdb, CATALOG_ITEMS), dim)


@dg.asset_check(
    asset=ITEM_IMAGE_VECTORS,
    description="One row per item with an image_path (an unreadable file fails it); the image encoder's "
    "dimension; unit norm; no NaN. Logs without images: no table, and the check passes.",
)
def item_image_vectors_check(
    duckdb: DuckDBResource, lancedb: LanceDBResource, settings: PipelineSettings
) -> dg.AssetCheckResult:
    with_image = _column(duckdb, "select item_id from items where image_path is not null")
    if not with_image:
        return dg.AssetCheckResult(passed=True, metadata={"items_with_image_path": 0})
    dim = recorded_dim(settings.artifacts.image_vectors_manifest, "dim")
    return _check(lancedb, ITEM_IMAGE_VECTORS, "item_id", with_image, dim)


feature_checks = [
    query_memory_vectors_check,
    prompt_candidates_check,
    item_title_vectors_check,
    item_id_vectors_check,
    item_image_vectors_check,
]
