"""The controls of the LLM methods (docs/evaluation.md "Controls and LLM diagnostics"): the prompt's
candidates picked by a rule instead of by the LLM, and retrieved exactly as ``llm_mixup`` is.

The LLM picks one of the candidates its prompt shows (the query memory's items of the target's category,
best first). An LLM worth its cost beats trivial picks over the same candidates with the same mixup:

- ``memory_first``: the candidates in their source order, so the pick is the memory's best candidate;
- ``memory_random``: the candidates in a uniformly random order, drawn per target from a hash of the
  run's ``control_seed`` and the target id (the same order whatever the rows' order, and run after run).

A control is a generations-like frame (``target_id``, ``category``, ``item_id``: the first candidate,
``title``: its catalog title, ``raw_text``: None, ``ranked_item_ids``: every candidate in the control's
order) that goes through the same ``recommender.mixup.mixup_batch`` call as the headline ``llm_mixup``:
its first ``MixupConfig.lead`` candidates lead the top-K, then the mixup of its first candidate. Controls
answer exactly the targets the headline LLM group answered (``generated_target_ids``). A target without
candidates gets an empty list: no pick and no recommendation, so it scores 0, as an LLM answer naming
nothing would.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from evaluation.llm_methods import generated_target_ids, with_generation_columns
from evaluation.methods import CONTROL_METHODS
from recommender.generation_settings import DEFAULT_DECODING
from recommender.mixup import MixupConfig, as_id_list, mixup_batch
from recommender.retrieval import VectorCatalog

CONTROL_COLUMNS = ["target_id", "category", "item_id", "title", "raw_text", "ranked_item_ids"]


def random_order(candidates: Sequence[str], target_id: str, seed: int = 0) -> list[str]:
    """``candidates`` shuffled uniformly, by a generator seeded from (``seed``, ``target_id``) alone."""
    digest = hashlib.blake2b(f"{seed}:{target_id}".encode(), digest_size=8).digest()
    rng = np.random.default_rng(int.from_bytes(digest, "big"))
    return [candidates[i] for i in rng.permutation(len(candidates))]


def control_order(method: str, candidates: Sequence[str], target_id: str, seed: int = 0) -> list[str]:
    """The candidates in the order of control ``method`` (:data:`CONTROL_METHODS`)."""
    if method == "memory_first":
        return list(candidates)
    if method == "memory_random":
        return random_order(candidates, target_id, seed)
    raise ValueError(f"unknown control {method!r}; choose from {list(CONTROL_METHODS)}")


def candidate_lists(candidates: pd.DataFrame | None) -> dict[str, list[str]]:
    """``target_id -> candidate ids`` from prompts rows (target_id, candidate_item_ids: a list, the numpy
    array DuckDB gives, or None for none)."""
    if candidates is None:
        return {}
    return {
        str(target_id): as_id_list(ids) or []
        for target_id, ids in zip(candidates["target_id"], candidates["candidate_item_ids"], strict=True)
    }


def answered_targets(generations: pd.DataFrame, preferred_decoding: str = DEFAULT_DECODING) -> pd.DataFrame:
    """``target_id`` and ``category`` of the targets the headline LLM group answered, by target id."""
    answered = generated_target_ids(generations, preferred_decoding)
    rows = with_generation_columns(generations)[["target_id", "category"]]
    rows = rows[rows["target_id"].isin(answered)].drop_duplicates("target_id")
    return rows.sort_values("target_id", kind="stable").reset_index(drop=True)


def control_generations(
    targets: pd.DataFrame,
    candidates: Mapping[str, Sequence[str]],
    titles: Mapping[str, str] | pd.Series,
    seed: int = 0,
    methods: Sequence[str] = CONTROL_METHODS,
) -> dict[str, pd.DataFrame]:
    """Per control method, one generations-like row per target (``targets``: target_id, category), in
    the targets' order; a target absent from ``candidates`` has none (empty ``ranked_item_ids``)."""
    out = {}
    for method in methods:
        rows = []
        for target_id, category in zip(targets["target_id"], targets["category"], strict=True):
            ranked = control_order(method, candidates.get(target_id, []), target_id, seed)
            pick = ranked[0] if ranked else None
            title = titles.get(pick) if pick is not None else None
            rows.append((target_id, category, pick, title if isinstance(title, str) else None, None, ranked))
        # columns of Python objects, so a missing pick stays None (pandas would make it NaN)
        columns = zip(*rows, strict=True) if rows else [()] * len(CONTROL_COLUMNS)
        out[method] = pd.DataFrame(
            {
                name: pd.Series(list(values), dtype=object)
                for name, values in zip(CONTROL_COLUMNS, columns, strict=True)
            }
        )
    return out


def control_list_methods(
    controls: Mapping[str, pd.DataFrame],
    id_vectors: VectorCatalog,
    title_vectors: VectorCatalog,
    encode_titles: Callable[[list[str]], np.ndarray],
    mixup_config: MixupConfig,
    method_suffix: str = "",
) -> tuple[dict[str, pd.DataFrame], dict[str, float]]:
    """Each control's top-K lists from ``mixup_batch`` with the run's mixup (named with the run's
    ``method_suffix``, as the LLM methods are), and the seconds each took."""
    lists, seconds = {}, {}
    for method, frame in controls.items():
        name = f"{method}{method_suffix}"
        start = time.perf_counter()
        lists[name] = mixup_batch(frame, id_vectors, title_vectors, encode_titles, mixup_config)
        seconds[name] = time.perf_counter() - start
    return lists, seconds
