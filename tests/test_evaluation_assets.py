"""The evaluation assets on a hand-made warehouse: runs append, SQL agrees with Python, marts build.

Upstream tables (splits, items, user_sequences, prompt_inputs, generations), the vector tables and small
randomly initialised models are written into a temporary FASHIONREC_HOME (tests/evaluation_world.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import lancedb
import numpy as np
import pandas as pd
import pytest

from assets.evaluation import evaluation_assets
from assets.resources import PipelineSettings, pipeline_resources
from evaluation.leaderboard import print_leaderboard
from fashionrec.settings import DBT_PROJECT_DIR, Paths
from recommender.vector_store import frame_to_arrow, write_vectors
from tests.evaluation_world import TITLE_ENCODER_DIR, hand_made_world
from training.baselines import SEQUENCE_BASELINES

BASELINES = [*SEQUENCE_BASELINES, "text_seq_query"]
HEADLINE_METHODS = {"llm_mixup", "llm_only", "core", "popularity", *BASELINES}

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

# The evaluation examples of the README, run here against the marts (tests/test_readme.py runs the README).
README_SQL = [
    """
select category, leaderboard_rank, method, n_users, recall_at_10, ndcg_at_10, mrr, mrr_at_10,
       coverage_at_10, serendipity_at_10
from eval_leaderboard
order by category = 'all' desc, category, leaderboard_rank;
""",
    """
select method, slice, n_users, round(share_of_users, 3) as share_of_users,
       recall_at_10, ndcg_at_10, ranked_share, median_rank
from eval_by_slice
where is_latest_run and split = 'test' and category = 'all'
order by method, slice;
""",
    """
select created_at, run_label, preset, method, ndcg_at_10, ndcg_at_10_change
from eval_run_history
where split = 'test'
order by created_at desc, ndcg_at_10 desc
limit 20;
""",
    """
with latest as (
    select run_id from eval_runs where split = 'test' order by created_at desc limit 1
)
select
    method,
    count(*) as n_users,
    avg(case when rank <= 10 then 1.0 else 0.0 end) as recall_at_10,
    avg(case when rank <= 10 then 1.0 / log2(rank + 1) else 0.0 end) as ndcg_at_10,
    avg(coalesce(1.0 / rank, 0.0)) as mrr
from eval_ranks
where run_id = (select run_id from latest)
group by method
order by ndcg_at_10 desc;
""",
    """
with latest as (
    select run_id from eval_runs where split = 'test' order by created_at desc limit 1
)
select r.user_id, r.rank, r.item_id, r.source, round(r.score, 3) as score, i.title,
       r.item_id = s.target_item_id as is_purchased
from recommendations as r
join items as i on i.item_id = r.item_id
join splits as s on s.target_id = r.target_id
where r.method = 'llm_mixup' and r.run_id = (select run_id from latest)
order by r.user_id, r.rank
limit 20;
""",
]


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """Two evaluation runs of the assets on the hand-made world."""
    home = tmp_path_factory.mktemp("eval_home")
    items, splits, title_encoder_spec = hand_made_world(home)
    resources = tiny_resources(home)
    results = []
    for label in ("first", "second"):
        run_config = {
            "ops": {"evaluation": {"config": {"label": label, "title_encoder": title_encoder_spec}}}
        }
        result = dg.materialize(
            evaluation_assets,
            resources=resources,
            run_config=run_config,
            instance=dg.DagsterInstance.ephemeral(),
        )
        assert result.success
        results.append(result)
    return home, items, splits, results


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
        for table in ("eval_ranks", "eval_metrics", "recommendations"):
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
        mixup_first = con.execute(
            "select source from recommendations where method = 'llm_mixup' and rank = 1 and target_id in "
            "(select target_id from generations where item_id in (select item_id from items))"
        ).fetchall()
        assert mixup_first and all(s == "id" for (s,) in mixup_first)  # N = 1 from the ID list


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
    assert set(metadata) == {"recommendations", "eval_ranks", "eval_metrics"}
    board = metadata["eval_metrics"]["leaderboard"].value
    assert "| method |" in board and "llm_mixup" in board and "### category Footwear" in board
    assert metadata["eval_metrics"]["leaderboard_plot"].value.startswith(
        "![leaderboard](data:image/png;base64,"
    )
    report = home / "reports" / "evaluation" / result.run_id / "report.md"
    assert str(report) == metadata["eval_metrics"]["report"].value
    text = report.read_text()
    assert "Cold-start targets" in text and "(leaderboard.png)" in text
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
        for sql in README_SQL:
            assert con.execute(sql).fetchall(), sql


def test_a_missing_baseline_fails_the_run_with_what_to_do(evaluated, tmp_path):
    home, _, _, _ = evaluated
    config = {"baselines_dir": str(tmp_path), "methods": ["popularity", "sasrec"]}
    failure = _step_error(_evaluate(home, config))
    assert "fashionrec run 'key:baseline_sasrec'" in failure


def tiny_resources(home: Path) -> dict:
    """The pipeline's resources on ``home`` at the tiny preset: no FASHIONREC_* variable is read."""
    return pipeline_resources(PipelineSettings(home=str(home), raw_dir=str(home / "raw"), preset="tiny"))


