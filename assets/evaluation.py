"""Evaluation assets (group ``evaluation``): one run scores every method on the same targets.

``recommendations``, ``eval_ranks``, ``eval_metrics`` and ``eval_llm_diagnostics`` come out of one step,
because they describe the same run: the top-K lists the methods produced, the rank of each target under
each method, the metrics aggregated from those ranks, and how the LLM's picks among the prompt's
candidates compare with its controls' (docs/evaluation.md). Each run appends its rows under its Dagster run
id and records its configuration in ``eval_runs``; earlier runs stay queryable. The work lives in
``evaluation.run`` (the run), ``evaluation.inputs`` (what it reads), ``evaluation.scorers`` (the trained
models) and ``evaluation.leaderboard`` (the report).
"""

from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource
from pydantic import Field

from assets.config import config_fields, user_errors
from assets.resources import LanceDBResource, PipelineSettings
from evaluation.fallbacks import fallback_notes, with_notes
from evaluation.inputs import read_evaluation_inputs
from evaluation.leaderboard import format_diagnostics, format_leaderboard, png_markdown, write_report
from evaluation.llm_methods import RETRIEVAL_ABLATIONS
from evaluation.methods import DEFAULT_METHODS
from evaluation.protocol import EvaluationResult
from evaluation.run import evaluate_run, run_record, save_run
from evaluation.settings import EvaluationSettings
from fashionrec.layout import ITEM_ID_VECTORS, ITEM_TITLE_VECTORS
from recommender.generation_settings import DEFAULT_DECODING
from training.baseline_names import BASELINES, baseline_key

EVALUATION_GROUP = "evaluation"


class EvaluationRunConfig(dg.Config):
    """Settings of one evaluation run; they are stored with its results in ``eval_runs.config``."""

    k: int = Field(default=10, description="List length and metric cut-off (paper §5.1: N = 10).")
    n: int = Field(
        default=1, description="Mixup: items taken from the ID list before the title list (paper: 1)."
    )
    label: str = Field(
        default="", description="Free text to find this run again in eval_runs / eval_run_history."
    )
    split: str = Field(default="test", description="Which splits rows are the targets: 'test' or 'valid'.")
    methods: list[str] = Field(
        default=list(DEFAULT_METHODS),
        description="Methods to score: llm_mixup, llm_only, memory_first, memory_random (the LLM's "
        "controls: the prompt's candidates in source or random order, with llm_mixup's retrieval), core, "
        "popularity, gru4rec, sasrec, bert4rec, nextitnet, llm2sasrec, llm2bert4rec, llmseqsim, "
        "text_seq_query, illmrec (and its ablations illmrec-image, illmrec-image_ila, "
        "illmrec-image_ila_cf, once trained); the LLM's ablations follow generations.",
    )
    preferred_decoding: str = Field(
        default=DEFAULT_DECODING,
        description="When generations hold several decodings of the same prompts (ranked_prior, ranked, "
        "grounded, free), this one is the headline llm_* method; the others get a '-<decoding>' suffix.",
    )
    title_encoder: str = Field(
        default="",
        description="Encoder spec for generated titles; empty = the trained one (artifacts/title_encoder).",
    )
    core_dir: str = Field(default="", description="Trained CORE model directory; empty = artifacts/core.")
    baselines_dir: str = Field(
        default="",
        description="Folder of the trained baselines (one per method); empty = artifacts/baselines.",
    )
    all_targets: bool = Field(
        default=False,
        description="Score every target of the split. Default: only the targets the LLM answered "
        "(generations holds a sample at small presets), so every method is scored on the same targets.",
    )
    adapters: list[str] = Field(
        default=[],
        description="Score only the generations of these adapters (e.g. ['users_10', 'users_100']); "
        "empty: every generation group.",
    )
    baseline_runs: list[str] = Field(
        default=[],
        description="Baselines trained under a run name to score as well, by method name "
        "<method>-<run_name> (e.g. ['core-users_10', 'sasrec-users_10', 'text_seq_query-users_10'], the "
        "low-resource study): loaded from artifacts/baselines/<method>-<run_name>, which item_id_vectors "
        "(core) or the baselines assets write when given that run_name.",
    )
    retrieval_ablations: list[str] = Field(
        default=[],
        description="Paper Table 3 retrieval ablations added for every LLM group as llm_mixup-...-<name>: "
        + "; ".join(f"{name}: {what}" for name, what in RETRIEVAL_ABLATIONS.items())
        + ".",
    )
    title_vectors_table: str = Field(
        default="",
        description="LanceDB table of item title vectors for mixup's title list; empty = "
        "item_title_vectors. Another table (item_title_vectors' `table`) needs the title_encoder that "
        "wrote it, e.g. CLIP for Table 3's 'w/ CLIP text embedding', and a method_suffix.",
    )
    method_suffix: str = Field(
        default="",
        description="Appended to every LLM method of the run (e.g. '-clip_text_embedding'), so rows "
        "retrieved differently are not taken for the default ones.",
    )
    control_seed: int = Field(
        default=0,
        description="Seed of memory_random's candidate order; each target's order is drawn from a hash of "
        "(control_seed, target_id), so it does not depend on the rows' order.",
    )
    notes: str = Field(
        default="", description="Free text stored with the run's configuration (e.g. what a study skipped)."
    )

    def settings(self) -> EvaluationSettings:
        """The run's settings for the library (the same fields, the same defaults)."""
        return EvaluationSettings.from_fields(config_fields(self, EvaluationSettings))


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            "recommendations",
            group_name=EVALUATION_GROUP,
            deps=[
                "generations",
                "prompts",
                "splits",
                "items",
                "user_sequences",
                "prompt_inputs",
                ITEM_ID_VECTORS,
                ITEM_TITLE_VECTORS,
                *(baseline_key(name) for name in BASELINES),
                "illmrec",
            ],
            description="Top-K lists per method and target: llm_mixup (LLM + mixup retrieval, paper §4.4), "
            "llm_only (the generated id), and the top-K of the scoring baselines (core, popularity and the "
            "baselines group, and runs of them on a share of the users, e.g. sasrec-users_10); source "
            "'id' | 'title' | 'list'. Appended per run; eval_runs records each run's configuration.",
        ),
        dg.AssetSpec(
            "eval_ranks",
            group_name=EVALUATION_GROUP,
            deps=["recommendations"],
            description="Rank of each target under each method (NULL when a list method's list misses it).",
        ),
        dg.AssetSpec(
            "eval_metrics",
            group_name=EVALUATION_GROUP,
            deps=["eval_ranks"],
            description="Recall@10, NDCG@10, MRR, MRR@10, coverage@10, serendipity@10 per method, category "
            "('all' too) and slice (all, cold_start, warm).",
        ),
        dg.AssetSpec(
            "eval_llm_diagnostics",
            group_name=EVALUATION_GROUP,
            deps=["recommendations"],
            description="Per pick method (each LLM generation group, memory_first, memory_random) and "
            "category ('all' too): how often the prompt's candidates hold the target (candidate_recall) and "
            "how often the pick is the target (pick_accuracy, its standard error, and given recall).",
        ),
    ],
    can_subset=False,
)
def evaluation(
    context: dg.AssetExecutionContext,
    config: EvaluationRunConfig,
    duckdb: DuckDBResource,
    lancedb: LanceDBResource,
    settings: PipelineSettings,
):
    """Score the configured methods on the split's targets and append the lists, ranks and metrics. What
    earlier stages did in place of what the logs lack (e.g. purchases only) goes into the run's notes."""
    run_settings = config.settings()
    with user_errors():
        run_settings.check()
        with duckdb.get_connection() as con:
            inputs = read_evaluation_inputs(con, run_settings)
            fallbacks = fallback_notes(con, settings.artifacts, lancedb.connect(), run_settings)
        run_settings = with_notes(run_settings, fallbacks)
        targets, result = evaluate_run(
            run_settings, inputs, settings.artifacts, lancedb.connect(), context.log.info
        )
    run = run_record(context.run_id, run_settings, settings.preset)
    with duckdb.get_connection() as con:
        written = save_run(con, run, targets, result)
    report, plots = write_report(
        run, result.metrics, settings.reports.evaluation(run.run_id), run_settings.k, result.diagnostics
    )
    context.log.info("\n" + format_leaderboard(result.metrics, ["all"], title=run.title()))
    common = {"run_id": run.run_id, "split": run.split, "targets": len(targets), "fallbacks": fallbacks}
    for key, metadata in _metadata(result, report, plots).items():
        yield dg.MaterializeResult(
            asset_key=key, metadata={**common, "dagster/row_count": written[key], **metadata}
        )


