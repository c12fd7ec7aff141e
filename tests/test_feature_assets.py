"""The feature assets materialized with ``dagster.materialize`` on the tiny preset: LanceDB tables,
asset checks, quality figures in the metadata, and the incremental refresh.

The session's tiny pipeline (tests/conftest.py) has already built the warehouse and every asset with
default settings; its home is copied here, so the runs and edits below never reach other tests, and the
feature assets are materialized again with shortened training (one epoch, a sample of pairs) through run
config. Because the copy carries the LanceDB tables of the first run, this also exercises re-runs.
"""

import shutil

import dagster as dg
import duckdb
import lancedb
import numpy as np
import pytest

from assets.id_vectors import item_id_vectors
from assets.image_vectors import image_encoder, item_image_vectors
from assets.query_memory import query_memory
from assets.resources import PipelineSettings, pipeline_resources
from assets.title_vectors import item_title_vectors, title_encoder
from assets.vector_checks import feature_checks, item_title_vectors_check
from fashionrec.layout import ITEM_ID_VECTORS, ITEM_IMAGE_VECTORS, ITEM_TITLE_VECTORS, QUERY_MEMORY_TABLE
from recommender.query_memory import MemorySettings
from training.core import CoreScorer

QUICK = {
    "ops": {
        "title_encoder": {"config": {"epochs": 1, "max_pairs": 48}},
        "item_id_vectors": {"config": {"epochs": 2}},
        "image_encoder": {"config": {"epochs": 1}},
    }
}


@pytest.fixture(scope="module")
def features(tiny_pipeline, tmp_path_factory):
    home = tmp_path_factory.mktemp("features_home")
    for name in ("fashionrec.duckdb", "fashionrec.duckdb.wal"):
        if (tiny_pipeline.home / name).exists():
            shutil.copy2(tiny_pipeline.home / name, home / name)
    shutil.copytree(tiny_pipeline.home / "lancedb", home / "lancedb")
    shutil.copytree(tiny_pipeline.home / "artifacts", home / "artifacts")
    # the resources say where and at which scale: no FASHIONREC_* variable is read
    resources = pipeline_resources(
        PipelineSettings(home=str(home), raw_dir=str(tiny_pipeline.home / "raw"), preset="tiny")
    )
    result = dg.materialize(
        [
            query_memory,
            title_encoder,
            item_title_vectors,
            item_id_vectors,
            image_encoder,
            item_image_vectors,
            *feature_checks,
        ],
        resources=resources,
        run_config=QUICK,
        instance=dg.DagsterInstance.ephemeral(),
    )
    return home, result, resources


def metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    [event] = [
        e
        for e in result.get_asset_materialization_events()
        if e.materialization.asset_key.to_user_string() == asset
    ]
    return {k: getattr(v, "value", v) for k, v in event.materialization.metadata.items()}


def scalar(home, sql: str):
    with duckdb.connect(str(home / "fashionrec.duckdb"), read_only=True) as con:
        return con.execute(sql).fetchone()[0]


def test_every_asset_and_check_succeeds(features):
    _, result, _ = features
    assert result.success
    materialized = {
        e.materialization.asset_key.to_user_string() for e in result.get_asset_materialization_events()
    }
    assert materialized == {
        "query_memory",
        "prompt_candidates",
        "title_encoder",
        ITEM_TITLE_VECTORS,
        ITEM_ID_VECTORS,
        "image_encoder",
        ITEM_IMAGE_VECTORS,
    }
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert len(checks) == len(feature_checks)
    failed = {name: e.metadata for name, e in checks.items() if not e.passed}
    assert not failed


@pytest.mark.parametrize(
    ("table", "key", "expected_rows_sql", "dim"),
    [
        (QUERY_MEMORY_TABLE, "query_norm", "select count(distinct query_norm) from query_listings", 384),
        (ITEM_TITLE_VECTORS, "item_id", "select count(*) from items", 384),
        (ITEM_ID_VECTORS, "item_id", "select count(*) from items", 64),
        (ITEM_IMAGE_VECTORS, "item_id", "select count(*) from items where image_path is not null", 384),
    ],
)
def test_vector_tables_in_lancedb(features, table, key, expected_rows_sql, dim):
    home, result, _ = features
    stored = lancedb.connect(str(home / "lancedb")).open_table(table)
    data = stored.to_arrow()
    assert data.num_rows == scalar(home, expected_rows_sql) > 0
    assert len(set(data[key].to_pylist())) == data.num_rows
    assert data.schema.field("vector").type.list_size == dim
    vectors = np.stack(data["vector"].to_numpy(zero_copy_only=False))
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert metadata(result, table)["lancedb_version"] == stored.version


