"""LLM assets (group ``llm``): prompts -> base model -> QLoRA adapter -> generated next purchases.

- ``base_lm``: the base causal LM; a configured Hugging Face id / local folder, or by default a small
  Llama pretrained here on the catalog and the queries (``training.base_lm``);
- ``prompts``: every ``prompt_inputs`` target rendered with the paper's template (Figure 3) and the
  query memory's candidates, fitted to the token budget, for each prompt variant (``recommender.prompts``);
- ``lora_adapter``: QLoRA on the train prompts with the high-perplexity schedule (``training.qlora``);
- ``generations``: ``{<id>..</id>,<title>..</title>}`` for the valid and test prompts, constrained to the
  catalog by default, parsed (``recommender.generation``).

Work is capped per preset so that ``tiny`` runs in a minute or two and ``demo`` in a few minutes on two
CPU cores; every cap is a config field and is reported in the metadata. Paper-scale presets are uncapped.
"""

# torch, transformers, peft and bitsandbytes are imported inside the assets that run them: every
# `fashionrec` command and `dagster dev` load this module first, and those imports take seconds each.
# The config defaults come from torch-free modules (recommender.generation_settings, training.qlora_config).
import base64
import random
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pyarrow as pa
from dagster_duckdb import DuckDBResource
from pydantic import Field
from tqdm.auto import tqdm

from assets.resources import PipelineSettings
from fashionrec.layout import PRETRAINING_LOSS_PLOT
from recommender.generation_settings import GenerationSettings
from recommender.prompts import (
    DEFAULT_TEMPLATE_PATH,
    PROMPT_VARIANTS,
    PromptBudget,
    PromptRenderer,
    render_response,
    token_counter,
)
from training.adapter_selection import AdapterSelection, check_adapter
from training.qlora_config import QLoRAConfig

LLM_GROUP = "llm"


# --------------------------------------------------------------------------------------------- base_lm


class BaseLMAssetConfig(dg.Config):
    """Which base model QLoRA adapts."""

    base_model: str = Field(
        default="",
        description="Hugging Face model id (from the local cache; downloads are off) or local folder, e.g. "
        "'tiiuae/falcon-7b' as in the paper. Empty: pretrain the embedded small domain Llama.",
    )
    epochs: float | None = Field(
        default=None,
        description="Pretraining epochs of the domain model; default 3 (tiny, demo), 2 at paper scale.",
    )
    max_corpus_tokens: int | None = Field(
        default=None, description="Cap on pretraining tokens per epoch; default per preset (200k on demo)."
    )


@dg.asset(group_name=LLM_GROUP, deps=["items", "prompt_inputs"], kinds={"pytorch"})
def base_lm(
    context: dg.AssetExecutionContext,
    config: BaseLMAssetConfig,
    duckdb: DuckDBResource,
    settings: PipelineSettings,
):
    """The base causal LM: a configured pretrained model, or a small Llama with its own BPE tokenizer
    pretrained on the catalog (products as prompts show them and answers name them) and the queries."""
    from recommender.language_model import check_pretrained_source, write_base_model_pointer
    from training.base_lm import BaseLMConfig, build_domain_base_lm, domain_corpus
    from training.qlora import save_loss_plot

    layout = settings.artifacts
    if config.base_model:
        source = check_pretrained_source(config.base_model)
        write_base_model_pointer(layout.base_model_pointer, source, "pretrained")
        return dg.MaterializeResult(metadata={"base_model": source, "source": "pretrained"})

    with duckdb.get_connection() as con:
        items = (
            con.sql(
                "select item_id, title, category, brand, color, size, season, holiday, occasion from items "
                "order by item_id"
            )
            .to_arrow_table()
            .to_pylist()
        )
        queries = [
            row[0]
            for row in con.execute(
                "select distinct event.query from (select unnest(history) as event from prompt_inputs) "
                "where event.action = 'search' and event.query is not null order by 1"
            ).fetchall()
        ]
    pretraining = BaseLMConfig(**asdict(settings.budgets.base_lm))
    if config.epochs is not None:
        pretraining = replace(pretraining, epochs=config.epochs)
    if config.max_corpus_tokens is not None:
        pretraining = replace(pretraining, max_corpus_tokens=config.max_corpus_tokens)
    documents = domain_corpus(items, queries)
    context.log.info(f"pretraining the domain base model on {len(documents)} documents")
    result = build_domain_base_lm(documents, layout.domain_model, pretraining)
    write_base_model_pointer(layout.base_model_pointer, str(result.model_dir), "domain")
    plot = save_loss_plot(
        result.losses, layout.base_lm / PRETRAINING_LOSS_PLOT, "domain pretraining", ylabel="loss"
    )
    return dg.MaterializeResult(
        metadata={
            "base_model": str(result.model_dir),
            "source": "domain",
            "n_parameters": result.n_parameters,
            "architecture": dg.MetadataValue.json(
                {
                    "hidden_size": pretraining.hidden_size,
                    "intermediate_size": pretraining.intermediate_size,
                    "num_hidden_layers": pretraining.num_hidden_layers,
                    "num_attention_heads": pretraining.num_attention_heads,
                    "vocab_size": pretraining.vocab_size,
                }
            ),
            "corpus_documents": result.n_corpus_documents,
            "catalog_items": len(items),
            "distinct_queries": len(queries),
            "train_tokens": result.train_tokens,
            "train_seconds": round(result.train_seconds, 1),
            "train_tokens_per_second": round(result.tokens_per_second, 1),
            "final_loss": round(result.final_loss, 4),
            "loss_curve": _image_markdown(plot),
        }
    )


