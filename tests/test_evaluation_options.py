"""The evaluation's study options on the hand-made world: one adapter's answers, the retrieval ablations,
a second title table under a method suffix, baselines trained under a run name; a missing model names
how to train it."""

from __future__ import annotations

import shutil

import duckdb
import lancedb
import pytest

from fashionrec.settings import Paths
from recommender.vector_store import frame_to_arrow, write_vectors
from tests.evaluation_world import TITLE_ENCODER_DIR, evaluate, evaluated_world, step_error


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    return evaluated_world(tmp_path_factory.mktemp("eval_options_home"))


def test_a_missing_baseline_fails_the_run_with_what_to_do(evaluated, tmp_path):
    home, _, _, _ = evaluated
    config = {"baselines_dir": str(tmp_path), "methods": ["popularity", "sasrec"]}
    failure = step_error(evaluate(home, config))
    assert "fashionrec run 'key:baseline_sasrec'" in failure


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

    def run_with(**changes):
        return evaluate(home, {**config, **changes})

    assert "needs the title_encoder that wrote it and a method_suffix" in step_error(run_with())
    assert "materialize item_title_vectors with config" in step_error(run_with(method_suffix="-alt"))
    encoder = build_encoder(spec, show_progress=False)
    db = lancedb.connect(str(home / "lancedb"))
    write_vectors(
        db, "item_title_vectors_alt", frame_to_arrow(items, encoder.encode(items["title"].tolist()))
    )
    save_encoder_manifest(
        Paths.under(home).artifacts.title_vectors_manifest("item_title_vectors_alt"), encoder
    )
    assert "no rows of adapter(s) ['zs_footwear']" in step_error(
        run_with(method_suffix="-alt", adapters=["zs_footwear"])
    )
    result = run_with(method_suffix="-alt")
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

    def run_with(**changes):
        return evaluate(home, {**config, **changes})

    missing = step_error(run_with(baseline_runs=["sasrec-users_25"]))
    assert "fashionrec run 'key:baseline_sasrec'" in missing and "run_name: users_25" in missing
    for run, selection in (
        ("core-users_25", "fashionrec run 'key:item_id_vectors'"),
        ("text_seq_query-users_25", "key:baseline_text_seq_query'"),
    ):
        assert selection in step_error(run_with(baseline_runs=[run]))
    assert "is not <method>-<run_name>" in step_error(run_with(baseline_runs=["sasrec"]))
    result = run_with()
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
