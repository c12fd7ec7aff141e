"""QLoRA's hyperparameters (arXiv 2410.11327 §5.1, Dettmers et al. 2023) with the paper's defaults.

They live apart from the training code in ``training.qlora`` (which re-exports them) so that the Dagster
code location reads the defaults of the ``lora_adapter`` asset's config without importing torch or peft.
``TuningGrid`` is the grid that asset chooses the learning rate and steps from (``training.adapter_tuning``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class QLoRAConfig:
    lora_r: int = 16  # paper §5.1
    lora_alpha: int = 16  # paper §5.1
    lora_dropout: float = 0.05  # paper §5.1
    # QLoRA (Dettmers et al. 2023, §4): adapters on every linear layer are needed to match full tuning
    target_modules: str | tuple[str, ...] = "all-linear"
    # The paper used 2e-5 for Falcon-7B and QLoRA 2e-4 for 7B models; the 135M model trained for a
    # few dozen steps on CPU needs larger ones: on the reading task (evaluation.reading_task) 2e-3
    # learns to pick in 24 steps of 4 prompts.
    learning_rate: float = 2e-3
    base_epochs: int = 1  # paper §5.1: one epoch over all prompts
    high_perplexity_fraction: float = 0.2  # paper §5.1: top 20 % by perplexity ...
    high_perplexity_epochs: int = 3  # ... are trained for 3 epochs
    batch_size: int = 8
    gradient_accumulation_steps: int = 1
    warmup_ratio: float = 0.03  # QLoRA's recipe
    max_grad_norm: float = 0.3  # QLoRA's recipe: clipping keeps 4-bit fine-tuning stable
    lr_scheduler_type: str = "cosine"
    weight_decay: float = 0.0
    # paper §5.1: at most 1024 tokens per interaction sequence (prompt + response)
    max_sequence_tokens: int = 1024
    # loss weight of the answer tokens that do not choose the item (the format's tags; the title of the
    # paper's answer, which grounded decoding fixes) against 1 for the tokens that name it
    answer_token_weight: float = 0.1
    # recomputing activations saves memory for 7B models on a GPU and only costs time on small ones
    gradient_checkpointing: bool = False
    seed: int = 0
    # shares of the schedule's optimizer steps at which the adapter is also saved (under the output
    # folder's ADAPTER_CHECKPOINTS_DIR), to choose the number of steps on valid prompts; the end always is
    checkpoint_fractions: tuple[float, ...] = ()


def check_step_shares(shares: tuple[float, ...] | list[float]) -> None:
    """ValueError naming every share of the training steps outside (0, 1]."""
    bad = [share for share in shares if not 0 < share <= 1]
    if bad:
        raise ValueError(f"checkpoint shares {bad} must lie in (0, 1]: shares of the training steps")


@dataclass(frozen=True)
class TuningGrid:
    """Learning rates to train with, and the shares of the schedule's steps to score each one at."""

    learning_rates: tuple[float, ...]
    checkpoints: tuple[float, ...] = (1.0,)

    def __post_init__(self) -> None:
        if not self.learning_rates or any(rate <= 0 for rate in self.learning_rates):
            raise ValueError(f"learning rates {list(self.learning_rates)}: give one or more, each > 0")
        if not self.checkpoints:
            raise ValueError("checkpoints: give one or more shares of the steps in (0, 1]")
        check_step_shares(self.checkpoints)
        if len(set(self.learning_rates)) < len(self.learning_rates):
            raise ValueError(f"learning rates {list(self.learning_rates)} repeat a value")

    @property
    def size(self) -> int:
        return len(self.learning_rates) * len(set(self.checkpoints))
