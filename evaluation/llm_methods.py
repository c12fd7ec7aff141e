"""The LLM methods of an evaluation run, named after the generations that feed them.

Each group of ``generations`` rows (one prompt variant, answered by one adapter with one decoding)
becomes ``llm_mixup`` (mixup retrieval, paper §4.4) and ``llm_only`` (the generated id alone), with a
suffix for each way it differs from the full framework (docs/evaluation.md: ``llm_mixup-no_attributes``):

- the prompt variant, unless ``full`` (``-no_attributes``);
- the adapter, unless it is the variant's own (``-zs_footwear``, ``-users_10``: the zero-shot and
  low-resource studies of paper §5.4);
- the decoding (``-grounded``, ``-free``), when the prompts were decoded several ways and this one is not
  the preferred one (``ranked`` by default; without it, the first of ``DECODINGS`` present);
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
from recommender.generation_settings import DECODINGS, DEFAULT_DECODING
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
    """Generations with ``variant``, ``adapter`` and ``decoding`` filled in when a table predates them.

    A row without an adapter was answered by its variant's own adapter (the only one there was); one
    without a decoding was grounded when constrained and free otherwise (the two decodings there were).
    """
    variant = (
        generations["variant"] if "variant" in generations else pd.Series(FULL_VARIANT, generations.index)
    )
    adapter = generations["adapter"] if "adapter" in generations else pd.Series(None, generations.index)
    constrained = (
        generations["constrained"].fillna(True).astype(bool)
        if "constrained" in generations
        else pd.Series(True, generations.index)
    )
    decoding = generations["decoding"] if "decoding" in generations else pd.Series(None, generations.index)
    return generations.assign(
        variant=variant,
        adapter=adapter.where(adapter.notna() & (adapter != ""), variant),
        decoding=decoding.where(
            decoding.notna() & (decoding != ""), constrained.map({True: "grounded", False: "free"})
        ),
    )


def llm_method_names(
    generations: pd.DataFrame, preferred_decoding: str = DEFAULT_DECODING
) -> dict[tuple[str, str, str], str]:
    """The method suffix of each (prompt variant, adapter, decoding) group of generations.

    Returns ``{(variant, adapter, decoding): suffix}`` with suffix '' for the headline (the full prompt,
    its own adapter, the preferred decoding). Where a (variant, adapter) pair was decoded several ways,
    the preferred decoding (else the first of ``DECODINGS`` present) keeps the plain name and the others
    get ``-<decoding>``.
    """
    generations = with_generation_columns(generations)
    groups = generations[["variant", "adapter", "decoding"]].drop_duplicates()
    order = [preferred_decoding, *(d for d in DECODINGS if d != preferred_decoding)]
    plain = {
        pair: min(decodings, key=lambda d: order.index(d) if d in order else len(order))
        for pair, decodings in groups.groupby(["variant", "adapter"])["decoding"]
    }
    names = {}
    for variant, adapter, decoding in groups.itertuples(index=False):
        suffix = "" if variant == FULL_VARIANT else f"-{variant}"
        if adapter != variant:
            suffix += f"-{adapter}"
        if decoding != plain[(variant, adapter)]:
            suffix += f"-{decoding}"
        names[(variant, adapter, decoding)] = suffix
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


def generated_target_ids(generations: pd.DataFrame, preferred_decoding: str = DEFAULT_DECODING) -> set[str]:
    """Targets the headline LLM group answered (full prompt, its adapter, preferred decoding); without a
    headline group, the targets any group answered.

    The LLM answers a sample of the prompts at small presets; scoring every method on exactly these
    targets keeps the comparison fair (a target without an answer would count against the LLM only).
    """
    generations = with_generation_columns(generations)
    names = llm_method_names(generations, preferred_decoding)
    headline = [group for group, suffix in names.items() if suffix == ""]
    if not headline:
        return set(generations["target_id"])
    return set(_group_rows(generations, headline[0])["target_id"])


def _group_rows(generations: pd.DataFrame, group: tuple[str, str, str]) -> pd.DataFrame:
    variant, adapter, decoding = group
    return generations[
        (generations["variant"] == variant)
        & (generations["adapter"] == adapter)
        & (generations["decoding"] == decoding)
    ]


def generation_groups(
    generations: pd.DataFrame, preferred_decoding: str = DEFAULT_DECODING
) -> dict[str, pd.DataFrame]:
    """The rows of each generation group by its method suffix (:func:`llm_method_names`); ValueError
    when a group answered a target twice."""
    generations = with_generation_columns(generations)
    groups = {}
    for key, suffix in llm_method_names(generations, preferred_decoding).items():
        group = _group_rows(generations, key)
        variant, adapter, decoding = key
        repeated = group.loc[group["target_id"].duplicated(), "target_id"]
        if len(repeated):
            raise ValueError(
                f"generations hold several rows for target {repeated.iloc[0]!r} with variant {variant!r}, "
                f"adapter {adapter!r}, decoding {decoding!r}; expected one answer per target"
            )
        groups[suffix] = group
    return groups


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
    preferred_decoding: str = DEFAULT_DECODING,
    retrieval_ablations: Sequence[str] = (),
    method_suffix: str = "",
) -> tuple[dict[str, pd.DataFrame], dict[str, float]]:
    """``llm_mixup`` (mixup retrieval over the vector catalogs), its retrieval ablations and ``llm_only``
    lists per generation group.

    ``generations`` holds the rows of the evaluated split (target_id, category, item_id, title,
    raw_text, and optionally variant, adapter, decoding and ranked_item_ids); ``id_vectors`` /
    ``title_vectors`` are the loaded ID and title tables. Returns the lists per method and the seconds
    each took to build (retrieval and title encoding included).
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
            (MixupConfig(k=k, n=k, lead=mixup_config.lead), no_titles)
            if only_ids
            else (MixupConfig(k=k, n=0, lead=mixup_config.lead), title_vectors)
        )
    out: dict[str, pd.DataFrame] = {}
    seconds: dict[str, float] = {}
    for suffix, group in generation_groups(generations, preferred_decoding).items():
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
