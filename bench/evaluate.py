"""Evaluation throughput (users/s) at the paper's category sizes, on synthetic vectors.

Times the steps of one evaluation run for one category of the paper's Table 1 (users and items of the
chosen data set), with random vectors of the real widths (CORE 64-d, title encoder 384-d):

- ``core``: a CORE model (random weights, default sizes) encodes each user's 50-item window and
  ranks the target among all items of the category, with the evaluation's own scorer
  (``evaluation.scorers.sequence_scorer``, ``recommender.ranking.rank_by_scores``);
- ``popularity``: the same full-catalog ranking with one popularity score vector;
- ``llm_mixup``: mixup retrieval (``recommender.mixup.mixup_batch``) for one generation per user: ID list
  and title list by batched matrix products, title vectors given (the title encoder's cost is its own);
- ``llm_mixup via LanceDB``: the online path, two LanceDB searches per user, on a sample of users,
  for comparison with the batched path;
- ``metrics``: aggregating the ranks of all methods into the eval_metrics rows.

    uv run python bench/evaluate.py [--dataset luggage|footwear|accessories|clothing] [--users N]
        [--items N] [--lancedb-sample N]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

# the repository first: bench/warehouse.py would otherwise stand in for the warehouse package
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fashionrec.presets import PAPER_SCALE_NAMES  # noqa: E402
from warehouse.generator.presets import PRESETS  # noqa: E402

# the generator's paper-scale presets hold Table 1 of arXiv 2410.11327: users and items per data set
PAPER_SIZES = {name: (PRESETS[name].n_users, PRESETS[name].n_items) for name in PAPER_SCALE_NAMES}
CATEGORY = "Luggage & Bags"
ID_DIM, TITLE_DIM, WINDOW = 64, 384, 50


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def timed(label: str, n_users: int, fn, results: list):
    start = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - start
    results.append((label, n_users, seconds))
    print(
        f"{label:<26} {n_users:>9,} users  {seconds:8.2f} s  {n_users / seconds:>10,.0f} users/s", flush=True
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", choices=sorted(PAPER_SIZES), default="luggage")
    parser.add_argument("--users", type=int, help="test users (default: the data set's users)")
    parser.add_argument("--items", type=int, help="items in the category (default: the data set's items)")
    parser.add_argument("--lancedb-sample", type=int, default=200, help="users for the per-user LanceDB path")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import lancedb
    import torch

    from evaluation.protocol import aggregate_metrics, popular_top_k, popularity_scorer
    from evaluation.scorers import sequence_scorer
    from recommender.mixup import MixupConfig, MixupRetriever, mixup_batch
    from recommender.ranking import RankingConfig, rank_by_scores
    from recommender.retrieval import VectorCatalog
    from recommender.vector_store import frame_to_arrow, write_vectors
    from training.core import CoreConfig, CoreModel, CoreScorer
    from training.sequence_data import ItemVocabulary

    default_users, default_items = PAPER_SIZES[args.dataset]
    n_users, n_items = args.users or default_users, args.items or default_items
    rng = np.random.default_rng(args.seed)
    torch.manual_seed(args.seed)
    print(
        f"== {args.dataset}: {n_users:,} test users, {n_items:,} items in the category, "
        f"torch threads {torch.get_num_threads()}, device cpu"
    )

    item_ids = np.array([f"i{j:07d}" for j in range(n_items)], dtype=object)
    catalog = {CATEGORY: item_ids}
    targets = pd.DataFrame(
        {
            "target_id": [f"t{u}" for u in range(n_users)],
            "user_id": [f"u{u}" for u in range(n_users)],
            "category": CATEGORY,
            "target_item_id": item_ids[rng.integers(0, n_items, n_users)],
            "is_cold_item": rng.random(n_users) < 0.3,
        }
    )
    config = RankingConfig(k=10)
    results: list[tuple[str, int, float]] = []

    # CORE scored as the evaluation scores it, each user's target after 50 random item events (all in the
    # vocabulary). Building the windows is not timed: the evaluation builds them once, before ranking.
    vocabulary = ItemVocabulary(item_ids)
    model = CoreModel(len(vocabulary), CoreConfig()).eval()
    events = pd.DataFrame(
        {
            "user_id": np.repeat(targets["user_id"].to_numpy(), WINDOW),
            "seq_no": np.tile(np.arange(1, WINDOW + 1), n_users),
            "item_id": item_ids[rng.integers(0, n_items, n_users * WINDOW)],
        }
    )
    splits = targets.assign(seq_no=WINDOW + 1, split="test")
    core_scores = sequence_scorer(CoreScorer(model, vocabulary), events, splits, "test")
    core_ranks, core_lists = timed(
        "core (full catalog)", n_users, lambda: rank_by_scores(targets, catalog, core_scores, config), results
    )
    counts = pd.Series(rng.poisson(0.3, n_items), index=item_ids)
    pop_ranks, pop_lists = timed(
        "popularity (full catalog)",
        n_users,
        lambda: rank_by_scores(targets, catalog, popularity_scorer(counts), config),
        results,
    )

    id_vectors = unit(rng.normal(size=(n_items, ID_DIM)))
    title_vectors = unit(rng.normal(size=(n_items, TITLE_DIM)))
    categories = [CATEGORY] * n_items
    id_catalog = VectorCatalog(item_ids, categories, id_vectors)
    title_catalog = VectorCatalog(item_ids, categories, title_vectors)
    generated = item_ids[rng.integers(0, n_items, n_users)]
    generations = targets[["target_id", "category"]].assign(
        item_id=generated, title=[f"title {u}" for u in range(n_users)]
    )
    # titles of generations as the encoder would return them: near the generated item's title
    encoded = unit(
        title_vectors[rng.integers(0, n_items, n_users)] + 0.3 * rng.normal(size=(n_users, TITLE_DIM))
    )
    row_of_title = {f"title {u}": u for u in range(n_users)}

    def encode(texts):
        return encoded[[row_of_title[t] for t in texts]]

    mixup = MixupConfig(k=10, n=1)
    lists = timed(
        "llm_mixup (batched)",
        n_users,
        lambda: mixup_batch(generations, id_catalog, title_catalog, encode, mixup),
        results,
    )

    sample = min(args.lancedb_sample, n_users)
    with tempfile.TemporaryDirectory(prefix="bench_eval_") as directory:
        db = lancedb.connect(directory)
        keys = pd.DataFrame({"item_id": item_ids, "category": categories})
        write_vectors(db, "item_id_vectors", frame_to_arrow(keys, id_vectors))
        write_vectors(db, "item_title_vectors", frame_to_arrow(keys.assign(title=""), title_vectors))
        retriever = MixupRetriever(db, encode, mixup)
        rows = generations.head(sample)
        timed(
            "llm_mixup (LanceDB/user)",
            sample,
            lambda: [retriever.recommend(r.category, r.item_id, r.title) for r in rows.itertuples()],
            results,
        )

    from evaluation.protocol import rank_in_lists
    from recommender.ranking import TARGET_COLUMNS

    ranks = pd.concat(
        [
            targets[TARGET_COLUMNS].assign(method="core", rank=core_ranks),
            targets[TARGET_COLUMNS].assign(method="popularity", rank=pop_ranks),
            targets[TARGET_COLUMNS].assign(method="llm_mixup", rank=rank_in_lists(targets, lists)),
        ],
        ignore_index=True,
    )
    all_lists = pd.concat(
        [
            core_lists.assign(method="core"),
            pop_lists.assign(method="popularity"),
            lists.assign(method="llm_mixup"),
        ],
        ignore_index=True,
    )
    timed(
        "metrics (3 methods)",
        n_users,
        lambda: aggregate_metrics(ranks, all_lists, catalog, popular_top_k(counts, catalog, 10), 10),
        results,
    )
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB")


if __name__ == "__main__":
    main()
