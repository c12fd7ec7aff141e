"""The evaluation assets on a hand-made warehouse: runs append, SQL agrees with Python, marts build.

Upstream tables (splits, items, user_sequences, prompt_inputs, generations), the vector tables and small
randomly initialised models are written into a temporary FASHIONREC_HOME (tests/evaluation_world.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from evaluation.leaderboard import print_leaderboard
from fashionrec.settings import DBT_PROJECT_DIR
from tests.evaluation_world import evaluated_world
from tests.test_readme import sql_blocks
from training.baselines import SEQUENCE_BASELINES

BASELINES = [*SEQUENCE_BASELINES, "text_seq_query"]
CONTROLS = {"memory_first", "memory_random"}
HEADLINE_METHODS = {"llm_mixup", "llm_only", *CONTROLS, "core", "popularity", *BASELINES}

# Recomputes eval_metrics' ranking metrics from eval_ranks (the README shows the same query).
RECOMPUTE_SQL = """
with ranks as (
    select
        method,
        category,
        case when is_cold_item then 'cold_start' else 'warm' end as slice,
        rank
    from eval_ranks
    where run_id = $run_id
),
in_groups as (
    select method, category, slice, rank from ranks
    union all select method, category, 'all', rank from ranks
    union all select method, 'all', slice, rank from ranks
    union all select method, 'all', 'all', rank from ranks
)
select
    method,
    category,
    slice,
    count(*) as n_users,
    avg(case when rank <= 10 then 1.0 else 0.0 end) as "recall@10",
    avg(case when rank <= 10 then 1.0 / log2(rank + 1) else 0.0 end) as "ndcg@10",
    avg(coalesce(1.0 / rank, 0.0)) as "mrr",
    avg(case when rank <= 10 then 1.0 / rank else 0.0 end) as "mrr@10"
from in_groups
group by method, category, slice
order by method, category, slice
"""

# docs/evaluation.md's examples of the evaluation marts, run here against the hand-made world's marts too
# (its generations table holds only what the evaluation reads; tests/test_readme.py runs every block
# against a real tiny warehouse)
EVALUATION_SQL = [sql for sql in sql_blocks("docs/evaluation.md") if "from generations" not in sql]


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    return evaluated_world(tmp_path_factory.mktemp("eval_home"))


def test_runs_are_appended_with_their_configuration(evaluated):
    home, _, splits, results = evaluated
    with duckdb.connect(str(home / "fashionrec.duckdb"), read_only=True) as con:
        runs = con.execute(
            "select run_id, label, preset, split, config, n_targets from eval_runs order by created_at"
        ).df()
        assert runs["run_id"].tolist() == [r.run_id for r in results]
        assert runs["label"].tolist() == ["first", "second"]
        assert runs["preset"].eq("tiny").all() and runs["n_targets"].eq(7).all()
        config = json.loads(runs["config"].iloc[0])
        assert config["k"] == 10 and config["n"] == 1 and config["split"] == "test"
        for table in ("eval_ranks", "eval_metrics", "recommendations", "eval_llm_diagnostics"):
            per_run = con.execute(f"select run_id, count(*) from {table} group by run_id").fetchall()
            assert len(per_run) == 2 and per_run[0][1] == per_run[1][1], table
        methods = {r[0] for r in con.execute("select distinct method from eval_metrics").fetchall()}
        assert methods == HEADLINE_METHODS | {"llm_mixup-no_attributes", "llm_only-no_attributes"}
        ranks = con.execute(
            "select method, count(*), count(rank) from eval_ranks where run_id = ? group by method",
            [results[0].run_id],
        ).fetchall()
        assert all(n == 7 for _, n, _ in ranks)  # every answered target under every method
        sources = dict(
            con.execute(
                "select method, list(distinct source order by source) from recommendations group by method"
            ).fetchall()
        )
        assert sources["llm_mixup"] == ["id", "title"] and sources["core"] == ["list"]
        assert all(sources[method] == ["list"] for method in BASELINES)
        assert sources["llm_only"] == ["id"]
        # the controls: their lead from the candidates, then the mixup of their first candidate
        assert all("ranked" in sources[method] for method in CONTROLS), sources
        assert "memory_first" in methods and "memory_random" in methods
        mixup_first = con.execute(
            "select source from recommendations where method = 'llm_mixup' and rank = 1 and target_id in "
            "(select target_id from generations where item_id in (select item_id from items))"
        ).fetchall()
        assert mixup_first and all(s == "id" for (s,) in mixup_first)  # N = 1 from the ID list


def test_controls_answer_the_llms_targets_from_the_prompts_candidates(evaluated):
    """memory_first leads with the prompt's first candidate; a target without candidates gets no list;
    eval_llm_diagnostics counts recall and accuracy on the headline LLM's targets."""
    home, _, _, results = evaluated
    run_id = results[-1].run_id
    with duckdb.connect(str(home / "fashionrec.duckdb"), read_only=True) as con:
        firsts = dict(
            con.execute(
                "select target_id, item_id from recommendations where run_id = ? and method = 'memory_first' "
                "and rank = 1",
                [run_id],
            ).fetchall()
        )
        shown = dict(
            con.execute(
                "select target_id, candidate_item_ids[1] from prompts where variant = 'full' "
                "and len(candidate_item_ids) > 0"
            ).fetchall()
        )
        ranked = dict(
            con.execute(
                "select method, count(distinct target_id) from eval_ranks where run_id = ? group by method",
                [run_id],
            ).fetchall()
        )
        rows = con.execute(
            "select * from eval_llm_diagnostics where run_id = ? order by method, category", [run_id]
        ).df()
    answered = {f"e{u}_6" for u in (0, 1, 2, 3, 4, 6, 7)}  # u5's full prompt was not answered
    assert firsts == {t: shown[t] for t in answered - {"e7_6"}}  # u7's prompt shows no candidates
    assert ranked["memory_first"] == ranked["memory_random"] == ranked["llm_mixup"] == len(answered)
    assert set(rows["method"]) == {"llm_mixup", "llm_mixup-no_attributes", *CONTROLS}
    assert rows["split"].eq("test").all()
    overall = rows[rows["category"] == "all"].set_index("method")
    assert overall["n_targets"].eq(7).all() and overall["n_with_candidates"].eq(6).all()
    assert overall["candidate_recall"].eq(4 / 7).all()  # u0..u3 (tests/evaluation_world.py)
    assert overall.loc["memory_first", "pick_accuracy"] == pytest.approx(2 / 7)  # u0, u1
    assert overall.loc["memory_first", "pick_accuracy_given_recall"] == pytest.approx(0.5)
    # the headline LLM names the target for u0..u3 and nothing in the catalog for the others
    assert overall.loc["llm_mixup", "pick_accuracy"] == pytest.approx(4 / 7)
    assert overall.loc["llm_mixup", "pick_accuracy_given_recall"] == 1.0
    assert set(rows["category"]) == {"all", "Footwear", "Luggage & Bags"}


