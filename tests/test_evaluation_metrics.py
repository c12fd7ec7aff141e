"""Every metric of the evaluation protocol on hand-made cases, computed by hand."""

from __future__ import annotations

import math

import duckdb
import numpy as np
import pandas as pd
import pytest

from evaluation.leaderboard import format_leaderboard, leaderboard_frame, load_metrics, load_run
from evaluation.llm_methods import generated_target_ids, llm_method_names
from evaluation.protocol import (
    evaluate_methods,
    generated_id_lists,
    popular_top_k,
    popularity_scorer,
    rank_in_lists,
)
from evaluation.tables import write_evaluation_run
from recommender.ranking import RankingConfig, catalog_by_category, popularity_counts, rank_by_scores

ITEMS = pd.DataFrame(
    {
        "item_id": ["f3", "f1", "f2", "f5", "f4", "l1", "l2", "l3"],
        "category": ["Footwear"] * 5 + ["Luggage & Bags"] * 3,
    }
)
CATALOG = catalog_by_category(ITEMS)  # Footwear f1..f5, Luggage l1..l3: 8 items

TARGETS = pd.DataFrame(
    {
        "target_id": ["t1", "t2", "t3", "t4"],
        "user_id": ["u1", "u2", "u3", "u4"],
        "category": ["Footwear", "Footwear", "Luggage & Bags", "Footwear"],
        "target_item_id": ["f2", "f5", "l1", "zzz"],  # zzz is not in the catalog
        "is_cold_item": [False, True, False, True],
    }
)

# Hand-made scores, rows by target, columns f1..f5 / l1..l3:
#   t1: f2 ties with f3 at 0.5, f1 above -> rank 3 (ties count against the target)
#   t2: f5 alone on top -> rank 1;  t3: all tie -> rank 3 (last);  t4: target unknown -> not ranked
SCORES = {
    "t1": [0.9, 0.5, 0.5, 0.1, 0.0],
    "t2": [0.2, 0.2, 0.2, 0.2, 0.9],
    "t3": [0.3, 0.3, 0.3],
    "t4": [0.0, 0.0, 0.0, 0.0, 1.0],
}

TRAIN = pd.DataFrame({"target_item_id": ["f1", "f1", "f1", "f3", "f3", "l2"]})


def hand_scores(chunk: pd.DataFrame, item_ids: np.ndarray) -> np.ndarray:
    return np.array([SCORES[t] for t in chunk["target_id"]], dtype=np.float32)


def test_catalog_is_sorted_per_category():
    assert CATALOG["Footwear"].tolist() == ["f1", "f2", "f3", "f4", "f5"]
    assert CATALOG["Luggage & Bags"].tolist() == ["l1", "l2", "l3"]


@pytest.mark.parametrize("max_scores", [10**6, 5])  # one batch per category, or one target per batch
def test_full_catalog_ranks_count_ties_against_the_target(max_scores):
    config = RankingConfig(k=2, max_scores_per_batch=max_scores)
    ranks, lists = rank_by_scores(TARGETS, CATALOG, hand_scores, config)
    assert ranks.tolist()[:3] == [3.0, 1.0, 3.0] and math.isnan(ranks.iloc[3])
    top = lists.groupby("target_id")["item_id"].apply(list).to_dict()
    assert top == {"t1": ["f1", "f2"], "t2": ["f5", "f1"], "t3": ["l1", "l2"], "t4": ["f5", "f1"]}
    assert lists.loc[lists["target_id"] == "t1", "score"].tolist() == pytest.approx([0.9, 0.5])


def test_score_function_of_the_wrong_shape_is_reported():
    with pytest.raises(ValueError, match=r"returned shape \(1, 2\)"):
        rank_by_scores(TARGETS, CATALOG, lambda chunk, ids: np.zeros((1, 2)))


