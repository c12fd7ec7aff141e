"""Vector index benchmark: LanceDB's IVF-PQ index over a preset's catalog title vectors, against exact search.

For one preset it generates the logs, encodes every catalog title with the default MiniLM encoder (the
vectors ``item_title_vectors`` holds), writes them as the pipeline does (``recommender.vector_store``:
one bulk write, then the IVF-PQ index with sqrt(n) partitions and 48 sub-vectors), and asks the shop's
own search queries (a seeded sample of the distinct queries in the events, encoded the same way) for
their 10 nearest titles, exactly (a flat scan) and through the index with the pipeline's search settings.
It prints the seconds of each step, recall@10 of the index against exact search and queries/s of both.

    uv run python bench/vector_index.py --preset clothing [--queries 1000] [--work DIR]

``--work`` keeps the raw files and the encoded vectors (``title_vectors.npy``) there for a re-run.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recommender.vector_store import SearchSettings, ensure_index, frame_to_arrow, search  # noqa: E402

K = 10


def _timed(what: str, work):
    start = time.perf_counter()
    result = work()
    seconds = time.perf_counter() - start
    print(f"{what:<28} {seconds:8.1f} s", flush=True)
    return result, seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="clothing")
    parser.add_argument("--queries", type=int, default=1000, help="distinct search queries asked")
    parser.add_argument(
        "--work", type=Path, help="where to keep the raw files and vectors (default: temporary)"
    )
    args = parser.parse_args()

    import lancedb
    import pandas as pd

    from recommender.encoders import SentenceTransformerEncoder
    from warehouse.generator import generate

    work = args.work or Path(tempfile.mkdtemp(prefix=f"bench_index_{args.preset}_"))
    raw = work / "raw"
    if not (raw / "items.parquet").exists():
        _timed("generate", lambda: generate(args.preset, raw, seed=0, images=False))
    items = pd.read_parquet(raw / "items.parquet", columns=["item_id", "title", "category"])
    queries = pd.read_parquet(raw / "events.parquet", columns=["query"])["query"].dropna().drop_duplicates()
    queries = queries.sample(n=min(args.queries, len(queries)), random_state=0).tolist()
    encoder = SentenceTransformerEncoder(show_progress=False)
    cached = work / "title_vectors.npy"
    if cached.exists():
        vectors = np.load(cached)
    else:
        vectors, seconds = _timed(
            f"encode {len(items):,} titles", lambda: encoder.encode(items["title"].tolist())
        )
        np.save(cached, vectors)
        print(f"{'':<28} {len(items) / seconds:8,.0f} titles/s", flush=True)
    query_vectors = encoder.encode(queries)

    db = lancedb.connect(str(work / "lancedb"))
    table, _ = _timed(
        "write the table",
        lambda: db.create_table("item_title_vectors", frame_to_arrow(items, vectors), mode="overwrite"),
    )
    _timed(f"IVF-PQ index ({len(items):,} rows)", lambda: ensure_index(table, index_threshold=1))

    def ask(exact: bool):
        return search(table, query_vectors, K, columns=["item_id"], exact=exact)

    exact, exact_seconds = _timed(f"exact search, {len(queries)} queries", lambda: ask(True))
    indexed, index_seconds = _timed(f"indexed search, {len(queries)} queries", lambda: ask(False))
    truth = exact.groupby("query_index")["item_id"].apply(set)
    found = indexed.groupby("query_index")["item_id"].apply(set)
    recall = np.mean([len(truth[q] & found.get(q, set())) / len(truth[q]) for q in truth.index])
    settings = SearchSettings()
    print(
        f"\n{args.preset}: {len(items):,} items x {vectors.shape[1]} dims, {len(queries)} distinct search "
        f"queries, nprobes {settings.nprobes}, refine_factor {settings.refine_factor}, "
        f"{os.cpu_count()} CPUs"
    )
    print(f"recall@{K} of IVF-PQ against exact search: {recall:.4f}")
    print(f"queries/s: exact {len(queries) / exact_seconds:,.1f}, IVF-PQ {len(queries) / index_seconds:,.1f}")


if __name__ == "__main__":
    main()
