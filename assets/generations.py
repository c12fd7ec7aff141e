"""The ``generations`` asset of the ``llm`` group: ``{<id>..</id>,<title>..</title>}`` for a sample of the
valid and test prompts, constrained to the catalog by default, parsed (``recommender.generation_table``).
"""

# torch, transformers and peft are imported inside the asset: every `fashionrec` command and `dagster dev`
# load this module first, and those imports take seconds each. The config defaults come from the torch-free
# recommender.generation_settings.
import dagster as dg
from dagster_duckdb import DuckDBResource
from pydantic import Field

from assets.config import CRITICAL_PATH, config_fields, or_preset, user_errors
from assets.language_model import LLM_GROUP
from assets.resources import PipelineSettings
from recommender.generation_settings import DEFAULT_DECODING, GenerationSettings
from recommender.generation_table import (
    GenerationGroup,
    answer_prompts,
    prompt_sample,
    read_prompts_to_answer,
    replace_generations,
    split_caps,
)
from training.adapter_selection import check_adapter


class GenerationsConfig(dg.Config):
    """Generation with the paper's settings (§5.1) and constrained decoding."""

    variant: str = Field(default="full", description="Prompt variant (and its adapter) to generate with.")
    adapter: str = Field(
        default="",
        description="Adapter that answers (lora_adapter's `adapter`); empty: the variant's own. It must "
        "have been trained on this variant.",
    )
    categories: list[str] = Field(
        default=[],
        description="Answer only the sampled prompts of these categories (zero-shot: an adapter answers "
        "categories it never saw). The sample is drawn before this filter, so the targets are the ones the "
        "default run answers in these categories. Empty: every category.",
    )
    decoding: str = Field(
        default=DEFAULT_DECODING,
        description="'ranked_prior': 'ranked' with the candidates' order in the prompt as a prior beside "
        "the model's scores (recommender.order_prior), written together with the 'ranked' group of the "
        "same pass; 'ranked': score every candidate of the prompt under the model and hand mixup the "
        "ranked list; 'grounded': constrained decoding of one answer (format, catalog id, the id's "
        "catalog title); 'free': the paper's sampling. Groups of each live in the table side by side.",
    )
    order_prior_weight: float | None = Field(
        default=None,
        description="ranked_prior: the order prior's weight (0: the model alone; .inf: the order alone). "
        "Default: the weight of recommender.order_prior.ORDER_PRIOR_WEIGHTS with the best target NDCG "
        "among the candidates on this run's valid prompts.",
    )
    restrict_to_category: bool = Field(
        default=True,
        description="Constrained ids come from the target's category (the evaluation ranks within it).",
    )
    restrict_to_candidates: bool = Field(
        default=GenerationSettings.restrict_to_candidates,
        description="Constrained ids come from the prompt's query-memory candidates when it has any (the "
        "model ranks the shortlist); on by default (recommender.generation_settings says why). Off, as in "
        "the paper: candidates are only a hint in the prompt.",
    )
    catalog_title: bool = Field(
        default=GenerationSettings.catalog_title,
        description="Constrained answers spell the chosen id's catalog title instead of a free title, so "
        "the id and the title that mixup embeds name the same product; on by default. Off, as in the "
        "paper: the model writes the title.",
    )
    splits: list[str] = Field(default=["valid", "test"], description="Splits whose prompts are answered.")
    max_prompts_per_split: int | None = Field(
        default=None, description="Random sample per split; default: the preset's (fashionrec.presets)."
    )
    compare_prompts: int | None = Field(
        default=None,
        description="Prompts also decoded the other ways (ranked, grounded, free) to report the format, id "
        "and pick rates of each; default: the preset's; 0 turns the comparison off.",
    )
    max_new_tokens: int = Field(default=GenerationSettings.max_new_tokens, description="Paper: 64.")
    temperature: float = Field(default=GenerationSettings.temperature, description="Paper: 0.05.")
    top_p: float = Field(default=GenerationSettings.top_p, description="Paper: 0.95.")
    batch_size: int = Field(default=GenerationSettings.batch_size, description="Prompts per generate call.")
    seed: int = Field(default=0, description="Sampling seed (prompt sample and decoding).")

    def generation_settings(self) -> GenerationSettings:
        """The decoding settings of this config; ranked_prior's weight is fused after the ranking pass
        (``answer_prompts``), so the model ranks alone here."""
        return GenerationSettings(**{**config_fields(self, GenerationSettings), "order_prior_weight": 0.0})

    def group(self) -> GenerationGroup:
        """The rows of the generations table this run replaces."""
        with user_errors():
            return GenerationGroup(self.variant, self.adapter or self.variant, self.decoding)


@dg.asset(
    group_name=LLM_GROUP,
    deps=["prompts", "lora_adapter", "base_lm", "items"],
    kinds={"duckdb", "pytorch"},
    op_tags=CRITICAL_PATH,
)
def generations(
    context: dg.AssetExecutionContext,
    config: GenerationsConfig,
    duckdb: DuckDBResource,
    settings: PipelineSettings,
):
    """One row per answered prompt (per variant, adapter and decoding): the raw answer, the parsed item
    id and title, whether the format held and the id exists; rows of other groups are kept."""
    from recommender.generation import load_recommender
    from recommender.language_model import read_base_model_pointer

    layout, budget, group = settings.artifacts, settings.budgets.llm, config.group()
    with duckdb.get_connection() as con, user_errors():
        catalog, rows = read_prompts_to_answer(con, config.variant, config.splits)
    cap = or_preset(config.max_prompts_per_split, budget.max_prompts_per_split)
    caps = split_caps(config.splits, cap, None if config.max_prompts_per_split else budget.max_valid_prompts)
    with user_errors():
        categories = {row[1] for row in catalog}
        sample = prompt_sample(
            rows, group.variant, config.splits, caps, config.seed, config.categories, categories
        )
        adapter = layout.adapter(group.adapter)
        check_adapter(adapter, group.adapter, group.variant)
        base_lm = read_base_model_pointer(layout.base_model_pointer)
        recommender, dequantized = load_recommender(base_lm, adapter, catalog, config.generation_settings())
        compare = or_preset(config.compare_prompts, budget.compare_prompts)
        answered = answer_prompts(recommender, sample, group, compare, config.order_prior_weight)
    with duckdb.get_connection() as con:
        for answered_group, table in answered.tables.items():
            replace_generations(con, table, answered_group)
    malformed = answered.malformed_markdown
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": answered.num_rows,
            **answered.figures,
            "categories": dg.MetadataValue.json(list(config.categories) or "all"),
            "prompts_per_split_cap": cap if cap is not None else "none",
            "prompts_available": len(rows),
            "dequantized_4bit_layers": dequantized,
            **({"malformed_examples_unconstrained": dg.MetadataValue.md(malformed)} if malformed else {}),
        }
    )