def test_eval_metrics_recomputed_from_eval_ranks_in_sql_match_python(evaluated):
    home, _, _, results = evaluated
    run_id = results[-1].run_id
    with duckdb.connect(str(home / "fashionrec.duckdb"), read_only=True) as con:
        recomputed = con.execute(RECOMPUTE_SQL, {"run_id": run_id}).df()
        python = con.execute(
            "select method, category, slice, metric, value, n_users from eval_metrics where run_id = ?",
            [run_id],
        ).df()
    long = recomputed.melt(
        id_vars=["method", "category", "slice", "n_users"], var_name="metric", value_name="sql"
    )
    merged = long.merge(python, on=["method", "category", "slice", "metric"], how="outer", indicator=True)
    ranking = merged[merged["metric"].isin(["recall@10", "ndcg@10", "mrr", "mrr@10"])]
    assert (ranking["_merge"] == "both").all(), ranking[ranking["_merge"] != "both"]
    np.testing.assert_allclose(ranking["sql"], ranking["value"], atol=1e-12)
    assert (ranking["n_users_x"] == ranking["n_users_y"]).all()
    assert len(ranking) == 4 * len(recomputed) and len(recomputed) >= 6 * 3


def test_coverage_recomputed_from_recommendations_matches(evaluated):
    home, items, _, results = evaluated
    run_id = results[-1].run_id
    with duckdb.connect(str(home / "fashionrec.duckdb"), read_only=True) as con:
        sql = (
            con.execute(
                """
            select method, count(distinct item_id) / (select count(*) from items) as coverage
            from recommendations where run_id = ? and rank <= 10 group by method
            """,
                [run_id],
            )
            .df()
            .set_index("method")["coverage"]
        )
        python = (
            con.execute(
                "select method, value from eval_metrics where run_id = ? and metric = 'coverage@10' "
                "and category = 'all' and slice = 'all'",
                [run_id],
            )
            .df()
            .set_index("method")["value"]
        )
    pd.testing.assert_series_equal(sql.sort_index(), python.sort_index(), check_names=False)


