"""The leaderboard: ``eval_metrics`` rows of one evaluation run as tables, plots and a report, with the
run's LLM diagnostics (``eval_llm_diagnostics``) beside it.

``fashionrec report`` prints :func:`format_leaderboard` of the latest run; the evaluation asset puts the
Markdown form in its Dagster metadata and writes :func:`write_report` under ``$FASHIONREC_HOME/reports/``.
Methods are ordered by NDCG@k, best first (the paper's headline metric next to Recall@k).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

ALL = "all"

# Column order of every leaderboard: the paper's metrics (§5.1), then the beyond-accuracy ones (002).
_METRIC_ORDER = [r"recall@\d+", r"ndcg@\d+", r"mrr", r"mrr@\d+", r"coverage@\d+", r"serendipity@\d+"]


def metric_columns(names: Sequence[str]) -> list[str]:
    """The metric names present, in leaderboard order (unknown metrics last, alphabetically)."""
    names = sorted(set(names))
    ordered = [n for pattern in _METRIC_ORDER for n in names if re.fullmatch(pattern, n)]
    return ordered + [n for n in names if n not in ordered]


def _sort_metric(columns: Sequence[str]) -> str | None:
    return next((c for c in columns if c.startswith("ndcg@")), columns[0] if columns else None)


def leaderboard_frame(metrics: pd.DataFrame, category: str = ALL, slice_name: str = ALL) -> pd.DataFrame:
    """One row per method (best NDCG first): ``method``, ``n_users`` and one column per metric.

    ``metrics`` holds ``eval_metrics`` rows (method, category, slice, metric, value, n_users) of one run.
    """
    rows = metrics[(metrics["category"] == category) & (metrics["slice"] == slice_name)]
    if rows.empty:
        return pd.DataFrame(columns=["method", "n_users"])
    table = rows.pivot_table(index="method", columns="metric", values="value", aggfunc="first")
    table = table[metric_columns(table.columns)]
    table.insert(0, "n_users", rows.groupby("method")["n_users"].max())
    sort_by = _sort_metric(list(table.columns[1:]))
    table = table.reset_index().sort_values([sort_by, "method"], ascending=[False, True], kind="stable")
    return table.reset_index(drop=True)


def _cell(value) -> str:
    if isinstance(value, float):
        return "nan" if pd.isna(value) else f"{value:.4f}"
    return str(value)


def _table_lines(frame: pd.DataFrame, markdown: bool) -> list[str]:
    header = list(frame.columns)
    body = [[_cell(v) for v in row] for row in frame.itertuples(index=False)]
    if markdown:
        lines = [
            "| " + " | ".join(header) + " |",
            "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|",
        ]
        return lines + ["| " + " | ".join(row) + " |" for row in body]
    widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(header)]
    first = [header[0].ljust(widths[0])] + [h.rjust(w) for h, w in zip(header[1:], widths[1:], strict=True)]
    lines = ["  ".join(first), "  ".join("-" * w for w in widths)]
    for row in body:
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        lines.append("  ".join(cells))
    return lines


def format_leaderboard(
    metrics: pd.DataFrame,
    categories: Sequence[str] | None = None,
    slice_name: str = ALL,
    *,
    markdown: bool = False,
    title: str | None = None,
) -> str:
    """Leaderboard tables of one run, the overall one first, then one per category.

    ``categories`` defaults to 'all' followed by every category in ``metrics``. Plain text aligns columns
    for a terminal; ``markdown=True`` gives GitHub-style tables (Dagster metadata, reports).
    """
    if metrics.empty:
        return "no evaluation metrics yet; materialize them with `fashionrec run 'group:evaluation'`"
    if categories is None:
        categories = [ALL] + sorted(c for c in metrics["category"].unique() if c != ALL)
    parts = [] if not title else [f"## {title}" if markdown else title]
    for category in categories:
        frame = leaderboard_frame(metrics, category, slice_name)
        if frame.empty:
            continue
        heading = f"category {category}" + ("" if slice_name == ALL else f", slice {slice_name}")
        parts.append(f"### {heading}" if markdown else heading)
        parts.append("\n".join(_table_lines(frame, markdown)))
    return "\n\n".join(parts)


def format_diagnostics(diagnostics: pd.DataFrame | None, *, markdown: bool = False) -> str:
    """The ``eval_llm_diagnostics`` rows of one run as one table: category 'all' first, then each
    category, and within one the pick methods by pick accuracy, best first."""
    if diagnostics is None or diagnostics.empty:
        return "no LLM diagnostics: the run read no generations or no prompts with candidates"
    table = diagnostics.assign(_overall=diagnostics["category"] != ALL).sort_values(
        ["_overall", "category", "pick_accuracy", "method"],
        ascending=[True, True, False, True],
        kind="stable",
    )
    columns = ["category", "method"] + [c for c in diagnostics.columns if c not in ("category", "method")]
    columns = [c for c in columns if c not in ("run_id", "split")]
    return "\n".join(_table_lines(table[columns].reset_index(drop=True), markdown))


@dataclass(frozen=True)
class EvaluationRun:
    """One row of ``eval_runs``: which run, when, and with which settings."""

    run_id: str
    created_at: pd.Timestamp
    label: str
    preset: str
    split: str
    config: str

    def title(self) -> str:
        label = f" '{self.label}'" if self.label else ""
        return (
            f"evaluation run {self.run_id}{label}: split {self.split}, preset {self.preset}, "
            f"{pd.Timestamp(self.created_at):%Y-%m-%d %H:%M} UTC"
        )


def load_run(con: duckdb.DuckDBPyConnection, run_id: str | None = None, split: str = "test") -> EvaluationRun:
    """The given run, or the latest run on ``split``, from ``eval_runs``."""
    tables = {r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()}
    if "eval_runs" not in tables:
        raise LookupError(
            "no evaluation has run yet; materialize it with `fashionrec run 'group:evaluation'`"
        )
    columns = "run_id, created_at, label, preset, split, config"
    if run_id is None:
        row = con.execute(
            f"select {columns} from eval_runs where split = ? order by created_at desc limit 1", [split]
        ).fetchone()
    else:
        row = con.execute(f"select {columns} from eval_runs where run_id = ?", [run_id]).fetchone()
    if row is None:
        wanted = f"run {run_id!r}" if run_id else f"a run on split {split!r}"
        raise LookupError(f'eval_runs has no {wanted}; see `fashionrec sql "select * from eval_runs"`')
    return EvaluationRun(*row)


def load_metrics(con: duckdb.DuckDBPyConnection, run_id: str) -> pd.DataFrame:
    """The ``eval_metrics`` rows of one run."""
    return con.execute(
        "select method, category, slice, metric, value, n_users from eval_metrics where run_id = ?", [run_id]
    ).df()


def print_leaderboard(
    database: Path,
    run_id: str | None = None,
    split: str = "test",
    categories: Sequence[str] | None = None,
    slice_name: str = ALL,
    echo: Callable[[str], object] = print,
) -> EvaluationRun:
    """Print the leaderboard of a run (default: the latest on ``split``) from the DuckDB warehouse."""
    if not database.exists():
        raise FileNotFoundError(f"no warehouse at {database}; build it with `fashionrec run`")
    with duckdb.connect(str(database), read_only=True) as con:
        run = load_run(con, run_id, split)
        metrics = load_metrics(con, run.run_id)
    echo(format_leaderboard(metrics, categories, slice_name, title=run.title()))
    return run


def plot_leaderboard(metrics: pd.DataFrame, path: Path, k: int = 10) -> Path:
    """Bars of Recall@k and NDCG@k per method, one panel per category ('all' first); saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    overall = metrics[metrics["slice"] == ALL]
    categories = [ALL] + sorted(c for c in overall["category"].unique() if c != ALL)
    fig, axes = plt.subplots(1, len(categories), figsize=(3.2 * len(categories) + 1, 3.6), squeeze=False)
    for ax, category in zip(axes[0], categories, strict=True):
        frame = leaderboard_frame(overall, category)
        cols = [c for c in (f"recall@{k}", f"ndcg@{k}") if c in frame.columns]
        frame.set_index("method")[cols].plot.barh(ax=ax, legend=False)
        ax.invert_yaxis()
        ax.set_title(category, fontsize=9)
        ax.set_ylabel("")
        ax.set_xlim(0, max(0.05, float(frame[cols].max().max()) * 1.15))
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), frameon=False)
    fig.suptitle(f"Recall@{k} and NDCG@{k} per category")
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_cold_start(metrics: pd.DataFrame, path: Path, metric: str = "recall@10") -> Path:
    """``metric`` per method on cold-start targets next to warm ones (all categories); saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = metrics[(metrics["category"] == ALL) & (metrics["metric"] == metric)]
    table = rows.pivot_table(index="method", columns="slice", values="value", aggfunc="first")
    table = table[[s for s in ("cold_start", "warm", ALL) if s in table.columns]]
    order = leaderboard_frame(metrics)["method"].tolist()
    table = table.reindex([m for m in order if m in table.index])
    counts = rows[rows["method"] == order[0]].set_index("slice")["n_users"] if order else pd.Series(dtype=int)
    table.columns = [f"{s} ({int(counts.get(s, 0))} users)" for s in table.columns]
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(table) + 1.8))
    table.plot.barh(ax=ax)
    ax.invert_yaxis()
    ax.set_xlabel(metric)
    ax.set_ylabel("")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.set_title(f"{metric} on cold-start targets (item never seen in training) and warm ones", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def png_markdown(path: Path, alt: str) -> str:
    """A Markdown image with the PNG inlined, so the Dagster UI shows it without file access."""
    data = base64.b64encode(path.read_bytes()).decode()
    return f"![{alt}](data:image/png;base64,{data})"


def write_report(
    run: EvaluationRun,
    metrics: pd.DataFrame,
    directory: Path,
    k: int = 10,
    diagnostics: pd.DataFrame | None = None,
) -> tuple[Path, dict[str, Path]]:
    """``report.md`` with the leaderboards, the slices, the two plots and the LLM diagnostics, in
    ``directory``.

    Returns the report path and the plot paths (``leaderboard``, ``cold_start``).
    """
    directory.mkdir(parents=True, exist_ok=True)
    plots = {
        "leaderboard": plot_leaderboard(metrics, directory / "leaderboard.png", k),
        "cold_start": plot_cold_start(metrics, directory / "cold_start.png", f"recall@{k}"),
    }
    sections = [
        f"# {run.title()}",
        f"Configuration: `{run.config}`",
        format_leaderboard(metrics, markdown=True, title="Leaderboard (all targets)"),
        f"![Recall@{k} and NDCG@{k} per category]({plots['leaderboard'].name})",
        format_leaderboard(metrics, [ALL], "cold_start", markdown=True, title="Cold-start targets"),
        format_leaderboard(metrics, [ALL], "warm", markdown=True, title="Warm targets"),
        f"![cold start vs warm]({plots['cold_start'].name})",
        "## LLM diagnostics (the LLM's picks and its controls' among the prompt's candidates)",
        format_diagnostics(diagnostics, markdown=True),
    ]
    report = directory / "report.md"
    report.write_text("\n\n".join(sections) + "\n")
    return report, plots
