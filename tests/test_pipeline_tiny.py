"""`fashionrec run` on the tiny preset, from raw logs to the leaderboard, checked stage by stage."""

from __future__ import annotations

import json

import duckdb
import lancedb
import numpy as np

from training.baselines import BASELINES, SEQUENCE_BASELINES

GROUPS = {
    "warehouse": {
        "items",
        "sessions",
        "query_listings",
        "user_sequences",
        "splits",
        "prompt_inputs",
        "quarantine",
    },
    "features": {
        "query_memory",
        "prompt_candidates",
        "title_encoder",
        "item_title_vectors",
        "item_id_vectors",
        "image_encoder",
        "item_image_vectors",
    },
    "llm": {"prompts", "base_lm", "lora_adapter", "generations", "illmrec"},
    "baselines": {f"baseline_{name}" for name in BASELINES},
    "evaluation": {
        "recommendations",
        "eval_ranks",
        "eval_metrics",
        "eval_leaderboard",
        "eval_by_slice",
        "eval_run_history",
    },
}


def test_every_asset_materialized_and_every_check_passed(tiny_pipeline):
    done = set(tiny_pipeline.summary.materialized)
    for group, assets in GROUPS.items():
        assert assets <= done, (group, assets - done)
    assert tiny_pipeline.summary.checks_passed > 40
    assert tiny_pipeline.summary.checks_failed == []


def test_vector_tables_cover_the_catalog_with_unit_vectors(tiny_home):
    db = lancedb.connect(str(tiny_home / "lancedb"))
    with duckdb.connect(str(tiny_home / "fashionrec.duckdb"), read_only=True) as con:
        n_items = con.execute("select count(*) from items").fetchone()[0]
    for name in ("item_title_vectors", "item_id_vectors"):
        table = db.open_table(name).to_arrow()
        assert table.num_rows == n_items, name
        vectors = np.stack(table.column("vector").to_numpy(zero_copy_only=False))
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3), name
    assert db.open_table("query_memory").count_rows() > 0


def test_prompts_keep_the_users_products_within_the_token_budget(tiny_home):
    """The instruction must not eat the budget: prompts of users with products in their history show
    some of them (the latest search and the candidates are never dropped)."""
    with duckdb.connect(str(tiny_home / "fashionrec.duckdb"), read_only=True) as con:
        n, fits, with_products = con.execute(
            """select count(*), count(*) filter (where fits_budget),
                      count(*) filter (where n_history_events_kept >= 2)
               from prompts
               where variant = 'full' and n_history_events_kept + n_history_events_dropped >= 3"""
        ).fetchone()
    assert n > 0
    assert fits / n >= 0.9, f"{n - fits} of {n} prompts over budget"
    assert with_products / n >= 0.8, f"only {with_products} of {n} prompts keep more than one event"


def test_the_default_run_renders_only_the_variant_it_trains_and_answers(tiny_home):
    """The ablation variants cost as much rendering as the full prompts; the ablations study renders them."""
    with duckdb.connect(str(tiny_home / "fashionrec.duckdb"), read_only=True) as con:
        variants = {row[0] for row in con.execute("select distinct variant from prompts").fetchall()}
    assert variants == {"full"}


def test_generations_parse_and_name_catalog_items(tiny_home):
    with duckdb.connect(str(tiny_home / "fashionrec.duckdb"), read_only=True) as con:
        rows = con.execute(
            """select count(*), count(*) filter (where format_ok), count(*) filter (where id_in_catalog),
                      count(*) filter (where item_id in (select item_id from items))
               from generations where constrained"""
        ).fetchone()
    n, format_ok, id_ok, in_items = rows
    assert n > 0
    assert format_ok == id_ok == in_items == n


def test_leaderboard_has_every_default_method(tiny_home):
    with duckdb.connect(str(tiny_home / "fashionrec.duckdb"), read_only=True) as con:
        methods = {
            m
            for (m,) in con.execute(
                "select distinct method from eval_metrics where category = 'all' and slice = 'all'"
            ).fetchall()
        }
        values = con.execute(
            "select min(value), max(value) from eval_metrics where metric = 'ndcg@10'"
        ).fetchone()
    assert {"llm_mixup", "llm_only", "core", "popularity", *BASELINES, "illmrec"} <= methods
    assert 0.0 <= values[0] <= values[1] <= 1.0


def test_illmrec_is_trained_on_the_item_images_with_its_record(tiny_pipeline):
    facts = tiny_pipeline.metadata("illmrec")
    assert facts["trained"] is True and facts["variants"] == ["full"]
    assert facts["full/train_targets"] == 96  # the tiny preset's sample of train purchases
    assert 0.0 <= facts["full/valid_ndcg@10_by_epoch"][0] <= 1.0
    record = json.loads((tiny_pipeline.home / "artifacts" / "illmrec" / "full" / "illmrec.json").read_text())
    assert record["feature_tables"] == {
        "cf": "item_id_vectors",
        "image": "item_image_vectors",
        "text": "item_title_vectors",
    }
    assert record["items_with_vector"]["image"] > 0 and len(record["loss_by_step"]) == 96 // 16


def test_baselines_are_saved_with_their_training_record(tiny_home):
    directory = tiny_home / "artifacts" / "baselines"
    for name in SEQUENCE_BASELINES:
        record = json.loads((directory / name / "config.json").read_text())
        assert (directory / name / "model.safetensors").is_file(), name
        assert record["method"] == name and 0.0 <= record["best_valid"]["ndcg@10"] <= 1.0, name
        if name != "llmseqsim":  # fitted on valid, not trained
            assert 1 <= record["best_epoch"] <= record["epochs_run"] <= 3, name  # the tiny preset's budget
            assert record["seconds_per_epoch"] > 0, name
    text = json.loads((directory / "text_seq_query" / "config.json").read_text())
    assert text["max_titles"] in {row["max_titles"] for row in text["history"]}


def test_the_items_mart_names_every_generated_image(tiny_home):
    from recommender.item_images import read_item_images

    with duckdb.connect(str(tiny_home / "fashionrec.duckdb"), read_only=True) as con:
        rows = con.execute("select item_id, image_path from items order by item_id").fetchall()
        [(in_attributes,)] = con.execute(
            "select count(*) from items where json_exists(attributes, '$.image_path')"
        ).fetchall()
    assert rows and in_attributes == 0  # a named column, not an attribute
    read = read_item_images(rows, tiny_home / "raw", size=16)
    assert read.counts() == {"read": len(rows), "without_path": 0, "problems": 0}