# --------------------------------------------------------------------------------------------- prompts


class PromptsConfig(dg.Config):
    """Prompt rendering (paper Figure 3) and the token budget (§5.1)."""

    variants: list[str] = Field(
        default=["full", "no_attributes", "no_query_memory"],
        description=f"Prompt variants to render: {', '.join(PROMPT_VARIANTS)} (the ablations of Table 3).",
    )
    max_sequence_tokens: int | None = Field(
        default=None,
        description="Tokens per prompt + answer; default per preset: 1024 (paper) at paper scale, 768 demo, "
        "512 tiny. Over budget, the oldest events are dropped (never the latest search or the candidates).",
    )
    response_tokens: int = Field(
        default=PromptBudget.response_tokens,
        description="Tokens reserved for the answer (paper: 64 new tokens).",
    )
    template_path: str = Field(
        default="",
        description="Prompt template file (Jinja2); empty: "
        f"recommender/templates/{DEFAULT_TEMPLATE_PATH.name}.",
    )


PROMPTS_SCHEMA = pa.schema(
    [
        ("target_id", pa.string()),
        ("user_id", pa.string()),
        ("split", pa.string()),
        ("category", pa.string()),
        ("variant", pa.string()),
        ("prompt_text", pa.string()),
        ("response_text", pa.string()),
        ("target_item_id", pa.string()),
        ("n_prompt_tokens", pa.int32()),
        ("n_history_events_kept", pa.int32()),
        ("n_history_events_dropped", pa.int32()),
        ("fits_budget", pa.bool_()),
        ("candidate_item_ids", pa.list_(pa.string())),
    ]
)


