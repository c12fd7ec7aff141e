"""What the stages before an evaluation run did instead of what the logs lacked, in words for the run's
``notes`` (``eval_runs.config``).

Logs without searches (a purchase-only export) run end to end, but several stages then do the next best
thing: the query memory is empty, the prompts' candidates come from the user's history and the popular
train items, the title encoder trains on purchase sequences (or stays untuned), and no prompt or
``text_seq_query`` text carries a query. Each stage records what it did in its artifacts; this module
reads those records back, so a leaderboard is never read without knowing what its methods stood on.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import duckdb

from evaluation.methods import GENERATION_METHODS
from evaluation.settings import EvaluationSettings
from fashionrec.layout import QUERY_MEMORY_TABLE, ArtifactLayout
from recommender.candidate_sources import MEMORY, NO_SOURCE
from recommender.vector_store import table_exists
from warehouse.marts import table_names

if TYPE_CHECKING:
    import lancedb

# the methods that read the title encoder's vectors (the controls retrieve as llm_mixup does)
TITLE_VECTOR_METHODS = {*GENERATION_METHODS, "text_seq_query"}


def memory_note(db: lancedb.DBConnection) -> str | None:
    if table_exists(db, QUERY_MEMORY_TABLE) and db.open_table(QUERY_MEMORY_TABLE).count_rows() == 0:
        return "query memory empty (the logs have no organic search listings)"
    return None


def candidates_note(con: duckdb.DuckDBPyConnection) -> str | None:
    """The shares of the prompts' candidate sources, when any list came from elsewhere than the memory."""
    if "prompt_candidates" not in table_names(con):
        return None
    columns = {row[0] for row in con.execute("select * from prompt_candidates limit 0").description}
    if "candidate_source" not in columns:  # written before candidates had sources: memory only
        return None
    shares = con.execute(
        "select candidate_source, count(*) / sum(count(*)) over () as share from prompt_candidates "
        "group by all order by share desc, candidate_source"
    ).fetchall()
    if all(source in (MEMORY, NO_SOURCE) for source, _ in shares):
        return None
    return "prompt candidates from " + ", ".join(f"{source} {share:.0%}" for source, share in shares)


def title_encoder_note(layout: ArtifactLayout, settings: EvaluationSettings) -> str | None:
    """How the title encoder the run retrieves with was trained, when not on (query, title) pairs."""
    # torch comes with the training modules; the code location loads this module
    from training.title_encoder import load_title_encoder_pairs
    from training.title_pairs import NO_PAIRS, PAIR_DESCRIPTIONS, QUERY_PAIRS

    if settings.title_encoder or not TITLE_VECTOR_METHODS & set(settings.methods):
        return None
    try:
        source, pairs = load_title_encoder_pairs(layout.title_encoder())
    except FileNotFoundError:
        return None
    if source == NO_PAIRS:
        return "title encoder untuned (the logs give no pairs to fine-tune it on)"
    if source != QUERY_PAIRS:
        return f"title encoder fine-tuned on {pairs} {PAIR_DESCRIPTIONS[source]} (the logs have no queries)"
    return None


def query_note(con: duckdb.DuckDBPyConnection) -> str | None:
    if "prompt_inputs" not in table_names(con):
        return None
    targets, with_query = con.execute("select count(*), count(latest_query) from prompt_inputs").fetchone()
    if targets and not with_query:
        return "no prompt target has a search before it: prompts and text_seq_query carry no query"
    return None


def fallback_notes(
    con: duckdb.DuckDBPyConnection,
    layout: ArtifactLayout,
    db: lancedb.DBConnection,
    settings: EvaluationSettings,
) -> list[str]:
    """Every stand-in the run's inputs were built with, in pipeline order; empty for logs with searches."""
    notes = [
        memory_note(db),
        candidates_note(con),
        title_encoder_note(layout, settings),
        query_note(con),
    ]
    return [note for note in notes if note]


def with_notes(settings: EvaluationSettings, notes: list[str]) -> EvaluationSettings:
    """``settings`` with ``notes`` after the run's own notes, ``; ``-separated."""
    return replace(settings, notes="; ".join(filter(None, [settings.notes, *notes])))
