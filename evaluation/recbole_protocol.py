"""RecBole's leave-one-out protocol on any ``.inter`` file, run with the project's baselines.

:class:`LeaveOneOut` is RecBole's ``eval_args: {split: {LS: valid_and_test}, order: TO, group_by: user,
mode: full}`` as RecBole 1.x runs it for sequential models (read in ``recbole/data/dataset/
sequential_dataset.py`` and ``dataset.py``):

- ``SequentialDataset.data_augmentation`` sorts by (user, timestamp) with a stable sort
  (``Interaction.sort``: ``np.argsort(kind="stable")``) and turns every interaction but a user's first
  into one example "the latest 50 items before it -> it". ``Dataset._split_index_by_leave_one_out`` then
  splits each user's examples: with ``m`` of them, ``min(2, m - 1)`` go to the end of the split list.
  In interactions ``n = m + 1``: n >= 4 gives train + valid (second to last) + test (last); n = 3 gives
  one train and one test example and no valid one; n = 2 one train example; n = 1 nothing, though the
  item still joins the item set. So users below 3 interactions only train, as expected, but a user with
  exactly 3 is tested without being validated.
- RecBole's sequential datasets need the timestamp: ``data_augmentation`` checks ``time_field`` and
  sorting by a missing field raises. We accept a file without one and take file order as time order,
  which is what RecBole does once given ``timestamp = line number``.
- No filtering by default: ``user_inter_num_interval``/``item_inter_num_interval`` are ``[0,inf)`` and
  ``rm_dup_inter`` is ``None``. Only ``filter_inter_by_user_or_item: True`` acts: with an ``.item`` file
  loaded, interactions whose item it lacks are dropped; we do the same and report how many.
- Full ranking over every item of the ``.inter`` and ``.item`` files (RecBole remaps both into one id
  space); only padding is excluded, history items are not masked for sequential models
  (``FullSortEvalDataLoader`` gives them no ``history_index``).

Training and scoring are the project's own (``training.baselines``, ``training.sequential``,
``recommender.metrics``): ties count against the target (RecBole's ``torch.topk`` breaks them arbitrarily),
and early stopping watches valid NDCG@10 (RecBole's default is MRR@10; the exported config sets NDCG@10).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from evaluation.protocol import popularity_scorer
from evaluation.recbole_atomic import read_inter, read_items
from recommender.encoder_specs import DEFAULT_ENCODER_SPEC, build_encoder
from recommender.encoders import TextEncoder
from recommender.metrics import ndcg_at_k, ranking_metrics
from recommender.ranking import catalog_by_category, popularity_counts, rank_by_scores
from recommender.retrieval import VectorCatalog
from training.baselines import (
    ID_BASELINES,
    SEQUENCE_BASELINES,
    TEXT_ID_BASELINES,
    SequenceData,
    item_table_of,
    train_baseline,
)
from training.sequence_data import COLD_INDEX, CategoryCatalog, build_examples, build_vocabulary
from training.sequential import SequentialConfig, TrainResult, rank_examples

ALL_ITEMS = "all"  # the one catalog "category": RecBole ranks every item
METHODS = ("popularity", *SEQUENCE_BASELINES)  # popularity is RecBole's Pop: train-target counts
# RecBole has no shared cold row; with no rare item standing in for it, our cold row is trained as a
# negative only, as RecBole's never-trained items are.
RECBOLE_PARITY = {"cold_replace_prob": 0.0}


class LeaveOneOut:
    """An interaction log split by RecBole's LS protocol, shaped as the marts our trainers read."""

    def __init__(self, interactions: pd.DataFrame, item_ids: Sequence[str] | None = None) -> None:
        frame = interactions.reset_index(drop=True)
        self.dropped = 0  # interactions whose item the .item file lacks (filter_inter_by_user_or_item)
        if item_ids is not None:
            known = frame["item_id"].isin(set(item_ids))
            self.dropped = int((~known).sum())
            frame = frame.loc[known]
        frame = frame.assign(_line=np.arange(len(frame)))
        time_order = ["timestamp", "_line"] if "timestamp" in frame.columns else ["_line"]
        frame = frame.sort_values(["user_id", *time_order]).reset_index(drop=True)
        seq_no = frame.groupby("user_id").cumcount().to_numpy() + 1
        n = frame.groupby("user_id")["item_id"].transform("size").to_numpy()
        # RecBole's _split_index_by_leave_one_out over each user's n - 1 examples (see the docstring)
        split = np.full(len(frame), "train", dtype=object)
        split[(seq_no == n - 1) & (n >= 4)] = "valid"
        split[(seq_no == n) & (n >= 3)] = "test"
        event_ids = frame["user_id"].astype(str) + "#" + pd.Series(seq_no).astype(str)
        self.sequences = pd.DataFrame(
            {
                "user_id": frame["user_id"],
                "seq_no": seq_no,
                "event_id": event_ids,
                "item_id": frame["item_id"],
            }
        )
        target = seq_no >= 2  # a user's first interaction is only ever history
        self.splits = pd.DataFrame(
            {
                "target_id": event_ids[target].to_numpy(),
                "user_id": frame["user_id"].to_numpy()[target],
                "target_item_id": frame["item_id"].to_numpy()[target],
                "category": ALL_ITEMS,
                "seq_no": seq_no[target],
                "split": split[target],
            }
        )
        universe = set(frame["item_id"]) | set(item_ids or ())
        self.items = pd.DataFrame({"item_id": sorted(universe), "category": ALL_ITEMS})

    def counts(self) -> dict[str, int]:
        targets = self.splits["split"].value_counts()
        return {
            "users": int(self.sequences["user_id"].nunique()),
            "items": len(self.items),
            "interactions": len(self.sequences),
            "dropped_unknown_items": self.dropped,
            **{f"{name}_targets": int(targets.get(name, 0)) for name in ("train", "valid", "test")},
        }


