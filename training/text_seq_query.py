"""``text_seq_query``: a text-sequence baseline in the spirit of "Recformer w/ query" (paper 000, Table 2).

Recformer (Li et al., KDD 2023) reads a user's history as text (item attribute key-value pairs, latest
first) with a Longformer pre-trained on recommendation data, and "w/ query" adds the search query to that
text. No Longformer weights can be fetched here, so this baseline is built from what the pipeline has,
and is exactly this:

1. **User text.** For each target, from ``prompt_inputs`` (the history the LLM prompts see: the user's
   latest 50 events before the target, and the latest search query before it): the latest query, then
   the titles of the items the user clicked, carted or bought, latest first, each title once, at most
   ``max_titles`` of them, joined by ``"; "`` (e.g. ``"red ankle boots; Nova black leather boot; ..."``).
   Latest first, so the encoder's length limit cuts the oldest titles.
2. **Encoding.** The text is embedded with the encoder that made ``item_title_vectors`` (the
   triplet-fine-tuned MiniLM title encoder of ``artifacts/title_encoder``; its manifest
   ``artifacts/item_title_vectors.json`` names it): the same model on both sides, as Recformer encodes
   the sequence and the items with one model. For the low-resource study another table, written by a
   title encoder fine-tuned on a share of the training users, takes its place (``title_vectors_table``).
3. **Scoring.** Cosine similarity between the user vector and every item title vector of the target's
   category. A target with neither a query nor an item in its history has no text: every item scores 0.
4. **Selection.** Nothing is trained; ``max_titles`` is chosen by valid NDCG@10 among
   :data:`TITLE_OPTIONS` (0 = the query alone) on at most ``max_valid_targets`` valid targets.

What it lacks compared with Recformer: no pre-training or fine-tuning on sequences (the encoder was only
fine-tuned to match queries with purchased titles), titles only rather than all attributes, and one
mean-pooled vector instead of Longformer's item-position-aware encoding.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fashionrec.layout import CONFIG_FILE, ITEM_TITLE_VECTORS
from recommender.encoder_specs import build_encoder
from recommender.encoders import TextEncoder
from recommender.metrics import ranking_metrics
from recommender.ranking import RankingConfig, ScoreBatch, rank_by_scores
from recommender.retrieval import VectorCatalog
from training.user_share import UserShare

TITLE_OPTIONS = (0, 1, 3)
SEPARATOR = "; "
MODEL_NAME = "text_seq_query"
ITEM_ACTIONS = ("click", "add_to_cart", "purchase")


@dataclass
class TextSeqQueryConfig:
    """The chosen rendering and the encoder it is paired with (saved as ``config.json``)."""

    encoder_spec: str
    encoder_fingerprint: str
    max_titles: int = 10
    max_valid_targets: int = 300  # valid targets used to choose max_titles (sampled, seed 0)
    valid_metric_k: int = 10
    best_valid: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)  # one row per option tried
    # the title vectors it was fitted with (another table for a run on a share of the training users),
    # and the share of users their title encoder learnt from
    title_vectors_table: str = ITEM_TITLE_VECTORS
    user_share: dict[str, Any] = field(default_factory=dict)

    def save(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / CONFIG_FILE).write_text(json.dumps({"model": MODEL_NAME, **asdict(self)}, indent=2))
        return directory

    @classmethod
    def load(cls, directory: Path) -> TextSeqQueryConfig:
        path = directory / CONFIG_FILE
        if not path.is_file():
            raise FileNotFoundError(
                f"no {MODEL_NAME} configuration at {directory} ({CONFIG_FILE} is missing)"
            )
        record = json.loads(path.read_text())
        record.pop("model", None)
        return cls(**record)


def render_text(
    latest_query: str | None, history: Sequence[Mapping[str, Any]] | None, max_titles: int
) -> str:
    """The user text: latest query, then up to ``max_titles`` distinct item titles, latest first.

    ``history`` holds ``prompt_inputs.history`` entries (dicts with ``seq_no``, ``action``, ``title``).
    """
    parts = [latest_query.strip()] if isinstance(latest_query, str) and latest_query.strip() else []
    titles: list[str] = []
    if max_titles > 0:
        events = list(history) if history is not None else []  # prompt_inputs gives numpy arrays
        for event in sorted(events, key=lambda e: e["seq_no"], reverse=True):
            title = event.get("title")
            if (
                event.get("action") in ITEM_ACTIONS
                and isinstance(title, str)
                and title
                and title not in titles
            ):
                titles.append(title)
                if len(titles) == max_titles:
                    break
    return SEPARATOR.join(parts + titles)


def user_texts(prompt_inputs: pd.DataFrame, max_titles: int) -> pd.Series:
    """``target_id -> text`` for ``prompt_inputs`` rows (target_id, latest_query, history)."""
    texts = [
        render_text(query, history, max_titles)
        for query, history in zip(prompt_inputs["latest_query"], prompt_inputs["history"], strict=True)
    ]
    return pd.Series(texts, index=pd.Index(prompt_inputs["target_id"], dtype=object), name="text")


def text_scorer(texts: pd.Series, encoder: TextEncoder, title_vectors: VectorCatalog) -> ScoreBatch:
    """The ``text_seq_query`` method: cosine of each target's encoded text to the items' title vectors.

    ``texts`` maps target_id to its user text. Texts are encoded per batch of targets, inside the
    method's timing; item vectors are looked up once per category.
    """
    item_matrices: dict[str, np.ndarray] = {}

    def score_batch(chunk: pd.DataFrame, item_ids: np.ndarray) -> np.ndarray:
        missing = ~chunk["target_id"].isin(texts.index)
        if missing.any():
            raise KeyError(
                f"{MODEL_NAME}: no user text for targets {chunk.loc[missing, 'target_id'].tolist()[:3]}"
            )
        batch_texts = texts.reindex(chunk["target_id"]).tolist()
        has_text = np.array([bool(t) for t in batch_texts])
        users = np.zeros((len(chunk), title_vectors.dim), dtype=np.float32)
        if has_text.any():
            users[has_text] = encoder.encode([t for t in batch_texts if t])
        category = chunk["category"].iloc[0]  # rank_by_scores batches one category at a time
        if category not in item_matrices:
            item_matrices[category] = title_vectors.vectors_of(list(item_ids))[0]
        return users @ item_matrices[category].T  # both sides unit length: cosine; no text: 0

    return score_batch


def choose_max_titles(
    valid_inputs: pd.DataFrame,
    catalog: Mapping[str, np.ndarray],
    encoder: TextEncoder,
    title_vectors: VectorCatalog,
    options: Sequence[int] = TITLE_OPTIONS,
    max_valid_targets: int = 300,
    k: int = 10,
    log: Callable[[str], Any] = print,
) -> tuple[int, dict[str, float], list[dict[str, Any]]]:
    """The ``max_titles`` option with the best valid NDCG@k, its metrics, and one row per option.

    ``valid_inputs`` are ``prompt_inputs`` rows of the valid split; ``catalog`` maps a category to its
    item ids (``recommender.ranking.catalog_by_category``).
    """
    if not options:
        raise ValueError("no max_titles option to try")
    targets = valid_inputs
    if len(targets) > max_valid_targets:
        targets = targets.sample(n=max_valid_targets, random_state=0)
    targets = targets.sort_values("target_id").reset_index(drop=True)
    best: tuple[float, int, dict[str, float]] | None = None
    history: list[dict[str, Any]] = []
    for max_titles in options:
        start = time.perf_counter()
        scorer = text_scorer(user_texts(targets, max_titles), encoder, title_vectors)
        ranks, _ = rank_by_scores(
            targets, catalog, scorer, RankingConfig(k=k), desc=f"{MODEL_NAME} {max_titles}"
        )
        metrics = ranking_metrics(ranks.to_numpy(np.float64), k) if len(targets) else {}
        history.append({"max_titles": max_titles, "seconds": time.perf_counter() - start, **metrics})
        ndcg = metrics.get(f"ndcg@{k}", float("nan"))
        log(f"{MODEL_NAME} max_titles={max_titles}: valid ndcg@{k} {ndcg:.4f}")
        score = metrics.get(f"ndcg@{k}", 0.0)
        if best is None or score > best[0]:
            best = (score, max_titles, metrics)
    _, max_titles, metrics = best  # type: ignore[misc]
    return max_titles, metrics, history


def read_title_manifest(path: Path) -> dict[str, Any]:
    """The record ``item_title_vectors`` wrote beside a title-vector table: its encoder and, for an encoder
    trained on a share of the users, that share (``user_share``)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; materialize item_title_vectors first")
    return json.loads(path.read_text())


