"""The fashionrec code location: what ``dagster dev`` (``make ui``) and ``fashionrec run`` both load."""

from dagster import Definitions

from assets.baselines import baseline_assets
from assets.dbt import dbt_resource, evaluation_marts, warehouse_models
from assets.evaluation import evaluation_assets
from assets.features import feature_assets, feature_checks
from assets.id_vectors import id_vector_assets, id_vector_checks
from assets.llm import llm_assets
from assets.resources import default_duckdb, default_lancedb


def build_defs() -> Definitions:
    """Definitions whose DuckDB and LanceDB paths are read from FASHIONREC_HOME now (not at first import)."""
    return Definitions(
        assets=[
            warehouse_models,
            *feature_assets,
            *id_vector_assets,
            *llm_assets,
            *baseline_assets,
            *evaluation_assets,
            evaluation_marts,
        ],
        asset_checks=[*feature_checks, *id_vector_checks],
        resources={
            "dbt": dbt_resource(),
            "duckdb": default_duckdb(),
            "lancedb": default_lancedb(),
        },
    )


defs = build_defs()
