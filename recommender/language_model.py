"""The language model that answers: the base model (4-bit NF4, as QLoRA trained it) with its LoRA adapter.

Training (``training.qlora``), generation (``recommender.generation``) and the service load it through
these functions, so all three see the same weights in the same precision. The ``base_lm`` step records
which base model it chose in a small pointer file (``fashionrec.layout``); everything after reads it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    BitsAndBytesConfig,
    PreTrainedTokenizerBase,
)

from recommender.precision import compute_dtype


def preferred_device() -> torch.device:
    """A GPU when there is one (under torchrun the one of this process, ``LOCAL_RANK``), else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def four_bit_config(device: torch.device) -> BitsAndBytesConfig:
    """QLoRA's storage/compute split (Dettmers et al. 2023): NF4 weights, double-quantised constants,
    compute in :func:`compute_dtype` (bitsandbytes dequantises to it)."""
    compute_dtype_ = compute_dtype(device)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype_,
    )


def load_quantized_model(base_model: str, device: torch.device | None = None) -> Any:
    """The base model from a local folder or the offline Hugging Face cache, in 4-bit NF4."""
    device = device or preferred_device()
    quantization = four_bit_config(device)
    return AutoModelForCausalLM.from_pretrained(
        base_model,
        quantization_config=quantization,
        dtype=quantization.bnb_4bit_compute_dtype,
        device_map={"": str(device)},
        local_files_only=True,
    )


def load_recommender_model(
    base_model: str, adapter_dir: str | Path | None, quantize: bool = True, device: torch.device | None = None
) -> tuple[Any, Any]:
    """Base model (4-bit unless ``quantize`` is off) with the LoRA adapter, and its tokenizer."""
    from peft import PeftModel

    device = device or preferred_device()
    if quantize:
        model = load_quantized_model(base_model, device)
    else:
        model = AutoModelForCausalLM.from_pretrained(base_model, local_files_only=True).to(device)
    if adapter_dir is not None:
        model = PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=False)
    model.eval()
    return model, load_tokenizer(base_model)


# Dequantized float weights up to this size replace 4-bit ones on CPU (a 7B base model stays 4-bit).
DEFAULT_MAX_DEQUANTIZED_BYTES = 2 * 1024**3


def load_answering_model(
    base_model: str,
    adapter_dir: str | Path | None,
    max_dequantized_bytes: int = DEFAULT_MAX_DEQUANTIZED_BYTES,
    device: torch.device | None = None,
) -> tuple[Any, Any, int]:
    """The model that answers (generations, ranking, the service), its tokenizer, and how many 4-bit
    layers it holds dequantized.

    The base model loads in 4-bit NF4 as QLoRA trained it. On CPU its layers are dequantized once when
    they fit in ``max_dequantized_bytes`` (:func:`dequantize_4bit_layers`), and then peft folds the LoRA
    adapter into those weights (``merge_and_unload``): one matrix product per layer instead of three,
    which ranks demo prompts ~1.45x faster. Folding rounds the sum once in the compute dtype, so scores
    move by bf16 rounding (up to ~1.5 nats on a ~60-nat answer with bf16 weights) but stay the same
    model's. A base model that stays 4-bit keeps the adapter as separate layers.
    """
    from peft import PeftModel

    device = device or preferred_device()
    model = load_quantized_model(base_model, device)
    dequantized = dequantize_4bit_layers(model, max_dequantized_bytes)
    if adapter_dir is not None:
        model = PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=False)
        if dequantized:
            model = model.merge_and_unload()
    model.eval()
    return model, load_tokenizer(base_model), dequantized


def dequantize_4bit_layers(model: torch.nn.Module, max_bytes: int) -> int:
    """Swap each 4-bit linear layer on the CPU for a plain one holding exactly its dequantized weights.

    On CPU, bitsandbytes dequantizes a 4-bit weight on every call and then runs ``F.linear`` on the result
    (its default ``gemm_4bit`` kernel); doing that once at load gives bitwise the same outputs
    (``tests/test_serving_api.py`` compares the logits) and halves the per-token time of the embedded
    models, whose layers are too small for the matrix product to outweigh the dequantization. Weights in
    the compute dtype take 8x the memory of 4-bit ones, so nothing is swapped when they would exceed
    ``max_bytes`` (a 7B base model stays 4-bit). Returns how many layers were swapped.
    """
    import bitsandbytes as bnb
    from bitsandbytes.functional import dequantize_4bit

    layers = [
        (parent, name, child)
        for parent in model.modules()
        for name, child in parent.named_children()
        if isinstance(child, bnb.nn.Linear4bit) and child.weight.device.type == "cpu"
    ]
    needed = sum(
        child.in_features * child.out_features * torch.finfo(child.compute_dtype or torch.float32).bits // 8
        for _, _, child in layers
    )
    if not layers or needed > max_bytes:
        return 0
    for parent, name, child in layers:
        dtype = child.compute_dtype or torch.float32
        dense = torch.nn.Linear(
            child.in_features, child.out_features, bias=child.bias is not None, dtype=dtype
        )
        weight = dequantize_4bit(child.weight.data, child.weight.quant_state).to(dtype)
        dense.weight = torch.nn.Parameter(weight, requires_grad=False)
        if child.bias is not None:
            dense.bias = torch.nn.Parameter(child.bias.data.to(dtype), requires_grad=False)
        setattr(parent, name, dense.eval())
    return len(layers)


def check_pretrained_source(name_or_path: str) -> str:
    """Make sure a configured Hugging Face id or local folder loads offline; return it unchanged."""
    try:
        AutoConfig.from_pretrained(name_or_path, local_files_only=True)
        AutoTokenizer.from_pretrained(name_or_path, local_files_only=True)
    except OSError as error:
        raise ValueError(
            f"base model {name_or_path!r} is neither a local folder with config.json and a tokenizer nor "
            f"a model in the local Hugging Face cache (downloads are off). Download it beforehand with "
            f"`huggingface-cli download {name_or_path}` or leave base_model empty for the domain model."
        ) from error
    return name_or_path


def write_base_model_pointer(pointer: Path, name_or_path: str, source: str) -> Path:
    """Record which base model the later stages load (``source``: "domain" or "pretrained") in the file
    ``pointer`` (``ArtifactLayout.base_model_pointer``)."""
    pointer.parent.mkdir(parents=True, exist_ok=True)
    pointer.write_text(json.dumps({"name_or_path": str(name_or_path), "source": source}, indent=2))
    return pointer


def read_base_model_pointer(pointer: Path) -> str:
    """The base model id or folder that the ``base_lm`` step recorded in ``pointer``."""
    if not pointer.is_file():
        raise FileNotFoundError(
            f"{pointer} is missing: materialize the base_lm asset first (fashionrec run 'base_lm')"
        )
    return json.loads(pointer.read_text())["name_or_path"]


def load_tokenizer(name_or_path: str) -> PreTrainedTokenizerBase:
    """The base model's tokenizer, offline; models without a pad token pad with end-of-text."""
    tokenizer = AutoTokenizer.from_pretrained(name_or_path, local_files_only=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer
