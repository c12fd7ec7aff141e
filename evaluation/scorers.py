"""The scoring functions of an evaluation run, built from what the training assets saved, and the title
retrieval of its LLM methods.

- ``core`` (``artifacts/core``, written by ``item_id_vectors``) and the sequence baselines
  (``artifacts/baselines/<method>``) score each target's item events before it (:func:`sequence_scorer`);
- ``text_seq_query`` scores with the encoder and the title vectors it was fitted with, and refuses to
  run when either changed since (:func:`text_seq_query_scorer`);
- a baseline run ``<method>-<run_name>`` is the same model trained on a share of the users, in
  ``artifacts/baselines/<method>-<run_name>``;
- ``popularity`` is counted from the train targets (``evaluation.protocol.popularity_scorer``);
- ``illmrec`` and its ablations ``illmrec-<variant>`` (``artifacts/illmrec/<variant>``) score each
  target's latest item events with the frozen base LM and the trained heads (``training.illmrec_fit``).

A model that was never trained is a FileNotFoundError that names the step training it; a saved model
that no longer matches what it was fitted with is a ValueError. The models (torch) are
imported when a scorer is built: the Dagster code location imports this module when it loads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from evaluation.protocol import popularity_scorer
from evaluation.settings import EvaluationSettings
from fashionrec.layout import CONFIG_FILE, ITEM_IMAGE_VECTORS, ITEM_TITLE_VECTORS, ArtifactLayout
from recommender.encoder_specs import build_encoder
from recommender.encoders import TextEncoder
from recommender.ranking import ScoreBatch
from recommender.retrieval import VectorCatalog
from recommender.vector_store import table_exists
from training.baseline_names import BASELINES, baseline_key, parse_run_method, train_step_hint
from training.illmrec_names import VARIANT_OF
from training.sequence_data import build_examples
from training.text_seq_query import TextSeqQueryConfig, text_scorer, user_texts

if TYPE_CHECKING:
    import lancedb

    from evaluation.inputs import EvaluationInputs
    from training.sequential import SequenceScorer


def score_methods(
    settings: EvaluationSettings,
    layout: ArtifactLayout,
    db: lancedb.DBConnection,
    inputs: EvaluationInputs,
    train_purchases: pd.Series,
) -> dict[str, ScoreBatch]:
    """Every scoring method of the run, in the order its rows are written: ``core``, ``popularity``
    (from ``train_purchases``, ``recommender.ranking.popularity_counts``), the baselines, the baseline
    runs."""
    scorers: dict[str, ScoreBatch] = {}
    if "core" in settings.methods:
        core = Path(settings.core_dir) if settings.core_dir else layout.core
        scorers["core"] = saved_scorer("core", core, "core", db, inputs, settings.split)
    if "popularity" in settings.methods:
        scorers["popularity"] = popularity_scorer(train_purchases)
    baselines = Path(settings.baselines_dir) if settings.baselines_dir else layout.baselines
    for method in [m for m in settings.methods if m in BASELINES]:
        try:
            scorers[method] = saved_scorer(method, baselines / method, method, db, inputs, settings.split)
        except FileNotFoundError as error:
            raise FileNotFoundError(
                f"{error}. Train it with `fashionrec run 'key:{baseline_key(method)}'` (or every baseline: "
                "`fashionrec run 'group:baselines'`), or leave it out of methods"
            ) from error
    scorers.update(illmrec_scorers(settings, layout, db, inputs))
    for name in settings.baseline_runs:
        method, run_name = parse_run_method(name)
        path = baselines / name
        if not (path / CONFIG_FILE).is_file():
            raise FileNotFoundError(
                f"baseline run {name!r} is not trained ({path} holds no model); train it with "
                f"{train_step_hint(method, run_name)}, or leave it out of baseline_runs"
            )
        scorers[name] = saved_scorer(method, path, name, db, inputs, settings.split)
    return scorers


def illmrec_scorers(
    settings: EvaluationSettings, layout: ArtifactLayout, db: lancedb.DBConnection, inputs: EvaluationInputs
) -> dict[str, ScoreBatch]:
    """The run's I-LLMRec methods (``illmrec``, ``illmrec-<variant>``), each from its saved model. Logs
    without item images train none (the ``illmrec`` asset says so): the methods are then left out; a
    missing model with images present is a FileNotFoundError naming the step."""
    chosen = [name for name in settings.methods if name in VARIANT_OF]
    if not chosen or not table_exists(db, ITEM_IMAGE_VECTORS):
        return {}
    from training.illmrec_fit import load_ranker, ranker_scorer
    from training.illmrec_training import split_histories

    scorers: dict[str, ScoreBatch] = {}
    for name in chosen:
        variant = VARIANT_OF[name]
        try:
            ranker = load_ranker(layout.illmrec(variant), db, inputs.item_texts)
        except FileNotFoundError as error:
            raise FileNotFoundError(
                f"{error}{'' if variant == 'full' else f' with config {{variants: [{variant}]}}'}, or leave "
                f"{name} out of methods"
            ) from error
        histories = split_histories(
            inputs.user_sequences,
            inputs.splits,
            ranker.features.item_ids,
            settings.split,
            ranker.heads.config.max_history,
        )
        scorers[name] = ranker_scorer(ranker, histories, name)
    return scorers


def saved_scorer(
    method: str, directory: Path, name: str, db: lancedb.DBConnection, inputs: EvaluationInputs, split: str
) -> ScoreBatch:
    """The scoring function of ``method``'s model saved in ``directory``, scored as method ``name``."""
    if method == "text_seq_query":
        return text_seq_query_scorer(directory, inputs.prompt_inputs, db)
    from training.baselines import load_baseline
    from training.core import CoreScorer

    scorer = CoreScorer.load(directory) if method == "core" else load_baseline(directory)
    return sequence_scorer(scorer, inputs.user_sequences, inputs.splits, split, name)


