"""LLM-stage benchmark: QLoRA training tokens/s and answering prompts/s in each decoding (ranked, grounded,
free), on the machine's preferred device (a CUDA GPU when there is one, else the CPU).

Runs on a FASHIONREC_HOME where the LLM group has been materialized (``fashionrec run 'group:llm'``):
it reads the ``prompts`` table, the base model recorded by ``base_lm`` and the adapter of
``lora_adapter``, then measures

- training: QLoRA (4-bit NF4 base + LoRA, the paper's high-perplexity schedule) on a sample of train
  prompts, into a scratch folder: optimizer steps/s and tokens/s (prompt + response tokens);
- answering: the same sample of valid prompts answered in each decoding (``ranked``: every candidate
  scored; ``grounded``: one constrained answer; ``free``: the paper's sampling, 64 new tokens,
  temperature 0.05, top-p 0.95): prompts/s, format-valid rate, valid-id rate and exact-id hit rate
  (the answer's id is the target).

On a GPU ``--train-prompts 0`` times nothing and ``--train-prompts -1`` trains on every train prompt,
as the ``lora_adapter`` asset does on CUDA; within 10 minutes on one GPU for the demo preset.

    uv run python bench/llm.py [--home DIR] [--variant full] [--train-prompts 64] [--prompts 64]
        [--batch-size 16] [--decodings ranked grounded free]

Numbers depend on the machine: the device, torch thread count and CPU count are printed with them.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import duckdb
import torch

from fashionrec.settings import paths
from recommender.generation import GenerationSettings, Recommender
from recommender.generation_settings import DECODINGS
from recommender.language_model import load_answering_model, preferred_device, read_base_model_pointer
from recommender.prompt_table import sample_rows
from training.qlora import QLoRAConfig, train_qlora


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--home", type=Path, default=None, help="FASHIONREC_HOME (default: the environment's)"
    )
    parser.add_argument("--variant", default="full")
    parser.add_argument(
        "--train-prompts", type=int, default=64, help="train prompts for the QLoRA timing (0: skip, -1: all)"
    )
    parser.add_argument("--decodings", nargs="+", choices=DECODINGS, default=list(DECODINGS))
    parser.add_argument("--prompts", type=int, default=64, help="valid prompts to generate for")
    parser.add_argument("--batch-size", type=int, default=GenerationSettings.batch_size)
    args = parser.parse_args()
    if args.home:
        os.environ["FASHIONREC_HOME"] = str(args.home)
    home = paths()
    base_model = read_base_model_pointer(home.artifacts.base_model_pointer)
    adapter = home.artifacts.adapter(args.variant)
    print(f"device {preferred_device()}, torch threads {torch.get_num_threads()}, cpus {os.cpu_count()}")
    print(f"base model {base_model}, adapter {adapter}")

    with duckdb.connect(str(home.duckdb_path), read_only=True) as con:
        train = con.execute(
            "select prompt_text, response_text from prompts "
            "where variant = ? and split = 'train' order by target_id",
            [args.variant],
        ).fetchall()
        valid = con.execute(
            "select prompt_text, category, target_item_id, candidate_item_ids from prompts "
            "where variant = ? and split = 'valid' order by target_id",
            [args.variant],
        ).fetchall()
        catalog = con.execute("select item_id, category, title from items order by item_id").fetchall()

    report: dict[str, object] = {"device": str(preferred_device()), "torch_threads": torch.get_num_threads()}
    if args.train_prompts:
        chosen = sample_rows(train, args.train_prompts if args.train_prompts > 0 else None, seed=0)
        with tempfile.TemporaryDirectory() as scratch:
            result = train_qlora(
                base_model,
                [r[0] for r in chosen],
                [r[1] for r in chosen],
                Path(scratch) / "adapter",
                QLoRAConfig(),
            )
        report["train"] = {
            "prompts": result.n_examples,
            "steps": result.n_steps,
            "tokens": result.train_tokens,
            "seconds": round(result.train_seconds, 2),
            "tokens_per_second": round(result.tokens_per_second, 1),
        }
        print(
            f"QLoRA: {result.train_tokens:,} tokens in {result.train_seconds:.1f} s = "
            f"{result.tokens_per_second:,.0f} tokens/s ({result.n_steps} steps)"
        )

    chosen = sample_rows(valid, args.prompts, seed=0)
    model, tokenizer, _ = load_answering_model(base_model, adapter)
    recommender = Recommender(
        model,
        tokenizer,
        [c[0] for c in catalog],
        [c[1] for c in catalog],
        GenerationSettings(batch_size=args.batch_size),
        item_titles=[c[2] for c in catalog],
    )
    prompts, categories = [r[0] for r in chosen], [r[1] for r in chosen]
    shortlists = [list(r[3]) if r[3] is not None else None for r in chosen]
    warm = slice(0, args.batch_size)
    recommender.answer(prompts[warm], categories[warm], shortlists[warm], "grounded", progress=False)
    report["answering"] = {}
    print(
        "\n| decoding | prompts | prompts/s | format-valid | valid id | exact-id hit |\n"
        "|---|---|---|---|---|---|"
    )
    for decoding in args.decodings:
        started = time.perf_counter()
        run = recommender.answer(prompts, categories, shortlists, decoding, progress=False)
        seconds = time.perf_counter() - started
        hit = sum(row.item_id == r[2] for row, r in zip(run.rows, chosen, strict=True)) / len(chosen)
        report["answering"][decoding] = {
            "prompts": len(chosen),
            "prompts_per_second": round(len(chosen) / seconds, 3),
            "format_ok_rate": round(run.format_ok_rate, 4),
            "valid_id_rate": round(run.id_in_catalog_rate, 4),
            "exact_id_hit_rate": round(hit, 4),
        }
        print(
            f"| {decoding} | {len(chosen)} | {len(chosen) / seconds:.2f} | {run.format_ok_rate:.1%} | "
            f"{run.id_in_catalog_rate:.1%} | {hit:.1%} |"
        )

    out = home.reports.bench("llm")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"\nwritten {out}")


if __name__ == "__main__":
    main()
