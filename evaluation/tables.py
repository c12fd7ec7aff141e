"""The evaluation tables in DuckDB (docs/evaluation.md "The evaluation tables"): ``eval_runs``,
``recommendations``, ``eval_ranks``, ``eval_metrics`` and ``eval_llm_diagnostics``, to which every
evaluation run appends its rows under its run id; the dbt evaluation marts read them.
"""

from __future__ import annotations

import pandas as pd

from evaluation.protocol import EvaluationResult

# The dbt staging models (dbt_project/models/evaluation/stg_evaluation__*.sql) spell the same columns and
# types for the empty view they build before the first run: a change here is a change there.
EVAL_TABLE_COLUMNS: dict[str, dict[str, str]] = {
    "eval_runs": {
        "run_id": "varchar",
        "created_at": "timestamp",
        "label": "varchar",
        "preset": "varchar",
        "split": "varchar",
        "config": "json",
        "methods": "varchar[]",
        "n_targets": "integer",
    },
    "recommendations": {
        "run_id": "varchar",
        "method": "varchar",
        "target_id": "varchar",
        "user_id": "varchar",
        "category": "varchar",
        "rank": "integer",
        "item_id": "varchar",
        "source": "varchar",
        "score": "double",
        "split": "varchar",
    },
    "eval_ranks": {
        "run_id": "varchar",
        "method": "varchar",
        "user_id": "varchar",
        "category": "varchar",
        "target_item_id": "varchar",
        "rank": "integer",
        "target_id": "varchar",
        "split": "varchar",
        "is_cold_item": "boolean",
    },
    "eval_metrics": {
        "run_id": "varchar",
        "created_at": "timestamp",
        "method": "varchar",
        "category": "varchar",
        "slice": "varchar",
        "metric": "varchar",
        "value": "double",
        "n_users": "integer",
        "split": "varchar",
    },
    "eval_llm_diagnostics": {
        "run_id": "varchar",
        "split": "varchar",
        "method": "varchar",
        "category": "varchar",
        "n_targets": "integer",
        "n_with_candidates": "integer",
        "mean_candidates": "double",
        "candidate_recall": "double",
        "pick_accuracy": "double",
        "pick_accuracy_se": "double",
        "pick_accuracy_given_recall": "double",
    },
}


def ensure_eval_tables(con) -> None:
    """Create the evaluation tables when missing; existing tables and their runs are left as they are."""
    for table, columns in EVAL_TABLE_COLUMNS.items():
        body = ", ".join(f'"{name}" {sql_type}' for name, sql_type in columns.items())
        con.execute(f"create table if not exists main.{table} ({body})")


def _insert(con, table: str, frame: pd.DataFrame) -> None:
    columns = EVAL_TABLE_COLUMNS[table]
    frame = frame[list(columns)]
    con.register("_eval_rows", frame)
    try:
        casts = ", ".join(f'cast("{c}" as {t}) as "{c}"' for c, t in columns.items())
        con.execute(f"insert into main.{table} by name select {casts} from _eval_rows")
    finally:
        con.unregister("_eval_rows")


def write_evaluation_run(
    con,
    run_id: str,
    created_at: pd.Timestamp,
    split: str,
    result: EvaluationResult,
    targets: pd.DataFrame,
    *,
    label: str = "",
    preset: str = "",
    config_json: str = "{}",
) -> dict[str, int]:
    """Append one run to ``eval_runs``, ``recommendations``, ``eval_ranks``, ``eval_metrics`` and
    ``eval_llm_diagnostics`` (no rows for a run without diagnostics).

    Earlier runs are never touched; rows of the same ``run_id`` (a retried run) are replaced, all in one
    transaction. Returns the rows written per table.
    """
    created_at = pd.Timestamp(created_at)
    if created_at.tzinfo is not None:
        created_at = created_at.tz_convert("UTC").tz_localize(None)  # stored as a UTC timestamp
    of_target = targets.set_index("target_id")[["user_id", "category"]]
    lists = result.lists.join(of_target, on="target_id")
    diagnostics = result.diagnostics
    if diagnostics is None:
        diagnostics = pd.DataFrame(columns=list(EVAL_TABLE_COLUMNS["eval_llm_diagnostics"]))
    frames = {
        "eval_runs": pd.DataFrame(
            {
                "run_id": [run_id],
                "created_at": [created_at],
                "label": [label],
                "preset": [preset],
                "split": [split],
                "config": [config_json],
                "methods": [sorted(result.ranks["method"].unique().tolist())],
                "n_targets": [len(targets)],
            }
        ),
        "recommendations": lists.assign(run_id=run_id, split=split),
        "eval_ranks": result.ranks.assign(run_id=run_id, split=split),
        "eval_metrics": result.metrics.assign(run_id=run_id, created_at=created_at, split=split),
        "eval_llm_diagnostics": diagnostics.assign(run_id=run_id, split=split),
    }
    ensure_eval_tables(con)
    con.execute("begin transaction")
    try:
        for table, frame in frames.items():
            con.execute(f"delete from main.{table} where run_id = ?", [run_id])
            _insert(con, table, frame)
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    return {table: len(frame) for table, frame in frames.items()}
