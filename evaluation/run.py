"""One evaluation run (docs/evaluation.md "The protocol"): which targets it scores, every method's lists
or scores on them, and the record it appends to the evaluation tables.

The ``evaluation`` asset reads the inputs (``evaluation.inputs``), calls :func:`evaluate_run` and
:func:`save_run`, and writes the report (``evaluation.leaderboard``); the pieces are
``evaluation.llm_methods`` (the LLM's lists, retrieved as the service retrieves them),
``evaluation.controls`` (the LLM's controls) and ``evaluation.diagnostics`` (how its picks compare with
theirs), ``evaluation.scorers`` (the trained models) and ``evaluation.protocol`` (ranks and metrics).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

import duckdb
import pandas as pd

from evaluation.controls import answered_targets, candidate_lists, control_generations, control_list_methods
from evaluation.diagnostics import llm_diagnostics, llm_picks
from evaluation.inputs import EvaluationInputs
from evaluation.leaderboard import EvaluationRun
from evaluation.llm_methods import generated_target_ids, llm_list_methods
from evaluation.methods import CONTROL_METHODS, LLM_METHODS
from evaluation.protocol import EvaluationResult, evaluate_methods, popular_top_k
from evaluation.scorers import score_methods, title_retrieval
from evaluation.settings import EvaluationSettings
from evaluation.tables import write_evaluation_run
from fashionrec.layout import ITEM_ID_VECTORS, ArtifactLayout
from recommender.mixup import MixupConfig
from recommender.ranking import RankingConfig, catalog_by_category, popularity_counts
from recommender.retrieval import VectorCatalog

if TYPE_CHECKING:
    import lancedb


def evaluation_targets(settings: EvaluationSettings, inputs: EvaluationInputs) -> pd.DataFrame:
    """The ``splits`` rows of the run's split; with LLM methods, by default only those the LLM answered
    (it answers a sample at small presets, and an unanswered target would count against it alone)."""
    splits = inputs.splits
    targets = splits[splits["split"] == settings.split].reset_index(drop=True)
    if not settings.uses_llm:
        return targets
    if inputs.generations.empty:
        raise ValueError(
            f"generations has no {settings.split!r} rows; materialize generations with "
            f"{settings.split!r} in its splits, or leave llm_mixup, llm_only and the controls "
            f"({', '.join(CONTROL_METHODS)}) out of methods"
        )
    if settings.all_targets:
        return targets
    answered = generated_target_ids(inputs.generations, settings.preferred_decoding)
    return targets[targets["target_id"].isin(answered)].reset_index(drop=True)


def evaluate_run(
    settings: EvaluationSettings,
    inputs: EvaluationInputs,
    layout: ArtifactLayout,
    db: lancedb.DBConnection,
    log: Callable[[str], None] = print,
) -> tuple[pd.DataFrame, EvaluationResult]:
    """The run's targets, and every method ranked on them with the metrics aggregated.

    Serendipity's expected items and the ``popularity`` method come from the same train purchases. The
    LLM methods retrieve from ``item_id_vectors`` and the run's title vectors (LanceDB ``db``); the
    scoring methods load from ``layout``.
    """
    targets = evaluation_targets(settings, inputs)
    log(f"evaluating {len(targets)} {settings.split} targets with {', '.join(settings.methods)}")
    catalog = catalog_by_category(inputs.items)
    counts = popularity_counts(inputs.splits[inputs.splits["split"] == "train"])
    list_methods, list_seconds, diagnostics = {}, {}, None
    if settings.uses_llm:
        title_vectors, title_encoder = title_retrieval(settings, layout, db)
        id_vectors = VectorCatalog.from_table(db.open_table(ITEM_ID_VECTORS))
        # a ranking's lead (recommender.mixup) is its default, or the whole list when that is shorter
        mixup = MixupConfig(k=settings.k, n=settings.n, lead=min(MixupConfig.lead, settings.k))
        list_methods, list_seconds = llm_list_methods(
            inputs.generations,
            catalog,
            id_vectors,
            title_vectors,
            title_encoder.encode,
            mixup,
            tuple(settings.methods),
            settings.preferred_decoding,
            settings.retrieval_ablations,
            settings.method_suffix,
        )
        if inputs.candidates is None or inputs.candidates.empty:
            log(f"no full {settings.split} prompts in the warehouse: no controls, no LLM diagnostics")
        else:
            controls, control_seconds, diagnostics = controls_and_diagnostics(
                settings, inputs, targets, (id_vectors, title_vectors, title_encoder.encode), mixup
            )
            list_methods, list_seconds = {**list_methods, **controls}, {**list_seconds, **control_seconds}
    result = evaluate_methods(
        targets,
        catalog,
        popular_top_k(counts, catalog, settings.k),
        list_methods,
        score_methods(settings, layout, db, inputs, counts),
        RankingConfig(k=settings.k),
        list_seconds,
    )
    return targets, replace(result, diagnostics=diagnostics)


def controls_and_diagnostics(
    settings: EvaluationSettings,
    inputs: EvaluationInputs,
    targets: pd.DataFrame,
    retrieval: tuple[VectorCatalog, VectorCatalog, Callable],
    mixup: MixupConfig,
) -> tuple[dict[str, pd.DataFrame], dict[str, float], pd.DataFrame]:
    """The controls' lists and their seconds (``evaluation.controls``) on the targets the headline LLM
    group answered, and the run's ``eval_llm_diagnostics`` rows on those of them that the run scores.

    ``retrieval`` is what ``llm_mixup`` retrieves with: the ID vectors, the title vectors and the title
    encoder's ``encode``.
    """
    answered = answered_targets(inputs.generations, settings.preferred_decoding)
    candidates = candidate_lists(inputs.candidates)
    methods = [name for name in CONTROL_METHODS if name in settings.methods]
    controls = control_generations(answered, candidates, inputs.item_titles, settings.control_seed, methods)
    lists, seconds = control_list_methods(controls, *retrieval, mixup, settings.method_suffix)
    picks = {}
    if set(settings.methods) & set(LLM_METHODS):
        picks = llm_picks(inputs.generations, settings.preferred_decoding, settings.method_suffix)
    for name, frame in controls.items():
        picks[f"{name}{settings.method_suffix}"] = frame.set_index("target_id")["item_id"]
    scored = targets[targets["target_id"].isin(answered["target_id"])]
    return lists, seconds, llm_diagnostics(scored, candidates, picks)


def run_record(run_id: str, settings: EvaluationSettings, preset: str) -> EvaluationRun:
    """The ``eval_runs`` row of a run that ends now (UTC)."""
    return EvaluationRun(
        run_id=run_id,
        created_at=pd.Timestamp.now(tz="UTC").tz_localize(None),
        label=settings.label,
        preset=preset,
        split=settings.split,
        config=settings.to_json(),
    )


def save_run(
    con: duckdb.DuckDBPyConnection, run: EvaluationRun, targets: pd.DataFrame, result: EvaluationResult
) -> dict[str, int]:
    """Append the run to the evaluation tables (``evaluation.tables``); the rows written per table."""
    return write_evaluation_run(
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
