"""Feature benchmark: text encoding throughput, CORE training speed and query-memory lookups, per preset.

For each preset it builds (or reuses) a warehouse, then measures

- encoding: catalog titles/s with the default MiniLM encoder, and prompt queries/s with and without the
  encoder's de-duplication (a user's targets often share their latest query; titles rarely repeat);
- CORE: seconds per training epoch with RecBole's defaults (batch 2048) on the train split;
- query memory: building the memory (queries/s), batch candidates for every prompt (rows/s, with and
  without the query encoding) and single online lookups through LanceDB (lookups/s).

    uv run python bench/features.py --preset demo --preset luggage [--home DIR] [--core-epochs 2]

``--home`` reuses a directory whose ``fashionrec.duckdb`` is already built (one preset only); otherwise
each preset is generated and built with dbt in a temporary directory. Numbers depend on the machine: the
device, torch thread count and CPU count are printed with them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


BUILD = """
import os, sys
from pathlib import Path
from dbt.cli.main import dbtRunner
from fashionrec.settings import DBT_PROJECT_DIR
from warehouse.generator import generate
from warehouse.raw_files import dbt_env
preset, home = sys.argv[1], Path(sys.argv[2])
generate(preset, home / "raw", seed=0)
os.environ.update(dbt_env(home, home / "raw"))
result = dbtRunner().invoke(["build", "--quiet", "--project-dir", str(DBT_PROJECT_DIR),
                             "--profiles-dir", str(DBT_PROJECT_DIR),
                             "--target-path", str(home / "dbt_target"), "--log-path", str(home / "dbt_logs")])
sys.exit(0 if result.success else 1)
"""


def build_warehouse(preset: str, home: Path) -> float:
    """Generate the preset's logs and ``dbt build`` them into ``home`` (in a child process, so that dbt's
    DuckDB connection is closed afterwards); returns seconds."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", BUILD, preset, str(home)], cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"building the {preset} warehouse failed; dbt logs in {home / 'dbt_logs'}")
    return time.perf_counter() - start


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    value = fn(*args, **kwargs)
    return value, time.perf_counter() - start


def best_of(repeats: int, fn, *args, **kwargs) -> float:
    """Fastest of a few runs: on a shared machine the minimum is the least disturbed measurement."""
    return min(timed(fn, *args, **kwargs)[1] for _ in range(repeats))