def test_list_ranks_are_positions_and_absent_targets_are_not_ranked():
    lists = pd.DataFrame(
        {"target_id": ["t1", "t1", "t2", "t4"], "rank": [1, 2, 1, 1], "item_id": ["f3", "f2", "f1", "f5"]}
    )
    ranks = rank_in_lists(TARGETS, lists)
    assert ranks.iloc[0] == 2.0 and ranks.iloc[1:].isna().all()  # t3 has no list at all


def test_popularity_counts_train_purchases_and_ties_count_against_the_target():
    counts = popularity_counts(TRAIN)
    assert counts.to_dict() == {"f1": 3, "f3": 2, "l2": 1}
    ranks, lists = rank_by_scores(TARGETS, CATALOG, popularity_scorer(counts), RankingConfig(k=2))
    assert ranks.tolist()[:3] == [5.0, 5.0, 3.0]  # unbought items all tie at 0
    assert lists.loc[lists["target_id"] == "t3", "item_id"].tolist() == ["l2", "l1"]
    expected = popular_top_k(counts, CATALOG, 2)
    assert expected == {"Footwear": {"f1", "f3"}, "Luggage & Bags": {"l2", "l1"}}


def test_llm_only_keeps_a_generated_id_only_inside_the_target_category():
    generations = pd.DataFrame(
        {
            "target_id": ["t1", "t2", "t3", "t4"],
            "category": ["Footwear", "Footwear", "Luggage & Bags", "Footwear"],
            "item_id": ["f2", "l1", None, "zzz"],
        }
    )
    lists = generated_id_lists(generations, CATALOG)
    assert lists[["target_id", "rank", "item_id", "source"]].values.tolist() == [["t1", 1, "f2", "id"]]


def metric_table(result, method: str) -> dict[tuple[str, str, str], float]:
    rows = result.metrics[result.metrics["method"] == method]
    return {(r.category, r.slice, r.metric): r.value for r in rows.itertuples()}


def test_every_metric_on_the_hand_made_case():
    counts = popularity_counts(TRAIN)
    config = RankingConfig(k=2)
    result = evaluate_methods(
        TARGETS,
        CATALOG,
        popular_top_k(counts, CATALOG, 2),
        list_methods={},
        score_methods={"toy": hand_scores, "popularity": popularity_scorer(counts)},
        config=config,
    )
    toy = metric_table(result, "toy")
    # ranks 3, 1, 3, not ranked; k = 2
    assert toy[("all", "all", "recall@2")] == pytest.approx(1 / 4)
    assert toy[("all", "all", "ndcg@2")] == pytest.approx(1 / 4)
    assert toy[("all", "all", "mrr")] == pytest.approx((1 / 3 + 1 + 1 / 3 + 0) / 4)
    assert toy[("all", "all", "mrr@2")] == pytest.approx(1 / 4)
    # top-2 lists hold f1, f2, f5, l1, l2: 5 of the 8 catalog items; 3 of 5 shoes, 2 of 3 bags
    assert toy[("all", "all", "coverage@2")] == pytest.approx(5 / 8)
    assert toy[("Footwear", "all", "coverage@2")] == pytest.approx(3 / 5)
    assert toy[("Luggage & Bags", "all", "coverage@2")] == pytest.approx(2 / 3)
    # the one hit (f5 for t2) is not among the popular shoes f1, f3: serendipitous
    assert toy[("all", "all", "serendipity@2")] == pytest.approx(1 / 4)
    # slices: cold t2 (rank 1) and t4 (not ranked); warm t1 and t3 (rank 3 each)
    assert toy[("all", "cold_start", "recall@2")] == pytest.approx(1 / 2)
    assert toy[("all", "warm", "recall@2")] == 0.0
    assert toy[("all", "warm", "mrr")] == pytest.approx(1 / 3)
    assert toy[("Footwear", "cold_start", "ndcg@2")] == pytest.approx(1 / 2)
    assert ("Luggage & Bags", "cold_start", "recall@2") not in toy  # no cold bag target: no row
    n_users = result.metrics.set_index(["method", "category", "slice", "metric"])["n_users"]
    assert n_users[("toy", "all", "all", "mrr")] == 4
    assert n_users[("toy", "Footwear", "warm", "mrr")] == 1
    # popularity ranks 5, 5, 3, not ranked: nothing in the top 2, and never serendipitous
    pop = metric_table(result, "popularity")
    assert pop[("all", "all", "recall@2")] == 0.0
    assert pop[("all", "all", "mrr")] == pytest.approx((1 / 5 + 1 / 5 + 1 / 3) / 4)
    assert pop[("all", "all", "serendipity@2")] == 0.0
    assert pop[("all", "all", "coverage@2")] == pytest.approx(4 / 8)  # f1, f3, l2, l1
    assert set(result.metrics["metric"]) == {
        "recall@2",
        "ndcg@2",
        "mrr",
        "mrr@2",
        "coverage@2",
        "serendipity@2",
    }


