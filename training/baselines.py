"""The sequential baselines of the evaluation (docs/evaluation.md, "The methods"), trained like CORE.

Method names are those of docs/evaluation.md: ``gru4rec``, ``sasrec``, ``bert4rec``, ``nextitnet`` (ID
models with RecBole's default hyperparameters), ``llm2sasrec`` and ``llm2bert4rec`` (SASRec and BERT4Rec with
a text-initialised item table)
and ``llmseqsim`` (text-embedding similarity, nothing trained) are sequence models scored through
``training.sequential``; ``text_seq_query`` (``training.text_seq_query``) scores encoded user texts.

Every ID model trains on exactly CORE's examples: the train portion of ``user_sequences`` with every item
event as a target (RecBole's prefix augmentation), windows of the latest 50 items, the vocabulary of
``training.sequence_data.build_vocabulary`` (so ``splits.is_cold_item`` means the same for all of them),
and validation on the valid-split purchases ranked within their category. For the low-resource setting
(paper §5.4) they train on a share of the users' train targets, validated on the same valid targets.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
import torch

from fashionrec.presets import SequenceBudget
from recommender.retrieval import VectorCatalog

# the method names, re-exported: they live in a module without torch for the Dagster code location
from training.baseline_names import BASELINES as BASELINES
from training.baseline_names import ID_BASELINES as ID_BASELINES
from training.baseline_names import SEQUENCE_BASELINES as SEQUENCE_BASELINES
from training.baseline_names import TEXT_BASELINES as TEXT_BASELINES
from training.baseline_names import TEXT_ID_BASELINES as TEXT_ID_BASELINES
from training.baseline_names import TEXT_INITIALISED as TEXT_INITIALISED
from training.bert4rec import Bert4RecConfig, Bert4RecModel
from training.distributed import position
from training.gru4rec import Gru4RecConfig, Gru4RecModel
from training.llm2sasrec import Llm2Bert4RecModel, Llm2SasRecModel, text_initialised_model
from training.llmseqsim import LlmSeqSimConfig, LlmSeqSimModel, fit_llmseqsim, title_vocabulary
from training.nextitnet import NextItNetConfig, NextItNetModel
from training.sasrec import SasRecConfig, SasRecModel
from training.sequence_data import (
    CategoryCatalog,
    ItemVocabulary,
    SequenceExamples,
    build_examples,
    item_vocabulary,
)
from training.sequential import (
    ModelBuilder,
    SequenceScorer,
    SequentialConfig,
    SequentialRecommender,
    TrainResult,
    WindowConfig,
    load_sequential,
    save_sequential,
    train_sequential,
)
from training.user_share import EVERY_USER, UserShare

# method name -> (hyperparameter dataclass, model class)
MODEL_TYPES: dict[str, tuple[type[WindowConfig], type[SequentialRecommender]]] = {
    "gru4rec": (Gru4RecConfig, Gru4RecModel),
    "sasrec": (SasRecConfig, SasRecModel),
    "bert4rec": (Bert4RecConfig, Bert4RecModel),
    "nextitnet": (NextItNetConfig, NextItNetModel),
    "llm2sasrec": (SasRecConfig, Llm2SasRecModel),
    "llm2bert4rec": (Bert4RecConfig, Llm2Bert4RecModel),
    "llmseqsim": (LlmSeqSimConfig, LlmSeqSimModel),
}


def _builder(config_class: type[WindowConfig], model_class: type[SequentialRecommender]) -> ModelBuilder:
    def build(n_items: int, config: dict[str, Any]) -> SequentialRecommender:
        return model_class(n_items, config_class(**config))  # type: ignore[call-arg]

    return build


# checkpoint model name (config.json "model") -> constructor, for load_baseline
BUILDERS: dict[str, ModelBuilder] = {
    model_class.model_name: _builder(config_class, model_class)
    for config_class, model_class in MODEL_TYPES.values()
}


def baseline_config(name: str, settings: Mapping[str, Any] | None = None) -> WindowConfig:
    """The method's hyperparameters: the published defaults with ``settings`` overriding some fields
    (fields the model does not have are ignored, so one preset dict serves every model)."""
    if name not in MODEL_TYPES:
        raise KeyError(f"unknown sequence baseline {name!r}; choose from {list(MODEL_TYPES)}")
    config_class = MODEL_TYPES[name][0]
    known = {f.name for f in fields(config_class)}
    return config_class(**{k: v for k, v in (settings or {}).items() if k in known})


def item_table_of(name: str, settings: Mapping[str, Any] | None = None) -> str | None:
    """The item table ``name`` trains with: ``settings``' ``item_table``, else the model's own default (its
    config's); None for ``llmseqsim``, which ranks title vectors and has no table of its own."""
    return getattr(baseline_config(name, settings), "item_table", None)


def baseline_settings(
    budget: SequenceBudget,
    epochs: int | None = None,
    stopping_step: int | None = None,
    train_batch_size: int | None = None,
    item_table: str | None = None,
) -> dict[str, Any]:
    """The ``settings`` of :func:`train_baseline` for a preset's budget, each given override in place of
    the budget's value (a run's config, or a benchmark's flags); ``item_table`` replaces every model's own
    (unset: each keeps its config's)."""
    overrides = {
        "epochs": epochs,
        "stopping_step": stopping_step,
        "train_batch_size": train_batch_size,
        "item_table": item_table,
    }
    return {
        "epochs": budget.epochs,
        "stopping_step": budget.stopping_step,
        "train_batch_size": budget.train_batch_size,
        "bucket_by_length": budget.bucket_by_length,
        **{name: value for name, value in overrides.items() if value is not None},
    }


@dataclass(frozen=True)
class SequenceData:
    """The marts as the ID models train on them: CORE's vocabulary, examples and category catalog."""

    sequences: pd.DataFrame  # user_sequences rows with an item: user_id, seq_no, event_id, item_id
    splits: pd.DataFrame  # target_id, user_id, target_item_id, category, seq_no, split
    items: pd.DataFrame  # item_id, category
    vocabulary: ItemVocabulary
    train: SequenceExamples
    valid: SequenceExamples
    catalog: CategoryCatalog
    item_table: str  # whose rows vocabulary holds (training.sequence_data.item_vocabulary)

    @classmethod
    def from_marts(
        cls,
        sequences: pd.DataFrame,
        splits: pd.DataFrame,
        items: pd.DataFrame,
        max_len: int = 50,
        train_targets: str = "all_items",
        share: UserShare = EVERY_USER,
        item_table: str = SequentialConfig.item_table,
    ) -> SequenceData:
        """A ``share`` of the users keeps their train targets only (and so the vocabulary and train
        examples, ``training.user_share``); the valid targets that stop the training early are every
        user's.

        ``item_table`` (``training.sequence_data.item_vocabulary``): ``"catalog"`` gives every item of
        ``items`` its own row, as RecBole's item table does, so never-trained items are softmax negatives
        with rows of their own and an item a history holds keeps its identity; ``"trained"`` gives a row
        to each item seen in training and one shared cold row to all others."""
        splits = share.of_splits(splits)
        vocabulary = item_vocabulary(item_table, sequences, splits, items)
        train = build_examples(
            sequences,
            splits,
            vocabulary,
            split="train",
            max_len=max_len,
            targets=train_targets,  # type: ignore[arg-type]
            item_categories=items.set_index("item_id")["category"],
        )
        valid = build_examples(sequences, splits, vocabulary, split="valid", max_len=max_len)
        catalog = CategoryCatalog.from_items(items, vocabulary)
        return cls(sequences, splits, items, vocabulary, train, valid, catalog, item_table)


def _require_titles(name: str, title_vectors: VectorCatalog | None) -> VectorCatalog:
    if title_vectors is None:
        raise ValueError(f"{name} needs the item_title_vectors table; materialize item_title_vectors first")
    return title_vectors


def _fit_llmseqsim(
    data: SequenceData, config: LlmSeqSimConfig, title_vectors: VectorCatalog, log: Callable[[str], Any]
) -> tuple[TrainResult, dict[str, Any]]:
    """LLMSeqSim over every item with a title vector: its own vocabulary, windows and catalog."""
    ids = np.concatenate([matrix.item_ids for matrix in title_vectors.categories.values()])
    vocabulary = title_vocabulary(ids.tolist())
    vectors, _ = title_vectors.vectors_of(vocabulary.item_ids.tolist())
    valid = build_examples(
        data.sequences, data.splits, vocabulary, split="valid", max_len=config.max_seq_length
    )
    catalog = CategoryCatalog.from_items(data.items, vocabulary)
    result = fit_llmseqsim(valid, vocabulary, catalog, vectors, config, log=log)
    return result, {"aggregation": cast(LlmSeqSimConfig, result.model.config).aggregation}


def train_baseline(
    name: str,
    data: SequenceData,
    settings: Mapping[str, Any] | None = None,
    title_vectors: VectorCatalog | None = None,
    device: torch.device | str | None = None,
    log: Callable[[str], Any] = print,
) -> tuple[TrainResult, dict[str, Any]]:
    """Train (or, for ``llmseqsim``, fit) one sequence baseline; returns the result and extra facts for
    its checkpoint record (e.g. how LLM2SASRec's table was initialised).

    ``settings`` override the defaults per preset (``epochs``, ``stopping_step``, ``train_batch_size``...);
    ``title_vectors`` (the ``item_title_vectors`` table) is required by ``llm2sasrec``, ``llm2bert4rec`` and
    ``llmseqsim``.
    """
    config = baseline_config(name, settings)
    table = getattr(config, "item_table", data.item_table)
    if table != data.item_table:
        raise ValueError(
            f"{name} trains with the {table!r} item table but the examples were built for "
            f"{data.item_table!r}; build them with SequenceData.from_marts(..., item_table={table!r})"
        )
    if name == "llmseqsim":
        return _fit_llmseqsim(data, cast(LlmSeqSimConfig, config), _require_titles(name, title_vectors), log)
    train_config = cast(SequentialConfig, config)
    extra: dict[str, Any] = {}
    if name in TEXT_INITIALISED:
        vectors, found = _require_titles(name, title_vectors).vectors_of(data.vocabulary.item_ids.tolist())

        def build() -> SequentialRecommender:
            model, init = text_initialised_model(
                MODEL_TYPES[name][1], data.vocabulary, vectors, found, config
            )
            extra["text_initialisation"] = {
                "source": "item_title_vectors, PCA",
                "items_with_text": init.items_with_text,
                "components": init.components,
                "explained_variance": round(init.explained_variance, 4),
            }
            return model

    else:
        model_class = MODEL_TYPES[name][1]

        def build() -> SequentialRecommender:
            return model_class(len(data.vocabulary), config)  # type: ignore[call-arg]

    result = train_sequential(
        build, train_config, data.train, data.valid, data.vocabulary, data.catalog, device, log
    )
    return result, extra


def train_and_save_baseline(
    name: str,
    data: SequenceData,
    settings: Mapping[str, Any],
    title_vectors: VectorCatalog | None,
    directory: Path,
    record: Mapping[str, Any],
    log: Callable[[str], Any] = print,
) -> dict[str, Any]:
    """Train (or fit) one sequence baseline with :func:`train_baseline` and save it under ``directory``.

    ``record`` (the method name and ``UserShare.record``: which training users it learnt from) is saved
    in the checkpoint's JSON record with the training's own facts. Returns what a run shows of it: the
    folder, the record, sizes, timings, valid metrics and the per-epoch history.
    """
    start = time.perf_counter()
    result, extra = train_baseline(name, data, settings, title_vectors, log=log)
    train_seconds = time.perf_counter() - start
    rank, processes = position()  # under torchrun every process trains, rank 0 saves
    if rank == 0:
        save_sequential(result, directory, {**record, **extra, "processes": processes})
    trained = result.best_epoch > 0  # llmseqsim is fitted on valid, not trained
    return {
        "path": directory,
        **record,
        "model": result.model.model_name,
        "vocabulary_items": len(result.vocabulary.item_ids),
        "train_examples": len(data.train) if trained else 0,
        "valid_targets": len(data.valid),
        "epochs_run": len(result.history) if trained else 0,
        "best_epoch": result.best_epoch,
        "seconds_per_epoch": round(result.seconds_per_epoch, 3),
        "train_seconds": round(train_seconds, 2),
        "processes": processes,
        **{f"valid_{k}": round(v, 4) for k, v in result.best_valid.items()},
        **extra,
        "history": result.history,
    }


def load_baseline(directory: Path, device: torch.device | str | None = None) -> SequenceScorer:
    """A saved sequence baseline (any of :data:`SEQUENCE_BASELINES`) ready to score histories."""
    model, vocabulary, _ = load_sequential(directory, BUILDERS, device)
    return SequenceScorer(model, vocabulary)
