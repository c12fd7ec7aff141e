"""The base language model that QLoRA adapts: any Hugging Face causal LM, or a small domain Llama.

The paper fine-tunes Falcon-7B (§5.1). Weights cannot be downloaded where fashionrec must run offline,
so the embedded default is a small Llama-architecture model that the pipeline pretrains itself, by
causal language modelling on the catalog (each product as the prompt shows it, followed by the answer
naming it) and on the users' search queries. It learns the shop's vocabulary and which id goes with
which title; the recommendation task itself is left to the QLoRA stage, as with a general-purpose LLM.

Every layer width is a multiple of 64 because bitsandbytes' CPU 4-bit kernels require it.
"""

from __future__ import annotations

import json
import math
import random
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    Trainer,
    TrainingArguments,
)

from fashionrec.layout import PRETRAINING_CONFIG_FILE, PRETRAINING_LOSS_PLOT, ArtifactLayout
from fashionrec.presets import BaseLMBudget
from recommender.language_model import write_base_model_pointer
from recommender.prompts import PromptRenderer, target_response
from training.domain_tokenizer import (
    WIDTH_MULTIPLE,
    DomainTokenizerConfig,
    round_up_to_width_multiple,
    train_domain_tokenizer,
)
from training.qlora import save_loss_plot


@dataclass(frozen=True)
class BaseLMConfig:
    """Architecture and pretraining of the embedded domain model; the defaults are the `tiny` preset's, and
    each preset's sizes are in ``fashionrec.presets``."""

    # --- architecture (Llama; widths multiples of 64 for bitsandbytes' CPU kernels) ---
    vocab_size: int = 1024  # tokenizer target; the embedding is rounded up to a multiple of 64
    hidden_size: int = 128
    intermediate_size: int = 256  # 2x hidden: small models gain little from Llama's 8/3 ratio
    num_hidden_layers: int = 2
    num_attention_heads: int = 2  # head dim 64, the smallest width the CPU kernels accept
    # paper §5.1: 1024 tokens per interaction sequence; rotary positions extend past it if asked
    max_position_embeddings: int = 1024
    # small models spend most parameters on the embedding; sharing it with the output layer halves that
    tie_word_embeddings: bool = True
    # --- pretraining (nanoGPT's small-model recipe: AdamW, lr 1e-3, cosine decay, short warmup) ---
    # tokens per packed training sequence: as long as the longest prompt the model will read, so that
    # every rotary position of a prompt has been trained (a 256-token block leaves a 700-token prompt's
    # candidate ids at positions the model never saw)
    block_size: int = 512
    epochs: float = 3.0
    learning_rate: float = 1e-3
    warmup_ratio: float = 0.05
    weight_decay: float = 0.1
    batch_size: int = 8
    # cap on corpus tokens per epoch so large catalogs keep pretraining within minutes on CPU
    max_corpus_tokens: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        widths = {
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "head dim (hidden_size / num_attention_heads)": self.hidden_size // self.num_attention_heads,
        }
        odd = [f"{name}={value}" for name, value in widths.items() if value % WIDTH_MULTIPLE]
        if odd or self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"{', '.join(odd) or 'hidden_size % num_attention_heads'} must be multiples of "
                f"{WIDTH_MULTIPLE}: bitsandbytes' CPU 4-bit kernels need every quantized width on that grid"
            )


@dataclass
class BaseLMResult:
    model_dir: Path
    n_parameters: int
    n_corpus_documents: int
    train_tokens: int
    train_seconds: float
    final_loss: float
    losses: list[tuple[int, float]] = field(default_factory=list)

    @property
    def tokens_per_second(self) -> float:
        return self.train_tokens / self.train_seconds if self.train_seconds > 0 else float("nan")


def domain_corpus(items: Iterable[Mapping[str, Any]], queries: Iterable[str]) -> list[str]:
    """Pretraining documents: for each product, the prompt template with that product as its one
    candidate, followed by the answer naming it; and each search query as the template writes it.

    Pairing the two forms in one document teaches more than the answer format and which title goes
    with which id: the model learns to copy an id it has just read into an answer, which fine-tuning
    then points at the right id of the prompt. ``items`` are rows of the ``items`` mart.
    """
    catalog = {str(item["item_id"]): item for item in items}
    renderer = PromptRenderer(lambda text: 0, catalog=catalog)
    documents = [
        renderer.render_text([], [item_id])
        + target_response(item_id, str(item.get("title") or ""), [item_id])
        for item_id, item in catalog.items()
    ]
    documents.extend(
        renderer.render_text([{"action": "search", "query": query}], None)
        for query in sorted(set(queries))
        if query
    )
    return documents


# BPE merges the most frequent pairs, and words seen once never merge (min_frequency 2). The instruction
# opens every prompt, so it is counted as often as a common catalog phrase: with one copy it costs 518
# tokens at the tiny preset's vocabulary and leaves no room for the user's history in a 512-token
# budget; with 200 copies it costs 162, and product texts grow by under 10 %.
INSTRUCTION_COPIES = 200


def tokenizer_corpus(documents: Sequence[str]) -> list[str]:
    """The documents plus the prompt template's own wording, weighted so the instruction encodes compactly."""
    instruction = PromptRenderer(lambda text: 0).render_text([], [])
    return [*documents, *[instruction] * INSTRUCTION_COPIES]


