"""A few QLoRA steps on a fixed task, for ``tests/test_distributed.py``: run alone (``python
tests/qlora_steps.py BASE_MODEL OUT``) or under ``torchrun --nproc-per-node 2``, it trains the adapter with
``training.qlora.train_qlora`` and writes the logged losses to OUT/losses.json beside the adapter (rank 0).

LoRA dropout is off, so that the only difference between one process and two is how each step's prompts
are split. The answers differ in length, so the processes' shares of a step weigh differently in the loss
(a mean per process would not be the step's mean).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script by torchrun, from any directory
    sys.path.insert(0, str(ROOT))

from recommender.prompts import render_response  # noqa: E402
from training.base_lm import BaseLMConfig, build_domain_base_lm  # noqa: E402
from training.distributed import is_main, position  # noqa: E402
from training.qlora import QLoRAConfig, train_qlora  # noqa: E402

# 10 prompts, the hardest one twice more: 12 examples, 3 steps of 4 (2 per process). A short last step
# would differ: accelerate fills it up with prompts from the start under torchrun.
N_PROMPTS = 10
CONFIG = QLoRAConfig(
    batch_size=4,
    high_perplexity_fraction=0.1,
    lora_dropout=0.0,
    learning_rate=1e-3,
    warmup_ratio=0.0,
    lr_scheduler_type="constant",
    max_sequence_tokens=128,
)


# a 2-layer Llama, pretrained for an epoch on the task's text in a few seconds (also tests/test_qlora.py's)
TINY_BASE = BaseLMConfig(
    vocab_size=512,
    hidden_size=128,
    intermediate_size=256,
    num_hidden_layers=2,
    num_attention_heads=2,
    block_size=64,
    epochs=1.0,
    batch_size=8,
)


def pairs(n: int) -> tuple[list[str], list[str]]:
    prompts = [
        f"User search keyword <black dress {i:02d}>, then click product\n### Response:\n" for i in range(n)
    ]
    titles = [f"Alvora Black{' Long' * (i % 3)}{' Silk Maxi' * (i % 2)} Dress Size {i % 4}" for i in range(n)]
    responses = [render_response(f"I{i:03d}", title) for i, title in zip(range(n), titles, strict=True)]
    return prompts, responses


def build_base(out: Path) -> Path:
    """A 2-layer Llama pretrained for an epoch on the task's text, saved in ``out`` (a few seconds)."""
    prompts, responses = pairs(40)
    build_domain_base_lm(prompts + responses, out, TINY_BASE)
    return out


def main(base_model: str, out: Path) -> None:
    torch.set_num_threads(1)
    prompts, responses = pairs(N_PROMPTS)
    result = train_qlora(base_model, prompts, responses, out / "adapter", CONFIG, torch.device("cpu"))
    if is_main():
        record = {"world": position()[1], "losses": result.losses, "steps": result.n_steps}
        (out / "losses.json").write_text(json.dumps(record))


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
