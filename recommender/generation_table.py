"""The ``generations`` table: which prompts a decoding run answers, its rows and figures, and how a run
replaces its own rows.

A run is one group of the table: a prompt variant, the adapter that answers and the decoding (ranked,
grounded or free; ``recommender.generation_settings``). Groups live side by side (ranked next to free
decoding, a zero-shot adapter next to the default one), so a run swaps in its own group's rows and keeps
the others. The first ``compare_prompts`` prompts of a run are also decoded the other two ways; those
answers go to the generations metadata (format, id and pick rates of each decoding on the same prompts).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from recommender.generation_settings import DECODINGS, DEFAULT_DECODING, RANKED_DECODINGS, check_decoding
from recommender.order_prior import choose_order_prior_weight, in_prompt_order
from recommender.prompt_table import sample_rows
from warehouse.marts import replace_group, require_tables, table_names

if TYPE_CHECKING:
    from recommender.candidate_ranking import RankedCandidates
    from recommender.generation import GeneratedRecommendation, GenerationRun, Recommender

GENERATIONS_SCHEMA = pa.schema(
    [
        ("target_id", pa.string()),
        ("user_id", pa.string()),
        ("split", pa.string()),
        ("category", pa.string()),
        ("variant", pa.string()),
        ("adapter", pa.string()),  # older tables get it on their next write (see replace_generations)
        ("constrained", pa.bool_()),  # False for free decoding only
        ("decoding", pa.string()),  # ranked | grounded | free; older tables get it on their next write
        ("raw_text", pa.string()),
        ("item_id", pa.string()),
        ("title", pa.string()),
        ("format_ok", pa.bool_()),
        ("id_in_catalog", pa.bool_()),
        ("target_item_id", pa.string()),
        ("is_exact_hit", pa.bool_()),
        ("n_new_tokens", pa.int32()),
        ("ranked_item_ids", pa.list_(pa.string())),  # ranked decodings: the candidates, best first
        # ranked decodings: the prompt's distinct candidates in its order, each one's answer
        # log-probability under the model, and the order prior's weight in ranked_item_ids
        # (recommender.order_prior); older tables get them on their next write
        ("candidate_item_ids", pa.list_(pa.string())),
        ("candidate_log_probs", pa.list_(pa.float64())),
        ("order_prior_weight", pa.float64()),
        ("generated_at", pa.timestamp("us", tz="UTC")),
    ]
)

MALFORMED_EXAMPLES = 5  # free-decoding answers that failed to parse, shown in the comparison


@dataclass(frozen=True)
class GenerationGroup:
    """The rows one decoding run writes: prompt variant, answering adapter, decoding."""

    variant: str
    adapter: str
    decoding: str = DEFAULT_DECODING

    def __post_init__(self) -> None:
        check_decoding(self.decoding)

    @property
    def constrained(self) -> bool:
        return self.decoding != "free"


@dataclass(frozen=True)
class AnsweredPrompts:
    # GENERATIONS_SCHEMA rows per group, in sample order: the run's group, and with ranked_prior also the
    # ranked group (the model alone) that the same ranking pass answered
    tables: dict[GenerationGroup, pa.Table]
    figures: dict[str, Any]  # rates, speed and the constrained-vs-free comparison, rounded
    malformed_free: list[str] = field(default_factory=list)  # free answers that did not parse

    @property
    def num_rows(self) -> int:
        return sum(table.num_rows for table in self.tables.values())

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


def split_caps(splits: Sequence[str], cap: int | None, valid_cap: int | None) -> dict[str, int | None]:
    """Prompts answered per split: ``cap``, and ``valid_cap`` for valid when set (valid prompts choose
    settings, so a preset may answer fewer of them than of test)."""
    return {split: valid_cap if split == "valid" and valid_cap is not None else cap for split in splits}


def prompt_sample(
    rows: Sequence[Mapping[str, Any]],
    variant: str,
    splits: Sequence[str],
    cap: int | None | Mapping[str, int | None],
    seed: int,
    categories: Sequence[str] = (),
    catalog_categories: Iterable[str] = (),
) -> list[Mapping[str, Any]]:
    """The prompts a run answers: ``cap`` of each split's ``rows`` (``prompts`` table rows of the variant;
    a mapping gives each split its own cap) drawn by ``seed``, then those of ``categories`` (empty:
    all). The draw comes first, so a run on some categories answers the targets that the default run
    answers in them."""
    if not rows:
        raise ValueError(f"no prompts for variant {variant!r} in splits {list(splits)}")
    known = set(catalog_categories)
    unknown = sorted(set(categories) - known)
    if unknown:
        raise ValueError(f"categories {unknown} are not in the catalog; it holds {sorted(known)}")
    caps = cap if isinstance(cap, Mapping) else dict.fromkeys(splits, cap)
    sample = [
        row
        for split in splits
        for row in sample_rows([r for r in rows if r["split"] == split], caps.get(split), seed)
    ]
    if not categories:
        return sample
    chosen = [row for row in sample if row["category"] in categories]
    if not chosen:
        raise ValueError(f"the sampled {list(splits)} prompts hold no target in {list(categories)}")
    return chosen


def decode(recommender: Recommender, sample: Sequence[Mapping[str, Any]], decoding: str) -> GenerationRun:
    """Answer ``sample`` (``prompts`` rows) with one decoding; both ranked decodings rank with the
    model alone here (``answer_prompts`` fuses the order prior it chooses)."""
    prompts = [row["prompt_text"] for row in sample]
    categories = [row["category"] for row in sample]
    shortlists = [row["candidate_item_ids"] for row in sample]
    if decoding in RANKED_DECODINGS:
        return recommender.rank(prompts, categories, shortlists)
    return recommender.answer(prompts, categories, shortlists, decoding)


def fuse_order_prior(
    recommender: Recommender,
    sample: Sequence[Mapping[str, Any]],
    run: GenerationRun,
    weight: float | None,
) -> tuple[GenerationRun, float, dict[str, Any]]:
    """``run`` (ranked, the model alone) with the order prior fused in: of ``weight``, or, when it is
    None, of the weight chosen on the sample's valid prompts (``recommender.order_prior``). Returns the
    fused run, the weight and the figures of the choice."""
    shortlists = [row["candidate_item_ids"] for row in sample]
    figures: dict[str, Any] = {}
    if weight is None:
        valid = _valid_prompts(sample)
        candidates, scores = zip(
            *(_candidate_scores(shortlists[i], run.rankings[i]) for i in valid), strict=True
        )
        choice = choose_order_prior_weight(candidates, scores, [sample[i]["target_item_id"] for i in valid])
        weight = choice.weight
        figures = {
            "order_prior_chosen_on_valid_prompts": choice.n_prompts,
            "order_prior_valid_target_ndcg": {str(w): round(v, 4) for w, v in choice.ndcg_by_weight.items()},
        }
    figures["order_prior_weight"] = str(weight)
    return recommender.with_order_prior(run, shortlists, weight), weight, figures


def _valid_prompts(sample: Sequence[Mapping[str, Any]]) -> list[int]:
    """The places of the valid prompts in ``sample``, which choose the order prior; ValueError if none."""
    valid = [i for i, row in enumerate(sample) if row["split"] == "valid"]
    if not valid:
        raise ValueError(
            "ranked_prior chooses its order prior weight on valid prompts, and this run answers none: "
            "add 'valid' to splits or set order_prior_weight"
        )
    return valid


def answer_prompts(
    recommender: Recommender,
    sample: Sequence[Mapping[str, Any]],
    group: GenerationGroup,
    compare_prompts: int = 0,
    order_prior_weight: float | None = None,
) -> AnsweredPrompts:
    """Answer ``sample`` with ``group``'s decoding; its first ``compare_prompts`` prompts are also decoded
    the other ways, to compare the format, id and hit rates of all of them on the same prompts.

    ``ranked_prior`` ranks once and writes two groups: its own, with the order prior of
    ``order_prior_weight`` (None: chosen on the sample's valid prompts), and ``ranked``, the model alone.
    """
    if group.decoding == "ranked_prior" and order_prior_weight is None:
        _valid_prompts(sample)  # before the ranking pass, not after it
    targets = [row["target_item_id"] for row in sample]
    run = decode(recommender, sample, group.decoding)
    now = datetime.now(UTC)
    settings = recommender.settings
    figures: dict[str, Any] = {
        **asdict(group),
        "restrict_to_candidates": settings.restrict_to_candidates,
        "catalog_title": settings.catalog_title,
    }
    runs = {group: (run, None)}
    if group.decoding == "ranked_prior":
        fused, weight, chosen = fuse_order_prior(recommender, sample, run, order_prior_weight)
        figures.update(chosen)
        runs = {group: (fused, weight), replace(group, decoding="ranked"): (run, 0.0)}
    tables = {
        key: generations_table(sample, answered, key, now, weight) for key, (answered, weight) in runs.items()
    }
    run = runs[group][0]
    figures |= {
        "format_ok_rate": round(run.format_ok_rate, 4),
        "valid_id_rate": round(run.id_in_catalog_rate, 4),
        "prompts_per_second": round(run.prompts_per_second, 3),
        "generation_seconds": round(run.seconds, 1),
    }
    for key, table in tables.items():
        prefix = "" if key == group else f"{key.decoding}_"
        hits = table.column("is_exact_hit").to_pylist()
        for split in dict.fromkeys(row["split"] for row in sample):
            of_split = [hit for hit, row in zip(hits, sample, strict=True) if row["split"] == split]
            figures[f"{prefix}{split}_exact_id_hit_rate"] = round(sum(of_split) / len(of_split), 4)

    n = min(compare_prompts, len(sample))
    if n <= 0:
        return AnsweredPrompts(tables, figures)
    answers = {key.decoding: answered.rows[:n] for key, (answered, _) in runs.items()}
    for decoding in DECODINGS:
        if decoding not in answers and decoding != "ranked_prior":  # it needs valid prompts to choose on
            other = decode(recommender, sample[:n], decoding)
            answers[decoding] = other.rows
            figures[f"compare_{decoding}_prompts_per_second"] = round(other.prompts_per_second, 3)
    for decoding, rows in answers.items():
        figures.update(
            {f"compare_{decoding}_{name}": rate for name, rate in _rates(rows, targets[:n]).items()}
        )
    figures["compare_prompts"] = n
    malformed = [answer.raw_text for answer in answers["free"] if not answer.format_ok]
    return AnsweredPrompts(tables, figures, malformed[:MALFORMED_EXAMPLES])


def _candidate_scores(
    shortlist: Sequence[str] | None, ranking: RankedCandidates | None
) -> tuple[list[str], list[float]]:
    """A prompt's distinct candidates in its order and each one's model log-probability (none without
    a ranking: the prompt had no candidates)."""
    if ranking is None:
        return [], []
    return in_prompt_order(shortlist, ranking.item_ids, ranking.log_probs)


def generations_table(
    sample: Sequence[Mapping[str, Any]],
    run: GenerationRun,
    group: GenerationGroup,
    generated_at: datetime,
    order_prior_weight: float | None = None,
) -> pa.Table:
    """The group's rows: one per prompt of ``sample`` with its answer (and ranking)."""
    columns: dict[str, list] = {name: [] for name in GENERATIONS_SCHEMA.names}
    rankings = run.rankings or [None] * len(run.rows)
    for row, answer, ranking in zip(sample, run.rows, rankings, strict=True):
        candidates, scores = _candidate_scores(row["candidate_item_ids"], ranking)
        for name, value in (
            ("target_id", row["target_id"]),
            ("user_id", row["user_id"]),
            ("split", row["split"]),
            ("category", row["category"]),
            ("variant", group.variant),
            ("adapter", group.adapter),
            ("constrained", group.constrained),
            ("decoding", group.decoding),
            ("raw_text", answer.raw_text),
            ("item_id", answer.item_id),
            ("title", answer.title),
            ("format_ok", answer.format_ok),
            ("id_in_catalog", answer.id_in_catalog),
            ("target_item_id", row["target_item_id"]),
            ("is_exact_hit", answer.item_id == row["target_item_id"]),
            ("n_new_tokens", answer.n_new_tokens),
            ("ranked_item_ids", ranking.item_ids if ranking is not None else None),
            ("candidate_item_ids", candidates if ranking is not None else None),
            ("candidate_log_probs", scores if ranking is not None else None),
            ("order_prior_weight", order_prior_weight if ranking is not None else None),
            ("generated_at", generated_at),
        ):
            columns[name].append(value)
    return pa.table(columns, schema=GENERATIONS_SCHEMA)


def replace_generations(con: duckdb.DuckDBPyConnection, table: pa.Table, group: GenerationGroup) -> int:
    """Swap in ``group``'s rows of the ``generations`` table; the other groups' rows stay."""
    if "generations" in table_names(con):
        # a table from before adapters had a name: its rows were answered by their variant's adapter;
        # one from before the decodings had names: constrained rows were grounded, the others free
        con.execute("alter table generations add column if not exists adapter varchar")
        con.execute("update generations set adapter = variant where adapter is null")
        con.execute("alter table generations add column if not exists decoding varchar")
        con.execute(
            "update generations set decoding = case when constrained then 'grounded' else 'free' end "
            "where decoding is null"
        )
        for column, sql_type in (
            ("ranked_item_ids", "varchar[]"),
            ("candidate_item_ids", "varchar[]"),
            ("candidate_log_probs", "double[]"),
            ("order_prior_weight", "double"),
        ):
            con.execute(f"alter table generations add column if not exists {column} {sql_type}")
    key = {"variant": group.variant, "decoding": group.decoding, "adapter": group.adapter}
    return replace_group(con, "generations", table, key)


def _rates(answers: Sequence[GeneratedRecommendation], targets: Sequence[str]) -> dict[str, float]:
    """The shares of (at least one) ``answers`` in format, with a catalog id and naming their target."""
    n = len(answers)
    return {
        "format_ok_rate": round(sum(a.format_ok for a in answers) / n, 4),
        "valid_id_rate": round(sum(a.id_in_catalog for a in answers) / n, 4),
        "exact_hit_rate": round(sum(a.item_id == t for a, t in zip(answers, targets, strict=True)) / n, 4),
    }