def test_metadata_report_and_printed_leaderboard(evaluated, capsys):
    home, _, _, results = evaluated
    result = results[-1]
    metadata = {
        m.asset_key.to_user_string(): m.metadata
        for m in (e.materialization for e in result.get_asset_materialization_events())
    }
    assert set(metadata) == {"recommendations", "eval_ranks", "eval_metrics", "eval_llm_diagnostics"}
    board = metadata["eval_metrics"]["leaderboard"].value
    assert "| method |" in board and "llm_mixup" in board and "### category Footwear" in board
    assert "memory_first" in board and "memory_random" in board
    diagnostics = metadata["eval_llm_diagnostics"]["diagnostics"].value
    assert "| category | method |" in diagnostics and "pick_accuracy_given_recall" in diagnostics
    assert (
        metadata["eval_llm_diagnostics"]["dagster/row_count"].value == 4 * 3
    )  # 4 pick methods, 3 categories
    assert metadata["eval_metrics"]["leaderboard_plot"].value.startswith(
        "![leaderboard](data:image/png;base64,"
    )
    report = home / "reports" / "evaluation" / result.run_id / "report.md"
    assert str(report) == metadata["eval_metrics"]["report"].value
    text = report.read_text()
    assert "Cold-start targets" in text and "(leaderboard.png)" in text
    assert "## LLM diagnostics" in text and "| all | memory_random |" in text
    assert (report.parent / "leaderboard.png").stat().st_size > 1000
    assert (report.parent / "cold_start.png").stat().st_size > 1000
    assert metadata["eval_ranks"]["users_per_second"].value["core"] > 0
    run = print_leaderboard(home / "fashionrec.duckdb")
    printed = capsys.readouterr().out
    assert run.run_id == result.run_id and "'second'" in printed
    assert "popularity" in printed and "serendipity@10" in printed


def test_dbt_marts_build_on_the_evaluation_tables(evaluated, tmp_path):
    home, _, _, results = evaluated
    # a separate process, as Dagster runs dbt: dbt-duckdb keeps its database connection open
    dbt = Path(sys.executable).with_name("dbt")
    outcome = subprocess.run(
        [
            str(dbt),
            "build",
            "--select",
            "tag:evaluation",
            "--project-dir",
            str(DBT_PROJECT_DIR),
            "--profiles-dir",
            str(DBT_PROJECT_DIR),
            "--target-path",
            str(tmp_path / "target"),
            "--log-path",
            str(tmp_path / "logs"),
        ],
        env={**os.environ, "FASHIONREC_HOME": str(home)},
        capture_output=True,
        text=True,
    )
    assert outcome.returncode == 0, outcome.stdout[-3000:]
    with duckdb.connect(str(home / "fashionrec.duckdb"), read_only=True) as con:
        board = con.execute("select * from eval_leaderboard").df()
        assert board["run_id"].eq(results[-1].run_id).all()
        assert set(board["category"]) == {"all", "Footwear", "Luggage & Bags"}
        overall = board[board["category"] == "all"].sort_values("leaderboard_rank")
        n_methods = len(HEADLINE_METHODS) + 2  # and the two ablations
        assert overall["leaderboard_rank"].tolist() == list(range(1, n_methods + 1))
        assert CONTROLS <= set(overall["method"])
        assert overall["ndcg_at_10"].is_monotonic_decreasing
        python = (
            con.execute(
                "select method, value from eval_metrics where run_id = ? and metric = 'ndcg@10' "
                "and category = 'all' and slice = 'all'",
                [results[-1].run_id],
            )
            .df()
            .set_index("method")["value"]
        )
        np.testing.assert_allclose(
            overall.set_index("method")["ndcg_at_10"].sort_index(), python.sort_index()
        )
        history = con.execute("select run_id, method, run_number, previous_run_id from eval_run_history").df()
        assert len(history) == 2 * n_methods and set(history["run_number"]) == {1, 2}
        second = history[history["run_number"] == 2]
        assert second["previous_run_id"].eq(results[0].run_id).all()
        slices = con.execute(
            "select slice, n_users, share_of_users, ranked_share from eval_by_slice "
            "where is_latest_run and method = 'popularity' and category = 'all' order by slice"
        ).fetchall()
        assert [s[0] for s in slices] == ["all", "cold_start", "warm"]
        assert slices[0][1] == 7 and slices[0][2] == 1.0 and slices[0][3] == 1.0
        assert slices[1][1] + slices[2][1] == 7
        picks = con.execute(
            "select pick_method, category, pick_accuracy, pick_accuracy_minus_memory_first "
            "from eval_llm_picks "
            "where is_latest_run and split = 'test'"
        ).df()
        assert len(picks) == 4 * 3 and picks["pick_accuracy"].notna().all()
        first = picks[picks["pick_method"] == "memory_first"]
        assert first["pick_accuracy_minus_memory_first"].eq(0.0).all()
        runs = con.execute("select count(distinct run_id) from eval_llm_picks").fetchone()[0]
        assert runs == 2
        for sql in EVALUATION_SQL:
            assert con.execute(sql).fetchall(), sql
