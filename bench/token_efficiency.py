"""Token efficiency of the two ways an LLM reads a history here (the comparison of I-LLMRec's Figure 1):
the LLM stage's attribute prompt (the paper's Figure 3 template, each event a line of attributes) against
I-LLMRec's image prompt (each item its title and one image token, or its image token alone), on the same
targets.

For each format it prints tokens per prompt (mean, median, max), history items per prompt, tokens per
history item and prompts/s of one forward pass of the base LM over the prompt in batches (the attribute
prompt's prefill, which every decoding of the LLM stage pays before it scores or generates anything;
I-LLMRec's whole ranking, the forward pass plus the product with the category's item vectors).

Runs on a FASHIONREC_HOME where ``prompts`` and ``illmrec`` are materialized:

    uv run python bench/token_efficiency.py [--home DIR] [--split valid] [--targets 100] [--batch-size 8]

Numbers depend on the machine: the device and torch thread count are printed with them.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import duckdb
import lancedb
import numpy as np
import torch

# the repository first: bench/warehouse.py would otherwise stand in for the warehouse package
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fashionrec.settings import paths  # noqa: E402
from training.illmrec_fit import load_ranker  # noqa: E402
from training.illmrec_prompts import PromptEncoder  # noqa: E402
from training.illmrec_training import split_histories  # noqa: E402
from warehouse.marts import read_item_events, read_item_texts, read_splits  # noqa: E402


def prefill_per_second(lm, tokenizer, texts: list[str], batch_size: int) -> float:
    """Prompts/s of one forward pass over ``texts`` (logits of the last position only)."""
    start = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(texts), batch_size):
            batch = tokenizer(texts[i : i + batch_size], return_tensors="pt", padding=True).to(lm.device)
            lm(**batch, logits_to_keep=1)
    return len(texts) / (time.perf_counter() - start)


def ranking_per_second(ranker, histories, rows: np.ndarray, batch_size: int) -> float:
    start = time.perf_counter()
    for i in range(0, len(histories), batch_size):
        ranker.score(histories[i : i + batch_size], rows)
    return len(histories) / (time.perf_counter() - start)


def row(name: str, tokens: np.ndarray, items: np.ndarray, per_second: float) -> str:
    per_item = tokens.sum() / max(items.sum(), 1)
    return (
        f"{name:<32} {tokens.mean():>8.1f} {np.median(tokens):>8.0f} {tokens.max():>6d} "
        f"{items.mean():>7.1f} {per_item:>9.1f} {per_second:>10.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--home", type=Path, default=None, help="FASHIONREC_HOME (default: the environment's)"
    )
    parser.add_argument("--split", default="valid", choices=["valid", "test"])
    parser.add_argument("--targets", type=int, default=100, help="targets sampled (the same for each format)")
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    if args.home:
        os.environ["FASHIONREC_HOME"] = str(args.home)
    home = paths()
    with duckdb.connect(str(home.duckdb_path), read_only=True) as con:
        prompts = con.execute(
            "select target_id, category, prompt_text, n_prompt_tokens, n_history_events_kept from prompts "
            "where split = ? and variant = 'full' order by target_id",
            [args.split],
        ).df()
        items, sequences, splits = read_item_texts(con), read_item_events(con), read_splits(con)
    ranker = load_ranker(home.artifacts.illmrec("full"), lancedb.connect(str(home.lancedb_dir)), items)
    histories = split_histories(
        sequences, splits, ranker.features.item_ids, args.split, ranker.heads.config.max_history
    )
    position = {target: i for i, target in enumerate(histories.target_ids)}
    prompts = prompts[prompts["target_id"].isin(position)]
    prompts = prompts.sample(n=min(args.targets, len(prompts)), random_state=0).sort_values("category")
    chosen = [histories.rows[position[t]] for t in prompts["target_id"]]
    tokenizer = ranker.encoder.tokenizer
    tokenizer.padding_side = "left"
    print(
        f"{len(prompts)} {args.split} targets, device {ranker.lm.device}, {torch.get_num_threads()} torch "
        f"threads, base model {Path(str(ranker.lm.name_or_path)).name}"
    )
    columns = ("tok/mean", 8), ("tok/p50", 8), ("max", 6), ("items", 7), ("tok/item", 9), ("prompts/s", 10)
    print(f"{'format':<32} " + " ".join(f"{name:>{width}}" for name, width in columns))
    attribute = prompts["n_prompt_tokens"].to_numpy(np.int64)
    speed = prefill_per_second(ranker.lm, tokenizer, prompts["prompt_text"].tolist(), args.batch_size)
    print(row("attribute prompt (LLM stage)", attribute, prompts["n_history_events_kept"].to_numpy(), speed))
    categories = items["category"].to_numpy()
    largest = max((np.flatnonzero(categories == c) for c in np.unique(categories)), key=len)
    trained = ranker.encoder
    for item_text in ("title", "none"):
        # the other format's speed is timed with the same heads (its scores mean nothing untrained)
        ranker.encoder = PromptEncoder(tokenizer, items["title"].tolist(), item_text)
        tokens = np.array([len(ranker.encoder.encode(h).input_ids) for h in chosen], dtype=np.int64)
        name = f"image prompt ({'title + image' if item_text == 'title' else 'image only'})"
        name += ", trained" if item_text == trained.item_text else ""
        speed = ranking_per_second(ranker, chosen, largest, args.batch_size)
        print(row(name, tokens, np.array([len(h) for h in chosen]), speed))
    print(f"(I-LLMRec's prompts/s include ranking the largest category, {len(largest)} items)")


if __name__ == "__main__":
    main()
