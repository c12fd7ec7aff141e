"""QLoRA fine-tuning of the base model on recommendation prompts (arXiv 2410.11327 §4.3, §5.1).

The base model is frozen in 4-bit NF4 with double quantisation; LoRA adapters (r=16, alpha=16,
dropout 0.05) on every linear layer are the only trained weights. The loss covers the response tokens
only: the model is taught to answer, not to reproduce prompts. Within the response it is weighted on
the decision: the tokens that name the chosen item weigh 1 (after a prompt with candidates its title and
id, which the model copies from the candidate's line; else the id), the rest of the answer (the format's
tags, the paper's title) ``answer_token_weight``. The paper's schedule is kept: one
epoch over all prompts, three for the 20 % whose perplexity under the base model is highest, measured on
the decision tokens (the hard choices, not the unusual titles). Passes run in order (all prompts, then
the hard ones twice), each shuffled, through transformers' ``Trainer``. The examples, their left-padded
batches and the weighted loss are in ``training.qlora_batches``.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
from tqdm.auto import tqdm
from transformers import TrainerCallback, TrainingArguments

from fashionrec.layout import ADAPTER_CHECKPOINTS_DIR, LOSS_CURVE_PLOT, TRAINING_SUMMARY_FILE
from recommender.language_model import load_quantized_model, load_tokenizer, preferred_device
from training import distributed
from training.qlora_batches import (
    ResponseOnlyCollator,
    ScheduledExamples,
    TrainingExample,
    WeightedLossTrainer,
    tail_token_losses,
    tokenize_examples,
)
from training.qlora_config import QLoRAConfig, check_step_shares


@dataclass(frozen=True)
class PerplexitySchedule:
    order: list[int]  # example indices in training order
    high_perplexity: list[int]  # examples trained for the extra epochs
    threshold: float  # lowest perplexity among them
    pass_starts: list[int]  # position in ``order`` where each pass begins


@dataclass
class QLoRAResult:
    adapter_dir: Path
    n_examples: int
    n_high_perplexity: int
    perplexity_threshold: float
    mean_perplexity: float
    n_truncated: int
    n_steps: int
    train_tokens: int
    train_seconds: float
    n_trainable_parameters: int
    n_parameters: int
    loss_plot: Path
    losses: list[tuple[int, float]] = field(default_factory=list)
    # the adapter saved at each checkpoint step, the last one (``adapter_dir``) included
    checkpoints: dict[int, Path] = field(default_factory=dict)

    @property
    def tokens_per_second(self) -> float:
        return self.train_tokens / self.train_seconds if self.train_seconds > 0 else float("nan")


@contextmanager
def unpacked_cpu_4bit(model: torch.nn.Module) -> Iterator[None]:
    """Run 4-bit layers in eval mode without bitsandbytes' CPU inference repacking.

    On CPUs with AVX512-BF16, bitsandbytes repacks 4-bit weights on their first eval-mode forward
    for a fused inference kernel. That kernel has no backward pass: training after it silently loses
    the gradient through every base layer. Scoring prompts before training must leave weights as they are.
    """
    import bitsandbytes as bnb  # imported when used: loading the code location must not load its kernels

    layers = [module for module in model.modules() if isinstance(module, bnb.nn.Linear4bit)]
    saved = [getattr(layer, "support_avx512bf16_for_cpu", False) for layer in layers]
    for layer in layers:
        layer.support_avx512bf16_for_cpu = False
    try:
        yield
    finally:
        for layer, flag in zip(layers, saved, strict=True):
            layer.support_avx512bf16_for_cpu = flag


def response_perplexities(
    model: torch.nn.Module, examples: Sequence[TrainingExample], pad_token_id: int, batch_size: int = 8
) -> list[float]:
    """exp(mean negative log-likelihood of each example's decision tokens) under ``model`` (all its
    response tokens when it marks no decision)."""
    collate = ResponseOnlyCollator(pad_token_id)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    # longest first keeps similar lengths together; results go back to example order
    order = sorted(range(len(examples)), key=lambda i: -len(examples[i].input_ids))
    by_index: dict[int, float] = {}
    with torch.inference_mode(), unpacked_cpu_4bit(model):
        for start in tqdm(range(0, len(order), batch_size), desc="scoring prompts", unit="batch"):
            batch_indices = order[start : start + batch_size]
            features = []
            for i in batch_indices:
                mask = examples[i].decision_mask()
                features.append(
                    {
                        "input_ids": examples[i].input_ids,
                        "labels": examples[i].labels,
                        "weights": [float(flag) for flag in mask],
                    }
                )
            batch = {name: tensor.to(device) for name, tensor in collate(features).items()}
            tail = max(examples[i].n_supervised_tail for i in batch_indices) or 1
            weights = batch["loss_weights"][:, -tail:]
            losses = tail_token_losses(model, batch, tail)
            counted = weights.sum(dim=1).clamp(min=1)
            for i, value in zip(
                batch_indices, ((losses * weights).sum(dim=1) / counted).tolist(), strict=True
            ):
                by_index[i] = math.exp(min(value, 50.0))  # cap: exp overflows past ~709
    model.train(was_training)
    return [by_index[i] for i in range(len(examples))]


def perplexity_schedule(perplexities: Sequence[float], config: QLoRAConfig) -> PerplexitySchedule:
    """Training order: ``base_epochs`` passes over everything, extra passes over the hardest fraction."""
    n = len(perplexities)
    n_high = min(n, round(config.high_perplexity_fraction * n))
    ranked = sorted(range(n), key=lambda i: -perplexities[i])
    high = sorted(ranked[:n_high])
    high_set = set(high)
    generator = random.Random(config.seed)
    order: list[int] = []
    pass_starts: list[int] = []
    for pass_number in range(max(config.base_epochs, config.high_perplexity_epochs)):
        members = [
            i
            for i in range(n)
            if pass_number < (config.high_perplexity_epochs if i in high_set else config.base_epochs)
        ]
        if not members:
            continue
        generator.shuffle(members)
        pass_starts.append(len(order))
        order.extend(members)
    threshold = min((perplexities[i] for i in high), default=float("nan"))
    return PerplexitySchedule(order=order, high_perplexity=high, threshold=threshold, pass_starts=pass_starts)


def checkpoint_steps(fractions: Sequence[float], n_steps: int) -> list[int]:
    """The optimizer steps (1-based, ascending, distinct) at the ``fractions`` of ``n_steps``, the last one
    excluded (it is always saved); ValueError for a fraction outside (0, 1]."""
    check_step_shares(fractions)
    steps = {min(n_steps, max(1, round(fraction * n_steps))) for fraction in fractions}
    return sorted(steps - {n_steps})


class SaveAdapterAt(TrainerCallback):
    """Saves the LoRA weights after each of ``steps`` in ``folder``/step-<n> (the Trainer's own checkpoints
    would also write the optimizer state, many times the adapter's size, for nothing)."""

    def __init__(self, steps: Sequence[int], folder: Path) -> None:
        self.folders = {step: folder / f"step-{step}" for step in steps}

    def on_step_end(self, args, state, control, model=None, **kwargs):
        folder = self.folders.get(state.global_step)
        # under torchrun every process holds the same weights: the first one saves them
        if folder is not None and model is not None and state.is_world_process_zero:
            model.save_pretrained(folder, safe_serialization=True)
        return control


def lora_config(config: QLoRAConfig) -> LoraConfig:
    target = config.target_modules if isinstance(config.target_modules, str) else list(config.target_modules)
    return LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=target,
        bias="none",
        task_type="CAUSAL_LM",
    )


