"""Baseline benchmark: training seconds per epoch and full-ranking users/s of every evaluation baseline.

On an already built FASHIONREC_HOME (warehouse marts, and ``item_title_vectors`` plus the title
encoder's manifest for the text baselines; e.g. after ``fashionrec run``), for each method:

- ``gru4rec``, ``sasrec``, ``bert4rec``, ``nextitnet``, ``llm2sasrec``: ``--epochs`` epochs of training
  on the train split exactly as the ``baselines`` assets train (CORE's examples, validation on the valid
  split after each epoch): seconds per epoch, train examples per second, and valid NDCG@10 reached;
- ``llmseqsim``: the time to fit it (score the valid targets under each aggregation);
- every method, ``text_seq_query`` included: full ranking of the test targets within their category, as
  the evaluation does it (``recommender.ranking.rank_by_scores``): users per second, input building
  excluded, text encoding included.

    uv run python bench/baselines.py --home DIR [--epochs 2] [--batch-size 2048] [--threads N]
        [--bucket-by-length] [--method sasrec ...] [--out results.json]

Numbers depend on the machine: the device, torch threads and CPU count are printed with them. On a
busy 2-core machine, ``--threads 1`` is often several times faster than torch's default of 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def read_marts(home: Path) -> dict:
    """The marts as the ``baselines`` assets read them, and the test targets with their prompt inputs."""
    import duckdb

    from fashionrec.settings import Paths
    from warehouse.marts import read_prompt_inputs, read_sequence_marts

    with duckdb.connect(str(Paths.under(home).duckdb_path), read_only=True) as con:
        sequences, splits, items = read_sequence_marts(con)
        return {
            "sequences": sequences,
            "splits": splits,
            "items": items,
            "test_inputs": read_prompt_inputs(con, "test"),
        }


def users_per_second(targets, catalog, score_batch) -> float:
    from recommender.ranking import rank_by_scores

    start = time.perf_counter()
    rank_by_scores(targets, catalog, score_batch)
    return len(targets) / (time.perf_counter() - start)


def bench_sequence_model(name: str, data, marts: dict, titles, targets, catalog, args) -> dict:
    from evaluation.scorers import sequence_scorer
    from fashionrec.presets import SequenceBudget
    from training.baselines import baseline_settings, train_baseline
    from training.sequential import SequenceScorer

    budget = SequenceBudget(
        epochs=args.epochs,
        stopping_step=args.epochs,  # every epoch runs
        train_batch_size=args.batch_size,
        bucket_by_length=args.bucket_by_length,
        torch_threads=args.threads,
    )
    settings = baseline_settings(budget)
    start = time.perf_counter()
    result, _ = train_baseline(name, data, settings, titles, log=lambda _: None)
    seconds = time.perf_counter() - start
    scorer = SequenceScorer(result.model, result.vocabulary)
    score_batch = sequence_scorer(scorer, marts["sequences"], marts["splits"], "test", name)
    row = {"method": name, "valid_ndcg@10": round(result.best_valid.get("ndcg@10", float("nan")), 4)}
    if name == "llmseqsim":
        row |= {"fit_seconds": round(seconds, 2), "aggregation": result.model.config.aggregation}
    else:
        row |= {
            "epochs": len(result.history),
            "train_examples": len(data.train),
            "seconds_per_epoch": round(result.seconds_per_epoch, 2),
            "examples_per_s": round(len(data.train) / result.seconds_per_epoch, 1),
        }
    row["rank_users_per_s"] = round(users_per_second(targets, catalog, score_batch), 1)
    return row


def bench_text_seq_query(home: Path, marts: dict, titles, targets, catalog) -> dict:
    from fashionrec.layout import ITEM_TITLE_VECTORS
    from fashionrec.settings import Paths
    from training.text_seq_query import (
        TITLE_OPTIONS,
        manifest_encoder,
        read_title_manifest,
        text_scorer,
        user_texts,
    )

    manifest = read_title_manifest(Paths.under(home).artifacts.title_vectors_manifest(ITEM_TITLE_VECTORS))
    encoder = manifest_encoder(manifest, ITEM_TITLE_VECTORS)
    row = {"method": "text_seq_query"}
    for max_titles in TITLE_OPTIONS:  # longer texts cost more to encode
        score_batch = text_scorer(user_texts(marts["test_inputs"], max_titles), encoder, titles)
        row[f"rank_users_per_s_{max_titles}_titles"] = round(
            users_per_second(targets, catalog, score_batch), 1
        )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--home", type=Path, required=True, help="a built FASHIONREC_HOME")
    parser.add_argument("--epochs", type=int, default=2, help="training epochs to time (default 2)")
    parser.add_argument(
        "--batch-size", type=int, default=2048, help="training batch (default 2048, RecBole's)"
    )
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument(
        "--bucket-by-length",
        action="store_true",
        help="length-sorted batches (the opt-in speed trick) instead of random ones run in length pieces",
    )
    parser.add_argument("--method", action="append", help="a method (repeatable); default every baseline")
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    args = parser.parse_args()

    import lancedb
    import torch

    from fashionrec.layout import ITEM_TITLE_VECTORS
    from fashionrec.settings import Paths
    from recommender.ranking import catalog_by_category
    from training.baseline_training import open_title_vectors
    from training.baselines import BASELINES, SEQUENCE_BASELINES, SequenceData

    if args.threads:
        torch.set_num_threads(args.threads)
    methods = args.method or list(BASELINES)
    unknown = sorted(set(methods) - set(BASELINES))
    if unknown:
        parser.error(f"unknown method(s) {unknown}; choose from {list(BASELINES)}")
    marts = read_marts(args.home)
    titles = open_title_vectors(lancedb.connect(str(Paths.under(args.home).lancedb_dir)), ITEM_TITLE_VECTORS)
    start = time.perf_counter()
    data = SequenceData.from_marts(marts["sequences"], marts["splits"], marts["items"])
    examples_seconds = time.perf_counter() - start
    targets = marts["test_inputs"]  # prompt_inputs has the grain and key of splits
    catalog = catalog_by_category(marts["items"])
    header = {
        "home": str(args.home),
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "torch_threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "train_examples": len(data.train),
        "vocabulary_items": len(data.vocabulary.item_ids),
        "catalog_items": len(marts["items"]),
        "test_targets": len(targets),
        "build_examples_seconds": round(examples_seconds, 2),
    }
    print(json.dumps(header), flush=True)
    rows = []
    for name in methods:
        if name in SEQUENCE_BASELINES:
            row = bench_sequence_model(name, data, marts, titles, targets, catalog, args)
        else:
            row = bench_text_seq_query(args.home, marts, titles, targets, catalog)
        print(json.dumps(row), flush=True)
        rows.append(row)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({**header, "methods": rows}, indent=2))


if __name__ == "__main__":
    main()