def test_list_methods_rank_only_what_their_list_holds():
    lists = pd.DataFrame(
        {
            "target_id": ["t1", "t1", "t1", "t2"],
            "rank": [1, 2, 3, 1],
            "item_id": ["f3", "f2", "f4", "f5"],
            "source": ["id", "title", "title", "title"],
            "score": [0.9, 0.8, 0.7, 0.9],
        }
    )
    result = evaluate_methods(TARGETS, CATALOG, {}, {"llm": lists}, {}, RankingConfig(k=2))
    assert result.ranks["rank"].tolist()[:2] == [2.0, 1.0] and result.ranks["rank"].iloc[2:].isna().all()
    assert len(result.lists) == 3  # the item at rank 3 is beyond k = 2
    llm = metric_table(result, "llm")
    assert llm[("all", "all", "recall@2")] == pytest.approx(2 / 4)
    assert llm[("all", "all", "ndcg@2")] == pytest.approx((1 / math.log2(3) + 1) / 4)
    assert llm[("all", "all", "coverage@2")] == pytest.approx(3 / 8)  # f3, f2, f5
    assert llm[("all", "all", "serendipity@2")] == pytest.approx(2 / 4)  # nothing is popular here
    # what the eval_ranks and recommendations assets report of the run
    assert result.ranked_share() == {"llm": 2 / 4}
    assert result.rows_per_source() == [
        {"method": "llm", "source": "id", "rows": 1},
        {"method": "llm", "source": "title", "rows": 2},
    ]


def test_leaderboard_orders_methods_by_ndcg():
    counts = popularity_counts(TRAIN)
    result = evaluate_methods(
        TARGETS,
        CATALOG,
        popular_top_k(counts, CATALOG, 2),
        {},
        {"toy": hand_scores, "popularity": popularity_scorer(counts)},
        RankingConfig(k=2),
    )
    frame = leaderboard_frame(result.metrics)
    assert frame["method"].tolist() == ["toy", "popularity"]
    assert list(frame.columns) == [
        "method",
        "n_users",
        "recall@2",
        "ndcg@2",
        "mrr",
        "mrr@2",
        "coverage@2",
        "serendipity@2",
    ]
    text = format_leaderboard(result.metrics, title="run x")
    lines = text.splitlines()
    assert lines[0] == "run x" and "category all" in text and "category Luggage & Bags" in text
    assert text.index("toy") < text.index("popularity")
    assert "0.2500" in text
    markdown = format_leaderboard(result.metrics, ["all"], markdown=True)
    assert "| method | n_users | recall@2 |" in markdown and "|---|---:|" in markdown
    assert "Footwear" not in markdown
    assert "no evaluation metrics yet" in format_leaderboard(result.metrics.iloc[0:0])