def prepare_qlora_model(base_model: str, config: QLoRAConfig, device: torch.device | None = None) -> Any:
    """The 4-bit base ready for k-bit training (norms in float32, input gradients on), before LoRA."""
    model = load_quantized_model(base_model, device or preferred_device())
    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=config.gradient_checkpointing)


def train_qlora(
    base_model: str,
    prompts: Sequence[str],
    responses: Sequence[str],
    out_dir: Path,
    config: QLoRAConfig | None = None,
    device: torch.device | None = None,
) -> QLoRAResult:
    """Fine-tune LoRA adapters on (prompt, response) pairs; save them as safetensors in ``out_dir``.

    Under ``torchrun --nproc-per-node N`` (``training.distributed``: gloo on CPU, nccl with one GPU per
    process) the Trainer runs data-parallel: each process takes ``batch_size / N`` of every step's prompts
    and the loss is scaled to the whole step's weights (``WeightedLossTrainer``), so N processes take
    the steps of one. Each process loads the model on its own device and scores the perplexities of all
    prompts (the schedule must be the same everywhere); the first one saves, and the others wait for it.
    """
    config = config or QLoRAConfig()
    if not prompts:
        raise ValueError("no training prompts: the prompts table has no train rows for this variant")
    distributed.join()
    rank, world = distributed.position()
    if config.batch_size % world:
        raise ValueError(
            f"batch_size {config.batch_size} must be a multiple of the {world} torchrun processes"
        )
    device = device or preferred_device()
    torch.manual_seed(config.seed)
    tokenizer = load_tokenizer(base_model)
    examples, n_truncated = tokenize_examples(
        tokenizer, prompts, responses, config.max_sequence_tokens, config.answer_token_weight
    )

    model = prepare_qlora_model(base_model, config, device)
    perplexities = response_perplexities(model, examples, tokenizer.pad_token_id, config.batch_size)
    schedule = perplexity_schedule(perplexities, config)
    model = get_peft_model(model, lora_config(config))

    on_gpu = device.type == "cuda"
    n_steps_estimate = math.ceil(
        len(schedule.order) / (config.batch_size * config.gradient_accumulation_steps)
    )
    scratch = tempfile.TemporaryDirectory(prefix="qlora_trainer_")  # Trainer wants a folder; it saves nothing
    arguments = TrainingArguments(
        output_dir=scratch.name,
        num_train_epochs=1,  # the epochs are unrolled in the schedule
        train_sampling_strategy="sequential",
        # Under torchrun each step's batch is drawn whole and split among the processes (accelerate's
        # split_batches): the steps are those of one process, but for a short last step, which accelerate
        # fills up with prompts from the start of the schedule (every process must take every step).
        per_device_train_batch_size=config.batch_size,
        accelerator_config={"split_batches": True},
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        learning_rate=config.learning_rate,
        lr_scheduler_type=config.lr_scheduler_type,
        warmup_steps=config.warmup_ratio,
        weight_decay=config.weight_decay,
        max_grad_norm=config.max_grad_norm,
        optim="adamw_torch",
        logging_steps=max(1, n_steps_estimate // 50),
        save_strategy="no",
        report_to="none",
        use_cpu=not on_gpu,
        bf16=on_gpu and torch.cuda.is_bf16_supported(),
        remove_unused_columns=False,
        seed=config.seed,
        dataloader_num_workers=0,
        # every LoRA weight takes part in every step
        ddp_find_unused_parameters=False,
    )
    if rank == 0:
        shutil.rmtree(out_dir / ADAPTER_CHECKPOINTS_DIR, ignore_errors=True)  # an earlier run's
    saver = SaveAdapterAt(
        checkpoint_steps(config.checkpoint_fractions, n_steps_estimate), out_dir / ADAPTER_CHECKPOINTS_DIR
    )
    trainer = WeightedLossTrainer(
        model=model,
        args=arguments,
        train_dataset=ScheduledExamples(examples, schedule.order),
        data_collator=ResponseOnlyCollator(tokenizer.pad_token_id),
        callbacks=[saver],
    )
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    scratch.cleanup()

    if rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(out_dir, safe_serialization=True)
    losses = [(entry["step"], entry["loss"]) for entry in trainer.state.log_history if "loss" in entry]
    steps_per_example = 1 / (config.batch_size * config.gradient_accumulation_steps)
    pass_steps = [start * steps_per_example for start in schedule.pass_starts[1:]]
    loss_plot = out_dir / LOSS_CURVE_PLOT
    if rank == 0:
        save_loss_plot(losses, loss_plot, "QLoRA fine-tuning", pass_steps)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(_stored_parameter_count(p) for p in model.parameters())
    result = QLoRAResult(
        adapter_dir=out_dir,
        n_examples=len(examples),
        n_high_perplexity=len(schedule.high_perplexity),
        perplexity_threshold=schedule.threshold,
        mean_perplexity=sum(perplexities) / len(perplexities),
        n_truncated=n_truncated,
        n_steps=trainer.state.global_step,
        train_tokens=sum(len(examples[i].input_ids) for i in schedule.order),
        train_seconds=seconds,
        n_trainable_parameters=trainable,
        n_parameters=total,
        loss_plot=loss_plot,
        losses=losses,
        checkpoints={**saver.folders, trainer.state.global_step: out_dir},
    )
    paths = {"adapter_dir", "loss_plot", "checkpoints"}
    summary = {key: value for key, value in asdict(result).items() if key not in paths}
    summary.update(
        config=asdict(config),
        base_model=base_model,
        tokens_per_second=result.tokens_per_second,
        processes=world,
    )
    if rank == 0:
        (out_dir / TRAINING_SUMMARY_FILE).write_text(json.dumps(summary, indent=2))
    distributed.barrier()  # the adapter is on disk for every process
    return result


def save_loss_plot(
    losses: Sequence[tuple[int, float]],
    path: Path,
    title: str,
    pass_boundaries: Sequence[float] = (),
    ylabel: str = "loss (response tokens)",
) -> Path:
    """Training loss by step as a PNG; dotted lines where the extra high-perplexity passes begin."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers and CI
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(6, 3.5), dpi=100)
    if losses:
        steps, values = zip(*losses, strict=True)
        axes.plot(steps, values, marker="." if len(losses) < 30 else None)
    for boundary in pass_boundaries:
        axes.axvline(boundary, color="grey", linestyle=":", linewidth=1)
    axes.set_xlabel("optimizer step")
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    pyplot.close(figure)
    return path


def _stored_parameter_count(parameter: torch.Tensor) -> int:
    """Parameters a tensor stands for: bitsandbytes packs two 4-bit weights into each uint8."""
    import bitsandbytes as bnb

    if isinstance(parameter, bnb.nn.Params4bit):
        return parameter.numel() * 2
    return parameter.numel()
