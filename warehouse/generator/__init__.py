"""Deterministic synthetic fashion shopping logs in the raw-data contract (docs/raw-data.md).

The generator, its presets and the C1-C4 properties it reproduces are described in docs/synthetic-data.md.

Usage::

    from warehouse.generator import PRESETS, compute_stats, format_stats, generate

    result = generate("tiny", Path("/tmp/raw"), seed=0)  # events.parquet, items.parquet, manifest
    print(format_stats(compute_stats(Path("/tmp/raw"))))  # the paper's four properties, in numbers
"""

from warehouse.generator.export_shapes import to_purchases_only
from warehouse.generator.generation import GenerationResult, generate
from warehouse.generator.presets import PRESETS, GeneratorPreset
from warehouse.generator.stats import compute_stats, format_stats

__all__ = [
    "PRESETS",
    "GenerationResult",
    "GeneratorPreset",
    "compute_stats",
    "format_stats",
    "generate",
    "to_purchases_only",
]