def manifest_encoder(manifest: Mapping[str, Any], table: str) -> TextEncoder:
    """The encoder that wrote ``table`` (its ``manifest``); user texts must be embedded with the same
    weights as the titles they are compared with, so a retrained encoder is refused."""
    encoder = build_encoder(manifest["encoder_spec"], show_progress=False)
    if encoder.fingerprint != manifest["encoder_fingerprint"]:
        raise ValueError(
            f"the encoder {manifest['encoder_spec']} no longer matches the one that made {table}; "
            "re-materialize item_title_vectors"
        )
    return encoder


def check_title_share(share: UserShare, table: str, title_share: Mapping[str, Any]) -> None:
    """``text_seq_query`` learns from the training users only through its title encoder, so a run on a
    share of them must read title vectors whose encoder was trained on that same share (``title_share``:
    the manifest's ``user_share``); ValueError saying how to make them otherwise."""
    if share.fraction >= 1.0 or share.same_users(title_share):
        return
    raise ValueError(
        f"{MODEL_NAME} on {share.fraction:.0%} of the training users needs title vectors from a title "
        f"encoder trained on that share, but {table!r} comes from one trained on "
        f"{title_share.get('train_user_fraction', 1.0):.0%} (user_seed {title_share.get('user_seed', 0)}). "
        "Train it (title_encoder run_name, train_user_fraction), write its vectors (item_title_vectors "
        "title_encoder_run, table) and set title_vectors_table"
    )