@dg.asset(
    group_name=LLM_GROUP, deps=["prompt_inputs", "items", "prompt_candidates", "base_lm"], kinds={"duckdb"}
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

    unknown = [name for name in config.variants if name not in PROMPT_VARIANTS]
    if unknown or not config.variants:
        raise dg.Failure(f"variants {unknown or '[]'} invalid; choose from {', '.join(PROMPT_VARIANTS)}")
    budget = PromptBudget(
        max_sequence_tokens=config.max_sequence_tokens or settings.budgets.llm.max_sequence_tokens,
        response_tokens=config.response_tokens,
    )
    tokenizer = load_tokenizer(read_base_model_pointer(settings.artifacts.base_model_pointer))
    renderer = PromptRenderer(
        token_counter(tokenizer),
        budget,
        Path(config.template_path) if config.template_path else DEFAULT_TEMPLATE_PATH,
    )
    with duckdb.get_connection() as con:
        _require_tables(con, ["prompt_inputs", "prompt_candidates"])
        targets = (
            con.sql(
                "select target_id, user_id, split, category, target_item_id, target_title, history, "
                "latest_query "
                "from prompt_inputs order by target_id"
            )
            .to_arrow_table()
            .to_pylist()
        )
        candidates = dict(
            con.execute("select target_id, candidate_item_ids from prompt_candidates").fetchall()
        )

    columns: dict[str, list] = {name: [] for name in PROMPTS_SCHEMA.names}
    for target in tqdm(targets, desc="rendering prompts", unit="target"):
        target_candidates = candidates.get(target["target_id"]) or []
        response = render_response(target["target_item_id"], target["target_title"] or "")
        for variant in config.variants:
            rendered = renderer.render(target["history"], target_candidates, variant, target["latest_query"])
            shown = target_candidates if PROMPT_VARIANTS[variant].with_query_memory else None
            for name, value in (
                ("target_id", target["target_id"]),
                ("user_id", target["user_id"]),
                ("split", target["split"]),
                ("category", target["category"]),
                ("variant", variant),
                ("prompt_text", rendered.prompt_text),
                ("response_text", response),
                ("target_item_id", target["target_item_id"]),
                ("n_prompt_tokens", rendered.n_prompt_tokens),
                ("n_history_events_kept", rendered.n_history_events_kept),
                ("n_history_events_dropped", rendered.n_history_events_dropped),
                ("fits_budget", rendered.fits_budget),
                ("candidate_item_ids", shown),
            ):
                columns[name].append(value)
    table = pa.table(columns, schema=PROMPTS_SCHEMA)
    with duckdb.get_connection() as con:
        con.register("prompts_arrow", table)
        con.execute("create or replace table prompts as select * from prompts_arrow")
        con.unregister("prompts_arrow")
        by_variant = con.execute(
            "select variant, split, count(*) as prompts, round(avg(n_prompt_tokens), 1) as mean_tokens, "
            "max(n_prompt_tokens) as max_tokens, round(avg((n_history_events_dropped > 0)::int), 3) "
            "as share_trimmed, sum((not fits_budget)::int) as over_budget "
            "from prompts group by all order by variant, split"
        ).df()
    example = (
        next((i for i, split in enumerate(columns["split"]) if split == "train"), 0) if targets else None
    )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": table.num_rows,
            "targets": len(targets),
            "variants": dg.MetadataValue.json(list(config.variants)),
            "max_sequence_tokens": budget.max_sequence_tokens,
            "prompt_token_budget": budget.prompt_tokens,
            "over_budget": int(by_variant["over_budget"].sum()) if len(by_variant) else 0,
            "by_variant_and_split": dg.MetadataValue.md(by_variant.to_markdown(index=False)),
            **(
                {
                    "example_prompt": dg.MetadataValue.md(
                        f"```\n{columns['prompt_text'][example]}{columns['response_text'][example]}\n```"
                    )
                }
                if example is not None
                else {}
            ),
        }
    )


# ---------------------------------------------------------------------------------------- lora_adapter


class LoraAdapterConfig(dg.Config):
    """QLoRA fine-tuning (paper §4.3, §5.1); unset caps take the preset's defaults."""

    variant: str = Field(default="full", description="Prompt variant to train on (ablations: see prompts).")
    adapter: str = Field(
        default="",
        description="Name of the adapter (its folder under artifacts/lora_adapter/ and the suffix of its "
        "evaluation methods); empty: the variant's name, the adapter the default run trains and serves.",
    )
    categories: list[str] = Field(
        default=[],
        description="Train only on the prompts of these categories (zero-shot, paper §5.4: e.g. "
        "['Footwear']); empty: every category.",
    )
    train_user_fraction: float = Field(
        default=1.0,
        description="Share of training users whose prompts are kept (low-resource, paper §5.4), drawn "
        "after the prompt cap by a hash of user_id and seed, so smaller shares are nested in larger ones.",
    )
    max_train_prompts: int | None = Field(
        default=None,
        description="Random sample of train prompts; default 48 tiny, 400 demo, all at paper scale.",
    )
    learning_rate: float = Field(
        default=QLoRAConfig.learning_rate,
        description="AdamW learning rate; the paper's 2e-5 is for Falcon-7B, 2e-3 suits the small "
        "domain model.",
    )
    lora_r: int = Field(default=QLoRAConfig.lora_r, description="LoRA rank (paper: 16).")
    lora_alpha: int = Field(default=QLoRAConfig.lora_alpha, description="LoRA scaling alpha (paper: 16).")
    lora_dropout: float = Field(default=QLoRAConfig.lora_dropout, description="LoRA dropout (paper: 0.05).")
    high_perplexity_fraction: float = Field(
        default=QLoRAConfig.high_perplexity_fraction,
        description="Share of prompts trained longer (paper: 0.2).",
    )
    high_perplexity_epochs: int = Field(
        default=QLoRAConfig.high_perplexity_epochs, description="Epochs for those prompts (paper: 3)."
    )
    base_epochs: int = Field(
        default=QLoRAConfig.base_epochs, description="Epochs for all prompts (paper: 1)."
    )
    batch_size: int = Field(default=QLoRAConfig.batch_size, description="Prompts per optimizer step.")
    seed: int = Field(default=0, description="Sampling, shuffling and LoRA initialisation seed.")