class _PackedBlocks(torch.utils.data.Dataset):
    """Documents joined by end-of-text and cut into equal blocks: no padding, every token trains."""

    def __init__(self, token_ids: list[int], block_size: int) -> None:
        n_blocks = max(1, len(token_ids) // block_size)
        usable = token_ids[: n_blocks * block_size]
        self.blocks = torch.tensor(usable, dtype=torch.long).view(n_blocks, -1)

    def __len__(self) -> int:
        return self.blocks.shape[0]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        block = self.blocks[index]
        return {"input_ids": block, "labels": block}


def build_domain_base_lm(
    documents: Sequence[str],
    out_dir: Path,
    config: BaseLMConfig | None = None,
) -> BaseLMResult:
    """Train the domain tokenizer, pretrain a small Llama on ``documents``, ``save_pretrained`` both."""
    config = config or BaseLMConfig()
    if not documents:
        raise ValueError(
            "the pretraining corpus is empty: the items table has no rows and no queries were given"
        )
    torch.manual_seed(config.seed)
    tokenizer = train_domain_tokenizer(
        tokenizer_corpus(documents), DomainTokenizerConfig(vocab_size=config.vocab_size)
    )
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=round_up_to_width_multiple(len(tokenizer)),
            hidden_size=config.hidden_size,
            intermediate_size=config.intermediate_size,
            num_hidden_layers=config.num_hidden_layers,
            num_attention_heads=config.num_attention_heads,
            num_key_value_heads=config.num_attention_heads,
            max_position_embeddings=config.max_position_embeddings,
            tie_word_embeddings=config.tie_word_embeddings,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )

    shuffled = list(documents)
    random.Random(config.seed).shuffle(shuffled)
    encoded = tokenizer(shuffled, add_special_tokens=False)["input_ids"]
    stream: list[int] = []
    for ids in encoded:
        stream.extend(ids)
        stream.append(tokenizer.eos_token_id)
        if config.max_corpus_tokens and len(stream) >= config.max_corpus_tokens:
            break
    dataset = _PackedBlocks(stream, config.block_size)

    on_gpu = torch.cuda.is_available()
    scratch = tempfile.TemporaryDirectory(
        prefix="base_lm_trainer_"
    )  # Trainer wants a folder; it saves nothing
    arguments = TrainingArguments(
        output_dir=scratch.name,
        per_device_train_batch_size=config.batch_size,
        num_train_epochs=config.epochs,
        learning_rate=config.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=config.warmup_ratio,
        weight_decay=config.weight_decay,
        logging_steps=max(1, math.ceil(len(dataset) * config.epochs / config.batch_size / 50)),
        save_strategy="no",
        report_to="none",
        use_cpu=not on_gpu,
        bf16=on_gpu and torch.cuda.is_bf16_supported(),
        seed=config.seed,
        dataloader_num_workers=0,
    )
    trainer = Trainer(model=model, args=arguments, train_dataset=dataset)
    started = time.perf_counter()
    outcome = trainer.train()
    seconds = time.perf_counter() - started
    scratch.cleanup()

    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    (out_dir / PRETRAINING_CONFIG_FILE).write_text(json.dumps(asdict(config), indent=2))
    losses = [(entry["step"], entry["loss"]) for entry in trainer.state.log_history if "loss" in entry]
    return BaseLMResult(
        model_dir=out_dir,
        n_parameters=sum(p.numel() for p in model.parameters()),
        n_corpus_documents=len(documents),
        train_tokens=round(len(dataset) * config.epochs) * config.block_size,
        train_seconds=seconds,
        final_loss=losses[-1][1] if losses else float(outcome.training_loss),
        losses=losses,
    )


def pretraining_config(budget: BaseLMBudget, overrides: Mapping[str, Any]) -> BaseLMConfig:
    """The preset's budget as a pretraining config, with each override that is set (None keeps the
    budget's value)."""
    return replace(BaseLMConfig(**asdict(budget)), **{k: v for k, v in overrides.items() if v is not None})


@dataclass(frozen=True)
class DomainBaseLM:
    """The pretrained domain model, recorded as the base model, and what its pretraining was."""

    result: BaseLMResult
    config: BaseLMConfig
    n_items: int
    n_queries: int
    loss_plot: Path

    def facts(self) -> dict[str, Any]:
        """The model, its architecture, its corpus and its training, as plain values."""
        result, config = self.result, self.config
        return {
            "base_model": str(result.model_dir),
            "source": "domain",
            "n_parameters": result.n_parameters,
            "architecture": {
                "hidden_size": config.hidden_size,
                "intermediate_size": config.intermediate_size,
                "num_hidden_layers": config.num_hidden_layers,
                "num_attention_heads": config.num_attention_heads,
                "vocab_size": config.vocab_size,
            },
            "corpus_documents": result.n_corpus_documents,
            "catalog_items": self.n_items,
            "distinct_queries": self.n_queries,
            "train_tokens": result.train_tokens,
            "train_seconds": round(result.train_seconds, 1),
            "train_tokens_per_second": round(result.tokens_per_second, 1),
            "final_loss": round(result.final_loss, 4),
        }


def pretrain_domain_base_lm(
    items: Sequence[Mapping[str, Any]],
    queries: Sequence[str],
    layout: ArtifactLayout,
    config: BaseLMConfig,
    log: Callable[[str], None] = print,
) -> DomainBaseLM:
    """Pretrain the domain model on the catalog ``items`` and the search ``queries``
    (:func:`domain_corpus`), save it under ``layout.domain_model``, record it as the base model the later
    stages load, and plot its loss next to it."""
    documents = domain_corpus(items, queries)
    log(f"pretraining the domain base model on {len(documents)} documents")
    result = build_domain_base_lm(documents, layout.domain_model, config)
    write_base_model_pointer(layout.base_model_pointer, str(result.model_dir), "domain")
    plot = save_loss_plot(
        result.losses, layout.base_lm / PRETRAINING_LOSS_PLOT, "domain pretraining", ylabel="loss"
    )
    return DomainBaseLM(result, config, len(items), len(queries), plot)