def sequence_scorer(
    scorer: SequenceScorer,
    user_sequences: pd.DataFrame,
    splits: pd.DataFrame,
    split: str,
    method: str = "core",
) -> ScoreBatch:
    """A sequence model (``core`` and the sequence baselines) scoring every item of the category.

    ``scorer`` is a trained ``training.sequential.SequenceScorer`` (``CoreScorer``, or a baseline from
    ``training.baselines.load_baseline``). Each target's input is its user's item events before it
    (``training.sequence_data.build_examples``, the windows the model was validated on); with the trained
    item table, items outside the model's vocabulary share the cold vector and tie.
    """
    from training.sequential import score_indices

    examples = build_examples(
        user_sequences, splits, scorer.vocabulary, split=split, max_len=scorer.model.config.max_seq_length
    )
    row_of = pd.Series(np.arange(len(examples)), index=pd.Index(examples.target_ids, dtype=object))
    candidates: dict[str, np.ndarray] = {}

    def score_batch(chunk: pd.DataFrame, item_ids: np.ndarray) -> np.ndarray:
        rows = row_of.reindex(chunk["target_id"].astype(object)).to_numpy()
        if np.isnan(rows.astype(np.float64)).any():
            raise KeyError(
                f"{method}: targets {chunk['target_id'].tolist()[:3]} are not {split!r} rows of splits"
            )
        category = chunk["category"].iloc[0]  # rank_by_scores batches one category at a time
        if category not in candidates:  # one vocabulary lookup per category, not per batch
            candidates[category] = scorer.vocabulary.index_of(item_ids)
        return score_indices(scorer.model, examples.inputs[rows.astype(np.int64)], candidates[category])

    return score_batch


def text_seq_query_scorer(
    directory: Path, prompt_inputs: pd.DataFrame, db: lancedb.DBConnection
) -> ScoreBatch:
    """text_seq_query as saved in ``directory``, with the encoder and title vectors it was fitted with."""
    saved = TextSeqQueryConfig.load(directory)
    encoder = build_encoder(saved.encoder_spec, show_progress=False)
    if encoder.fingerprint != saved.encoder_fingerprint:
        raise ValueError(
            f"{directory.name} was fitted with another encoder than {saved.encoder_spec} is now; "
            f"re-materialize {baseline_key('text_seq_query')}"
        )
    # a ValueError like the encoder's: the model is there, what it was fitted with is not
    if not table_exists(db, saved.title_vectors_table):
        raise ValueError(
            f"{directory.name} was fitted with title vectors {saved.title_vectors_table!r}, which are gone; "
            f"re-materialize item_title_vectors (table: {saved.title_vectors_table})"
        )
    titles = VectorCatalog.from_table(db.open_table(saved.title_vectors_table))
    return text_scorer(user_texts(prompt_inputs, saved.max_titles), encoder, titles)


def title_retrieval(
    settings: EvaluationSettings, layout: ArtifactLayout, db: lancedb.DBConnection
) -> tuple[VectorCatalog, TextEncoder]:
    """Mixup's title vectors and the encoder of generated titles. Another table than the default must
    come with the encoder that wrote it and a method suffix: vectors of two models never meet, and rows
    retrieved differently must not be taken for the default ones."""
    from training.title_encoder import load_title_encoder_spec

    table = settings.title_vectors_table or ITEM_TITLE_VECTORS
    if table != ITEM_TITLE_VECTORS:
        manifest = layout.title_vectors_manifest(table)
        if not (settings.title_encoder and settings.method_suffix):
            raise ValueError(
                f"title_vectors_table {table!r} needs the title_encoder that wrote it and a method_suffix "
                "that names the retrieval (e.g. '-clip_text_embedding')"
            )
        if not (manifest.is_file() and table_exists(db, table)):
            raise FileNotFoundError(
                f"no title vector table {table!r}; materialize item_title_vectors with config "
                f"{{encoder: {settings.title_encoder!r}, table: {table!r}}} first"
            )
    spec = settings.title_encoder or load_title_encoder_spec(layout.title_encoder())
    encoder = build_encoder(spec, show_progress=False)
    if table != ITEM_TITLE_VECTORS:
        written_by = json.loads(manifest.read_text())
        if written_by.get("encoder_fingerprint") != encoder.fingerprint:
            raise ValueError(
                f"{table!r} was written by {written_by.get('encoder_spec')!r}, whose weights differ from "
                f"title_encoder {settings.title_encoder!r}; use the same encoder for both"
            )
    return VectorCatalog.from_table(db.open_table(table)), encoder
