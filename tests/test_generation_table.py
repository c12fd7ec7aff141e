"""The generations table without a model: which prompts a run answers, and a run's group of rows replacing
only its own."""

from datetime import UTC, datetime

import duckdb
import pyarrow as pa
import pytest

from recommender.generation import GeneratedRecommendation, GenerationRun
from recommender.generation_table import (
    GenerationGroup,
    generations_table,
    prompt_sample,
    replace_generations,
)
from warehouse.marts import replace_group


def prompt_rows() -> list[dict]:
    return [
        {
            "target_id": f"{split[0]}{i:02d}",
            "user_id": f"u{i:02d}",
            "split": split,
            "category": "Footwear" if i % 2 else "Clothing",
            "prompt_text": f"prompt {split} {i}",
            "target_item_id": f"I{i:02d}",
            "candidate_item_ids": None,
        }
        for split in ("test", "valid")  # the prompts table's order: split, then target id
        for i in range(20)
    ]


def ids(rows) -> list[str]:
    return [row["target_id"] for row in rows]


def test_sample_draws_per_split_in_split_order_then_keeps_the_categories():
    rows = prompt_rows()
    sample = prompt_sample(rows, "full", ["valid", "test"], 5, seed=0)
    assert [row["split"] for row in sample] == ["valid"] * 5 + ["test"] * 5
    assert ids(sample) == ids(prompt_sample(rows, "full", ["valid", "test"], 5, seed=0))
    assert ids(sample[:5]) == sorted(ids(sample[:5]))  # table order within a split
    assert len(prompt_sample(rows, "full", ["test"], None, seed=0)) == 20

    footwear = prompt_sample(rows, "full", ["valid", "test"], 5, 0, ["Footwear"], {"Footwear", "Clothing"})
    assert ids(footwear) == [row["target_id"] for row in sample if row["category"] == "Footwear"]

    with pytest.raises(ValueError, match=r"categories \['Shoes'\] are not in the catalog"):
        prompt_sample(rows, "full", ["test"], 5, 0, ["Shoes"], {"Footwear", "Clothing"})
    with pytest.raises(ValueError, match="no prompts for variant 'no_attributes' in splits"):
        prompt_sample([], "no_attributes", ["test"], 5, 0)
    only_clothing = [row for row in rows if row["category"] == "Clothing"]
    with pytest.raises(ValueError, match=r"hold no target in \['Footwear'\]"):
        prompt_sample(only_clothing, "full", ["test"], 5, 0, ["Footwear"], {"Footwear", "Clothing"})


def answer(item_id: str) -> GeneratedRecommendation:
    return GeneratedRecommendation(f"{{<id>{item_id}</id>,<title>t</title>}}", item_id, "t", True, True, 9)


def group_rows(group: GenerationGroup, n: int) -> pa.Table:
    sample = prompt_rows()[:n]
    run = GenerationRun([answer(row["target_item_id"]) for row in sample], seconds=1.0)
    return generations_table(sample, run, group, datetime.now(UTC))


def test_a_run_replaces_its_own_group_and_keeps_the_others():
    free, ranked = GenerationGroup("full", "full", "free"), GenerationGroup("full", "full", "ranked")
    grounded = GenerationGroup("full", "full", "grounded")
    zero_shot = GenerationGroup("full", "zs_footwear", "ranked")
    with duckdb.connect() as con:
        replace_generations(con, group_rows(ranked, 4), ranked)
        replace_generations(con, group_rows(free, 3), free)
        replace_generations(con, group_rows(grounded, 5), grounded)
        replace_generations(con, group_rows(zero_shot, 2), zero_shot)
        replace_generations(con, group_rows(ranked, 1), ranked)
        counts = con.execute(
            "select adapter, decoding, constrained, count(*), bool_and(is_exact_hit) from generations "
            "group by all order by all"
        ).fetchall()
    assert counts == [
        ("full", "free", False, 3, True),
        ("full", "grounded", True, 5, True),
        ("full", "ranked", True, 1, True),
        ("zs_footwear", "ranked", True, 2, True),
    ]
    with pytest.raises(
        ValueError, match="decoding 'sampled' is not one of ranked_prior, ranked, grounded, free"
    ):
        GenerationGroup("full", "full", "sampled")


def test_a_table_from_before_adapters_and_decodings_had_names_gets_them():
    group = GenerationGroup("no_attributes", "no_attributes", "ranked")
    old = group_rows(GenerationGroup("full", "full", "free"), 3)
    # as written before they had names, and before rankings and their scores were kept
    old = old.drop_columns(
        [
            "adapter",
            "decoding",
            "ranked_item_ids",
            "candidate_item_ids",
            "candidate_log_probs",
            "order_prior_weight",
        ]
    )
    with duckdb.connect() as con:
        con.register("old", old)
        con.execute("create table generations as select * from old")
        replace_generations(con, group_rows(group, 2), group)
        rows = con.execute(
            "select variant, adapter, decoding, count(*) from generations group by all order by 1"
        ).fetchall()
    assert rows == [("full", "full", "free", 3), ("no_attributes", "no_attributes", "ranked", 2)]


def test_replace_group_creates_the_table_matches_columns_by_name_and_needs_a_key():
    with duckdb.connect() as con:
        replace_group(con, "scores", pa.table({"run": ["a", "a"], "value": [1, 2]}), {"run": "a"})
        replace_group(con, "scores", pa.table({"value": [3], "run": ["b"]}), {"run": "b"})
        replace_group(con, "scores", pa.table({"run": ["a"], "value": [4]}), {"run": "a"})
        assert con.execute("select run, value from scores order by all").fetchall() == [("a", 4), ("b", 3)]
        with pytest.raises(ValueError, match="no key columns"):
            replace_group(con, "scores", pa.table({"run": ["c"], "value": [5]}), {})
