"""One evaluation run (docs/evaluation.md "The protocol"): which targets it scores, every method's lists
or scores on them, and the record it appends to the evaluation tables.

The ``evaluation`` asset reads the inputs (``evaluation.inputs``), calls :func:`evaluate_run` and
:func:`save_run`, and writes the report (``evaluation.leaderboard``); the pieces are
``evaluation.llm_methods`` (the LLM's lists, retrieved as the service retrieves them),
``evaluation.scorers`` (the trained models) and ``evaluation.protocol`` (ranks and metrics).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import duckdb
import pandas as pd

from evaluation.inputs import EvaluationInputs
from evaluation.leaderboard import EvaluationRun
from evaluation.llm_methods import generated_target_ids, llm_list_methods
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
            f"{settings.split!r} in its splits, or leave llm_mixup and llm_only out of methods"
        )
    if settings.all_targets:
        return targets
    answered = generated_target_ids(inputs.generations, settings.prefer_constrained)
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
    list_methods, list_seconds = {}, {}
    if settings.uses_llm:
        title_vectors, title_encoder = title_retrieval(settings, layout, db)
        list_methods, list_seconds = llm_list_methods(
            inputs.generations,
            catalog,
            VectorCatalog.from_table(db.open_table(ITEM_ID_VECTORS)),
            title_vectors,
            title_encoder.encode,
            MixupConfig(k=settings.k, n=settings.n),
            tuple(settings.methods),
            settings.prefer_constrained,
            settings.retrieval_ablations,
            settings.method_suffix,
        )
    result = evaluate_methods(
        targets,
        catalog,
        popular_top_k(counts, catalog, settings.k),
        list_methods,
        score_methods(settings, layout, db, inputs, counts),
        RankingConfig(k=settings.k),
        list_seconds,
    )
    return targets, result


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
