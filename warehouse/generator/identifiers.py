"""Identifier strings built straight into Arrow buffers, so that millions of ids cost no Python objects."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

_BASE36 = np.frombuffer(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", dtype=np.uint8)


def _fixed_width(chars: np.ndarray) -> pa.StringArray:
    """(n, width) uint8 ASCII codes -> Arrow strings of that width."""
    n, width = chars.shape
    offsets = (np.arange(n + 1, dtype=np.int64) * width).astype(np.int32 if n * width < 2**31 else np.int64)
    data = np.ascontiguousarray(chars).tobytes()
    if offsets.dtype == np.int32:
        return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))
    return pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data)).cast(pa.string())


def padded_ids(prefix: str, numbers: np.ndarray, width: int) -> pa.StringArray:
    """``prefix`` + zero-padded decimal ``numbers``, e.g. ("U", [7], 6) -> "U000007"."""
    numbers = np.asarray(numbers, dtype=np.int64)
    if numbers.size and (numbers.min() < 0 or numbers.max() >= 10**width):
        raise ValueError(f"numbers for {prefix!r} ids must be in [0, 10**{width})")
    digits = np.empty((numbers.size, width), dtype=np.uint8)
    rest = numbers.copy()
    for col in range(width - 1, -1, -1):
        rest, digit = np.divmod(rest, 10)
        digits[:, col] = digit + ord("0")
    head = np.broadcast_to(np.frombuffer(prefix.encode(), dtype=np.uint8), (numbers.size, len(prefix)))
    return _fixed_width(np.hstack([head, digits]))


def asin_like_ids(rng: np.random.Generator, n: int) -> pa.StringArray:
    """``n`` distinct Amazon-style ids ("B0" + 8 base-36 characters) in random order."""
    space = 36**8
    values = np.empty(0, dtype=np.int64)
    while values.size < n:
        draw = rng.integers(0, space, size=int(n * 1.02) + 16, dtype=np.int64)
        merged = np.concatenate([values, draw])
        _, first = np.unique(merged, return_index=True)
        values = merged[np.sort(first)]
    values = values[:n]
    chars = np.empty((n, 10), dtype=np.uint8)
    chars[:, 0], chars[:, 1] = ord("B"), ord("0")
    rest = values.copy()
    for col in range(9, 1, -1):
        rest, digit = np.divmod(rest, 36)
        chars[:, col] = _BASE36[digit]
    return _fixed_width(chars)