def test_quality_figures_are_in_the_metadata(features):
    home, result, _ = features
    memory = metadata(result, "query_memory")
    assert memory["rows_encoded"] == 0  # same queries, same encoder as the first run: nothing re-embedded
    title = metadata(result, "title_encoder")
    assert 0.0 <= title["valid_recall@10_before"] <= 1.0 and 0.0 <= title["valid_recall@10_after"] <= 1.0
    assert title["train_pairs"] > 0 and title["valid_pairs"] > 0 and title["pairs_source"] == "query"
    candidates = metadata(result, "prompt_candidates")
    assert 0.0 < candidates["valid_hit_rate"] <= 1.0
    # logs with searches: the memory's lists only; targets without a query keep none (no fallback)
    assert set(candidates["candidate_sources"]) <= {"memory", "none"}
    assert candidates["candidate_sources"]["memory"] > 0.9
    settings = MemorySettings()
    assert 1 <= candidates["valid_mean_candidates"] <= settings.neighbours * settings.items_per_query
    core = metadata(result, ITEM_ID_VECTORS)
    assert core["best_epoch"] >= 1 and 0.0 <= core["valid_ndcg@10"] <= 1.0
    # the default catalog table: a row per catalog item, the never-trained ones among them counted
    n_items = scalar(home, "select count(*) from items")
    assert core["item_table"] == "catalog" and core["vocabulary_items"] == n_items
    assert 0 < core["cold_catalog_items"] < n_items


def test_prompt_candidates_only_use_listings_shown_before_the_prediction(features):
    home, _, _ = features
    assert scalar(home, "select count(*) from prompt_candidates") == scalar(
        home, "select count(*) from prompt_inputs"
    )
    too_late = scalar(
        home,
        """
        with candidates as (
            select c.target_id, unnest(c.candidate_item_ids) as item_id, p.target_ts
            from prompt_candidates c join prompt_inputs p using (target_id)
        )
        select count(*) from candidates
        where not exists (
            select 1 from query_listings l
            where l.item_id = candidates.item_id and l.first_shown_at < candidates.target_ts
        )
        """,
    )
    assert too_late == 0
    consistent = scalar(
        home,
        """
        select bool_and(target_in_candidates = list_contains(candidate_item_ids, p.target_item_id)
                        and n_candidates = len(candidate_item_ids))
        from prompt_candidates join prompt_inputs p using (target_id)
        """,
    )
    assert consistent


def test_core_model_is_saved_for_the_evaluation(features):
    home, _, _ = features
    scorer = CoreScorer.load(home / "artifacts" / "core", device="cpu")
    with duckdb.connect(str(home / "fashionrec.duckdb"), read_only=True) as con:
        (category,) = con.execute(
            "select category from items group by 1 order by count(*) desc limit 1"
        ).fetchone()
        item_ids = [
            r[0] for r in con.execute("select item_id from items where category = ?", [category]).fetchall()
        ]
        histories = con.execute(
            "select list(item_id order by seq_no) from user_sequences where item_id is not null "
            "group by user_id limit 4"
        ).fetchall()
    scores = scorer.score([h[0] for h in histories], item_ids)
    assert scores.shape == (len(histories), len(item_ids)) and np.isfinite(scores).all()


def test_rematerializing_encodes_only_new_or_changed_titles(features):
    home, _, resources = features

    def refresh() -> dict:
        run = dg.materialize(
            [item_title_vectors, item_title_vectors_check],
            resources=resources,
            instance=dg.DagsterInstance.ephemeral(),
        )
        assert run.success and all(e.passed for e in run.get_asset_check_evaluations())
        return metadata(run, ITEM_TITLE_VECTORS)

    unchanged = refresh()
    assert unchanged["rows_encoded"] == 0

    with duckdb.connect(str(home / "fashionrec.duckdb")) as con:
        (changed_id,) = con.execute("select min(item_id) from items").fetchone()
        con.execute("update items set title = title || ' Limited Edition' where item_id = ?", [changed_id])
        con.execute(
            "insert into items select * replace ('NEW-ITEM-1' as item_id, 'Brand New Tote Bag' as title) "
            "from items where item_id = ?",
            [changed_id],
        )
    refreshed = refresh()
    assert refreshed["rows_encoded"] == 2
    assert refreshed["rows"] == scalar(home, "select count(*) from items")
    assert refreshed["lancedb_version"] > unchanged["lancedb_version"]