def _evaluate(home: Path, config: dict):
    """Materialize the evaluation assets on ``home``'s warehouse with this evaluation config."""
    return dg.materialize(
        evaluation_assets,
        resources=tiny_resources(home),
        run_config={"ops": {"evaluation": {"config": config}}},
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def _step_error(result) -> str:
    """The error of a run that must have failed."""
    assert not result.success
    return result.get_step_failure_events()[0].event_specific_data.error.to_string()


def test_adapters_retrieval_ablations_and_a_second_title_table(evaluated):
    """The study options: score one adapter's answers, add Table 3's retrieval ablations, and retrieve
    titles from another table (as the CLIP row does) under a method suffix; mismatches are refused."""
    from recommender.encoder_specs import build_encoder
    from recommender.encoders import save_encoder_manifest

    home, items, _, _ = evaluated
    spec = f"lstm:{home / 'artifacts' / TITLE_ENCODER_DIR}"
    config = {
        "methods": ["llm_mixup"],
        "adapters": ["no_attributes"],
        "retrieval_ablations": ["no_text_embedding", "no_id_embedding"],
        "title_encoder": spec,
        "title_vectors_table": "item_title_vectors_alt",
        "label": "alternative titles",
    }

    def evaluate(**changes):
        return _evaluate(home, {**config, **changes})

    assert "needs the title_encoder that wrote it and a method_suffix" in _step_error(evaluate())
    assert "materialize item_title_vectors with config" in _step_error(evaluate(method_suffix="-alt"))
    encoder = build_encoder(spec, show_progress=False)
    db = lancedb.connect(str(home / "lancedb"))
    write_vectors(
        db, "item_title_vectors_alt", frame_to_arrow(items, encoder.encode(items["title"].tolist()))
    )
    save_encoder_manifest(
        Paths.under(home).artifacts.title_vectors_manifest("item_title_vectors_alt"), encoder
    )
    assert "no rows of adapter(s) ['zs_footwear']" in _step_error(
        evaluate(method_suffix="-alt", adapters=["zs_footwear"])
    )
    result = evaluate(method_suffix="-alt")
    assert result.success

    with duckdb.connect(str(home / "fashionrec.duckdb"), read_only=True) as con:
        sources = dict(
            con.execute(
                "select method, list(distinct source order by source) from recommendations where run_id = ? "
                "group by method",
                [result.run_id],
            ).fetchall()
        )
        label = con.execute("select label from eval_runs where run_id = ?", [result.run_id]).fetchone()[0]
    assert sources == {
        "llm_mixup-no_attributes-alt": ["id", "title"],
        "llm_mixup-no_attributes-no_text_embedding-alt": ["id"],
        "llm_mixup-no_attributes-no_id_embedding-alt": ["title"],
    }
    assert label == "alternative titles"


def test_baseline_runs_are_scored_under_their_own_names(evaluated, tmp_path):
    """The low-resource study's baselines: models saved under a run name are scored as
    <method>-<run_name> next to the default ones; a run that was never trained says how to train it."""
    home, _, _, _ = evaluated
    runs = tmp_path / "baselines"
    shutil.copytree(home / "artifacts" / "baselines" / "sasrec", runs / "sasrec")
    shutil.copytree(home / "artifacts" / "baselines" / "sasrec", runs / "sasrec-users_10")
    shutil.copytree(home / "artifacts" / "core", runs / "core-users_10")  # the same weights: the same ranks
    for name in ("text_seq_query", "text_seq_query-users_10"):
        shutil.copytree(home / "artifacts" / "baselines" / "text_seq_query", runs / name)
    config = {
        "methods": ["popularity", "core", "sasrec", "text_seq_query"],
        "baseline_runs": ["sasrec-users_10", "core-users_10", "text_seq_query-users_10"],
        "baselines_dir": str(runs),
        "label": "baseline runs",
    }

    def evaluate(**changes):
        return _evaluate(home, {**config, **changes})

    missing = _step_error(evaluate(baseline_runs=["sasrec-users_25"]))
    assert "fashionrec run 'key:baseline_sasrec'" in missing and "run_name: users_25" in missing
    for run, selection in (
        ("core-users_25", "fashionrec run 'key:item_id_vectors'"),
        ("text_seq_query-users_25", "key:baseline_text_seq_query'"),
    ):
        assert selection in _step_error(evaluate(baseline_runs=[run]))
    assert "is not <method>-<run_name>" in _step_error(evaluate(baseline_runs=["sasrec"]))
    result = evaluate()
    assert result.success

    with duckdb.connect(str(home / "fashionrec.duckdb"), read_only=True) as con:
        ranks = con.execute(
            "select method, target_id, rank from eval_ranks where run_id = ?", [result.run_id]
        ).df()
        scored = {
            method
            for (method,) in con.execute(
                "select distinct method from eval_metrics where run_id = ? and metric = 'ndcg@10'",
                [result.run_id],
            ).fetchall()
        }
    assert scored == set(config["methods"] + config["baseline_runs"])
    by_method = ranks.pivot(index="target_id", columns="method", values="rank")
    assert len(by_method) == ranks.groupby("method").size().max() == ranks.groupby("method").size().min()
    assert by_method["core-users_10"].equals(by_method["core"])
    assert by_method["sasrec-users_10"].equals(by_method["sasrec"])
    assert by_method["text_seq_query-users_10"].equals(by_method["text_seq_query"])
