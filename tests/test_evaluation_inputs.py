"""What an evaluation run is allowed to be and what it reads, on small hand-made warehouses, without
Dagster: the settings' checks, the tables a method set needs, and the ordered reads."""

from __future__ import annotations

import json

import duckdb
import pandas as pd
import pytest

from assets.evaluation import EvaluationRunConfig
from evaluation.inputs import needed_tables, read_evaluation_inputs
from evaluation.settings import EvaluationSettings

SPLITS = pd.DataFrame(
    {
        "target_id": ["t2", "t1", "t3"],
        "user_id": ["u2", "u1", "u1"],
        "target_item_id": ["i2", "i1", "i3"],
        "category": ["Bags"] * 3,
        "seq_no": [2, 2, 4],
        "split": ["test", "train", "test"],
        "is_cold_item": [False, False, True],
    }
)
ITEMS = pd.DataFrame(
    {"item_id": ["i3", "i1", "i2"], "category": ["Bags"] * 3, "parent_id": ["p1", "p1", "p2"]}
)
# written before generations had an adapter column, and out of order
GENERATIONS = pd.DataFrame(
    {
        "target_id": ["t3", "t2", "t3", "t2"],
        "split": ["test"] * 4,
        "category": ["Bags"] * 4,
        "variant": ["no_attributes", "full", "full", "full"],
        "constrained": [True, False, True, True],
        "item_id": ["i3", "i2", "i1", "i2"],
        "title": [None] * 4,
    }
)


def warehouse(tmp_path, **tables: pd.DataFrame) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(tmp_path / "fashionrec.duckdb"))
    for name, frame in tables.items():
        con.register("frame", frame)
        con.execute(f"create table {name} as select * from frame")
        con.unregister("frame")
    return con


@pytest.mark.parametrize(
    ("methods", "runs", "extra"),
    [
        (("popularity",), (), set()),
        (("llm_only", "popularity"), (), {"generations"}),
        (("sasrec",), (), {"user_sequences"}),
        (("text_seq_query",), (), {"prompt_inputs"}),
        (("popularity",), ("core-users_10",), {"user_sequences"}),
        (("popularity",), ("text_seq_query-users_10",), {"prompt_inputs"}),
    ],
)
def test_a_run_needs_only_the_tables_its_methods_read(methods, runs, extra):
    settings = EvaluationSettings(methods=methods, baseline_runs=runs)
    assert needed_tables(settings) == {"splits", "items", *extra}


def test_the_reader_names_the_missing_tables_and_reads_no_more_than_needed(tmp_path):
    con = warehouse(tmp_path, splits=SPLITS, items=ITEMS)
    inputs = read_evaluation_inputs(con, EvaluationSettings(methods=("popularity",)))
    assert inputs.generations is None and inputs.user_sequences is None and inputs.prompt_inputs is None
    assert inputs.splits["target_id"].tolist() == ["t1", "t2", "t3"]  # ordered, whatever the table
    assert inputs.items["item_id"].tolist() == ["i1", "i2", "i3"]
    assert "is_cold_item" in inputs.splits
    with pytest.raises(ValueError, match=r"needs table\(s\) \['prompt_inputs', 'user_sequences'\]"):
        read_evaluation_inputs(con, EvaluationSettings(methods=("sasrec", "text_seq_query")))


def test_generations_are_read_in_order_and_by_adapter_from_an_older_table(tmp_path):
    con = warehouse(tmp_path, splits=SPLITS, items=ITEMS, generations=GENERATIONS)
    inputs = read_evaluation_inputs(con, EvaluationSettings(methods=("llm_only",)))
    read = inputs.generations[["target_id", "variant", "constrained"]].values.tolist()
    assert read == [
        ["t2", "full", False],
        ["t2", "full", True],
        ["t3", "full", True],
        ["t3", "no_attributes", True],
    ]
    assert inputs.generations["adapter"].tolist() == ["full", "full", "full", "no_attributes"]
    only = read_evaluation_inputs(con, EvaluationSettings(methods=("llm_only",), adapters=("no_attributes",)))
    assert only.generations["target_id"].tolist() == ["t3"]
    with pytest.raises(
        ValueError, match=r"test split: generations hold no rows of adapter\(s\) \['users_10'\]"
    ):
        read_evaluation_inputs(con, EvaluationSettings(methods=("llm_only",), adapters=("users_10",)))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"methods": ("popularity", "svd")}, r"unknown method\(s\) \['svd'\]"),
        ({"split": "train"}, "split 'train' cannot be evaluated"),
        ({"baseline_runs": ("sasrec",)}, "is not <method>-<run_name>"),
        ({"baseline_runs": ("popularity-users_10",)}, "is not <method>-<run_name>"),
        ({"retrieval_ablations": ("no_titles",)}, r"unknown retrieval ablation\(s\) \['no_titles'\]"),
        ({"method_suffix": "clip"}, "must start with '-'"),
    ],
)
def test_settings_that_cannot_be_evaluated_are_refused(changes, message):
    with pytest.raises(ValueError, match=message):
        EvaluationSettings(**changes).check()


def test_the_asset_config_has_the_settings_fields_and_defaults():
    assert EvaluationRunConfig().settings() == EvaluationSettings()
    config = EvaluationRunConfig(methods=["core"], adapters=["users_10"], label="x", notes="skipped llm")
    # eval_runs.config stores every field of the asset's config
    assert json.loads(config.settings().to_json()) == config.model_dump()