def bench_encoding(con, encoder, max_strings: int) -> dict:
    titles = [
        r[0]
        for r in con.execute(
            "select title from items where title is not null order by hash(item_id) limit ?", [max_strings]
        ).fetchall()
    ]
    title_seconds = best_of(2, encoder.encode, titles)
    queries = [
        r[0]
        for r in con.execute(
            # every prompt embeds its latest query, and a user's consecutive targets often share it
            "select latest_query from prompt_inputs where latest_query is not null "
            "order by hash(target_id) limit ?",
            [max_strings],
        ).fetchall()
    ]
    distinct = len(set(queries))
    dedup_seconds = best_of(2, encoder.encode, queries)
    # the same strings straight through sentence-transformers, every repeat encoded again
    raw_seconds = best_of(
        2,
        encoder.model.encode,
        queries,
        batch_size=encoder.batch_size,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    return {
        "titles": len(titles),
        "titles_per_s": round(len(titles) / title_seconds, 1),
        "prompt_queries": len(queries),
        "distinct_prompt_queries": distinct,
        "queries_per_s_with_dedup": round(len(queries) / dedup_seconds, 1),
        "queries_per_s_without_dedup": round(len(queries) / raw_seconds, 1),
    }


def bench_core(con, epochs: int) -> dict:
    from training.core import CoreConfig, train_core
    from training.sequence_data import CategoryCatalog, build_examples, build_vocabulary
    from warehouse.marts import read_sequence_marts

    sequences, splits, items = read_sequence_marts(con)
    config = CoreConfig(epochs=epochs, stopping_step=epochs)
    vocabulary = build_vocabulary(sequences, splits)
    train = build_examples(
        sequences,
        splits,
        vocabulary,
        split="train",
        max_len=config.max_seq_length,
        targets="all_items",
        item_categories=items.set_index("item_id")["category"],
    )
    valid = build_examples(sequences, splits, vocabulary, split="valid", max_len=config.max_seq_length)
    result = train_core(
        train, valid, vocabulary, CategoryCatalog.from_items(items, vocabulary), config, log=lambda _: None
    )
    return {
        "train_examples": len(train),
        "vocabulary_items": len(vocabulary.item_ids),
        "batch_size": config.train_batch_size,
        "epochs": len(result.history),
        "seconds_per_epoch": round(result.seconds_per_epoch, 2),
        "examples_per_s": round(len(train) / result.seconds_per_epoch, 1),
        "valid_ndcg@10_after": round(result.best_valid.get("ndcg@10", float("nan")), 4),
    }


def bench_query_memory(con, encoder, online_lookups: int) -> dict:
    import lancedb

    from fashionrec.layout import QUERY_MEMORY_TABLE
    from recommender.query_memory import (
        MemoryManifest,
        MemorySettings,
        QueryMemory,
        build_memory,
        normalize_query,
        prompt_candidates,
        to_utc_ns,
    )
    from recommender.query_memory_lookup import QueryMemoryLookup

    listings = con.execute(
        "select query_norm, item_id, organic_rank, first_shown_at from query_listings"
    ).df()
    prompts = con.execute(
        "select target_id, split, target_item_id, latest_query, latest_query_ts, target_ts from prompt_inputs"
    ).df()
    scratch = Path(tempfile.mkdtemp(prefix="fashionrec-bench-memory-"))  # a cold build, not a refresh
    db = lancedb.connect(str(scratch / "lancedb"))
    settings = MemorySettings()
    written, build_seconds = timed(build_memory, db, listings, encoder, settings)
    # re-materializing with the same queries and encoder embeds nothing again
    _, refresh_seconds = timed(build_memory, db, listings, encoder, settings)
    memory = QueryMemory.from_table(db.open_table(QUERY_MEMORY_TABLE))
    candidates, batch_seconds = timed(prompt_candidates, prompts, memory, encoder, settings)

    with_query = prompts.loc[prompts["latest_query"].map(normalize_query).notna()]
    vectors = encoder.encode(with_query["latest_query"].map(normalize_query).tolist())
    cutoffs = to_utc_ns(with_query["target_ts"])
    start = time.perf_counter()
    neighbours, _ = memory.nearest(vectors, cutoffs, settings.neighbours)
    memory.candidates(neighbours, cutoffs, settings.items_per_query)
    lookup_only_seconds = time.perf_counter() - start

    manifest = MemoryManifest.of(encoder, settings).save(scratch / "query_memory.json")
    online = QueryMemoryLookup.open(db, manifest, encoder=encoder)
    sample = with_query.head(online_lookups)
    _, online_seconds = timed(
        online.lookup_many, sample["latest_query"].tolist(), sample["target_ts"].tolist()
    )
    shutil.rmtree(scratch)
    valid = candidates.merge(prompts[["target_id", "split"]]).query("split == 'valid'")
    return {
        "memory_queries": written.rows,
        "memory_build_queries_per_s": round(written.rows / build_seconds, 1),
        "memory_refresh_unchanged_s": round(refresh_seconds, 2),
        "prompts": len(prompts),
        "batch_rows_per_s_with_encoding": round(len(prompts) / batch_seconds, 1),
        "batch_rows_per_s_lookup_only": round(len(with_query) / lookup_only_seconds, 1),
        "online_lookups_per_s": round(len(sample) / online_seconds, 1),
        "mean_candidates": round(float(candidates["n_candidates"].mean()), 2),
        "valid_hit_rate": round(float(valid["target_in_candidates"].mean()), 4)
        if len(valid)
        else float("nan"),
        "memory_vectors_in_ram_mb": round(memory.vectors.nbytes / 2**20, 1),
    }


def bench_preset(preset: str, home: Path | None, args) -> dict:
    import duckdb
    import torch

    from fashionrec.settings import Paths
    from recommender.encoder_specs import build_encoder

    work = home or Path(tempfile.mkdtemp(prefix=f"fashionrec-bench-{preset}-"))
    build_seconds = None
    if not Paths.under(work).duckdb_path.is_file():
        build_seconds = round(build_warehouse(preset, work), 1)
    encoder = build_encoder("sentence_transformers", show_progress=False)
    report = {
        "preset": preset,
        "home": str(work),
        "warehouse_build_seconds": build_seconds,
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "torch_threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
    }
    with duckdb.connect(str(Paths.under(work).duckdb_path), read_only=True) as con:
        report["encoding"] = bench_encoding(con, encoder, args.max_strings)
        report["query_memory"] = bench_query_memory(con, encoder, args.online_lookups)
        report["core"] = bench_core(con, args.core_epochs)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", action="append", help="preset (repeatable); default demo and luggage")
    parser.add_argument("--home", type=Path, help="an already built FASHIONREC_HOME to reuse (one preset)")
    parser.add_argument("--core-epochs", type=int, default=2, help="CORE epochs to time (default 2)")
    parser.add_argument(
        "--max-strings", type=int, default=2000, help="titles / queries to encode (default 2000)"
    )
    parser.add_argument("--online-lookups", type=int, default=200, help="single online lookups (default 200)")
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    args = parser.parse_args()
    presets = args.preset or ["demo", "luggage"]
    if args.home and len(presets) > 1:
        parser.error("--home holds one warehouse: pass a single --preset with it")
    reports = [bench_preset(p, args.home, args) for p in presets]
    text = json.dumps(reports, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
