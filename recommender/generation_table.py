"""The ``generations`` table: which prompts a decoding run answers, its rows and figures, and how a run
replaces its own rows.

A run is one group of the table: a prompt variant, the adapter that answers and whether decoding is
constrained. Groups live side by side (constrained next to free decoding, a zero-shot adapter next to
the default one), so a run swaps in its own group's rows and keeps the others.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from recommender.prompt_table import sample_rows
from warehouse.marts import replace_group, require_tables, table_names

if TYPE_CHECKING:
    from recommender.generation import GeneratedRecommendation, Recommender

GENERATIONS_SCHEMA = pa.schema(
    [
        ("target_id", pa.string()),
        ("user_id", pa.string()),
        ("split", pa.string()),
        ("category", pa.string()),
        ("variant", pa.string()),
        ("adapter", pa.string()),  # older tables get it on their next write (see replace_generations)
        ("constrained", pa.bool_()),
        ("raw_text", pa.string()),
        ("item_id", pa.string()),
        ("title", pa.string()),
        ("format_ok", pa.bool_()),
        ("id_in_catalog", pa.bool_()),
        ("target_item_id", pa.string()),
        ("is_exact_hit", pa.bool_()),
        ("n_new_tokens", pa.int32()),
        ("generated_at", pa.timestamp("us", tz="UTC")),
    ]
)

MALFORMED_EXAMPLES = 5  # free-decoding answers that failed to parse, shown in the comparison


@dataclass(frozen=True)
class GenerationGroup:
    """The rows one decoding run writes: prompt variant, answering adapter, constrained or free."""

    variant: str
    adapter: str
    constrained: bool


@dataclass(frozen=True)
class AnsweredPrompts:
    table: pa.Table  # GENERATIONS_SCHEMA rows of the group, in sample order
    figures: dict[str, Any]  # rates, speed and the constrained-vs-free comparison, rounded
    malformed_free: list[str] = field(default_factory=list)  # free answers that did not parse

    @property
    def malformed_markdown(self) -> str:
        """The malformed free answers as a Markdown list, each cut to 160 characters; empty when none."""
        return "\n".join(f"- `{text[:160]!r}`" for text in self.malformed_free)


def read_prompts_to_answer(
    con: duckdb.DuckDBPyConnection, variant: str, splits: Sequence[str]
) -> tuple[list[tuple], list[dict[str, Any]]]:
    """The catalog rows (item id, category, title) and the ``variant`` prompts of ``splits``, both
    ordered, so that a seeded sample draws the same prompts on every run."""
    require_tables(con, ["prompts", "items"])
    catalog = con.execute("select item_id, category, title from items order by item_id").fetchall()
    rows = con.execute(
        "select target_id, user_id, split, category, prompt_text, target_item_id, candidate_item_ids "
        "from prompts where variant = ? and split in (select unnest(?::varchar[])) order by split, target_id",
        [variant, list(splits)],
    ).to_arrow_table()
    return catalog, rows.to_pylist()


def prompt_sample(
    rows: Sequence[Mapping[str, Any]],
    variant: str,
    splits: Sequence[str],
    cap: int | None,
    seed: int,
    categories: Sequence[str] = (),
    catalog_categories: Iterable[str] = (),
) -> list[Mapping[str, Any]]:
    """The prompts a run answers: ``cap`` of each split's ``rows`` (``prompts`` table rows of the variant)
    drawn by ``seed``, then those of ``categories`` (empty: all). The draw comes first, so a run on some
    categories answers the targets that the default run answers in them."""
    if not rows:
        raise ValueError(f"no prompts for variant {variant!r} in splits {list(splits)}")
    known = set(catalog_categories)
    unknown = sorted(set(categories) - known)
    if unknown:
        raise ValueError(f"categories {unknown} are not in the catalog; it holds {sorted(known)}")
    sample = [
        row for split in splits for row in sample_rows([r for r in rows if r["split"] == split], cap, seed)
    ]
    if not categories:
        return sample
    chosen = [row for row in sample if row["category"] in categories]
    if not chosen:
        raise ValueError(f"the sampled {list(splits)} prompts hold no target in {list(categories)}")
    return chosen


def answer_prompts(
    recommender: Recommender,
    sample: Sequence[Mapping[str, Any]],
    group: GenerationGroup,
    compare_prompts: int = 0,
) -> AnsweredPrompts:
    """Answer ``sample`` with ``group``'s decoding; its first ``compare_prompts`` prompts are also decoded
    the other way (constrained <-> free), to compare the format, id and hit rates of both."""
    prompts = [row["prompt_text"] for row in sample]
    categories = [row["category"] for row in sample]
    shortlists = [row["candidate_item_ids"] for row in sample]
    targets = [row["target_item_id"] for row in sample]
    run = recommender.generate(prompts, categories, constrained=group.constrained, shortlists=shortlists)
    table = generations_table(sample, run.rows, group, datetime.now(UTC))
    settings = recommender.settings
    figures: dict[str, Any] = {
        **asdict(group),
        "restrict_to_candidates": settings.restrict_to_candidates,
        "catalog_title": settings.catalog_title,
        "format_ok_rate": round(run.format_ok_rate, 4),
        "valid_id_rate": round(run.id_in_catalog_rate, 4),
        "prompts_per_second": round(run.prompts_per_second, 3),
        "generation_seconds": round(run.seconds, 1),
    }
    hits = table.column("is_exact_hit").to_pylist()
    for split in dict.fromkeys(row["split"] for row in sample):
        of_split = [hit for hit, row in zip(hits, sample, strict=True) if row["split"] == split]
        figures[f"{split}_exact_id_hit_rate"] = round(sum(of_split) / len(of_split), 4)

    n = min(compare_prompts, len(sample))
    if n <= 0:
        return AnsweredPrompts(table, figures)
    other = recommender.generate(
        prompts[:n], categories[:n], constrained=not group.constrained, shortlists=shortlists[:n]
    )
    answers = {group.constrained: run.rows[:n], not group.constrained: other.rows}
    for constrained, rows in answers.items():
        label = "constrained" if constrained else "unconstrained"
        figures.update({f"compare_{label}_{name}": rate for name, rate in _rates(rows, targets[:n]).items()})
        if constrained != group.constrained:
            figures[f"compare_{label}_prompts_per_second"] = round(other.prompts_per_second, 3)
    figures["compare_prompts"] = n
    malformed = [answer.raw_text for answer in answers[False] if not answer.format_ok]
    return AnsweredPrompts(table, figures, malformed[:MALFORMED_EXAMPLES])


def generations_table(
    sample: Sequence[Mapping[str, Any]],
    answers: Sequence[GeneratedRecommendation],
    group: GenerationGroup,
    generated_at: datetime,
) -> pa.Table:
    """The group's rows: one per prompt of ``sample`` with its answer."""
    columns: dict[str, list] = {name: [] for name in GENERATIONS_SCHEMA.names}
    for row, answer in zip(sample, answers, strict=True):
        for name, value in (
            ("target_id", row["target_id"]),
            ("user_id", row["user_id"]),
            ("split", row["split"]),
            ("category", row["category"]),
            ("variant", group.variant),
            ("adapter", group.adapter),
            ("constrained", group.constrained),
            ("raw_text", answer.raw_text),
            ("item_id", answer.item_id),
            ("title", answer.title),
            ("format_ok", answer.format_ok),
            ("id_in_catalog", answer.id_in_catalog),
            ("target_item_id", row["target_item_id"]),
            ("is_exact_hit", answer.item_id == row["target_item_id"]),
            ("n_new_tokens", answer.n_new_tokens),
            ("generated_at", generated_at),
        ):
            columns[name].append(value)
    return pa.table(columns, schema=GENERATIONS_SCHEMA)


def replace_generations(con: duckdb.DuckDBPyConnection, table: pa.Table, group: GenerationGroup) -> int:
    """Swap in ``group``'s rows of the ``generations`` table; the other groups' rows stay."""
    if "generations" in table_names(con):
        # a table from before adapters had a name: its rows were answered by their variant's adapter
        con.execute("alter table generations add column if not exists adapter varchar")
        con.execute("update generations set adapter = variant where adapter is null")
    key = {"variant": group.variant, "constrained": group.constrained, "adapter": group.adapter}
    return replace_group(con, "generations", table, key)


def _rates(answers: Sequence[GeneratedRecommendation], targets: Sequence[str]) -> dict[str, float]:
    """The shares of (at least one) ``answers`` in format, with a catalog id and naming their target."""
    n = len(answers)
    return {
        "format_ok_rate": round(sum(a.format_ok for a in answers) / n, 4),
        "valid_id_rate": round(sum(a.id_in_catalog for a in answers) / n, 4),
        "exact_hit_rate": round(sum(a.item_id == t for a, t in zip(answers, targets, strict=True)) / n, 4),
    }
