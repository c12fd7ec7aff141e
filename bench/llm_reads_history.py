"""Does a short QLoRA fine-tune of the packaged SmolLM2 learn to read its prompt? A probe with controls.

The task (``evaluation.reading_task``) is one whose right candidate is set by the history and placed at a
random place: the shopper searched a product type and viewed one item; the four candidates are the
searched type in four colors, and the right one is (``--task color``) the searched type in the viewed
item's color, or (``--task viewed``) the viewed item itself. Every example has fresh ids, so an adapter
cannot memorise them. Prompts are rendered with the pipeline's own template; the adapter trains with the
pipeline's QLoRA (weighted on the decision tokens) and ranks with the pipeline's ``CandidateRanker``.
Printed: held-out pick accuracy of the zero-shot model (``--zero-shot``) and of the fine-tuned one,
beside the first candidate and a seeded random one over the same candidates, and the training tokens/s.
``tests/test_packaged_lm.py`` runs the ``viewed`` task at the size ``make test`` affords.

    uv run python bench/llm_reads_history.py [--task viewed|color] [--train 384] [--held-out 48]
        [--epochs 1] [--learning-rate 2e-3] [--batch-size 4] [--zero-shot] [--template FILE]
        [--answer-token-weight 0.1] [--max-grad-norm 0.3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from evaluation.reading_task import TASKS, PickAccuracy, ReadingExample, pick_accuracy, reading_task
from recommender.candidate_ranking import CandidateRanker
from recommender.language_model import load_answering_model, load_recommender_model
from training.packaged_lm import convert_packaged_model
from training.qlora import QLoRAConfig, train_qlora


def accuracy(ranker: CandidateRanker, prompts: list[str], examples: list[ReadingExample]) -> PickAccuracy:
    ranked = ranker.rank_many(prompts, [e.candidates for e in examples], progress=False)
    return pick_accuracy([r.item_ids[0] for r in ranked.rankings], examples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", choices=TASKS, default="color")
    parser.add_argument("--train", type=int, default=384)
    parser.add_argument("--held-out", type=int, default=48)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--zero-shot", action="store_true")
    parser.add_argument("--answer-token-weight", type=float, default=QLoRAConfig.answer_token_weight)
    parser.add_argument("--max-grad-norm", type=float, default=QLoRAConfig.max_grad_norm)
    parser.add_argument("--template", help="a prompt template file (default: the pipeline's)")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="llm_reads_history_"))
    base = convert_packaged_model(scratch / "smollm2", log=print).model_dir
    train = reading_task(args.task, args.train, seed=1)
    held_out = reading_task(args.task, args.held_out, seed=2)
    controls = pick_accuracy([e.candidates[0] for e in held_out.examples], held_out.examples)
    print(
        f"task {args.task}: {controls.n} held-out prompts; controls first {controls.first:.3f}, "
        f"random {controls.random:.3f}"
    )
    if args.zero_shot:
        model, tokenizer = load_recommender_model(base, None)
        zero_shot = accuracy(
            CandidateRanker(model, tokenizer, held_out.titles),
            held_out.prompts(args.template),
            held_out.examples,
        )
        print(f"zero-shot accuracy {zero_shot.model:.3f}")
    config = QLoRAConfig(
        learning_rate=args.learning_rate,
        batch_size=args.batch_size,
        base_epochs=args.epochs,
        high_perplexity_epochs=1,
        warmup_ratio=0.1,
        answer_token_weight=args.answer_token_weight,
        max_grad_norm=args.max_grad_norm,
    )
    started = time.perf_counter()
    result = train_qlora(base, train.prompts(args.template), train.answers(), scratch / "adapter", config)
    print(
        f"QLoRA: {result.n_steps} steps in {time.perf_counter() - started:.0f} s, "
        f"{result.tokens_per_second:.0f} train tokens/s, {result.train_tokens} tokens"
    )
    model, tokenizer, _ = load_answering_model(base, result.adapter_dir)  # as the pipeline ranks
    ranker = CandidateRanker(model, tokenizer, {**train.titles, **held_out.titles})
    held = accuracy(ranker, held_out.prompts(args.template), held_out.examples)
    seen = accuracy(ranker, train.prompts(args.template)[:24], train.examples[:24])
    print(
        f"fine-tuned accuracy: held-out {held.model:.3f} (margin {held.margin:+.3f}), "
        f"train (first 24) {seen.model:.3f}"
    )


if __name__ == "__main__":
    main()
