"""Studies (`fashionrec study`) and run config files (`fashionrec run --config`): the study files plan
against the code location, bad files say what is wrong, and one study runs end to end on tiny."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from cli.main import app
from cli.studies import EVALUATION_OP, describe_plan, plan_study
from cli.study_report import format_study_table, plot_lines, study_table
from cli.study_spec import StudyError, list_studies, load_study
from tests.conftest import point_at
from tests.test_readme import STUDY_SQL_BLOCKS

runner = CliRunner()
SMALL_STUDY = (
    Path(__file__).parent / "fixtures" / "studies" / "low_resource.yaml"
)  # its label: study:low_resource
TINY_CATEGORIES = {"Footwear", "Luggage & Bags", "Accessories & Jewelry", "Clothing"}


def evaluation_config(plan, step: str) -> dict:
    chosen = next(s for s in plan.steps if s.name == step)
    return chosen.run_config["ops"][EVALUATION_OP]["config"]


@pytest.fixture
def no_warehouse(tmp_path, monkeypatch):
    point_at(monkeypatch, tmp_path / "empty_home")


def test_every_study_plans_and_the_clip_row_says_why_it_is_skipped(no_warehouse, monkeypatch):
    monkeypatch.delenv("FASHIONREC_CLIP_ENCODER", raising=False)
    assert {name for name, _ in list_studies()} == {"ablations", "cold_start", "zero_shot", "low_resource"}
    for name, _ in list_studies():
        plan = plan_study(name, categories=TINY_CATEGORIES)
        evaluations = [step for step in plan.steps if step.evaluates]
        assert evaluations, name
        for step in evaluations:
            assert step.run_config["ops"][EVALUATION_OP]["config"]["label"] == f"study:{name}"
    plan = plan_study("ablations", categories=TINY_CATEGORIES)
    assert set(plan.skipped) == {"CLIP title vectors", "evaluate with CLIP title retrieval"}
    assert "FASHIONREC_CLIP_ENCODER is not set" in plan.skipped["CLIP title vectors"]
    notes = evaluation_config(plan, "evaluate the prompt and retrieval ablations")["notes"]
    assert "CLIP title vectors" in notes and "local checkpoint" in notes
    assert "skipped: FASHIONREC_CLIP_ENCODER is not set" in describe_plan(plan)

    monkeypatch.setenv("FASHIONREC_CLIP_ENCODER", "open_clip:ViT-B-32@/models/clip.bin")
    plan = plan_study("ablations", ["generations.max_prompts_per_split=6"], categories=TINY_CATEGORIES)
    assert not plan.skipped
    clip = evaluation_config(plan, "evaluate with CLIP title retrieval")
    assert clip["title_encoder"] == "open_clip:ViT-B-32@/models/clip.bin" and "notes" not in clip
    answers = [
        s.run_config["ops"]["generations"]["config"]
        for s in plan.steps
        if "generations" in s.run_config["ops"]
    ]
    assert len(answers) == 4 and all(config["max_prompts_per_split"] == 6 for config in answers)


def test_zero_shot_refuses_a_warehouse_without_the_categories(no_warehouse):
    with pytest.raises(StudyError, match="warehouse has no Footwear"):
        plan_study("zero_shot", categories={"Luggage & Bags"})


STEP = "steps:\n  - name: s\n    selection: {selection}\n    config: {config}\n"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            STEP.format(selection="key:lora_adapter", config="{lora_adaptr: {}}"),
            "'lora_adaptr', which is not an asset",
        ),
        (
            STEP.format(selection="key:lora_adapter", config="{lora_adapter: {adapterr: x}}"),
            'unexpected config entry "adapterr"',
        ),
        (
            STEP.format(selection="key:lora_adapter", config="{lora_adapter: {max_train_prompts: many}}"),
            "max_train_prompts",
        ),
        (
            STEP.format(selection="key:generations", config="{lora_adapter: {adapter: x}}"),
            "'key:generations' does not materialize it",
        ),
        (STEP.format(selection="key:nope", config="{}"), "matches no asset"),
        (
            STEP.format(selection="key:eval_metrics", config="{eval_metrics: {label: mine}}"),
            "remove `label`",
        ),
        ("steps:\n  - name: s\n    config: {}\n", "steps.0.selection: Field required"),
        ("steps: []\n", "steps: List should have at least 1 item"),
        (STEP.format(selection="key:prompts", config="{prompts: {}}") + "tabel: {}\n", "tabel: Extra inputs"),
    ],
)
def test_a_bad_study_file_names_the_problem(no_warehouse, tmp_path, body, message):
    path = tmp_path / "bad.yaml"
    path.write_text("description: a broken study\n" + body)
    with pytest.raises(StudyError, match=message):
        plan_study(str(path), categories=TINY_CATEGORIES)


def test_an_override_must_reach_a_step(no_warehouse):
    with pytest.raises(StudyError, match="no step of study 'low_resource' materializes"):
        plan_study(str(SMALL_STUDY), ["prompts.variants=[full]"], categories=TINY_CATEGORIES)
    with pytest.raises(StudyError, match="expected ASSET.FIELD=VALUE"):
        plan_study(str(SMALL_STUDY), ["max_train_prompts=8"], categories=TINY_CATEGORIES)


@pytest.fixture(scope="module")
def study_copy(tiny_pipeline, tmp_path_factory) -> Path:
    """A copy of the session's tiny home: the studies append runs and adapters that the other tests'
    "latest run" must not see."""
    home = tmp_path_factory.mktemp("study") / "home"
    shutil.copytree(tiny_pipeline.home, home)
    return home


@pytest.fixture
def study_home(study_copy, monkeypatch) -> Path:
    point_at(monkeypatch, study_copy)
    (study_copy / "dagster_home").mkdir(exist_ok=True)
    monkeypatch.setenv("DAGSTER_HOME", str(study_copy / "dagster_home"))  # the CLI's persistent instance
    return study_copy


def test_run_passes_a_run_config_file_to_dagster(study_home, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("ops:\n  evaluation:\n    config: {methods: [popularity], label: from-a-config-file}\n")
    result = runner.invoke(app, ["run", "key:eval_metrics", "--config", str(config)])
    assert result.exit_code == 0, result.output
    with duckdb.connect(str(study_home / "fashionrec.duckdb"), read_only=True) as con:
        label, methods = con.execute(
            "select label, methods from eval_runs order by created_at desc limit 1"
        ).fetchone()
    assert (label, methods) == ("from-a-config-file", ["popularity"])

    config.write_text("ops:\n  evaluation:\n    config: {methodz: [popularity]}\n")
    result = runner.invoke(app, ["run", "key:eval_metrics", "--config", str(config)])
    assert result.exit_code != 0
    assert 'unexpected config entry "methodz"' in result.output


def _files(directory: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``directory`` with its size and modification time: what a rewrite changes."""
    return {
        str(path.relative_to(directory)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


@pytest.mark.parametrize(
    ("selection", "op", "config", "message"),
    [
        (
            "key:baseline_sasrec",
            "baselines",
            {"train_user_fraction": 0.5},
            "needs a run_name (e.g. users_10)",
        ),
        (
            "key:item_id_vectors",
            "item_id_vectors",
            {"run_name": "users_50", "train_user_fraction": 1.5},
            "train_user_fraction must be in (0, 1]; got 1.5",
        ),
        (
            "key:baseline_llmseqsim",
            "baselines",
            {"run_name": "users_50"},
            "learn nothing from train examples",
        ),
        (
            "key:baseline_text_seq_query",
            "baselines",
            {"run_name": "users_50", "train_user_fraction": 0.5},
            "needs title vectors from a title encoder trained on that share",
        ),
        (
            "key:item_title_vectors",
            "item_title_vectors",
            {"title_encoder_run": "users_50"},
            "into a table of its own: set `table`",
        ),
    ],
)
def test_a_share_that_would_replace_or_mislabel_a_model_fails_with_what_to_do(
    study_home, selection, op, config, message
):
    from dagster import DagsterInstance

    from cli.runs import materialize_selection

    summary = materialize_selection(
        selection,
        instance=DagsterInstance.ephemeral(),
        log_level="CRITICAL",
        run_config={"ops": {op: {"config": config}}},
    )
    assert not summary.success
    assert message in "\n".join(summary.step_failures)


def test_a_study_runs_end_to_end_and_lands_in_the_evaluation_tables(study_home):
    import lancedb

    artifacts = study_home / "artifacts"
    defaults = {
        name: _files(artifacts / name)
        for name in ("core", "baselines/sasrec", "baselines/text_seq_query", "title_encoder")
    }
    title_manifest = (artifacts / "item_title_vectors.json").read_text()
    db = lancedb.connect(str(study_home / "lancedb"))
    versions = {table: db.open_table(table).version for table in ("item_id_vectors", "item_title_vectors")}
    result = runner.invoke(
        app,
        [
            "study",
            str(SMALL_STUDY),
            "--set",
            "lora_adapter.max_train_prompts=8",
            "--set",
            "generations.max_prompts_per_split=6",
            "--set",
            "title_encoder.epochs=1",
            "--set",
            "title_encoder.max_pairs=32",
        ],
    )
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    print(result.output)  # the study's table, for `pytest -s`
    for line in ("[9/9] evaluate", "50 % of training users", "100 % of training users", "NDCG@10", "plot: "):
        assert line in result.output, line
    printed = [line.rstrip() for line in result.output.splitlines()]
    for series in ("ours", "CORE", "SASRec", "text_seq_query"):  # the table's last column
        assert sum(line.endswith(f" {series}") for line in printed) == 2, series
    plot = Path(result.output.split("plot: ")[1].split()[0])
    assert plot.is_file() and plot.is_relative_to(study_home / "reports" / "studies")

    label = "study:low_resource"
    with duckdb.connect(str(study_home / "fashionrec.duckdb"), read_only=True) as con:
        rows = con.execute(
            "select m.method, m.n_users, m.value from eval_metrics m join eval_runs r using (run_id) "
            "where r.label = ? and m.category = 'all' and m.slice = 'all' and m.metric = 'ndcg@10' "
            "order by 1",
            [label],
        ).fetchall()
        history = con.execute(
            "select distinct method from eval_run_history where run_label = ?", [label]
        ).fetchall()
        answered = con.execute(
            "select adapter, split, decoding, count(*) from generations where adapter like 'users_%' "
            "group by all order by all"
        ).fetchall()
        readme_rows = [con.execute(sql).fetchall() for sql in STUDY_SQL_BLOCKS]
    families = ("core", "llm_mixup", "sasrec", "text_seq_query")
    methods = [f"{family}-users_{share}" for family in families for share in (100, 50)]
    # each adapter's model alone (its ranked group) is scored beside its ranked_prior headline
    methods = sorted([*methods, "llm_mixup-users_100-ranked", "llm_mixup-users_50-ranked"])
    # every method of every share answers the same 6 test targets
    assert [(method, n) for method, n, _ in rows] == [(method, 6) for method in methods]
    assert all(0.0 <= value <= 1.0 for _, _, value in rows)
    assert sorted(history) == [(method,) for method in methods]
    # each adapter chose its order prior on its own valid answers; both ranked groups of one pass
    assert answered == [
        (adapter, split, decoding, 6)
        for adapter in ("users_100", "users_50")
        for split in ("test", "valid")
        for decoding in ("ranked", "ranked_prior")
    ]
    assert len(readme_rows) >= 2 and all(readme_rows), "docs/studies.md's SQL returns the study's rows"

    adapters = artifacts / "lora_adapter"
    used = {
        name: json.loads((adapters / name / "adapter_selection.json").read_text())
        for name in ("users_50", "users_100")
    }
    assert used["users_100"]["counts"]["train_prompts"] == 8
    assert 0 < used["users_50"]["counts"]["train_prompts"] < 8

    # every share's models are saved beside the default ones, which stay as they were
    for family in ("core", "sasrec"):
        record = {
            share: json.loads(
                (artifacts / "baselines" / f"{family}-users_{share}" / "config.json").read_text()
            )
            for share in (50, 100)
        }
        default = json.loads(
            (artifacts / ("core" if family == "core" else "baselines/sasrec") / "config.json").read_text()
        )
        assert record[100]["train_users_used"] == default["train_users_used"]  # every user with an example
        assert 0 < record[50]["train_users_used"] < record[100]["train_users_used"]
        assert record[50]["train_user_fraction"] == 0.5 and record[50]["run_name"] == "users_50"
    text = {
        share: json.loads(
            (artifacts / "baselines" / f"text_seq_query-users_{share}" / "config.json").read_text()
        )
        for share in (50, 100)
    }
    assert text[50]["title_vectors_table"] == "item_title_vectors_users_50"
    assert text[50]["encoder_spec"].endswith("title_encoder-users_50/model")
    assert 0 < text[50]["user_share"]["train_users_used"] < text[100]["user_share"]["train_users_used"]
    assert {name: _files(artifacts / name) for name in defaults} == defaults
    assert (artifacts / "item_title_vectors.json").read_text() == title_manifest
    db = lancedb.connect(str(study_home / "lancedb"))
    assert {table: db.open_table(table).version for table in versions} == versions


def test_the_plot_draws_one_line_per_series_or_per_category(no_warehouse):
    """Rows with a `series` (paper Figure 6: ours, CORE, Recformer; here SASRec too) are one line each;
    rows without one are drawn per category, as study files without series always were."""
    _, _, study = load_study("low_resource")
    metrics = pd.DataFrame(
        [
            (row.method, category, "all", metric, value, users)
            for row, value in zip(study.table.rows, np.linspace(0.1, 0.5, len(study.table.rows)), strict=True)
            for category, users in (("all", 6), ("Footwear", 2))
            for metric in ("recall@10", "ndcg@10", "mrr@10")
        ],
        columns=["method", "category", "slice", "metric", "value", "n_users"],
    )
    table = study_table(study, metrics, {})
    lines = dict(plot_lines(table, "NDCG@10"))
    assert list(lines) == [f"{name} (6 users)" for name in ("ours", "CORE", "SASRec", "text_seq_query")]
    assert all(points["x"].tolist() == [0.1, 0.25, 0.5, 1.0] for points in lines.values())
    assert lines["CORE (6 users)"]["method"].tolist() == [f"core-users_{n}" for n in (10, 25, 50, 100)]
    assert "series" in format_study_table(table)

    for row in study.table.rows:
        row.categories, row.series = ["all", "Footwear"], ""
    table = study_table(study, metrics, {})
    assert [label for label, _ in plot_lines(table, "NDCG@10")] == ["all (6 users)", "Footwear (2 users)"]
    assert "series" not in format_study_table(table)