@dg.asset(group_name=LLM_GROUP, deps=["prompts", "base_lm"], kinds={"pytorch"})
def lora_adapter(
    context: dg.AssetExecutionContext,
    config: LoraAdapterConfig,
    duckdb: DuckDBResource,
    settings: PipelineSettings,
):
    """LoRA adapters (r=16, alpha=16, dropout 0.05) on the 4-bit NF4 base, trained on the train prompts'
    responses: one epoch, three for the 20 % of prompts with the highest base-model perplexity."""
    from recommender.language_model import read_base_model_pointer
    from training.qlora import train_qlora

    base_model = read_base_model_pointer(settings.artifacts.base_model_pointer)
    with duckdb.get_connection() as con:
        _require_tables(con, ["prompts"])
        rows = con.execute(
            "select target_id, prompt_text, response_text, n_prompt_tokens, user_id, category from prompts "
            "where split = 'train' and variant = ? order by target_id",
            [config.variant],
        ).fetchall()
        longest_prompt = con.execute(
            "select coalesce(max(n_prompt_tokens), 0) from prompts where variant = ?", [config.variant]
        ).fetchone()[0]
    if not rows:
        raise dg.Failure(
            f"the prompts table has no train rows for variant {config.variant!r}; add it to the prompts "
            "asset's variants and materialize prompts again"
        )
    cap = (
        config.max_train_prompts
        if config.max_train_prompts is not None
        else settings.budgets.llm.max_train_prompts
    )
    try:
        selection = AdapterSelection(
            config.adapter or config.variant,
            config.variant,
            tuple(config.categories),
            config.train_user_fraction,
            config.seed,
        )
        # categories first (what the adapter may see), then the cap, then the users: at 100 % the adapter
        # trains on the default adapter's sample, and each smaller share on a nested part of it
        sampled = selection.of_users(
            _sample(selection.in_categories(rows, 5, {row[5] for row in rows}), cap, config.seed), 4
        )
    except ValueError as error:
        raise dg.Failure(str(error)) from error
    if not sampled:
        raise dg.Failure(
            f"adapter {selection.adapter!r} has no train prompts left: categories "
            f"{list(selection.categories) or 'all'}, {selection.train_user_fraction:.0%} of the users of "
            f"{f'a {cap}-prompt sample' if cap is not None else 'every prompt'}; raise max_train_prompts or "
            "train_user_fraction"
        )
    qlora = QLoRAConfig(
        lora_r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        learning_rate=config.learning_rate,
        base_epochs=config.base_epochs,
        high_perplexity_fraction=config.high_perplexity_fraction,
        high_perplexity_epochs=config.high_perplexity_epochs,
        batch_size=config.batch_size,
        # prompts are already fitted to the prompts asset's budget: the longest one plus the answer reserve
        max_sequence_tokens=int(longest_prompt) + PromptBudget.response_tokens,
        seed=config.seed,
    )
    n_users = len({row[4] for row in sampled})
    context.log.info(
        f"QLoRA {selection.adapter} on {len(sampled)} of {len(rows)} train prompts ({config.variant}, "
        f"{n_users} users)"
    )
    result = train_qlora(
        base_model,
        [row[1] for row in sampled],
        [row[2] for row in sampled],
        settings.artifacts.adapter(selection.adapter),
        qlora,
    )
    counts = {"train_prompts": len(sampled), "train_users": n_users}
    replace(selection, counts=counts).save(result.adapter_dir)  # generations check the variant against it
    return dg.MaterializeResult(
        metadata={
            "variant": config.variant,
            "adapter": selection.adapter,
            "categories": dg.MetadataValue.json(list(selection.categories) or "all"),
            "train_user_fraction": selection.train_user_fraction,
            "train_users_used": n_users,
            "base_model": base_model,
            "adapter_dir": dg.MetadataValue.path(str(result.adapter_dir)),
            "train_prompts_available": len(rows),
            "train_prompts_used": result.n_examples,
            "train_prompt_cap": cap if cap is not None else "none",
            "high_perplexity_prompts": result.n_high_perplexity,
            "high_perplexity_threshold": round(result.perplexity_threshold, 3),
            "mean_response_perplexity_before": round(result.mean_perplexity, 3),
            "truncated_examples": result.n_truncated,
            "optimizer_steps": result.n_steps,
            "train_tokens": result.train_tokens,
            "train_seconds": round(result.train_seconds, 1),
            "train_tokens_per_second": round(result.tokens_per_second, 1),
            "trainable_parameters": result.n_trainable_parameters,
            "total_parameters": result.n_parameters,
            "first_loss": round(result.losses[0][1], 4) if result.losses else 0.0,
            "final_loss": round(result.losses[-1][1], 4) if result.losses else 0.0,
            "learning_rate": config.learning_rate,
            "loss_curve": _image_markdown(result.loss_plot),
        }
    )


