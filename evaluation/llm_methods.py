"""The LLM methods of an evaluation run, named after the generations that feed them.

Each group of ``generations`` rows (one prompt variant, answered by one adapter with one decoding)
becomes ``llm_mixup`` (mixup retrieval, paper §4.4) and ``llm_only`` (the generated id alone), with a
suffix for each way it differs from the full framework (docs/evaluation.md: ``llm_mixup-no_attributes``):

- the prompt variant, unless ``full`` (``-no_attributes``);
- the adapter, unless it is the variant's own (``-zs_footwear``, ``-users_10``: the zero-shot and
  low-resource studies of paper §5.4);
- the decoding, when the group was decoded both ways and this one is not the preferred one;
- a retrieval ablation of paper Table 3 (``-no_text_embedding``, ``-no_id_embedding``), which re-ranks
  the same answers with ``recommender.mixup`` set up differently;
- a run-wide suffix, e.g. ``-clip_text_embedding`` when the run retrieves titles with another encoder.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from evaluation.methods import DEFAULT_METHODS
from evaluation.protocol import generated_id_lists
from recommender.mixup import MixupConfig, mixup_batch
from recommender.retrieval import VectorCatalog

FULL_VARIANT = "full"  # recommender.prompts: the prompt with every part; other variants are ablations

# paper Table 3 rows that change only the retrieval; both reuse mixup_batch, set up as described
RETRIEVAL_ABLATIONS = {
    # (3) "uses only ID embeddings for item retrieval": N = K and no title list, so all K items are the
    # generated id and its nearest ID vectors (list A)
    "no_text_embedding": "every item from the ID list (N = K, no title list)",
    # (4) "uses only text embeddings": N = 0, every item from the generated title's neighbours (list B)
    "no_id_embedding": "every item from the title list (N = 0)",
}

_SUFFIX = re.compile(r"^-[A-Za-z0-9_-]+$")


def with_generation_columns(generations: pd.DataFrame) -> pd.DataFrame:
    """Generations with ``variant``, ``constrained`` and ``adapter`` filled in when a table predates them.

    A row without an adapter was answered by its variant's own adapter (the only one there was).
    """
    variant = (
        generations["variant"] if "variant" in generations else pd.Series(FULL_VARIANT, generations.index)
    )
    adapter = generations["adapter"] if "adapter" in generations else pd.Series(None, generations.index)
    return generations.assign(
        variant=variant,
        constrained=generations["constrained"].astype(bool) if "constrained" in generations else True,
        adapter=adapter.where(adapter.notna() & (adapter != ""), variant),
    )


def llm_method_names(
    generations: pd.DataFrame, prefer_constrained: bool = True
) -> dict[tuple[str, str, bool], str]:
    """The method suffix of each (prompt variant, adapter, constrained decoding) group of generations.

    Returns ``{(variant, adapter, constrained): suffix}`` with suffix '' for the headline (the full
    prompt, its own adapter, the preferred decoding).
    """
    generations = with_generation_columns(generations)
    groups = generations[["variant", "adapter", "constrained"]].drop_duplicates()
    both = groups.groupby(["variant", "adapter"])["constrained"].nunique() > 1
    names = {}
    for variant, adapter, constrained in groups.itertuples(index=False):
        suffix = "" if variant == FULL_VARIANT else f"-{variant}"
        if adapter != variant:
            suffix += f"-{adapter}"
        if both[(variant, adapter)] and bool(constrained) != prefer_constrained:
            suffix += "-constrained" if constrained else "-unconstrained"
        names[(variant, adapter, bool(constrained))] = suffix
    return names


def select_adapters(generations: pd.DataFrame, adapters: Sequence[str]) -> pd.DataFrame:
    """Only the rows answered by ``adapters`` (all rows when empty); a listed adapter without rows is an
    error, so that a study never scores fewer methods than it asked for without saying so."""
    generations = with_generation_columns(generations)
    if not adapters:
        return generations
    present = set(generations["adapter"])
    missing = [name for name in adapters if name not in present]
    if missing:
        raise ValueError(
            f"generations hold no rows of adapter(s) {missing}; they hold {sorted(present) or 'none'}. "
            "Materialize generations with that adapter first (generations config `adapter`)"
        )
    return generations[generations["adapter"].isin(list(adapters))]


def generated_target_ids(generations: pd.DataFrame, prefer_constrained: bool = True) -> set[str]:
    """Targets the headline LLM group answered (full prompt, its adapter, preferred decoding); without a
    headline group, the targets any group answered.

    The LLM answers a sample of the prompts at small presets; scoring every method on exactly these
    targets keeps the comparison fair (a target without an answer would count against the LLM only).
    """
    generations = with_generation_columns(generations)
    names = llm_method_names(generations, prefer_constrained)
    headline = [group for group, suffix in names.items() if suffix == ""]
    if not headline:
        return set(generations["target_id"])
    variant, adapter, constrained = headline[0]
    chosen = (
        (generations["variant"] == variant)
        & (generations["adapter"] == adapter)
        & (generations["constrained"].astype(bool) == constrained)
    )
    return set(generations.loc[chosen, "target_id"])


def check_retrieval_options(retrieval_ablations: Sequence[str], method_suffix: str) -> None:
    """Unknown ablations and suffixes that could not be part of a method name are input errors."""
    unknown = [name for name in retrieval_ablations if name not in RETRIEVAL_ABLATIONS]
    if unknown:
        choices = "; ".join(f"{name}: {what}" for name, what in RETRIEVAL_ABLATIONS.items())
        raise ValueError(f"unknown retrieval ablation(s) {unknown}; choose from {choices}")
    if method_suffix and not _SUFFIX.match(method_suffix):
        raise ValueError(
            f"method_suffix {method_suffix!r} must start with '-' and hold only letters, digits, '_' and "
            "'-' (e.g. '-clip_text_embedding')"
        )


def llm_list_methods(
    generations: pd.DataFrame,
    catalog: Mapping[str, np.ndarray],
    id_vectors: VectorCatalog,
    title_vectors: VectorCatalog,
    encode_titles: Callable[[list[str]], np.ndarray],
    mixup_config: MixupConfig,
    methods: tuple[str, ...] = DEFAULT_METHODS,
    prefer_constrained: bool = True,
    retrieval_ablations: Sequence[str] = (),
    method_suffix: str = "",
) -> tuple[dict[str, pd.DataFrame], dict[str, float]]:
    """``llm_mixup`` (mixup retrieval over the vector catalogs), its retrieval ablations and ``llm_only``
    lists per generation group.

    ``generations`` holds the rows of the evaluated split (target_id, category, item_id, title, raw_text,
    and optionally variant, adapter and constrained); ``id_vectors`` / ``title_vectors`` are the loaded
    ID and title tables. Returns the lists per method and the seconds each took to build (retrieval and
    title encoding included).
    """
    check_retrieval_options(retrieval_ablations, method_suffix)
    generations = with_generation_columns(generations)
    # no title list at all for "no_text_embedding": an empty catalog of the same width
    no_titles = VectorCatalog([], [], np.zeros((0, title_vectors.dim), dtype=np.float32))
    mixups: dict[str, tuple[MixupConfig, VectorCatalog]] = {"": (mixup_config, title_vectors)}
    for name in retrieval_ablations:
        k = mixup_config.k
        only_ids = name == "no_text_embedding"
        mixups[f"-{name}"] = (
            (MixupConfig(k=k, n=k), no_titles) if only_ids else (MixupConfig(k=k, n=0), title_vectors)
        )
    out: dict[str, pd.DataFrame] = {}
    seconds: dict[str, float] = {}
    for (variant, adapter, constrained), suffix in llm_method_names(generations, prefer_constrained).items():
        group = generations[
            (generations["variant"] == variant)
            & (generations["adapter"] == adapter)
            & (generations["constrained"] == constrained)
        ]
        repeated = group.loc[group["target_id"].duplicated(), "target_id"]
        if len(repeated):
            raise ValueError(
                f"generations hold several rows for target {repeated.iloc[0]!r} with variant {variant!r}, "
                f"adapter {adapter!r}, constrained={constrained}; expected one answer per target"
            )
        if "llm_mixup" in methods:
            for ablation, (config, titles) in mixups.items():
                name = f"llm_mixup{suffix}{ablation}{method_suffix}"
                start = time.perf_counter()
                out[name] = mixup_batch(group, id_vectors, titles, encode_titles, config)
                seconds[name] = time.perf_counter() - start
        if "llm_only" in methods:
            name = f"llm_only{suffix}{method_suffix}"
            start = time.perf_counter()
            out[name] = generated_id_lists(group, catalog)
            seconds[name] = time.perf_counter() - start
    return out, seconds
