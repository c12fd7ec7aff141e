"""A study's table (and curve) read back from ``eval_metrics``, printed and saved under
``$FASHIONREC_HOME/reports/studies/<study>/<time>/``.

Rows are the study file's ``table.rows`` (one per method, category and slice; all methods when it lists
none); columns Recall@K, NDCG@K, MRR@K and n_users. A row whose method the study's runs did not score
says why: the step that should have produced it was skipped (with the reason), or it is missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from cli.study_spec import Study, StudyPlot, TableRow
from fashionrec.settings import paths, preset_name

# paper Table 3's columns (MRR cut at K, the evaluation's mrr@10): eval_metrics name -> column heading
METRICS = {"recall": "Recall", "ndcg": "NDCG", "mrr": "MRR"}


@dataclass(frozen=True)
class StudyReport:
    table: pd.DataFrame
    text: str  # what the command prints
    markdown: str  # the same table for the Dagster UI
    directory: Path
    plot: Path | None


def read_study_metrics(run_ids: list[str]) -> pd.DataFrame:
    """The ``eval_metrics`` rows of these runs; a method scored by several keeps its latest run's."""
    with duckdb.connect(str(paths().duckdb_path), read_only=True) as con:
        metrics = con.execute(
            "select run_id, created_at, method, category, slice, metric, value, n_users from eval_metrics "
            "where run_id in (select unnest(?::varchar[]))",
            [run_ids],
        ).df()
    latest = metrics.groupby("method")["created_at"].transform("max")
    return metrics[metrics["created_at"] == latest].reset_index(drop=True)


def _k(metrics: pd.DataFrame) -> int:
    """The evaluation's cut-off K, from its metric names (recall@10 -> 10)."""
    cutoffs = metrics["metric"].str.extract(r"^recall@(\d+)$")[0].dropna().astype(int)
    return int(cutoffs.iloc[0]) if len(cutoffs) else 10


def study_table(study: Study, metrics: pd.DataFrame, skipped: dict[str, str]) -> pd.DataFrame:
    """One line per (row, category, slice) with the metrics at K and a note for what is missing."""
    k = _k(metrics)
    columns = {f"{name}@{k}": f"{heading}@{k}" for name, heading in METRICS.items()}
    wide = metrics[metrics["metric"].isin(list(columns))].pivot_table(
        index=["method", "category", "slice"], columns="metric", values="value", aggfunc="first"
    )
    users = metrics.groupby(["method", "category", "slice"])["n_users"].max()
    rows = study.table.rows or _every_method(metrics, k)
    lines = []
    for row in rows:
        for category in row.categories:
            for slice_name in study.table.slices:
                key = (row.method, category, slice_name)
                line = {
                    "row": row.label or row.method,
                    "method": row.method,
                    "category": category,
                    "slice": slice_name,
                }
                if key in wide.index:
                    line.update({columns[m]: wide.loc[key].get(m, np.nan) for m in columns})
                    line.update(n_users=int(users.loc[key]), note="")
                else:
                    line.update({column: np.nan for column in columns.values()})
                    line.update(n_users=0, note=_why_missing(row, metrics, skipped))
                lines.append(line | {"x": row.x, "series": row.series})
    return pd.DataFrame(lines)


def _every_method(metrics: pd.DataFrame, k: int) -> list[TableRow]:
    """Every scored method as a row, best NDCG@K (all categories, all targets) first."""
    overall = metrics[(metrics["category"] == "all") & (metrics["slice"] == "all")]
    order = overall[overall["metric"] == f"ndcg@{k}"].sort_values(
        ["value", "method"], ascending=[False, True]
    )
    return [TableRow(method=method) for method in order["method"]]


def _why_missing(row: TableRow, metrics: pd.DataFrame, skipped: dict[str, str]) -> str:
    if row.step in skipped:
        return f"skipped: {row.step!r} (why: below)"
    if row.method in set(metrics["method"]):
        return "no targets in this category or slice"
    return "not scored by the study's evaluation runs"


