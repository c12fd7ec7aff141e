"""The fashionrec code location: what ``dagster dev`` (``make ui``) and ``fashionrec run`` both load."""

from dagster import Definitions

from assets.baselines import baseline_assets
from assets.dbt import dbt_resource, evaluation_marts, warehouse_models
from assets.evaluation import evaluation_assets
from assets.id_vectors import id_vector_assets
from assets.image_vectors import image_vector_assets
from assets.llm import llm_assets
from assets.query_memory import query_memory
from assets.resources import PipelineSettings, pipeline_resources
from assets.title_vectors import title_vector_assets
from assets.vector_checks import feature_checks


def build_defs(settings: PipelineSettings | None = None) -> Definitions:
    """The definitions with resources for ``settings``; by default those of ``FASHIONREC_*`` now (not at
    first import), so a CLI call or a test that sets them first gets its own home."""
    return Definitions(
        assets=[
            warehouse_models,
            query_memory,
            *title_vector_assets,
            *id_vector_assets,
            *image_vector_assets,
            *llm_assets,
            *baseline_assets,
            *evaluation_assets,
            evaluation_marts,
        ],
        asset_checks=feature_checks,
        resources={"dbt": dbt_resource(), **pipeline_resources(settings or PipelineSettings.from_env())},
    )


defs = build_defs()
