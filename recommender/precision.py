"""Which floating-point precision the hardware computes fast, for the language model and the encoders.

bfloat16 is fast where the hardware has it (GPUs that support it; CPUs with AVX512-BF16 or AMX) and
slow where a CPU emulates it, so every choice of precision goes through :func:`compute_dtype`.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import torch


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX); Linux flags, else False."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def compute_dtype(device: torch.device) -> torch.dtype:
    """bfloat16 where the hardware runs it natively (GPUs that support it, CPUs with AVX512-BF16 or
    AMX: ~1.5-3x faster QLoRA steps than float32 there), else float32. A CPU without native bf16
    emulates it: a 500-token prefill of SmolLM2-135M took 7.1 s in bf16 against 1.1 s in float32."""
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    return torch.bfloat16 if cpu_has_native_bf16() else torch.float32


def fast_autocast(device: torch.device) -> AbstractContextManager:
    """Mixed precision on ``device`` where bfloat16 is native (weights stay float32, matrix products run
    in bf16), else nothing. The MiniLM title encoder encodes 2.5x faster so on 2 AVX512-BF16 cores, its
    vectors within cosine 0.99997 of float32's and 99.4 % of each title's 10 nearest titles the same."""
    if compute_dtype(device) != torch.bfloat16:
        return nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)
