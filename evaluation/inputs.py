"""What an evaluation run reads from the warehouse: the marts its methods need, and nothing else.

Every run reads the targets (``splits``) and the candidates (``items``); the LLM methods add their
answers (``generations``) and, where the warehouse has them, the candidates their prompts showed
(``prompts``, for the controls and the LLM diagnostics), the sequence models the users' item events
(``user_sequences``) and ``text_seq_query`` the histories its texts are made of (``prompt_inputs``). A table
the run needs and the warehouse lacks fails the run before anything is read. Every read is ordered, so that
a run on the same warehouse scores the same rows in the same order.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pandas as pd

from evaluation.llm_methods import FULL_VARIANT, select_adapters
from evaluation.methods import GENERATION_METHODS
from evaluation.settings import EvaluationSettings
from training.baseline_names import SEQUENCE_BASELINES, parse_run_method
from training.illmrec_names import METHODS as ILLMREC_METHODS
from warehouse.marts import (
    read_item_events,
    read_item_texts,
    read_items,
    read_prompt_inputs,
    read_splits,
    table_names,
)

# a generation group (docs/evaluation.md "The methods"); tables written before adapters lack ``adapter``
GENERATION_GROUP_COLUMNS = ("variant", "adapter", "constrained")


@dataclass(frozen=True)
class EvaluationInputs:
    """The marts of one run; a mart its methods do not need is None."""

    splits: pd.DataFrame  # every split's rows: the targets, and the train purchases popularity counts
    items: pd.DataFrame
    generations: pd.DataFrame | None = None  # of the run's split and adapters
    user_sequences: pd.DataFrame | None = None  # item events only
    prompt_inputs: pd.DataFrame | None = None  # of the run's split
    # the full prompts' candidates of the run's split (target_id, candidate_item_ids), and every item's
    # title; None without generations or without a prompts table
    candidates: pd.DataFrame | None = None
    item_titles: pd.Series | None = None
    item_texts: pd.DataFrame | None = None  # the catalog's words, for I-LLMRec's prompts


def needed_tables(settings: EvaluationSettings) -> set[str]:
    """The warehouse tables the run's methods and baseline runs read."""
    scored = set(settings.methods) | {parse_run_method(name)[0] for name in settings.baseline_runs}
    needed = {"splits", "items"}
    if scored & set(GENERATION_METHODS):
        needed.add("generations")
    if scored & {"core", *SEQUENCE_BASELINES, *ILLMREC_METHODS}:
        needed.add("user_sequences")
    if "text_seq_query" in scored:
        needed.add("prompt_inputs")
    return needed


def read_evaluation_inputs(con: duckdb.DuckDBPyConnection, settings: EvaluationSettings) -> EvaluationInputs:
    """The marts the run needs (:func:`needed_tables`); ValueError naming the tables that are missing,
    or the adapters that answered none of the split's prompts."""
    needed = needed_tables(settings)
    missing = sorted(needed - table_names(con))
    if missing:
        raise ValueError(
            f"the evaluation needs table(s) {missing} in the warehouse; materialize them first, "
            "e.g. `fashionrec run '+key:recommendations'`"
        )
    generations = candidates = item_titles = None
    if "generations" in needed and "prompts" in table_names(con):
        candidates, item_titles = read_prompt_candidates(con, settings.split), read_item_titles(con)
    if "generations" in needed:
        try:
            generations = select_adapters(read_generations(con, settings.split), settings.adapters)
        except ValueError as error:
            raise ValueError(f"{settings.split} split: {error}") from error
    return EvaluationInputs(
        splits=read_splits(con),
        items=read_items(con),
        generations=generations,
        user_sequences=read_item_events(con) if "user_sequences" in needed else None,
        prompt_inputs=read_prompt_inputs(con, settings.split) if "prompt_inputs" in needed else None,
        candidates=candidates,
        item_titles=item_titles,
        item_texts=read_item_texts(con) if set(settings.methods) & set(ILLMREC_METHODS) else None,
    )


def read_generations(con: duckdb.DuckDBPyConnection, split: str) -> pd.DataFrame:
    """Every generation of ``split``, by target and generation group."""
    present = {column[0] for column in con.execute("select * from generations limit 0").description}
    order = ", ".join(["target_id", *(c for c in GENERATION_GROUP_COLUMNS if c in present)])
    return con.execute(f"select * from generations where split = ? order by {order}", [split]).df()


def read_prompt_candidates(con: duckdb.DuckDBPyConnection, split: str) -> pd.DataFrame:
    """The candidates each full prompt of ``split`` showed, best first (the query memory's order), by
    target; a prompt without candidates holds an empty list."""
    return con.execute(
        "select target_id, coalesce(candidate_item_ids, []::varchar[]) as candidate_item_ids from prompts "
        "where split = ? and variant = ? order by target_id",
        [split, FULL_VARIANT],
    ).df()


def read_item_titles(con: duckdb.DuckDBPyConnection) -> pd.Series:
    """Every catalog item's title, by item id (the title a control's pick is retrieved with)."""
    return con.execute("select item_id, title from items order by item_id").df().set_index("item_id")["title"]