def title_vectors(items: pd.DataFrame, encoder: TextEncoder) -> VectorCatalog:
    """Title vectors of the items with a title, in the one catalog category (for the text baselines)."""
    titled = items.loc[items["title"].fillna("").astype(str).str.strip() != ""]
    vectors = encoder.encode(titled["title"].astype(str).tolist())
    return VectorCatalog(titled["item_id"].astype(str).tolist(), [ALL_ITEMS] * len(titled), vectors)


def _popularity(split: LeaveOneOut, k: int) -> tuple[dict[str, float], np.ndarray]:
    counts = popularity_counts(split.splits.loc[split.splits["split"] == "train"])
    catalog = catalog_by_category(split.items)
    ranks = {}
    for name in ("valid", "test"):
        targets = split.splits.loc[split.splits["split"] == name].assign(is_cold_item=False)
        ranks[name] = rank_by_scores(targets, catalog, popularity_scorer(counts), desc=name)[0].to_numpy()
    return {f"ndcg@{k}": ndcg_at_k(ranks["valid"], k)}, ranks["test"]


def _test_ranks(result: TrainResult, split: LeaveOneOut) -> np.ndarray:
    """Test ranks in the result's own vocabulary (LLMSeqSim's is its title table, not the training one)."""
    max_len = result.model.config.max_seq_length
    test = build_examples(split.sequences, split.splits, result.vocabulary, split="test", max_len=max_len)
    catalog = CategoryCatalog.from_items(split.items, result.vocabulary)
    return rank_examples(result.model, test, catalog, result.model.config.eval_batch_size)


def check_methods(methods: Sequence[str], has_titles: bool) -> list[str]:
    """``methods`` if all can run on an ``.inter`` file (with titles, when ``has_titles``)."""
    for name in methods:
        if name == "text_seq_query":
            raise ValueError("text_seq_query needs search queries, which an .inter file does not hold")
        if name not in METHODS:
            raise ValueError(f"unknown method {name!r}; choose from {', '.join(METHODS)}")
        if name in TEXT_ID_BASELINES and not has_titles:
            raise ValueError(f"{name} needs item titles: give an .item file with a title column")
    return list(methods)