def test_runs_are_appended_and_a_retried_run_replaces_only_itself():
    counts = popularity_counts(TRAIN)
    result = evaluate_methods(
        TARGETS,
        CATALOG,
        popular_top_k(counts, CATALOG, 2),
        {},
        {"popularity": popularity_scorer(counts)},
        RankingConfig(k=2),
    )
    con = duckdb.connect()
    first = write_evaluation_run(con, "run-a", pd.Timestamp("2024-01-01", tz="UTC"), "test", result, TARGETS)
    write_evaluation_run(con, "run-b", pd.Timestamp("2024-01-02"), "test", result, TARGETS, label="b")
    write_evaluation_run(con, "run-a", pd.Timestamp("2024-01-01"), "test", result, TARGETS)
    count = {t: con.execute(f"select count(*) from {t}").fetchone()[0] for t in first}
    assert count == {t: 2 * n for t, n in first.items()}
    assert first["eval_ranks"] == 4 and first["eval_runs"] == 1
    ranks = con.execute("select rank from eval_ranks where run_id = 'run-a' order by target_id").fetchall()
    assert ranks == [(5,), (5,), (3,), (None,)]  # not ranked is NULL
    run = load_run(con)
    assert run.run_id == "run-b" and run.label == "b"
    assert "evaluation run run-b 'b': split test" in run.title()
    assert len(load_metrics(con, "run-a")) == len(result.metrics)
    with pytest.raises(LookupError, match="no run 'nope'"):
        load_run(con, "nope")
    with pytest.raises(LookupError, match="no evaluation has run yet"):
        load_run(duckdb.connect())


def test_shared_scores_rank_like_a_full_matrix():
    counts = popularity_counts(TRAIN)
    shared = popularity_scorer(counts)

    def full(chunk, item_ids):
        return np.repeat(shared(chunk, item_ids), len(chunk), axis=0)

    for max_scores in (10**6, 5):
        config = RankingConfig(k=3, max_scores_per_batch=max_scores)
        ranks_a, lists_a = rank_by_scores(TARGETS, CATALOG, shared, config)
        ranks_b, lists_b = rank_by_scores(TARGETS, CATALOG, full, config)
        pd.testing.assert_series_equal(ranks_a, ranks_b)
        pd.testing.assert_frame_equal(lists_a, lists_b)


def test_llm_method_names_follow_the_design_suffixes():
    generations = pd.DataFrame(
        {
            "variant": ["full", "full", "full", "no_attributes", "no_query_memory"],
            "decoding": ["ranked", "grounded", "free", "ranked", "free"],
        }
    )
    assert llm_method_names(generations) == {
        ("full", "full", "ranked"): "",
        ("full", "full", "grounded"): "-grounded",
        ("full", "full", "free"): "-free",
        ("no_attributes", "no_attributes", "ranked"): "-no_attributes",
        ("no_query_memory", "no_query_memory", "free"): "-no_query_memory",
    }
    assert llm_method_names(generations, preferred_decoding="free")[("full", "full", "ranked")] == "-ranked"
    # a table from before the decodings had names: constrained rows were grounded, the others free
    older = pd.DataFrame({"variant": ["full", "full"], "constrained": [True, False]})
    assert llm_method_names(older) == {("full", "full", "grounded"): "", ("full", "full", "free"): "-free"}


def test_methods_are_scored_on_the_targets_the_headline_generation_answered():
    generations = pd.DataFrame(
        {
            "target_id": ["t1", "t2", "t2", "t3", "t4"],
            "variant": ["full", "full", "full", "no_attributes", "full"],
            "decoding": ["ranked", "ranked", "free", "ranked", "free"],
        }
    )
    assert generated_target_ids(generations) == {"t1", "t2"}
    assert generated_target_ids(generations, preferred_decoding="free") == {"t2", "t4"}
    ablation_only = generations[generations["variant"] != "full"]
    assert generated_target_ids(ablation_only) == {"t3"}
    assert generated_target_ids(generations[["target_id"]]) == {"t1", "t2", "t3", "t4"}
