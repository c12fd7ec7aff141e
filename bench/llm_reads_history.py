"""Does a short QLoRA fine-tune of the packaged SmolLM2 learn to read its prompt? A probe with controls.

A small task whose right candidate is set by the history and placed at a random position: the shopper
searched a product type and viewed one item; the four candidates are the searched type in four colors and
brands, and the right one is (``--task color``) the searched type in the viewed item's color, or
(``--task viewed``) the viewed item itself. Every example has fresh ids, so an adapter cannot memorise
them. Prompts are rendered with the pipeline's own template; the adapter trains with the pipeline's
QLoRA (weighted on the decision tokens) and ranks with the pipeline's ``CandidateRanker``. Printed:
held-out pick accuracy of the zero-shot model (``--zero-shot``) and of the fine-tuned one, beside the
first candidate and a seeded random one over the same candidates, and the training tokens/s.

    uv run python bench/llm_reads_history.py [--task color|viewed] [--train 384] [--held-out 48]
        [--epochs 1] [--learning-rate 2e-3] [--batch-size 4] [--zero-shot]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from recommender.candidate_ranking import CandidateRanker
from recommender.language_model import (
    DEFAULT_MAX_DEQUANTIZED_BYTES,
    dequantize_4bit_layers,
    load_recommender_model,
)
from recommender.prompts import PromptRenderer, target_response
from training.packaged_lm import convert_packaged_model
from training.qlora import QLoRAConfig, train_qlora

COLORS = ("Black", "White", "Red", "Blue", "Green", "Yellow")
TYPES = ("Sneaker", "Dress", "Jacket", "Handbag", "Scarf", "Boot")
BRANDS = ("Alvora", "Brisk", "Cadenza", "Dunmore", "Elmtree", "Fjord")
ID_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"


def examples(n: int, seed: int, kind: str) -> tuple[dict[str, dict], list[dict]]:
    """``n`` examples with their own catalog rows (demo-like ids)."""
    rng = random.Random(seed)
    items: dict[str, dict] = {}

    def new_item(product_type: str, color: str) -> str:
        item_id = "B0" + "".join(rng.choice(ID_LETTERS) for _ in range(8))
        title = f"{rng.choice(BRANDS)} {product_type} for everyday wear"
        items[item_id] = {"item_id": item_id, "title": title, "category": "Fashion", "color": color}
        return item_id

    out = []
    for _ in range(n):
        wanted, other = rng.sample(TYPES, 2)
        colors = rng.sample(COLORS, 4)
        candidates = [new_item(wanted, color) for color in colors]
        target = candidates[0]
        viewed = new_item(other, colors[0]) if kind == "color" else target
        rng.shuffle(candidates)  # the right one at a random place
        history = [{"action": "search", "query": wanted.lower()}, {"action": "click", **items[viewed]}]
        out.append({"history": history, "candidates": candidates, "target": target})
    return items, out


def accuracy(ranker: CandidateRanker, prompts: list[str], rows: list[dict]) -> float:
    ranked = ranker.rank_many(prompts, [row["candidates"] for row in rows], progress=False)
    hits = [ranking.item_ids[0] == row["target"] for ranking, row in zip(ranked.rankings, rows, strict=True)]
    return sum(hits) / len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", choices=("color", "viewed"), default="color")
    parser.add_argument("--train", type=int, default=384)
    parser.add_argument("--held-out", type=int, default=48)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--zero-shot", action="store_true")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="llm_reads_history_"))
    base = convert_packaged_model(scratch / "smollm2", log=print).model_dir
    train_items, train = examples(args.train, 1, args.task)
    held_items, held_out = examples(args.held_out, 2, args.task)
    renderer = PromptRenderer(lambda text: 0, catalog={**train_items, **held_items})

    def prompts(rows: list[dict]) -> list[str]:
        return [renderer.render(row["history"], row["candidates"]).prompt_text for row in rows]

    first = sum(row["candidates"][0] == row["target"] for row in held_out) / len(held_out)
    rng = random.Random(3)
    chance = sum(rng.choice(row["candidates"]) == row["target"] for row in held_out) / len(held_out)
    print(f"task {args.task}: {len(held_out)} held-out prompts; first {first:.3f}, random {chance:.3f}")
    if args.zero_shot:
        model, tokenizer = load_recommender_model(base, None)
        zero_shot = accuracy(CandidateRanker(model, tokenizer), prompts(held_out), held_out)
        print(f"zero-shot accuracy {zero_shot:.3f}")
    responses = [
        target_response(row["target"], train_items[row["target"]]["title"], row["candidates"])
        for row in train
    ]
    config = QLoRAConfig(
        learning_rate=args.learning_rate,
        batch_size=args.batch_size,
        base_epochs=args.epochs,
        high_perplexity_epochs=1,
        warmup_ratio=0.1,
    )
    started = time.perf_counter()
    result = train_qlora(base, prompts(train), responses, scratch / "adapter", config)
    print(
        f"QLoRA: {result.n_steps} steps in {time.perf_counter() - started:.0f} s, "
        f"{result.tokens_per_second:.0f} train tokens/s"
    )
    model, tokenizer = load_recommender_model(base, result.adapter_dir)
    dequantize_4bit_layers(model, DEFAULT_MAX_DEQUANTIZED_BYTES)  # as the pipeline ranks on CPU
    ranker = CandidateRanker(model, tokenizer)
    print(
        f"fine-tuned accuracy: held-out {accuracy(ranker, prompts(held_out), held_out):.3f}, "
        f"train (first 24) {accuracy(ranker, prompts(train[:24]), train[:24]):.3f}"
    )


if __name__ == "__main__":
    main()