# ----------------------------------------------------------------------------------------- generations


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
    constrained: bool = Field(
        default=True,
        description="Constrain decoding to the answer format and catalog ids (0 % malformed). Off: free "
        "decoding as in the paper; both can live in the table side by side.",
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
        default=None, description="Random sample per split; default 24 tiny, 200 demo, all at paper scale."
    )
    compare_prompts: int | None = Field(
        default=None,
        description="Prompts also decoded the other way (constrained <-> free) to report format and id "
        "rates of both; default 16 tiny, 64 demo, 500 at paper scale; 0 turns the comparison off.",
    )
    max_new_tokens: int = Field(default=GenerationSettings.max_new_tokens, description="Paper: 64.")
    temperature: float = Field(default=GenerationSettings.temperature, description="Paper: 0.05.")
    top_p: float = Field(default=GenerationSettings.top_p, description="Paper: 0.95.")
    batch_size: int = Field(default=GenerationSettings.batch_size, description="Prompts per generate call.")
    seed: int = Field(default=0, description="Sampling seed (prompt sample and decoding).")


GENERATIONS_SCHEMA = pa.schema(
    [
        ("target_id", pa.string()),
        ("user_id", pa.string()),
        ("split", pa.string()),
        ("category", pa.string()),
        ("variant", pa.string()),
        ("adapter", pa.string()),  # older tables get it on their next write (see _replace_generations)
        ("constrained", pa.bool_()),
        ("raw_text", pa.string()),
        ("item_id", pa.string()),
        ("title", pa.string()),
        ("format_ok", pa.bool_()),
        ("id_in_catalog", pa.bool_()),
        ("target_item_id", pa.string()),
        ("is_exact_hit", pa.bool_()),
        ("n_new_tokens", pa.int32()),
        ("generated_at", pa.timestamp("us", tz="UTC")),
    ]
)


