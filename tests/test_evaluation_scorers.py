"""The evaluation's scorers on the hand-made world (tests/evaluation_world.py), without Dagster: the saved
models become scoring functions, and what cannot be scored fails with what to do about it."""

from __future__ import annotations

import shutil
from dataclasses import replace

import duckdb
import lancedb
import numpy as np
import pytest

from evaluation.inputs import read_evaluation_inputs
from evaluation.scorers import score_methods, text_seq_query_scorer, title_retrieval
from evaluation.settings import EvaluationSettings
from fashionrec.settings import Paths
from recommender.encoders import save_encoder_manifest
from recommender.lstm_encoder import LstmTextEncoder, LstmTitleConfig
from recommender.ranking import popularity_counts
from recommender.vector_store import frame_to_arrow, write_vectors
from tests.evaluation_world import hand_made_world
from training.text_seq_query import TextSeqQueryConfig

SCORED = ("core", "popularity", "sasrec", "text_seq_query")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    home = tmp_path_factory.mktemp("scorers_home")
    items, _, spec = hand_made_world(home)
    settings = EvaluationSettings(methods=SCORED, title_encoder=spec)
    with duckdb.connect(str(home / "fashionrec.duckdb"), read_only=True) as con:
        inputs = read_evaluation_inputs(con, settings)
    return home, items, settings, inputs, lancedb.connect(str(home / "lancedb"))


def _score_methods(world, settings):
    home, _, _, inputs, db = world
    counts = popularity_counts(inputs.splits[inputs.splits["split"] == "train"])
    return score_methods(settings, Paths.under(home).artifacts, db, inputs, counts)


def test_every_saved_model_scores_every_item_of_the_category_in_order(world, tmp_path):
    home, items, settings, inputs, _ = world
    runs = tmp_path / "baselines"
    shutil.copytree(home / "artifacts" / "baselines", runs)
    shutil.copytree(home / "artifacts" / "core", runs / "core-users_10")
    scorers = _score_methods(
        world, replace(settings, baselines_dir=str(runs), baseline_runs=("core-users_10",))
    )
    assert list(scorers) == [*SCORED, "core-users_10"]  # the order eval_ranks rows are written in
    targets = inputs.splits[inputs.splits["split"] == "test"]
    footwear = targets[targets["category"] == "Footwear"]
    item_ids = np.sort(items.loc[items["category"] == "Footwear", "item_id"].to_numpy(object))
    for name, score_batch in scorers.items():
        rows = 1 if name == "popularity" else len(footwear)  # popularity: one row for every user
        assert score_batch(footwear, item_ids).shape == (rows, len(item_ids)), name
    np.testing.assert_allclose(
        scorers["core-users_10"](footwear, item_ids), scorers["core"](footwear, item_ids)
    )


def test_a_baseline_that_was_never_trained_names_its_training_command(world, tmp_path):
    _, _, settings, _, _ = world
    with pytest.raises(FileNotFoundError, match="fashionrec run 'key:baseline_sasrec'"):
        _score_methods(world, replace(settings, methods=("sasrec",), baselines_dir=str(tmp_path)))


@pytest.mark.parametrize(
    ("run", "command"),
    [
        ("sasrec-users_25", "fashionrec run 'key:baseline_sasrec'"),
        ("core-users_25", "fashionrec run 'key:item_id_vectors'"),
        ("text_seq_query-users_25", "key:baseline_text_seq_query'"),
    ],
)
def test_a_baseline_run_that_was_never_trained_names_its_training_command(world, run, command):
    _, _, settings, _, _ = world
    with pytest.raises(FileNotFoundError, match="is not trained") as raised:
        _score_methods(world, replace(settings, methods=("popularity",), baseline_runs=(run,)))
    assert command in str(raised.value) and "run_name: users_25" in str(raised.value)


def test_text_seq_query_refuses_what_it_was_not_fitted_with(world, tmp_path):
    home, _, _, inputs, db = world
    saved = TextSeqQueryConfig.load(home / "artifacts" / "baselines" / "text_seq_query")
    replace(saved, encoder_fingerprint="another").save(tmp_path / "other_encoder")
    with pytest.raises(ValueError, match="fitted with another encoder"):
        text_seq_query_scorer(tmp_path / "other_encoder", inputs.prompt_inputs, db)
    replace(saved, title_vectors_table="item_title_vectors_gone").save(tmp_path / "gone_titles")
    with pytest.raises(ValueError, match="'item_title_vectors_gone', which are gone"):
        text_seq_query_scorer(tmp_path / "gone_titles", inputs.prompt_inputs, db)


def test_title_retrieval_takes_another_table_only_with_the_encoder_that_wrote_it(world, tmp_path):
    home, items, settings, _, db = world
    layout = Paths.under(home).artifacts
    other = replace(settings, title_vectors_table="item_title_vectors_other", method_suffix="-other")
    with pytest.raises(ValueError, match="needs the title_encoder that wrote it and a method_suffix"):
        title_retrieval(replace(other, method_suffix=""), layout, db)
    with pytest.raises(FileNotFoundError, match="materialize item_title_vectors with config"):
        title_retrieval(other, layout, db)

    writer = LstmTextEncoder.create(
        LstmTitleConfig(token_dim=16, hidden_size=16, output_dim=16), device="cpu", show_progress=False
    )
    writer_spec = writer.save(tmp_path / "writer")
    write_vectors(
        db, "item_title_vectors_other", frame_to_arrow(items, writer.encode(items["title"].tolist()))
    )
    save_encoder_manifest(layout.title_vectors_manifest("item_title_vectors_other"), writer)
    with pytest.raises(ValueError, match="whose weights differ from title_encoder"):
        title_retrieval(other, layout, db)  # the world's title encoder, not the writer
    titles, encoder = title_retrieval(replace(other, title_encoder=writer_spec), layout, db)
    assert encoder.fingerprint == writer.fingerprint and titles.dim == writer.dim
