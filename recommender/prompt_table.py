"""The ``prompts`` table: every prompt target rendered once per prompt variant, its summary, and the seeded
samples that QLoRA and generation draw from it.

A row holds the prompt fitted to the token budget, the answer it should produce and, in the variants with
the query memory, the candidate ids the prompt shows (generation may restrict its answer to them).

A training prompt always holds its target among the candidates: a model cannot learn to choose an item
that is not offered, and decoding later forbids ids outside the candidates. When the sources missed the
target, it takes the place of the last candidate and moves to a seeded random position, so neither the
list's length nor the target's place gives it away; otherwise the candidates keep the sources' order,
whose first place is a strong prior (docs/evaluation.md, "Candidates"). Valid and test prompts show
the sources' candidates as they are.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
from tqdm.auto import tqdm

from recommender.prompts import PROMPT_VARIANTS, PromptRenderer, target_response

PROMPTS_SCHEMA = pa.schema(
    [
        ("target_id", pa.string()),
        ("user_id", pa.string()),
        ("split", pa.string()),
        ("category", pa.string()),
        ("variant", pa.string()),
        ("prompt_text", pa.string()),
        ("response_text", pa.string()),
        ("target_item_id", pa.string()),
        ("n_prompt_tokens", pa.int32()),
        ("n_history_events_kept", pa.int32()),
        ("n_history_events_dropped", pa.int32()),
        ("fits_budget", pa.bool_()),
        ("candidate_item_ids", pa.list_(pa.string())),
        ("target_inserted", pa.bool_()),  # a train target the sources missed, put among the candidates
    ]
)

_SUMMARY_SQL = """
select variant, split, count(*) as prompts, round(avg(n_prompt_tokens), 1) as mean_tokens,
       max(n_prompt_tokens) as max_tokens,
       round(avg(n_history_events_kept), 1) as mean_history_events,
       round(avg((n_history_events_dropped > 0)::int), 3) as share_trimmed,
       round(avg(target_inserted::int), 3) as share_target_inserted,
       sum((not fits_budget)::int) as over_budget
from prompts group by all order by variant, split
"""


def prompts_table(
    targets: Iterable[Mapping[str, Any]],
    candidates: Mapping[str, Sequence[str] | None],
    renderer: PromptRenderer,
    variants: Sequence[str],
    seed: int = 0,
) -> pa.Table:
    """One row per target and variant, targets in the order given.

    ``targets`` are ``prompt_inputs`` rows; ``candidates`` maps a target id to the query memory's
    candidate ids (a target without any gets none); a train target missing from its candidates is put
    among them (:func:`with_target_among`, by ``seed``).
    """
    unknown = [name for name in variants if name not in PROMPT_VARIANTS]
    if unknown or not variants:
        raise ValueError(f"variants {unknown or '[]'} invalid; choose from {', '.join(PROMPT_VARIANTS)}")
    columns: dict[str, list] = {name: [] for name in PROMPTS_SCHEMA.names}
    for target in tqdm(list(targets), desc="rendering prompts", unit="target"):
        target_candidates = list(candidates.get(target["target_id"]) or [])
        inserted = False
        if target["split"] == "train" and target["target_item_id"] not in target_candidates:
            target_candidates = with_target_among(
                target_candidates, target["target_item_id"], f"{seed}:{target['target_id']}"
            )
            inserted = True
        for variant in variants:
            rendered = renderer.render(target["history"], target_candidates, variant, target["latest_query"])
            shown = target_candidates if PROMPT_VARIANTS[variant].with_query_memory else None
            response = target_response(target["target_item_id"], target["target_title"] or "", shown)
            for name, value in (
                ("target_id", target["target_id"]),
                ("user_id", target["user_id"]),
                ("split", target["split"]),
                ("category", target["category"]),
                ("variant", variant),
                ("prompt_text", rendered.prompt_text),
                ("response_text", response),
                ("target_item_id", target["target_item_id"]),
                ("n_prompt_tokens", rendered.n_prompt_tokens),
                ("n_history_events_kept", rendered.n_history_events_kept),
                ("n_history_events_dropped", rendered.n_history_events_dropped),
                ("fits_budget", rendered.fits_budget),
                ("candidate_item_ids", shown),
                ("target_inserted", inserted and shown is not None),
            ):
                columns[name].append(value)
    return pa.table(columns, schema=PROMPTS_SCHEMA)


def with_target_among(candidates: Sequence[str], target_item_id: str, key: str) -> list[str]:
    """``candidates`` with ``target_item_id`` in place of the last one, moved to a random position drawn
    from ``key`` (stable across runs and row orders); an empty list becomes the target alone."""
    kept = list(candidates[:-1])
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    position = int.from_bytes(digest, "big") % (len(kept) + 1)
    kept.insert(position, target_item_id)
    return kept


def prompts_summary(table: pa.Table) -> pd.DataFrame:
    """Per variant and split: prompts, mean and max tokens, the share trimmed to fit, those over budget."""
    with duckdb.connect() as con:
        con.register("prompts", table)
        return con.execute(_SUMMARY_SQL).df()


def example_prompt(table: pa.Table) -> str | None:
    """The first train prompt followed by its answer (the first prompt when no target is a train one);
    None for an empty table."""
    if not table.num_rows:
        return None
    splits = table.column("split").to_pylist()
    row = splits.index("train") if "train" in splits else 0
    return table.column("prompt_text")[row].as_py() + table.column("response_text")[row].as_py()


def sample_rows(rows: Sequence, cap: int | None, seed: int) -> list:
    """``cap`` rows drawn at random by ``seed``, kept in their order; all of them when ``cap`` is None or
    not below their number."""
    if cap is None or len(rows) <= cap:
        return list(rows)
    keep = sorted(random.Random(seed).sample(range(len(rows)), cap))
    return [rows[i] for i in keep]
