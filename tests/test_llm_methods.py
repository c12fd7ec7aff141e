"""LLM method names per generation group, the retrieval ablations of Table 3, the adapters' training
selections (zero-shot categories, nested low-resource user shares), the LLM's controls and its
diagnostics, on hand-made cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from evaluation.controls import CONTROL_COLUMNS, control_generations, control_list_methods, random_order
from evaluation.diagnostics import DIAGNOSTIC_COLUMNS, llm_diagnostics, llm_picks, picks_of
from evaluation.llm_methods import llm_list_methods, llm_method_names, select_adapters
from evaluation.methods import CONTROL_METHODS
from recommender.mixup import MixupConfig, mixup_batch
from recommender.ranking import catalog_by_category
from recommender.retrieval import VectorCatalog
from training.adapter_selection import AdapterSelection, check_adapter, in_user_fraction

ITEMS = [f"s{i}" for i in range(6)]
# ID space: s0's neighbours are s1, s2 (list A); title space: the generated title is nearest s3, s4, s5
ID_VECTORS = VectorCatalog(
    ITEMS,
    ["Footwear"] * 6,
    np.array(
        [[1, 0, 0], [0.9, 0.1, 0], [0.8, 0.2, 0], [0, 0, 1], [0, 0.1, 1], [0, 0.2, 1]], dtype=np.float32
    ),
)
TITLE_VECTORS = VectorCatalog(
    ITEMS,
    ["Footwear"] * 6,
    np.array(
        [[0, 0, 1], [0, 0.1, 1], [0, 0.2, 1], [1, 0, 0], [0.9, 0.1, 0], [0.8, 0.2, 0]], dtype=np.float32
    ),
)
CATALOG = catalog_by_category(pd.DataFrame({"item_id": ITEMS, "category": ["Footwear"] * 6}))


def encode_near_s3(texts) -> np.ndarray:
    return np.tile(np.array([[1.0, 0.0, 0.0]], dtype=np.float32), (len(texts), 1))


def generations(variant: str = "full", adapter: str | None = None) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "target_id": ["t1"],
            "category": ["Footwear"],
            "item_id": ["s0"],
            "title": ["a generated title"],
            "raw_text": ["{<id>s0</id>,<title>a generated title</title>}"],
            "variant": [variant],
            "adapter": [adapter],
            "constrained": [True],
        }
    )


def listed(lists: pd.DataFrame) -> list[tuple[str, str]]:
    return list(lists.sort_values("rank")[["item_id", "source"]].itertuples(index=False, name=None))


def test_retrieval_ablations_take_every_item_from_one_list():
    lists, seconds = llm_list_methods(
        generations(),
        CATALOG,
        ID_VECTORS,
        TITLE_VECTORS,
        encode_near_s3,
        MixupConfig(k=3, n=1),
        ("llm_mixup",),
        retrieval_ablations=["no_text_embedding", "no_id_embedding"],
    )
    assert (
        set(lists)
        == set(seconds)
        == {"llm_mixup", "llm_mixup-no_text_embedding", "llm_mixup-no_id_embedding"}
    )
    assert listed(lists["llm_mixup"]) == [("s0", "id"), ("s3", "title"), ("s4", "title")]
    assert listed(lists["llm_mixup-no_text_embedding"]) == [("s0", "id"), ("s1", "id"), ("s2", "id")]
    assert listed(lists["llm_mixup-no_id_embedding"]) == [("s3", "title"), ("s4", "title"), ("s5", "title")]


def test_ablations_and_suffixes_compose_with_the_generation_group_names():
    lists, _ = llm_list_methods(
        pd.concat([generations("no_query_memory"), generations("full", "users_10")]),
        CATALOG,
        ID_VECTORS,
        TITLE_VECTORS,
        encode_near_s3,
        MixupConfig(k=3, n=1),
        ("llm_mixup", "llm_only"),
        retrieval_ablations=["no_id_embedding"],
        method_suffix="-clip_text_embedding",
    )
    assert set(lists) == {
        f"{base}{suffix}-clip_text_embedding"
        for base, suffix in [
            ("llm_mixup", "-no_query_memory"),
            ("llm_mixup", "-no_query_memory-no_id_embedding"),
            ("llm_only", "-no_query_memory"),
            ("llm_mixup", "-users_10"),
            ("llm_mixup", "-users_10-no_id_embedding"),
            ("llm_only", "-users_10"),
        ]
    }


@pytest.mark.parametrize(
    ("ablations", "suffix", "message"),
    [(["no_ids"], "", "unknown retrieval ablation"), ([], "clip", "must start with '-'")],
)
def test_bad_retrieval_options_are_named(ablations, suffix, message):
    with pytest.raises(ValueError, match=message):
        llm_list_methods(
            generations(),
            CATALOG,
            ID_VECTORS,
            TITLE_VECTORS,
            encode_near_s3,
            MixupConfig(),
            (),
            "ranked",
            ablations,
            suffix,
        )


def test_adapter_names_and_old_tables_without_an_adapter_column():
    frame = pd.concat(
        [generations("full", None), generations("full", "zs_footwear"), generations("no_attributes")]
    )
    assert llm_method_names(frame) == {
        ("full", "full", "grounded"): "",
        ("full", "zs_footwear", "grounded"): "-zs_footwear",
        ("no_attributes", "no_attributes", "grounded"): "-no_attributes",
    }
    assert set(select_adapters(frame, ["zs_footwear"])["adapter"]) == {"zs_footwear"}
    with pytest.raises(ValueError, match=r"no rows of adapter\(s\) \['users_10'\]"):
        select_adapters(frame, ["full", "users_10"])
    assert llm_method_names(frame.drop(columns=["adapter"])) == {
        ("full", "full", "grounded"): "",
        ("no_attributes", "no_attributes", "grounded"): "-no_attributes",
    }


def test_user_fractions_are_nested_stable_and_near_their_share():
    users = [f"u{i:05d}" for i in range(4000)]
    kept = {
        fraction: {u for u, k in zip(users, in_user_fraction(users, fraction), strict=True) if k}
        for fraction in (0.1, 0.25, 0.5, 1.0)
    }
    assert kept[0.1] < kept[0.25] < kept[0.5] < kept[1.0] == set(users)
    for fraction, chosen in kept.items():
        assert abs(len(chosen) / len(users) - fraction) < 0.03, fraction
    assert kept[0.25] == {u for u, k in zip(users, in_user_fraction(users, 0.25), strict=True) if k}
    other_seed = {u for u, k in zip(users, in_user_fraction(users, 0.25, seed=1), strict=True) if k}
    assert other_seed != kept[0.25]
    with pytest.raises(ValueError, match=r"in \(0, 1\]"):
        in_user_fraction(users, 0.0)


def test_adapter_selection_keeps_categories_then_users_and_is_saved_with_the_adapter(tmp_path):
    rows = [(f"t{i}", f"u{i % 40}", "Footwear" if i % 2 else "Clothing") for i in range(200)]
    selection = AdapterSelection("zs_footwear", "full", ("Footwear",), 0.5)
    footwear = selection.in_categories(rows, 2, {"Footwear", "Clothing"})
    assert {row[2] for row in footwear} == {"Footwear"} and len(footwear) == 100
    half = selection.of_users(footwear, 1)
    assert {row[1] for row in half} == {u for u in {r[1] for r in footwear} if in_user_fraction([u], 0.5)[0]}
    with pytest.raises(ValueError, match=r"\['Shoes'\] have no train prompts"):
        AdapterSelection("x", "full", ("Shoes",)).in_categories(rows, 2, {"Footwear", "Clothing"})
    with pytest.raises(ValueError, match="letters, digits and '_'"):
        AdapterSelection("../up", "full")

    with pytest.raises(ValueError, match="train it first"):
        check_adapter(tmp_path, "zs_footwear", "full")
    (tmp_path / "adapter_config.json").write_text("{}")
    selection.save(tmp_path)
    assert AdapterSelection.load(tmp_path) == selection
    check_adapter(tmp_path, "zs_footwear", "full")
    with pytest.raises(ValueError, match="trained on prompt variant 'full', not 'no_attributes'"):
        check_adapter(tmp_path, "zs_footwear", "no_attributes")


def train_rows(n: int = 120) -> list[dict]:
    return [
        {
            "target_id": f"t{i:03d}",
            "user_id": f"u{i % 30:02d}",
            "category": ("Footwear", "Clothing", "Luggage")[i % 3],
            "prompt_text": f"prompt {i}",
            "response_text": f"answer {i}",
        }
        for i in range(n)
    ]


def test_train_prompts_keep_categories_then_a_capped_sample_then_nested_user_shares():
    rows = train_rows()

    def chosen(fraction: float, categories: tuple[str, ...] = (), cap: int | None = 24) -> list[str]:
        selection = AdapterSelection("a", "full", categories, fraction, user_seed=0)
        return [row["target_id"] for row in selection.train_prompts(rows, cap, seed=0)]

    everyone = chosen(1.0)
    assert len(everyone) == 24 and everyone == sorted(everyone)  # a sample, in table order
    assert chosen(1.0) == everyone and chosen(1.0, cap=None) == [row["target_id"] for row in rows]
    shares = {fraction: chosen(fraction) for fraction in (0.25, 0.5, 1.0)}
    assert set(shares[0.25]) < set(shares[0.5]) < set(shares[1.0]) == set(everyone)
    users_of = {row["target_id"]: row["user_id"] for row in rows}
    kept_users = {users_of[t] for t in shares[0.5]}
    assert all(in_user_fraction([u], 0.5)[0] for u in kept_users)
    assert {users_of[t] for t in everyone if in_user_fraction([users_of[t]], 0.5)[0]} == kept_users

    footwear = chosen(1.0, ("Footwear",))
    category_of = {row["target_id"]: row["category"] for row in rows}
    assert len(footwear) == 24 and {category_of[t] for t in footwear} == {"Footwear"}

    with pytest.raises(ValueError, match=r"\['Shoes'\] have no train prompts"):
        chosen(1.0, ("Shoes",))
    with pytest.raises(ValueError, match="no train rows for variant 'full'"):
        AdapterSelection("a", "full").train_prompts([], 24, 0)
    few = [row for row in rows if row["user_id"] == "u00"][:1]
    share = AdapterSelection("a", "full", (), 0.01)
    assert not share.of_users(few, "user_id")
    with pytest.raises(ValueError, match=r"adapter 'a' has no train prompts left: categories all, 1% of"):
        share.train_prompts(few, 24, 0)


TITLES = pd.Series({item: f"title of {item}" for item in ITEMS})
CANDIDATES = {"t1": ["s3", "s1", "s4", "s0", "s5"], "t2": ["s2", "s0"], "t3": []}
TARGETS = pd.DataFrame({"target_id": ["t1", "t2", "t3"], "category": ["Footwear"] * 3})


def test_controls_order_the_candidates_first_or_seeded_random():
    controls = control_generations(TARGETS, CANDIDATES, TITLES, seed=0)
    assert set(controls) == set(CONTROL_METHODS) == {"memory_first", "memory_random"}
    first = controls["memory_first"].set_index("target_id")
    assert first.loc["t1", "ranked_item_ids"] == ["s3", "s1", "s4", "s0", "s5"]
    assert first.loc["t1", "item_id"] == "s3" and first.loc["t1", "title"] == "title of s3"
    assert first["raw_text"].isna().all() and list(controls["memory_first"].columns) == CONTROL_COLUMNS
    shuffled = controls["memory_random"].set_index("target_id")
    assert sorted(shuffled.loc["t1", "ranked_item_ids"]) == sorted(CANDIDATES["t1"])
    assert shuffled.loc["t1", "item_id"] == shuffled.loc["t1", "ranked_item_ids"][0]
    assert shuffled.loc["t1", "title"] == f"title of {shuffled.loc['t1', 'item_id']}"
    # stable per target: the same order whatever the targets' order, another seed another order
    backwards = control_generations(TARGETS.iloc[::-1], CANDIDATES, TITLES, 0, ["memory_random"])
    again = backwards["memory_random"].set_index("target_id")
    assert again.loc["t1", "ranked_item_ids"] == shuffled.loc["t1", "ranked_item_ids"]
    assert again.loc["t2", "ranked_item_ids"] == shuffled.loc["t2", "ranked_item_ids"]
    many = [f"c{i}" for i in range(20)]
    orders = {seed: random_order(many, "t1", seed) for seed in range(3)}
    assert orders[0] == random_order(many, "t1", 0) and len({tuple(o) for o in orders.values()}) == 3
    assert orders[0] != many and sorted(orders[0]) == sorted(many)
    # uniform: over many targets every candidate comes first about equally often
    firsts = pd.Series([random_order(["a", "b", "c", "d"], f"t{i}")[0] for i in range(4000)])
    assert firsts.value_counts(normalize=True).between(0.22, 0.28).all()
    # no candidates: no pick, an empty list, and no recommendations
    for frame in controls.values():
        empty = frame.set_index("target_id").loc["t3"]
        assert empty["ranked_item_ids"] == [] and empty["item_id"] is None and empty["title"] is None


def test_controls_are_retrieved_like_llm_mixup_of_their_first_candidate():
    controls = control_generations(TARGETS, CANDIDATES, TITLES, seed=0, methods=["memory_first"])
    lists, seconds = control_list_methods(
        controls, ID_VECTORS, TITLE_VECTORS, encode_near_s3, MixupConfig(k=4, n=1, lead=1), "-alt"
    )
    assert set(lists) == set(seconds) == {"memory_first-alt"}
    by_target = {t: listed(g) for t, g in lists["memory_first-alt"].groupby("target_id")}
    assert set(by_target) == {"t1", "t2"}  # t3 has no candidates: no list
    # lead 1: the first candidate, then the mixup of it (its ID neighbours, then the title list)
    plain = mixup_batch(
        controls["memory_first"].drop(columns="ranked_item_ids"),
        ID_VECTORS,
        TITLE_VECTORS,
        encode_near_s3,
        MixupConfig(k=4, n=1),
    )
    for target_id, items in by_target.items():
        assert [i for i, _ in items] == plain.loc[plain["target_id"] == target_id, "item_id"].tolist()
        assert items[0] == (CANDIDATES[target_id][0], "ranked")


def test_diagnostics_count_recall_and_accuracy_per_category_and_overall():
    targets = pd.DataFrame(
        {
            "target_id": ["a", "b", "c", "d", "e"],
            "category": ["Footwear", "Footwear", "Footwear", "Luggage", "Luggage"],
            "target_item_id": ["f1", "f2", "f3", "l1", "l2"],
        }
    )
    candidates = {"a": ["f1", "f9"], "b": ["f9", "f2", "f8"], "c": ["f7"], "d": ["l1"]}  # e: none
    picks = {
        "llm_mixup": pd.Series({"a": "f9", "b": "f2", "c": "f3", "d": "l1"}),  # e unanswered
        "memory_first": pd.Series({"a": "f1", "b": "f9", "c": "f7", "d": "l1", "e": None}),
    }
    rows = llm_diagnostics(targets, candidates, picks).set_index(["method", "category"])
    assert list(rows.reset_index().columns) == DIAGNOSTIC_COLUMNS
    assert rows.index.tolist() == [
        (method, category) for method in picks for category in ("all", "Footwear", "Luggage")
    ]
    overall = rows.loc[("llm_mixup", "all")]
    assert overall["n_targets"] == 5 and overall["n_with_candidates"] == 4
    assert overall["mean_candidates"] == pytest.approx(7 / 5)
    assert overall["candidate_recall"] == pytest.approx(3 / 5)  # a, b, d
    assert overall["pick_accuracy"] == pytest.approx(3 / 5)  # b, c (outside the candidates), d
    assert overall["pick_accuracy_se"] == pytest.approx(np.sqrt(0.6 * 0.4 / 5))
    assert overall["pick_accuracy_given_recall"] == pytest.approx(2 / 3)  # b, d of a, b, d
    first = rows.loc[("memory_first", "Footwear")]
    assert first["n_targets"] == 3 and first["candidate_recall"] == pytest.approx(2 / 3)
    assert first["pick_accuracy"] == pytest.approx(1 / 3) and first["pick_accuracy_given_recall"] == 0.5
    luggage = rows.loc[("memory_first", "Luggage")]
    assert luggage["n_with_candidates"] == 1 and luggage["pick_accuracy"] == 0.5
    assert luggage["pick_accuracy_given_recall"] == 1.0
    only_missed = llm_diagnostics(targets.iloc[[2]], candidates, picks)
    assert only_missed["pick_accuracy_given_recall"].isna().all()  # no candidate list holds c
    assert only_missed["pick_accuracy_se"].eq(0.0).all()


def test_llm_picks_are_named_as_llm_mixup_and_fall_back_to_a_ranking():
    ranked = generations("no_attributes").assign(item_id=[None], ranked_item_ids=[["s4", "s1"]])
    picks = llm_picks(pd.concat([generations(), ranked]), method_suffix="-alt")
    assert set(picks) == {"llm_mixup-alt", "llm_mixup-no_attributes-alt"}
    assert picks["llm_mixup-alt"]["t1"] == "s0" and picks["llm_mixup-no_attributes-alt"]["t1"] == "s4"


def test_a_free_answer_that_names_nothing_has_no_pick_whatever_its_missing_ranking_reads_as():
    """Free answers that miss the format have neither an id nor a ranking; read back from DuckDB beside
    a ranked group, the missing ranking is pd.NA (None or NaN in other frames)."""
    free = pd.concat([generations()] * 4, ignore_index=True).assign(
        target_id=["t1", "t2", "t3", "t4"],
        item_id=[None, None, None, "s2"],
        ranked_item_ids=pd.Series([pd.NA, None, float("nan"), pd.NA], dtype=object),
    )
    picks = picks_of(free)
    assert picks.to_dict() == {"t1": None, "t2": None, "t3": None, "t4": "s2"}
