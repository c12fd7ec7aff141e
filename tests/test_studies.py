"""Studies (`fashionrec study`) and run config files (`fashionrec run --config`): the study files plan
against the code location, bad files say what is wrong, and one study runs end to end on tiny."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from fashionrec.cli import app
from fashionrec.studies import EVALUATION_OP, describe_plan, plan_study
from fashionrec.study_spec import StudyError, list_studies
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


def test_a_study_runs_end_to_end_and_lands_in_the_evaluation_tables(study_home):
    result = runner.invoke(
        app,
        [
            "study",
            str(SMALL_STUDY),
            "--set",
            "lora_adapter.max_train_prompts=8",
            "--set",
            "generations.max_prompts_per_split=6",
        ],
    )
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    print(result.output)  # the study's table, for `pytest -s`
    for line in ("[5/5] evaluate", "50 % of training users", "100 % of training users", "NDCG@10", "plot: "):
        assert line in result.output, line
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
            "select adapter, count(*) from generations where adapter like 'users_%' group by 1 order by 1"
        ).fetchall()
        readme_rows = [con.execute(sql).fetchall() for sql in STUDY_SQL_BLOCKS]
    assert [(method, n) for method, n, _ in rows] == [("llm_mixup-users_100", 6), ("llm_mixup-users_50", 6)]
    assert all(0.0 <= value <= 1.0 for _, _, value in rows)
    assert sorted(history) == [("llm_mixup-users_100",), ("llm_mixup-users_50",)]
    assert answered == [("users_100", 6), ("users_50", 6)]
    assert len(readme_rows) >= 2 and all(readme_rows), "README's study SQL returns the study's rows"

    adapters = study_home / "artifacts" / "lora_adapter"
    used = {
        name: json.loads((adapters / name / "adapter_selection.json").read_text())
        for name in ("users_50", "users_100")
    }
    assert used["users_100"]["counts"]["train_prompts"] == 8
    assert 0 < used["users_50"]["counts"]["train_prompts"] < 8