def _metadata(result: EvaluationResult, report: Path, plots: dict[str, Path]) -> dict[str, dict]:
    """Per asset of the run, what the UI shows of it besides its row count."""
    metrics = result.metrics
    return {
        "recommendations": {
            "methods": sorted(result.lists["method"].unique().tolist()),
            "rows_per_source": dg.MetadataValue.json(result.rows_per_source()),
        },
        "eval_ranks": {
            "ranked_share": dg.MetadataValue.json({m: round(v, 4) for m, v in result.ranked_share().items()}),
            "users_per_second": dg.MetadataValue.json(
                {m: round(v, 1) for m, v in result.users_per_second().items()}
            ),
        },
        "eval_metrics": {
            "leaderboard": dg.MetadataValue.md(format_leaderboard(metrics, markdown=True)),
            "cold_start": dg.MetadataValue.md(
                format_leaderboard(metrics, ["all"], "cold_start", markdown=True)
            ),
            "leaderboard_plot": dg.MetadataValue.md(png_markdown(plots["leaderboard"], "leaderboard")),
            "cold_start_plot": dg.MetadataValue.md(png_markdown(plots["cold_start"], "cold start")),
            "leaderboard_plot_path": dg.MetadataValue.path(str(plots["leaderboard"])),
            "cold_start_plot_path": dg.MetadataValue.path(str(plots["cold_start"])),
            "report": dg.MetadataValue.path(str(report)),
        },
        "eval_llm_diagnostics": {
            "diagnostics": dg.MetadataValue.md(format_diagnostics(result.diagnostics, markdown=True)),
        },
    }


evaluation_assets = [evaluation]
