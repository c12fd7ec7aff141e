"""The generations table without a model: which prompts a run answers, and a run's group of rows replacing
only its own."""

from datetime import UTC, datetime

import duckdb
import pyarrow as pa
import pytest

from recommender.generation import GeneratedRecommendation
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
    return generations_table(
        sample, [answer(row["target_item_id"]) for row in sample], group, datetime.now(UTC)
    )


def test_a_run_replaces_its_own_group_and_keeps_the_others():
    free, constrained = GenerationGroup("full", "full", False), GenerationGroup("full", "full", True)
    zero_shot = GenerationGroup("full", "zs_footwear", True)
    with duckdb.connect() as con:
        replace_generations(con, group_rows(constrained, 4), constrained)
        replace_generations(con, group_rows(free, 3), free)
        replace_generations(con, group_rows(zero_shot, 2), zero_shot)
        replace_generations(con, group_rows(constrained, 1), constrained)
        counts = con.execute(
            "select adapter, constrained, count(*), bool_and(is_exact_hit) from generations group by all "
            "order by all"
        ).fetchall()
    assert counts == [("full", False, 3, True), ("full", True, 1, True), ("zs_footwear", True, 2, True)]


def test_a_table_from_before_adapters_had_names_gets_its_variants_as_adapters():
    group = GenerationGroup("no_attributes", "no_attributes", True)
    old = group_rows(GenerationGroup("full", "full", True), 3).drop_columns(["adapter"])
    with duckdb.connect() as con:
        con.register("old", old)
        con.execute("create table generations as select * from old")
        replace_generations(con, group_rows(group, 2), group)
        rows = con.execute(
            "select variant, adapter, count(*) from generations group by all order by 1"
        ).fetchall()
    assert rows == [("full", "full", 3), ("no_attributes", "no_attributes", 2)]


def test_replace_group_creates_the_table_matches_columns_by_name_and_needs_a_key():
    with duckdb.connect() as con:
        replace_group(con, "scores", pa.table({"run": ["a", "a"], "value": [1, 2]}), {"run": "a"})
        replace_group(con, "scores", pa.table({"value": [3], "run": ["b"]}), {"run": "b"})
        replace_group(con, "scores", pa.table({"run": ["a"], "value": [4]}), {"run": "a"})
        assert con.execute("select run, value from scores order by all").fetchall() == [("a", 4), ("b", 3)]
        with pytest.raises(ValueError, match="no key columns"):
            replace_group(con, "scores", pa.table({"run": ["c"], "value": [5]}), {})
