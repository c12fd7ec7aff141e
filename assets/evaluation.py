"""Evaluation assets (group ``evaluation``): one run scores every method on the same targets.

``recommendations``, ``eval_ranks`` and ``eval_metrics`` come out of one step, because they describe the
same run: the top-K lists the methods produced, the rank of each target under each method, and the
metrics aggregated from those ranks (docs/evaluation.md "The protocol"). Each run appends its rows under
its Dagster run id and records its configuration in ``eval_runs``; earlier runs stay queryable. The work
itself lives in ``evaluation.protocol`` (protocol), ``evaluation.tables`` (tables), ``recommender.mixup``
(retrieval, the same code the service runs) and ``evaluation.leaderboard`` (tables, plots, report).
"""

# The trained models (torch) are loaded inside the functions that score with them: every `fashionrec`
# command and `dagster dev` load this module first, and those imports take seconds each. The protocol
# and the method names it reads at load time come from torch-free modules.
import json
from pathlib import Path

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource
from pydantic import Field

from assets.baselines import baseline_key
from assets.resources import LanceDBResource, PipelineSettings
from evaluation.leaderboard import EvaluationRun, format_leaderboard, png_markdown, write_report
from evaluation.llm_methods import (
    RETRIEVAL_ABLATIONS,
    check_retrieval_options,
    generated_target_ids,
    llm_list_methods,
    select_adapters,
)
from evaluation.methods import DEFAULT_METHODS, LLM_METHODS
from evaluation.protocol import (
    EvaluationConfig,
    ScoreBatch,
    catalog_by_category,
    evaluate_methods,
    popular_top_k,
    popularity_counts,
    popularity_scorer,
    sequence_scorer,
)
from evaluation.tables import write_evaluation_run
from fashionrec.layout import CONFIG_FILE, ITEM_ID_VECTORS, ITEM_TITLE_VECTORS, ArtifactLayout
from recommender.encoder_specs import build_encoder
from recommender.encoders import TextEncoder
from recommender.mixup import MixupConfig
from recommender.retrieval import VectorCatalog
from recommender.vector_store import table_exists
from training.baseline_names import BASELINES, SEQUENCE_BASELINES, parse_run_method, train_step_hint
from training.text_seq_query import TextSeqQueryConfig, text_scorer, user_texts

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
        description="Methods to score: llm_mixup, llm_only, core, popularity, gru4rec, sasrec, bert4rec, "
        "nextitnet, llm2sasrec, llmseqsim, text_seq_query (ablations follow generations).",
    )
    prefer_constrained: bool = Field(
        default=True,
        description="When generations hold both decodings, the constrained one is the headline llm_* method.",
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
    notes: str = Field(
        default="", description="Free text stored with the run's configuration (e.g. what a study skipped)."
    )


def _read_inputs(con, config: EvaluationRunConfig) -> dict[str, pd.DataFrame]:
    tables = {r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()}
    needed = {"splits", "items"}
    if set(config.methods) & set(LLM_METHODS):
        needed.add("generations")
    if set(config.methods) & {"core", *SEQUENCE_BASELINES} or config.baseline_runs:
        needed.add("user_sequences")
    if "text_seq_query" in config.methods or any(
        name.startswith("text_seq_query-") for name in config.baseline_runs
    ):
        needed.add("prompt_inputs")
    missing = sorted(needed - tables)
    if missing:
        raise dg.Failure(
            f"the evaluation needs table(s) {missing} in the warehouse; materialize them first, "
            "e.g. `fashionrec run '+key:recommendations'`"
        )
    frames = {
        "splits": con.execute(
            "select target_id, user_id, category, target_item_id, is_cold_item, split, seq_no from splits "
            "order by target_id"
        ).df(),
        "items": con.execute("select item_id, category from items order by item_id").df(),
    }
    if "generations" in needed:
        frames["generations"] = con.execute(
            "select * from generations where split = ? order by target_id, variant, adapter, constrained",
            [config.split],
        ).df()
    if "user_sequences" in needed:
        frames["user_sequences"] = con.execute(
            "select user_id, seq_no, event_id, item_id from user_sequences where item_id is not null "
            "order by user_id, seq_no"
        ).df()
    if "prompt_inputs" in needed:
        frames["prompt_inputs"] = con.execute(
            "select target_id, latest_query, history from prompt_inputs where split = ? order by target_id",
            [config.split],
        ).df()
    return frames


def _title_encoder(config: EvaluationRunConfig, layout: ArtifactLayout) -> TextEncoder:
    from training.title_encoder import load_title_encoder_spec

    spec = config.title_encoder or load_title_encoder_spec(layout.title_encoder())
    return build_encoder(spec, show_progress=False)


def _title_retrieval(
    config: EvaluationRunConfig, db, layout: ArtifactLayout
) -> tuple[VectorCatalog, TextEncoder]:
    """Mixup's title vectors and the encoder of generated titles. Another table than the default must
    come with the encoder that wrote it and a method suffix: vectors of two models never meet."""
    table = config.title_vectors_table or ITEM_TITLE_VECTORS
    if table != ITEM_TITLE_VECTORS:
        manifest = layout.title_vectors_manifest(table)
        if not (config.title_encoder and config.method_suffix):
            raise dg.Failure(
                f"title_vectors_table {table!r} needs the title_encoder that wrote it and a method_suffix "
                "that names the retrieval (e.g. '-clip_text_embedding')"
            )
        if not (manifest.is_file() and table_exists(db, table)):
            raise dg.Failure(
                f"no title vector table {table!r}; materialize item_title_vectors with config "
                f"{{encoder: {config.title_encoder!r}, table: {table!r}}} first"
            )
    encoder = _title_encoder(config, layout)
    if table != ITEM_TITLE_VECTORS:
        written_by = json.loads(manifest.read_text())
        if written_by.get("encoder_fingerprint") != encoder.fingerprint:
            raise dg.Failure(
                f"{table!r} was written by {written_by.get('encoder_spec')!r}, whose weights differ from "
                f"title_encoder {config.title_encoder!r}; use the same encoder for both"
            )
    return VectorCatalog.from_table(db.open_table(table)), encoder


def _text_seq_query_scorer(
    directory: Path, prompt_inputs: pd.DataFrame, lancedb: LanceDBResource
) -> ScoreBatch:
    """text_seq_query as saved in ``directory``, with the encoder and title vectors it was fitted with."""
    saved = TextSeqQueryConfig.load(directory)
    encoder = build_encoder(saved.encoder_spec, show_progress=False)
    if encoder.fingerprint != saved.encoder_fingerprint:
        raise dg.Failure(
            f"{directory.name} was fitted with another encoder than {saved.encoder_spec} is now; "
            f"re-materialize {baseline_key('text_seq_query')}"
        )
    db = lancedb.connect()
    if not table_exists(db, saved.title_vectors_table):
        raise dg.Failure(
            f"{directory.name} was fitted with title vectors {saved.title_vectors_table!r}, which are gone; "
            f"re-materialize item_title_vectors (table: {saved.title_vectors_table})"
        )
    titles = VectorCatalog.from_table(db.open_table(saved.title_vectors_table))
    return text_scorer(user_texts(prompt_inputs, saved.max_titles), encoder, titles)


def _baseline_scorers(
    config: EvaluationRunConfig,
    inputs: dict[str, pd.DataFrame],
    lancedb: LanceDBResource,
    layout: ArtifactLayout,
) -> dict[str, ScoreBatch]:
    """Scoring functions of the chosen baselines, loaded from what the ``baselines`` assets saved."""
    from training.baselines import load_baseline

    directory = Path(config.baselines_dir) if config.baselines_dir else layout.baselines
    scorers: dict[str, ScoreBatch] = {}
    for method in [m for m in config.methods if m in BASELINES]:
        try:
            if method == "text_seq_query":
                scorers[method] = _text_seq_query_scorer(directory / method, inputs["prompt_inputs"], lancedb)
            else:
                scorer = load_baseline(directory / method)
                scorers[method] = sequence_scorer(
                    scorer, inputs["user_sequences"], inputs["splits"], config.split, method
                )
        except FileNotFoundError as error:
            raise dg.Failure(
                f"{error}. Train it with `fashionrec run 'key:{baseline_key(method)}'` (or every baseline: "
                "`fashionrec run 'group:baselines'`), or leave it out of methods"
            ) from error
    return scorers


def _baseline_run_scorers(
    config: EvaluationRunConfig,
    inputs: dict[str, pd.DataFrame],
    lancedb: LanceDBResource,
    layout: ArtifactLayout,
) -> dict[str, ScoreBatch]:
    """Scoring functions of the ``baseline_runs``: models trained under a run name (e.g. on a share of
    the training users), each scored under its own method name next to the default ones."""
    from training.baselines import load_baseline
    from training.core import CoreScorer

    directory = Path(config.baselines_dir) if config.baselines_dir else layout.baselines
    scorers: dict[str, ScoreBatch] = {}
    for name in config.baseline_runs:
        method, run_name = parse_run_method(name)
        path = directory / name
        if not (path / CONFIG_FILE).is_file():
            raise dg.Failure(
                f"baseline run {name!r} is not trained ({path} holds no model); train it with "
                f"{train_step_hint(method, run_name)}, or leave it out of baseline_runs"
            )
        if method == "text_seq_query":
            scorers[name] = _text_seq_query_scorer(path, inputs["prompt_inputs"], lancedb)
        else:
            scorer = CoreScorer.load(path) if method == "core" else load_baseline(path)
            scorers[name] = sequence_scorer(
                scorer, inputs["user_sequences"], inputs["splits"], config.split, name
            )
    return scorers


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            "recommendations",
            group_name=EVALUATION_GROUP,
            deps=[
                "generations",
                "splits",
                "items",
                "user_sequences",
                "prompt_inputs",
                ITEM_ID_VECTORS,
                ITEM_TITLE_VECTORS,
                *(baseline_key(name) for name in BASELINES),
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
    """Score llm_mixup, llm_only, core, popularity and the baselines on the test targets and append the
    results."""
    unknown = sorted(set(config.methods) - set(DEFAULT_METHODS))
    if unknown:
        raise dg.Failure(f"unknown method(s) {unknown}; choose from {list(DEFAULT_METHODS)}")
    try:
        check_retrieval_options(config.retrieval_ablations, config.method_suffix)
    except ValueError as error:
        raise dg.Failure(str(error)) from error
    if config.split not in ("test", "valid"):
        raise dg.Failure(f"split {config.split!r} cannot be evaluated; use 'test' or 'valid'")
    try:
        for name in config.baseline_runs:
            parse_run_method(name)
    except ValueError as error:
        raise dg.Failure(str(error)) from error
    with duckdb.get_connection() as con:
        inputs = _read_inputs(con, config)
    if "generations" in inputs:
        try:
            inputs["generations"] = select_adapters(inputs["generations"], config.adapters)
        except ValueError as error:
            raise dg.Failure(f"{config.split} split: {error}") from error
    splits = inputs["splits"]
    targets = splits[splits["split"] == config.split].reset_index(drop=True)
    if set(config.methods) & set(LLM_METHODS):
        if inputs["generations"].empty:
            raise dg.Failure(
                f"generations has no {config.split!r} rows; materialize generations with "
                f"{config.split!r} in its splits, or leave llm_mixup and llm_only out of methods"
            )
        if not config.all_targets:
            answered = generated_target_ids(inputs["generations"], config.prefer_constrained)
            targets = targets[targets["target_id"].isin(answered)].reset_index(drop=True)
    context.log.info(f"evaluating {len(targets)} {config.split} targets with {', '.join(config.methods)}")
    catalog = catalog_by_category(inputs["items"])
    counts = popularity_counts(splits[splits["split"] == "train"])
    expected = popular_top_k(counts, catalog, config.k)

    list_methods, list_seconds = {}, {}
    if set(config.methods) & set(LLM_METHODS):
        db = lancedb.connect()
        title_vectors, title_encoder = _title_retrieval(config, db, settings.artifacts)
        list_methods, list_seconds = llm_list_methods(
            inputs["generations"],
            catalog,
            VectorCatalog.from_table(db.open_table(ITEM_ID_VECTORS)),
            title_vectors,
            title_encoder.encode,
            MixupConfig(k=config.k, n=config.n),
            tuple(config.methods),
            config.prefer_constrained,
            config.retrieval_ablations,
            config.method_suffix,
        )
    score_methods = {}
    if "core" in config.methods:
        from training.core import CoreScorer

        scorer = CoreScorer.load(Path(config.core_dir) if config.core_dir else settings.artifacts.core)
        score_methods["core"] = sequence_scorer(scorer, inputs["user_sequences"], splits, config.split)
    if "popularity" in config.methods:
        score_methods["popularity"] = popularity_scorer(counts)
    score_methods.update(_baseline_scorers(config, inputs, lancedb, settings.artifacts))
    score_methods.update(_baseline_run_scorers(config, inputs, lancedb, settings.artifacts))

    result = evaluate_methods(
        targets, catalog, expected, list_methods, score_methods, EvaluationConfig(k=config.k), list_seconds
    )
    run = EvaluationRun(
        run_id=context.run_id,
        created_at=pd.Timestamp.now(tz="UTC").tz_localize(None),
        label=config.label,
        preset=settings.preset,
        split=config.split,
        config=json.dumps(config.model_dump(), sort_keys=True),
    )
    with duckdb.get_connection() as con:
        written = write_evaluation_run(
            con,
            run.run_id,
            run.created_at,
            run.split,
            result,
            targets,
            label=run.label,
            preset=run.preset,
            config_json=run.config,
        )
    report, plots = write_report(run, result.metrics, settings.reports.evaluation(run.run_id), config.k)
    context.log.info("\n" + format_leaderboard(result.metrics, ["all"], title=run.title()))

    speed = {m: round(v, 1) for m, v in result.users_per_second().items()}
    common = {"run_id": run.run_id, "split": run.split, "targets": len(targets)}
    yield dg.MaterializeResult(
        asset_key="recommendations",
        metadata={
            **common,
            "dagster/row_count": written["recommendations"],
            "methods": sorted(result.lists["method"].unique().tolist()),
            "rows_per_source": dg.MetadataValue.json(
                result.lists.groupby(["method", "source"])
                .size()
                .rename("rows")
                .reset_index()
                .to_dict("records")
            ),
        },
    )
    ranked = result.ranks.assign(ranked=result.ranks["rank"].notna()).groupby("method")["ranked"].mean()
    yield dg.MaterializeResult(
        asset_key="eval_ranks",
        metadata={
            **common,
            "dagster/row_count": written["eval_ranks"],
            "ranked_share": dg.MetadataValue.json({m: round(float(v), 4) for m, v in ranked.items()}),
            "users_per_second": dg.MetadataValue.json(speed),
        },
    )
    yield dg.MaterializeResult(
        asset_key="eval_metrics",
        metadata={
            **common,
            "dagster/row_count": written["eval_metrics"],
            "leaderboard": dg.MetadataValue.md(format_leaderboard(result.metrics, markdown=True)),
            "cold_start": dg.MetadataValue.md(
                format_leaderboard(result.metrics, ["all"], "cold_start", markdown=True)
            ),
            "leaderboard_plot": dg.MetadataValue.md(png_markdown(plots["leaderboard"], "leaderboard")),
            "cold_start_plot": dg.MetadataValue.md(png_markdown(plots["cold_start"], "cold start")),
            "leaderboard_plot_path": dg.MetadataValue.path(str(plots["leaderboard"])),
            "cold_start_plot_path": dg.MetadataValue.path(str(plots["cold_start"])),
            "report": dg.MetadataValue.path(str(report)),
        },
    )


evaluation_assets = [evaluation]