def fit_text_seq_query(
    valid_inputs: pd.DataFrame,
    catalog: Mapping[str, np.ndarray],
    encoder: TextEncoder,
    title_vectors: VectorCatalog,
    manifest: Mapping[str, Any],
    directory: Path,
    *,
    method: str = MODEL_NAME,
    title_vectors_table: str = ITEM_TITLE_VECTORS,
    options: Sequence[int] = TITLE_OPTIONS,
    max_valid_targets: int = 300,
    log: Callable[[str], Any] = print,
) -> tuple[TextSeqQueryConfig, dict[str, Any]]:
    """Choose ``max_titles`` on valid (:func:`choose_max_titles`) and save the choice under ``directory``.

    ``encoder`` and ``title_vectors`` are the table ``title_vectors_table`` and the encoder its
    ``manifest`` names (:func:`manifest_encoder`); the saved configuration keeps both names and the
    share of users that encoder learnt from. Returns it with what a run shows of it (``method``: the
    method name, ``text_seq_query-<run_name>`` for a run on a share).
    """
    start = time.perf_counter()
    max_titles, best_valid, history = choose_max_titles(
        valid_inputs, catalog, encoder, title_vectors, options, max_valid_targets, log=log
    )
    fit_seconds = time.perf_counter() - start
    saved = TextSeqQueryConfig(
        encoder_spec=encoder.spec,
        encoder_fingerprint=encoder.fingerprint,
        max_titles=max_titles,
        max_valid_targets=max_valid_targets,
        best_valid=best_valid,
        history=history,
        title_vectors_table=title_vectors_table,
        user_share=manifest.get("user_share", {}),
    )
    saved.save(directory)
    return saved, {
        "path": directory,
        "method": method,
        "title_vectors_table": title_vectors_table,
        "title_encoder_user_share": saved.user_share,
        "max_titles": max_titles,
        "fit_seconds": round(fit_seconds, 2),
        "valid_targets": min(len(valid_inputs), max_valid_targets),
        **{f"valid_{k}": round(v, 4) for k, v in best_valid.items()},
        "options": history,
    }
