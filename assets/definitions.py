"""The fashionrec code location: what ``dagster dev`` (``make ui``) and ``fashionrec run`` both load."""

from dagster import Definitions

from assets.dbt import dbt_resource, warehouse_models
from assets.resources import default_duckdb, default_lancedb

defs = Definitions(
    assets=[warehouse_models],
    resources={
        "dbt": dbt_resource(),
        "duckdb": default_duckdb(),
        "lancedb": default_lancedb(),
    },
)