@dg.asset(
    group_name=LLM_GROUP, deps=["prompts", "lora_adapter", "base_lm", "items"], kinds={"duckdb", "pytorch"}
)
def generations(
    context: dg.AssetExecutionContext,
    config: GenerationsConfig,
    duckdb: DuckDBResource,
    settings: PipelineSettings,
):
    """One row per answered prompt (per variant, adapter and decoding): the raw answer, the parsed item
    id and title, whether the format held and the id exists; rows of other groups are kept."""
    from recommender.generation import Recommender
    from recommender.language_model import (
        DEFAULT_MAX_DEQUANTIZED_BYTES,
        dequantize_4bit_layers,
        load_recommender_model,
        read_base_model_pointer,
    )

    defaults = settings.budgets.llm
    layout = settings.artifacts
    with duckdb.get_connection() as con:
        _require_tables(con, ["prompts", "items"])
        catalog = con.execute("select item_id, category, title from items order by item_id").fetchall()
        rows = con.execute(
            "select target_id, user_id, split, category, prompt_text, target_item_id, candidate_item_ids "
            "from prompts "
            "where variant = ? and split in (select unnest(?::varchar[])) order by split, target_id",
            [config.variant, list(config.splits)],
        ).fetchall()
    if not rows:
        raise dg.Failure(f"no prompts for variant {config.variant!r} in splits {config.splits}")
    cap = (
        config.max_prompts_per_split
        if config.max_prompts_per_split is not None
        else defaults.max_prompts_per_split
    )
    selected = [
        row
        for split in config.splits
        for row in _sample([r for r in rows if r[2] == split], cap, config.seed)
    ]
    adapter = config.adapter or config.variant
    unknown = sorted(set(config.categories) - {c[1] for c in catalog})
    if unknown:
        raise dg.Failure(
            f"categories {unknown} are not in the catalog; it holds {sorted({c[1] for c in catalog})}"
        )
    if config.categories:
        selected = [row for row in selected if row[3] in config.categories]
        if not selected:
            raise dg.Failure(f"the sampled {config.splits} prompts hold no target in {config.categories}")
    try:
        check_adapter(layout.adapter(adapter), adapter, config.variant)
    except ValueError as error:
        raise dg.Failure(str(error)) from error

    generation = GenerationSettings(
        max_new_tokens=config.max_new_tokens,
        temperature=config.temperature,
        top_p=config.top_p,
        batch_size=config.batch_size,
        constrained=config.constrained,
        restrict_to_category=config.restrict_to_category,
        restrict_to_candidates=config.restrict_to_candidates,
        catalog_title=config.catalog_title,
        seed=config.seed,
    )
    model, tokenizer = load_recommender_model(
        read_base_model_pointer(layout.base_model_pointer), layout.adapter(adapter)
    )
    # on CPU, dequantizing the 4-bit weights once gives the same logits at twice the speed; the serving
    # path does the same, so the evaluated answers are the ones an application gets
    dequantized = dequantize_4bit_layers(model, DEFAULT_MAX_DEQUANTIZED_BYTES)
    recommender = Recommender(
        model, tokenizer, [c[0] for c in catalog], [c[1] for c in catalog], generation, [c[2] for c in catalog]
    )
    prompts_text = [row[4] for row in selected]
    categories = [row[3] for row in selected]
    shortlists = [row[6] for row in selected]
    run = recommender.generate(prompts_text, categories, shortlists=shortlists)

    generated_at = datetime.now(UTC)
    columns: dict[str, list] = {name: [] for name in GENERATIONS_SCHEMA.names}
    for row, answer in zip(selected, run.rows, strict=True):
        for name, value in (
            ("target_id", row[0]),
            ("user_id", row[1]),
            ("split", row[2]),
            ("category", row[3]),
            ("variant", config.variant),
            ("adapter", adapter),
            ("constrained", config.constrained),
            ("raw_text", answer.raw_text),
            ("item_id", answer.item_id),
            ("title", answer.title),
            ("format_ok", answer.format_ok),
            ("id_in_catalog", answer.id_in_catalog),
            ("target_item_id", row[5]),
            ("is_exact_hit", answer.item_id == row[5]),
            ("n_new_tokens", answer.n_new_tokens),
            ("generated_at", generated_at),
        ):
            columns[name].append(value)
    _replace_generations(
        duckdb, pa.table(columns, schema=GENERATIONS_SCHEMA), config.variant, config.constrained, adapter
    )

    metadata: dict[str, object] = {
        "dagster/row_count": len(selected),
        "variant": config.variant,
        "adapter": adapter,
        "categories": dg.MetadataValue.json(list(config.categories) or "all"),
        "constrained": config.constrained,
        "restrict_to_candidates": config.restrict_to_candidates,
        "catalog_title": config.catalog_title,
        "prompts_per_split_cap": cap if cap is not None else "none",
        "prompts_available": len(rows),
        "format_ok_rate": round(run.format_ok_rate, 4),
        "valid_id_rate": round(run.id_in_catalog_rate, 4),
        "prompts_per_second": round(run.prompts_per_second, 3),
        "generation_seconds": round(run.seconds, 1),
        "dequantized_4bit_layers": dequantized,
    }
    for split in config.splits:
        hits = [
            answer.item_id == row[5]
            for row, answer in zip(selected, run.rows, strict=True)
            if row[2] == split
        ]
        if hits:
            metadata[f"{split}_exact_id_hit_rate"] = round(sum(hits) / len(hits), 4)

    n_compare = config.compare_prompts if config.compare_prompts is not None else defaults.compare_prompts
    if n_compare > 0:
        sample = list(range(min(n_compare, len(selected))))
        other = recommender.generate(
            [prompts_text[i] for i in sample],
            [categories[i] for i in sample],
            constrained=not config.constrained,
            shortlists=[shortlists[i] for i in sample],
        )
        same = [run.rows[i] for i in sample]
        by_setting = {config.constrained: same, not config.constrained: other.rows}
        speed = {config.constrained: None, not config.constrained: other.prompts_per_second}
        for constrained, answers in by_setting.items():
            label = "constrained" if constrained else "unconstrained"
            metadata[f"compare_{label}_format_ok_rate"] = round(_share(a.format_ok for a in answers), 4)
            metadata[f"compare_{label}_valid_id_rate"] = round(_share(a.id_in_catalog for a in answers), 4)
            metadata[f"compare_{label}_exact_hit_rate"] = round(
                _share(a.item_id == selected[i][5] for i, a in zip(sample, answers, strict=True)), 4
            )
            if speed[constrained] is not None:
                metadata[f"compare_{label}_prompts_per_second"] = round(speed[constrained], 3)
        metadata["compare_prompts"] = len(sample)
        malformed = [a.raw_text for a in by_setting[False] if not a.format_ok][:5]
        if malformed:
            metadata["malformed_examples_unconstrained"] = dg.MetadataValue.md(
                "\n".join(f"- `{text[:160]!r}`" for text in malformed)
            )
    return dg.MaterializeResult(metadata=metadata)


