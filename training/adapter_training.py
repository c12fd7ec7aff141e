"""Training one named LoRA adapter: QLoRA (``training.qlora``) on the train prompts its selection keeps
(``training.adapter_selection``), the selection saved beside the weights, and the facts of the run."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from training import distributed
from training.adapter_selection import AdapterSelection
from training.qlora import QLoRAConfig, QLoRAResult, train_qlora


@dataclass(frozen=True)
class AdapterTraining:
    selection: AdapterSelection  # with the counts of the prompts and users it was trained on
    result: QLoRAResult
    config: QLoRAConfig
    base_model: str
    prompts_available: int  # the variant's train prompts before the selection
    cap: int | None  # the sample size the prompts were capped at; None: no cap

    def facts(self) -> dict[str, Any]:
        """What the run was and did, as plain values (rounded for display)."""
        result, losses = self.result, self.result.losses
        return {
            "variant": self.selection.variant,
            "adapter": self.selection.adapter,
            "train_user_fraction": self.selection.train_user_fraction,
            "train_users_used": self.selection.counts["train_users"],
            "base_model": self.base_model,
            "train_prompts_available": self.prompts_available,
            "train_prompts_used": result.n_examples,
            "train_prompt_cap": self.cap if self.cap is not None else "none",
            "high_perplexity_prompts": result.n_high_perplexity,
            "high_perplexity_threshold": round(result.perplexity_threshold, 3),
            "mean_response_perplexity_before": round(result.mean_perplexity, 3),
            "truncated_examples": result.n_truncated,
            "optimizer_steps": result.n_steps,
            "train_tokens": result.train_tokens,
            "train_seconds": round(result.train_seconds, 1),
            "train_tokens_per_second": round(result.tokens_per_second, 1),
            "trainable_parameters": result.n_trainable_parameters,
            "total_parameters": result.n_parameters,
            "first_loss": round(losses[0][1], 4) if losses else 0.0,
            "final_loss": round(losses[-1][1], 4) if losses else 0.0,
            "learning_rate": self.config.learning_rate,
        }


def train_adapter(
    base_model: str,
    rows: Sequence[Mapping[str, Any]],
    selection: AdapterSelection,
    cap: int | None,
    config: QLoRAConfig,
    out_dir: Path,
    log: Callable[[str], None] = print,
) -> AdapterTraining:
    """Train ``selection``'s adapter on its share of ``rows`` (the variant's train rows of the ``prompts``
    table), the sample drawn with the training seed, and save it in ``out_dir``."""
    chosen = selection.train_prompts(rows, cap, config.seed)
    n_users = len({row["user_id"] for row in chosen})
    log(
        f"QLoRA {selection.adapter} on {len(chosen)} of {len(rows)} train prompts ({selection.variant}, "
        f"{n_users} users)"
    )
    prompts = [row["prompt_text"] for row in chosen]
    result = train_qlora(base_model, prompts, [row["response_text"] for row in chosen], out_dir, config)
    trained = replace(selection, counts={"train_prompts": len(chosen), "train_users": n_users})
    if distributed.is_main():  # under torchrun the first process saves (training.qlora)
        trained.save(result.adapter_dir)  # the generations asset checks the variant against it
    return AdapterTraining(trained, result, config, base_model, len(rows), cap)
