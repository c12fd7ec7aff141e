"""I-LLMRec from the warehouse and the vector tables to a saved model, and back to a scorer: what the
``illmrec`` asset and the evaluation call (the model: ``training.illmrec``; its training:
``training.illmrec_training``).

The feature tables are the pipeline's own: ``item_image_vectors`` (image), CORE's ``item_id_vectors``
(cf) and ``item_title_vectors`` (text). A saved model records each feature's vector width; loading it
against tables of another width is a ValueError naming the asset to re-materialize.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from fashionrec.layout import ITEM_ID_VECTORS, ITEM_IMAGE_VECTORS, ITEM_TITLE_VECTORS, LOSS_CURVE_PLOT
from recommender.retrieval import VectorCatalog
from recommender.vector_store import table_exists
from training.illmrec import IllmrecConfig, load_heads, save_heads
from training.illmrec_training import (
    Histories,
    IllmrecRanker,
    IllmrecResult,
    IllmrecTraining,
    item_features,
    split_histories,
    train_illmrec,
)
from training.qlora import save_loss_plot

FEATURE_TABLES = {"image": ITEM_IMAGE_VECTORS, "cf": ITEM_ID_VECTORS, "text": ITEM_TITLE_VECTORS}


def open_feature_tables(db, features: tuple[str, ...]) -> dict[str, VectorCatalog]:
    """The vector tables of ``features`` (the image table always: the adaptor reads it); FileNotFoundError
    naming the asset that writes a missing one."""
    tables = {}
    for name in sorted({"image", *features}):
        table = FEATURE_TABLES[name]
        if not table_exists(db, table):
            raise FileNotFoundError(
                f"I-LLMRec's {name} feature reads {table!r}, which is missing; materialize {table}"
            )
        tables[name] = VectorCatalog.from_table(db.open_table(table))
    return tables


def fit_and_save(
    base_model: str,
    db,
    items: pd.DataFrame,
    sequences: pd.DataFrame,
    splits: pd.DataFrame,
    config: IllmrecConfig,
    training: IllmrecTraining,
    directory: Path,
    log: Callable[[str], object] = print,
) -> tuple[IllmrecResult, dict]:
    """Train one I-LLMRec model on the train purchases (the epochs compared on valid) and save it in
    ``directory``; the result and the saved record."""
    from recommender.language_model import load_answering_model

    features = item_features(items, open_feature_tables(db, config.features))
    train = split_histories(sequences, splits, features.item_ids, "train", config.max_history)
    valid = split_histories(sequences, splits, features.item_ids, "valid", config.max_history)
    lm, tokenizer, _ = load_answering_model(base_model, None)
    result = train_illmrec(lm, tokenizer, items, features, train, valid, config, training, log)
    record = {
        "base_model": base_model,
        "llm_dim": int(lm.get_input_embeddings().weight.shape[1]),
        "feature_dims": features.dims(),
        "feature_tables": {name: FEATURE_TABLES[name] for name in features.vectors},
        "items_with_vector": {name: int(found.sum()) for name, found in features.found.items()},
        "training": asdict(training),
        "train_targets": result.train_targets,
        "best_epoch": result.best_epoch,
        "valid_ndcg@10_by_epoch": result.valid_ndcg_by_epoch,
        "train_tokens_per_second": round(result.tokens_per_second, 1),
        "seconds": round(result.seconds, 2),
        "tokens_per_history_item": round(result.tokens_per_item, 2),
    }
    save_heads(result.heads, directory, {**record, "loss_by_step": result.loss_by_step})
    record["loss_curve"] = save_loss_plot(
        list(enumerate(result.loss_by_step, start=1)),
        directory / LOSS_CURVE_PLOT,
        f"I-LLMRec ({', '.join(config.features)}{' + ILA' if config.ila else ''})",
        ylabel="IRE + ILA loss" if config.ila else "IRE loss",
    )
    return result, record


def load_ranker(directory: Path, db, items: pd.DataFrame) -> IllmrecRanker:
    """The model saved in ``directory`` with its base LM and today's feature tables."""
    from recommender.language_model import load_answering_model

    heads, record = load_heads(directory)
    features = item_features(items, open_feature_tables(db, heads.config.features))
    changed = {n: d for n, d in features.dims().items() if record["feature_dims"].get(n) != d}
    if changed:
        raise ValueError(
            f"{directory.name} was trained on feature vectors of widths {record['feature_dims']}, the tables "
            f"now hold {features.dims()}; re-materialize illmrec"
        )
    lm, tokenizer, _ = load_answering_model(record["base_model"], None)
    lm.requires_grad_(False)
    heads.to(lm.get_input_embeddings().weight.device).eval()
    return IllmrecRanker(lm, tokenizer, heads, features, items["title"].tolist())


def ranker_scorer(ranker: IllmrecRanker, histories: Histories, method: str):
    """A ``recommender.ranking.ScoreBatch`` of the ranker over ``histories``' targets: one forward pass
    per target, then one product with the category's projected item vectors."""
    import numpy as np

    row_of = pd.Series(np.arange(len(histories)), index=pd.Index(histories.target_ids, dtype=object))
    position = pd.Index(ranker.features.item_ids)

    def score_batch(chunk: pd.DataFrame, item_ids: np.ndarray) -> np.ndarray:
        rows = row_of.reindex(chunk["target_id"].astype(object)).to_numpy()
        if pd.isna(rows).any():
            raise KeyError(f"{method}: targets {chunk['target_id'].tolist()[:3]} have no history rows")
        candidates = position.get_indexer(pd.Index(item_ids, dtype=object))
        if (candidates < 0).any():
            raise KeyError(f"{method}: items {item_ids[candidates < 0][:3].tolist()} are not catalog items")
        return ranker.score([histories.rows[int(i)] for i in rows], candidates)

    return score_batch