def run_baselines(
    split: LeaveOneOut,
    methods: Sequence[str],
    settings: Mapping[str, Any] | None = None,
    titles: VectorCatalog | None = None,
    device: str | None = None,
    log: Callable[[str], Any] = print,
) -> list[dict[str, Any]]:
    """Train each method on the train targets (early stopping on valid) and rank the test targets.

    ``settings`` override RecBole's training defaults (``epochs``, ``hidden_size``, ...; fields a model
    lacks are ignored); ``item_table`` (``"catalog"`` or ``"trained"``, see
    :meth:`training.baselines.SequenceData.from_marts`) replaces each model's own table. One row per
    method: its item table, epochs run, best valid NDCG@10, test metrics, seconds, and the valid curve.
    """
    settings = {**RECBOLE_PARITY, **(settings or {})}
    k = 10
    built: dict[str, SequenceData] = {}  # item table -> examples

    def examples(item_table: str) -> SequenceData:
        if item_table not in built:
            built[item_table] = SequenceData.from_marts(
                split.sequences,
                split.splits,
                split.items,
                settings.get("max_seq_length", 50),
                "purchases",
                item_table=item_table,
            )
        return built[item_table]

    test_items = split.splits.loc[split.splits["split"] == "test", "target_item_id"]
    # test items never trained on, whichever table ranks them
    trained = build_vocabulary(split.sequences, split.splits)
    cold = int(np.sum(trained.index_of(test_items) == COLD_INDEX))
    rows = []
    for name in check_methods(methods, titles is not None):
        start = time.perf_counter()
        table = None if name == "popularity" else item_table_of(name, settings)
        if name == "popularity":
            valid, ranks = _popularity(split, k)
            epochs, curve = 0, []
        else:
            data = examples(table or next(iter(built), SequentialConfig.item_table))
            result, _ = train_baseline(name, data, settings, titles, device=device, log=log)
            valid, ranks = result.best_valid, _test_ranks(result, split)
            epochs = len(result.history) if result.best_epoch > 0 else 0  # llmseqsim is fitted, not trained
            curve = result.history
        test = ranking_metrics(ranks, k)
        rows.append(
            {
                "method": name,
                "item_table": table or "",
                "epochs": epochs,
                f"valid_ndcg@{k}": valid.get(f"ndcg@{k}", float("nan")),
                **{f"test_{m}": test[m] for m in (f"recall@{k}", f"ndcg@{k}", f"mrr@{k}")},
                "test_users": len(ranks),
                "test_cold_targets": cold,  # test items never trained on: the cold row ranks them
                "seconds": round(time.perf_counter() - start, 2),
                "curve": curve,  # valid metrics and train loss per epoch (llmseqsim: per option tried)
            }
        )
    return rows


def format_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """The rows as a fixed-width text table (floats to 4 decimals), without the per-epoch curves."""
    return _flat(rows).to_string(index=False, float_format=lambda v: f"{v:.4f}")


def _flat(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame([{k: v for k, v in row.items() if k != "curve"} for row in rows])


def _default_encoder() -> TextEncoder:
    # the packaged MiniLM: the pipeline's fine-tuned title encoder needs queries an .inter file lacks
    return build_encoder(DEFAULT_ENCODER_SPEC)


def compare_on_files(
    inter: Path,
    item: Path | None,
    methods: Sequence[str] | None,
    settings: Mapping[str, Any],
    out: Path,
    encoder: Callable[[], TextEncoder] = _default_encoder,
    log: Callable[[str], Any] = print,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """``fashionrec baselines``: read the files, split, run, write ``baselines.csv`` and ``.json`` in ``out``.

    Without ``methods``: the ID models, plus the text ones when ``item`` has titles (embedded by
    ``encoder()``, built only then).
    """
    items = read_items(item) if item is not None else None
    has_titles = items is not None and "title" in items.columns
    chosen = check_methods(methods or [*ID_BASELINES, *(TEXT_ID_BASELINES if has_titles else ())], has_titles)
    split = LeaveOneOut(read_inter(inter), None if items is None else items["item_id"].tolist())
    summary = {
        "inter": str(inter),
        "item": str(item) if item else None,
        **split.counts(),
        "settings": dict(settings),
    }
    log(f"{inter}: {json.dumps(split.counts())}")
    needs_titles = items is not None and bool(set(chosen) & set(TEXT_ID_BASELINES))
    titles = title_vectors(items, encoder()) if needs_titles else None
    rows = run_baselines(split, chosen, settings, titles, log=log)
    out.mkdir(parents=True, exist_ok=True)
    _flat(rows).to_csv(out / "baselines.csv", index=False)  # the curves are in the JSON
    (out / "baselines.json").write_text(json.dumps({"protocol": summary, "rows": rows}, indent=2))
    return rows, summary