def _replace_generations(
    duckdb: DuckDBResource, table: pa.Table, variant: str, constrained: bool, adapter: str
) -> None:
    """Swap in this (variant, adapter, decoding)'s rows; the other groups' rows stay."""
    with duckdb.get_connection() as con:
        con.register("generations_arrow", table)
        if "generations" in _tables(con):
            # a table from before adapters had a name: its rows were answered by their variant's adapter
            con.execute("alter table generations add column if not exists adapter varchar")
            con.execute("update generations set adapter = variant where adapter is null")
            con.execute(
                "create or replace table generations as "
                "select * from generations "
                "where not (variant = ? and constrained = ? and adapter = ?) "
                "union all by name select * from generations_arrow",
                [variant, constrained, adapter],
            )
        else:
            con.execute("create table generations as select * from generations_arrow")
        con.unregister("generations_arrow")


def _tables(con) -> set[str]:
    return {row[0] for row in con.execute("select table_name from information_schema.tables").fetchall()}


def _require_tables(con, names: list[str]) -> None:
    missing = [name for name in names if name not in _tables(con)]
    if missing:
        raise dg.Failure(
            f"table(s) {missing} missing in the warehouse; materialize them first, e.g. "
            f"`fashionrec run '+key:{missing[0]}'`"
        )


def _sample(rows: list, cap: int | None, seed: int) -> list:
    """``cap`` rows drawn at random (in their original order), or all of them."""
    if cap is None or len(rows) <= cap:
        return list(rows)
    keep = sorted(random.Random(seed).sample(range(len(rows)), cap))
    return [rows[i] for i in keep]


def _share(flags) -> float:
    values = list(flags)
    return sum(values) / len(values) if values else 0.0


def _image_markdown(path: Path) -> dg.MetadataValue:
    """A PNG inline in the Dagster UI (the file stays next to the model for other tools)."""
    encoded = base64.b64encode(path.read_bytes()).decode("ascii")
    return dg.MetadataValue.md(f"![{path.stem}](data:image/png;base64,{encoded})\n\n`{path}`")


llm_assets = [base_lm, prompts, lora_adapter, generations]
