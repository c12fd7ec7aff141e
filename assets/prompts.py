"""The ``prompts`` asset of the ``llm`` group: every ``prompt_inputs`` target rendered with the paper's
template (Figure 3) and the query memory's candidates, fitted to the base model's token budget, for each
prompt variant (``recommender.prompt_table``).
"""

import dagster as dg
import pyarrow as pa
from dagster_duckdb import DuckDBResource
from pydantic import Field

from assets.config import CRITICAL_PATH, user_errors
from assets.language_model import LLM_GROUP
from assets.resources import PipelineSettings
from recommender.prompt_table import example_prompt, prompts_summary, prompts_table
from recommender.prompts import (
    CATALOG_COLUMNS,
    DEFAULT_TEMPLATE_PATH,
    FIGURE3_TEMPLATE_PATH,
    PROMPT_VARIANTS,
    PromptBudget,
    PromptRenderer,
    token_counter,
)
from warehouse.marts import replace_table, require_tables


class PromptsConfig(dg.Config):
    """Prompt rendering (paper Figure 3) and the token budget (§5.1)."""

    variants: list[str] = Field(
        # only the variant the default run trains and answers; the others are the ablations study's
        # (studies/ablations.yaml renders them), and each costs as much rendering and tokenizing
        default=["full"],
        description=f"Prompt variants to render: {', '.join(PROMPT_VARIANTS)} (the ablations of Table 3); "
        "default: 'full' (the ablations study renders the others).",
    )
    max_sequence_tokens: int | None = Field(
        default=None,
        description="Tokens per prompt + answer; default: the preset's (paper: 1024). "
        "Over budget, the oldest events are dropped (never the latest search or the candidates).",
    )
    response_tokens: int = Field(
        default=PromptBudget.response_tokens,
        description="Tokens reserved for the answer (paper: 64 new tokens).",
    )
    template_path: str = Field(
        default="",
        description="Prompt template file (Jinja2); empty: the compact "
        f"recommender/templates/{DEFAULT_TEMPLATE_PATH.name} (the paper's Figure 3 wording, products as "
        f"JSON: recommender/templates/{FIGURE3_TEMPLATE_PATH.name}).",
    )
    seed: int = Field(
        default=0, description="Where a train target the candidates missed is inserted among them."
    )


@dg.asset(
    group_name=LLM_GROUP,
    deps=["prompt_inputs", "items", "prompt_candidates", "base_lm"],
    kinds={"duckdb"},
    op_tags=CRITICAL_PATH,
)
def prompts(
    context: dg.AssetExecutionContext,
    config: PromptsConfig,
    duckdb: DuckDBResource,
    settings: PipelineSettings,
):
    """One row per (target, variant): the prompt text fitted to the token budget of the base model's
    tokenizer and the answer it should produce, ``{<id>ID</id>,<title>TITLE</title>}``."""
    from recommender.language_model import load_tokenizer, read_base_model_pointer

    with duckdb.get_connection() as con, user_errors():
        targets, candidates, catalog = read_prompt_inputs(con)
    with user_errors():
        budget = PromptBudget(
            max_sequence_tokens=config.max_sequence_tokens or settings.budgets.llm.max_sequence_tokens,
            response_tokens=config.response_tokens,
        )
        tokenizer = load_tokenizer(read_base_model_pointer(settings.artifacts.base_model_pointer))
        renderer = PromptRenderer(
            token_counter(tokenizer),
            budget,
            config.template_path or DEFAULT_TEMPLATE_PATH,
            catalog,
        )
        table = prompts_table(targets.to_pylist(), candidates, renderer, config.variants, config.seed)
    with duckdb.get_connection() as con:
        replace_table(con, "prompts", table)
    summary, example = prompts_summary(table), example_prompt(table)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": table.num_rows,
            "targets": targets.num_rows,
            "variants": dg.MetadataValue.json(list(config.variants)),
            "max_sequence_tokens": budget.max_sequence_tokens,
            "prompt_token_budget": budget.prompt_tokens,
            "over_budget": int(summary["over_budget"].sum()),
            "mean_prompt_tokens": round(float(summary["mean_tokens"].mean()), 1),
            "by_variant_and_split": dg.MetadataValue.md(summary.to_markdown(index=False)),
            **(
                {"example_prompt": dg.MetadataValue.md(f"```\n{example}\n```")} if example is not None else {}
            ),
        }
    )


def read_prompt_inputs(con) -> tuple[pa.Table, dict[str, list[str]], dict[str, dict]]:
    """The targets to prompt for, each one's candidate ids, and the catalog rows a prompt can show."""
    require_tables(con, ["prompt_inputs", "prompt_candidates"])
    targets = con.sql(
        "select target_id, user_id, split, category, target_item_id, target_title, history, latest_query "
        "from prompt_inputs order by target_id"
    ).to_arrow_table()
    candidates = con.execute(
        "select target_id, candidate_item_ids from prompt_candidates order by target_id"
    ).fetchall()
    catalog = con.sql(f"select {', '.join(CATALOG_COLUMNS)} from items").to_arrow_table().to_pylist()
    return targets, dict(candidates), {item["item_id"]: item for item in catalog}
