"""Checkpoints of the sequence recommenders: weights as safetensors, hyperparameters and the training
record as JSON, the vocabulary as a JSON list (``fashionrec.layout`` names the files).

A checkpoint names its model class (``config.json`` ``"model"``), so a loader maps that name to a
constructor (:data:`ModelBuilder`) and rebuilds the model before loading its weights.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from fashionrec.layout import CONFIG_FILE, VOCABULARY_FILE, WEIGHTS_FILE
from training.sequence_data import ItemVocabulary
from training.sequence_model import SequentialRecommender, TrainResult, default_device


def save_sequential(result: TrainResult, directory: Path, extra: Mapping[str, Any] | None = None) -> Path:
    """Weights as safetensors, hyperparameters and training record as JSON, vocabulary as a JSON list.

    ``extra`` adds fields to the JSON record (e.g. how an embedding table was initialised).
    """
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in result.model.state_dict().items()}
    save_file(state, str(directory / WEIGHTS_FILE))
    record = {
        "model": result.model.model_name,
        "n_items": result.model.n_items,
        "config": asdict(result.model.config),
        "best_epoch": result.best_epoch,
        "epochs_run": len(result.history),
        "best_valid": result.best_valid,
        "seconds_per_epoch": result.seconds_per_epoch,
        "history": result.history,
        **(extra or {}),
    }
    (directory / CONFIG_FILE).write_text(json.dumps(record, indent=2))
    (directory / VOCABULARY_FILE).write_text(json.dumps(result.vocabulary.item_ids.tolist()))
    return directory


ModelBuilder = Callable[[int, dict[str, Any]], SequentialRecommender]  # (n_items, config fields) -> model


def read_record(directory: Path) -> dict[str, Any]:
    """The JSON record :func:`save_sequential` wrote (FileNotFoundError naming the directory if none)."""
    path = directory / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no trained model at {directory} ({CONFIG_FILE} is missing)")
    return json.loads(path.read_text())


def load_sequential(
    directory: Path, builders: Mapping[str, ModelBuilder], device: torch.device | str | None = None
) -> tuple[SequentialRecommender, ItemVocabulary, dict[str, Any]]:
    """Model, vocabulary and JSON record saved by :func:`save_sequential`; ``builders`` maps the
    record's ``model`` name to a constructor."""
    record = read_record(directory)
    if record["model"] not in builders:
        raise ValueError(f"{directory} holds a {record['model']!r} model; expected one of {sorted(builders)}")
    vocabulary = ItemVocabulary(np.array(json.loads((directory / VOCABULARY_FILE).read_text()), dtype=object))
    model = builders[record["model"]](record["n_items"], record["config"])
    model.load_state_dict(load_file(str(directory / WEIGHTS_FILE)))
    model.to(torch.device(device) if device else default_device()).eval()
    return model, vocabulary, record
