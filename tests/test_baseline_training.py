"""One run of the ``baselines`` assets without Dagster: its training settings, which methods a run name
applies to, the tables it reads, and the models it saves with their records."""

from __future__ import annotations

import json
from dataclasses import replace

import duckdb
import numpy as np
import pandas as pd
import pytest

from fashionrec.layout import ITEM_TITLE_VECTORS, WEIGHTS_FILE, ArtifactLayout
from fashionrec.presets import SequenceBudget
from recommender.ranking import TARGET_COLUMNS, catalog_by_category
from recommender.vector_store import frame_to_arrow, write_vectors
from tests.test_baselines import cycle_marts, random_titles
from tests.test_text_baselines import BagOfWords, last_click_inputs, shop_titles
from training import text_seq_query
from training.baseline_names import BASELINES, check_share_applies
from training.baseline_training import (
    BaselineInputs,
    BaselineOptions,
    open_title_vectors,
    train_baselines,
)
from training.baselines import SequenceData, baseline_settings, load_baseline, train_and_save_baseline
from training.llmseqsim import AGGREGATIONS
from training.sequential import read_record
from training.text_seq_query import TextSeqQueryConfig
from training.user_share import EVERY_USER, UserShare
from warehouse.marts import read_prompt_inputs

pytestmark = pytest.mark.usefixtures("one_torch_thread")

BUDGET = SequenceBudget(
    epochs=3, stopping_step=2, train_batch_size=64, bucket_by_length=True, torch_threads=1
)


def quiet(_: str) -> None:
    """The log of a test run: nobody reads it."""


def test_the_budget_gives_the_settings_and_a_config_overrides_what_it_sets():
    assert baseline_settings(BUDGET) == {
        "epochs": 3,
        "stopping_step": 2,
        "train_batch_size": 64,
        "bucket_by_length": True,
    }
    assert baseline_settings(BUDGET, epochs=10, stopping_step=0) == {
        "epochs": 10,
        "stopping_step": 0,  # zero is a setting, not "unset"
        "train_batch_size": 64,
        "bucket_by_length": True,
    }
    options = BaselineOptions(BUDGET, train_batch_size=8)
    assert options.settings["train_batch_size"] == 8 and options.table == ITEM_TITLE_VECTORS
    assert (
        replace(options, title_vectors_table="item_title_vectors_users_10").table
        == "item_title_vectors_users_10"
    )


def test_a_run_name_applies_only_to_the_models_that_learn_from_the_training_users():
    check_share_applies(EVERY_USER, BASELINES)
    check_share_applies(UserShare("users_10", 0.1), ["sasrec", "llm2sasrec", "text_seq_query"])
    with pytest.raises(ValueError) as error:
        check_share_applies(UserShare("users_10"), ["sasrec", "llmseqsim"])
    assert str(error.value) == (
        "['llmseqsim'] learn nothing from train examples (they choose a setting on valid targets), so "
        "run_name / train_user_fraction do not apply; select only ['gru4rec', 'sasrec', 'bert4rec', "
        "'nextitnet', 'llm2sasrec', 'llm2bert4rec', 'text_seq_query'], e.g. "
        "`fashionrec run 'key:baseline_sasrec'`"
    )


def test_title_vectors_are_read_from_their_table_or_the_error_says_how_to_write_it(tmp_path):
    import lancedb

    db = lancedb.connect(str(tmp_path / "lancedb"))
    with pytest.raises(FileNotFoundError) as error:
        open_title_vectors(db, "item_title_vectors_users_10")
    assert str(error.value) == (
        "no title vector table 'item_title_vectors_users_10'; materialize item_title_vectors first (with "
        "config `table: item_title_vectors_users_10` for another table than item_title_vectors)"
    )
    items = pd.DataFrame({"item_id": ["a", "b", "c"], "category": ["Bags", "Bags", "Shoes"]})
    write_vectors(db, ITEM_TITLE_VECTORS, frame_to_arrow(items, np.eye(3, 4, dtype=np.float32)))
    titles = open_title_vectors(db, ITEM_TITLE_VECTORS)
    assert titles.dim == 4 and sorted(titles.categories) == ["Bags", "Shoes"] and "c" in titles


def test_prompt_inputs_are_read_for_one_split_in_target_order():
    con = duckdb.connect()
    con.execute(
        "create table prompt_inputs as select * from (values "
        "('t3', 'u1', 'valid', 'Bags', 'i1', false, 'red bag', 2), "
        "('t1', 'u2', 'valid', 'Bags', 'i2', true, null, 0), "
        "('t2', 'u1', 'test', 'Shoes', 'i3', false, 'boots', 3)) "
        "as t(target_id, user_id, split, category, target_item_id, is_cold_item, latest_query, history)"
    )
    valid = read_prompt_inputs(con, "valid")
    assert valid["target_id"].tolist() == ["t1", "t3"] and valid["is_cold_item"].tolist() == [True, False]
    assert valid.columns.tolist() == [*TARGET_COLUMNS, "latest_query", "history"]  # targets, with texts
    assert read_prompt_inputs(con, "test")["target_id"].tolist() == ["t2"]