def format_study_table(table: pd.DataFrame, markdown: bool = False) -> str:
    shown = table.drop(columns=["x"])
    if not shown["series"].astype(bool).any():  # rows drawn per category
        shown = shown.drop(columns=["series"])
    if not shown["note"].astype(bool).any():
        shown = shown.drop(columns=["note"])
    if (shown["row"] == shown["method"]).all():  # rows without their own label
        shown = shown.drop(columns=["row"])
    if markdown:
        return shown.to_markdown(index=False, floatfmt=".4f")
    return shown.to_string(index=False, float_format=lambda v: f"{v:.4f}", na_rep="-")


def plot_lines(table: pd.DataFrame, column: str) -> list[tuple[str, pd.DataFrame]]:
    """The lines of one panel: per series (when the rows name one) and category, the scored points of
    ``column`` in ``x`` order, labelled with the series, the category where there are several, and the
    targets answered (every point of a study line answers the same ones)."""
    rows = table[table["slice"] == "all"]
    by_series = rows["series"].astype(bool).any()
    several_categories = rows["category"].nunique() > 1
    lines = []
    for (series, category), points in rows.groupby(["series", "category"], sort=False):
        points = points.dropna(subset=[column]).sort_values("x")
        users = "/".join(str(n) for n in sorted(set(points["n_users"])))
        name = category
        if by_series:
            name = f"{series}, {category}" if several_categories else series
        lines.append((f"{name} ({users} users)", points))
    return lines


def plot_study(table: pd.DataFrame, plot: StudyPlot, path: Path) -> Path:
    """Paper Figure 6's shape: each metric against the row's ``x`` (e.g. the share of training users),
    one line per series of the rows (e.g. ours, CORE, SASRec), or per category when they name none."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    headings = {c.split("@")[0]: c for c in table.columns if "@" in c}  # "NDCG" -> "NDCG@10"
    fig, axes = plt.subplots(1, len(plot.metrics), figsize=(4.2 * len(plot.metrics), 3.4), squeeze=False)
    for axis, metric in zip(axes[0], plot.metrics, strict=True):
        column = headings[METRICS[metric.split("@")[0]]]  # the study file's validation allows only these
        lines = plot_lines(table, column)
        for label, points in lines:
            axis.plot(points["x"], points[column], marker="o", label=label)
            if len(lines) > 1:  # values over several crossing lines would hide each other
                continue
            for x, y in zip(points["x"], points[column], strict=True):
                axis.annotate(
                    f"{y:.3f}", (x, y), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8
                )
        axis.set_xlabel(plot.x_label)
        axis.set_ylabel(column)
        axis.set_xticks(sorted(table["x"].dropna().unique()))
        peak = table[column].max()  # NaN when no row was scored
        axis.set_ylim(bottom=0.0, top=0.05 if pd.isna(peak) else max(0.05, float(peak) * 1.2))
        axis.grid(alpha=0.3)
        axis.legend(title="method" if table["series"].astype(bool).any() else "category", fontsize=8)
    fig.suptitle(f"{plot.title} (preset {preset_name()})")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_study_report(name: str, study: Study, run_ids: list[str], skipped: dict[str, str]) -> StudyReport:
    """Read the study's metrics, save table.csv (+ plot.png) and return what to print."""
    metrics = read_study_metrics(run_ids)
    table = study_table(study, metrics, skipped)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    directory = paths().reports.study(name, stamp)
    directory.mkdir(parents=True, exist_ok=True)
    table.to_csv(directory / "table.csv", index=False)
    plot = plot_study(table, study.plot, directory / "plot.png") if study.plot is not None else None
    lines = [
        f"study {name} (preset {preset_name()}, label study:{name}, evaluation runs {', '.join(run_ids)})",
        format_study_table(table),
    ]
    if skipped:
        lines.append("skipped steps:")
        lines.extend(f"  {step}: {why}" for step, why in skipped.items())
    lines.append(f"table: {directory / 'table.csv'}")
    if plot is not None:
        lines.append(f"plot: {plot}")
    return StudyReport(table, "\n".join(lines), format_study_table(table, markdown=True), directory, plot)
