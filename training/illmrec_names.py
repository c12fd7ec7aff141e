"""I-LLMRec's variants and their method names, in a torch-free module: the evaluation's method list and
the Dagster code location read them when they load (the model: ``training.illmrec``)."""

from __future__ import annotations

METHOD = "illmrec"
FEATURES = ("image", "cf", "text")
# the ablations of the paper's Table 2 by name: image-only retrieval, + ILA, + CF, + text (= I-LLMRec);
# each is (the features it ranks with, whether ILA trains it)
VARIANTS: dict[str, tuple[tuple[str, ...], bool]] = {
    "image": (("image",), False),
    "image_ila": (("image",), True),
    "image_ila_cf": (("image", "cf"), True),
    "full": (FEATURES, True),
}
DEFAULT_VARIANT = "full"


def variant_method(variant: str) -> str:
    """The evaluation's method of a variant: ``illmrec`` for the full model, ``illmrec-<variant>`` for an
    ablation; ValueError naming the variants for another name."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown I-LLMRec variant {variant!r}; choose from {', '.join(VARIANTS)}")
    return METHOD if variant == DEFAULT_VARIANT else f"{METHOD}-{variant}"


METHODS = tuple(variant_method(name) for name in VARIANTS)
VARIANT_OF = {variant_method(name): name for name in VARIANTS}