def test_train_and_save_writes_the_weights_and_a_record_with_the_method_and_share(tmp_path):
    sequences, splits, items = cycle_marts(n_users=40)
    share = UserShare("users_50", 0.5)
    data = SequenceData.from_marts(sequences, splits, items, share=share)
    record = {"method": "gru4rec-users_50", **share.record(18, 40)}
    directory = tmp_path / "gru4rec-users_50"
    settings = {"epochs": 2, "stopping_step": 2, "train_batch_size": 64}
    facts = train_and_save_baseline("gru4rec", data, settings, None, directory, record, quiet)
    saved = read_record(directory)
    assert (directory / WEIGHTS_FILE).is_file() and saved["model"] == "GRU4Rec"
    assert {key: saved[key] for key in record} == record
    assert facts["path"] == directory and {key: facts[key] for key in record} == record
    assert facts["epochs_run"] == saved["epochs_run"] == len(facts["history"]) == 2
    assert facts["train_examples"] == len(data.train) > 0 and facts["valid_targets"] == len(data.valid)
    assert facts["valid_ndcg@10"] == round(saved["best_valid"]["ndcg@10"], 4)
    loaded = load_baseline(directory, device="cpu")
    assert loaded.vocabulary.item_ids.tolist() == data.vocabulary.item_ids.tolist()

    titles = random_titles(items)
    fitted = train_and_save_baseline("llmseqsim", data, {}, titles, tmp_path / "llmseqsim", {}, quiet)
    assert fitted["train_examples"] == fitted["epochs_run"] == 0  # fitted on valid, nothing trained
    assert fitted["aggregation"] == read_record(tmp_path / "llmseqsim")["aggregation"] in AGGREGATIONS


def test_a_run_builds_the_examples_once_and_saves_each_model_beside_the_default(tmp_path):
    sequences, splits, items = cycle_marts(n_users=40)
    layout = ArtifactLayout(tmp_path / "artifacts")
    options = BaselineOptions(BUDGET, UserShare("users_50", 0.5), epochs=1)
    logged: list[str] = []
    runs = list(
        train_baselines(
            ["gru4rec", "sasrec"],
            BaselineInputs(sequences, splits, items),
            None,
            options,
            layout,
            logged.append,
        )
    )
    assert [name for name, _ in runs] == ["gru4rec", "sasrec"]
    for name, facts in runs:
        assert facts["path"] == layout.baseline(name, "users_50") and facts["method"] == f"{name}-users_50"
        assert read_record(facts["path"])["train_user_fraction"] == 0.5 and facts["epochs_run"] == 1
    first, second = (facts for _, facts in runs)
    assert first["train_examples"] == second["train_examples"]
    assert 0 < first["train_users_used"] < first["train_users_available"] == 40
    assert sum(line.startswith("training on") for line in logged) == 1
    assert not layout.baseline("gru4rec").exists()  # the default model is not touched


def test_text_seq_query_on_a_share_is_fitted_only_with_title_vectors_of_that_share(tmp_path, monkeypatch):
    items, _, titles = shop_titles()
    layout = ArtifactLayout(tmp_path / "artifacts")
    share = UserShare("users_50", 0.5)
    for table, user_share in ((ITEM_TITLE_VECTORS, {}), ("item_title_vectors_users_50", share.record(3, 6))):
        manifest = {"encoder_spec": "bag-of-words", "encoder_fingerprint": "bow", "user_share": user_share}
        layout.title_vectors_manifest(table).parent.mkdir(parents=True, exist_ok=True)
        layout.title_vectors_manifest(table).write_text(json.dumps(manifest))
    monkeypatch.setattr(text_seq_query, "build_encoder", lambda spec, show_progress: BagOfWords())
    inputs = BaselineInputs(
        pd.DataFrame(), pd.DataFrame(), items, last_click_inputs(items), catalog_by_category(items)
    )
    options = BaselineOptions(BUDGET, share, title_options=(0, 1))
    with pytest.raises(ValueError, match="needs title vectors from a title encoder trained on that share"):
        next(train_baselines(["text_seq_query"], inputs, titles, options, layout, quiet))
    assert not layout.baselines.exists()

    options = replace(options, title_vectors_table="item_title_vectors_users_50")
    [(name, facts)] = train_baselines(["text_seq_query"], inputs, titles, options, layout, quiet)
    assert name == "text_seq_query" and facts["path"] == layout.baseline("text_seq_query", "users_50")
    saved = TextSeqQueryConfig.load(facts["path"])
    assert (
        saved.user_share == share.record(3, 6) and saved.title_vectors_table == "item_title_vectors_users_50"
    )
    assert facts["method"] == "text_seq_query-users_50" and saved.max_titles == facts["max_titles"] == 1
