"""Prompt candidates when the query memory has none: the user's history, the category's popular train
items, how they combine, and when they apply."""

import lancedb
import pandas as pd
import pytest

from fashionrec.layout import QUERY_MEMORY_TABLE
from recommender.candidate_sources import (
    Fallback,
    combine_candidates,
    family_candidates,
    history_candidates,
    popular_candidates,
    source_shares,
)
from recommender.query_memory import MemorySettings, QueryMemory, build_memory, prompt_candidates
from tests.test_query_memory import LISTINGS, BagOfWordsEncoder, day


def event(item, category, action="purchase"):
    return {"action": action, "item_id": item, "category": category}


ITEMS = pd.DataFrame(
    {
        "item_id": ["b1", "b2", "b3", "b4", "d1", "d2", "d3"],
        "category": ["Footwear"] * 4 + ["Clothing"] * 3,
    }
)
# train purchases: b2 three times, b1 and b4 once, d3 twice; b3 and d1 never
TRAIN = pd.DataFrame(
    {"target_item_id": ["b2", "b1", "b2", "d3", "b4", "b2", "d3"], "split": "train"},
)
TARGETS = pd.DataFrame(
    {
        "target_id": ["t1", "t2", "t3"],
        "category": ["Footwear", "Footwear", "Clothing"],
        "target_item_id": ["b3", "b2", "d1"],
        "latest_query": [None, None, None],
        "target_ts": [day(1), day(2), day(3)],
        "split": ["train", "valid", "test"],
        "history": [
            [],
            # oldest first: b1, a search, d1 (other category), b3, b1 again (the latest)
            [
                event("b1", "Footwear", "click"),
                {"action": "search", "item_id": None, "category": None},
                event("d1", "Clothing"),
                event("b3", "Footwear"),
                event("b1", "Footwear", "add_to_cart"),
            ],
            [event("d2", "Clothing")],
        ],
    }
)


def fallback(**changes) -> Fallback:
    return Fallback(TRAIN, ITEMS, **changes)


def test_history_gives_the_users_items_of_the_category_latest_first():
    lists = history_candidates(TARGETS, fallback(), limit=8)
    assert lists == [[], ["b1", "b3"], ["d2"]]
    assert history_candidates(TARGETS, fallback(), limit=1)[1] == ["b1"]


def test_popular_gives_the_most_bought_train_items_of_the_category():
    lists = popular_candidates(TARGETS, fallback(), limit=8)
    # ties (b1, b4: one purchase each) by item id; never-bought items are no candidates
    assert lists == [["b2", "b1", "b4"], ["b2", "b1", "b4"], ["d3"]]
    assert popular_candidates(TARGETS, fallback(), limit=2)[0] == ["b2", "b1"]
    valid_purchase = pd.concat([TRAIN, pd.DataFrame({"target_item_id": ["d1"] * 5, "split": "valid"})])
    # the asset passes the train rows only; a valid purchase would count as here
    assert popular_candidates(TARGETS, Fallback(valid_purchase, ITEMS), 1)[2] == ["d1"]


def test_combine_keeps_memory_lists_and_fills_the_others_in_source_order():
    memory = [["m1"], [], [], []]
    fallbacks = [
        ("history", [["h1"], ["h1", "h2"], [], []]),
        ("popular", [["p1"], ["h2", "p1", "p2", "p3"], ["p1"], []]),
    ]
    lists, sources = combine_candidates(memory, fallbacks, limit=3)
    assert lists == [["m1"], ["h1", "h2", "p1"], ["p1"], []]
    assert sources == ["memory", "history+popular", "popular", "none"]
    assert source_shares(sources) == {"history+popular": 0.25, "memory": 0.25, "none": 0.25, "popular": 0.25}
    assert combine_candidates(memory, [], limit=3) == (
        [["m1"], [], [], []],
        ["memory", "none", "none", "none"],
    )


def test_family_gives_the_variants_of_the_users_latest_items():
    # b1, b2 one product in two colors; b3 alone; d1, d2 one clothing family
    families = ITEMS.assign(parent_id=["pb", "pb", "pc", "pd", "pe", "pe", "pf"])
    lists = family_candidates(TARGETS, Fallback(TRAIN, families), limit=8)
    # t2's latest item b1 first, then its variant b2, then b3's family (itself)
    assert lists == [[], ["b1", "b2", "b3"], ["d2", "d1"]]
    assert family_candidates(TARGETS, Fallback(TRAIN, families), limit=2)[1] == ["b1", "b2"]
    # a catalog without families: every item is its own, as the history gives it
    assert family_candidates(TARGETS, fallback(), limit=8) == history_candidates(TARGETS, fallback(), 8)


def test_added_sources_extend_every_list_after_its_own_ids():
    memory = [["m1", "m2"], [], []]
    fallbacks = [("popular", [["p1"], ["p1", "p2"], []])]
    added = [("family", [["m2", "f1", "f2", "f3"], ["f1"], []])]
    lists, sources = combine_candidates(memory, fallbacks, limit=3, added=added, n_added=2)
    # at most two ids more, none repeated; the list's own order first
    assert lists == [["m1", "m2", "f1", "f2"], ["p1", "p2", "f1"], []]
    assert sources == ["memory+family", "popular+family", "none"]
    assert combine_candidates(memory, fallbacks, 3, added, n_added=0)[0] == [["m1", "m2"], ["p1", "p2"], []]


def test_fallback_settings_are_checked():
    assert fallback().applies(0) and not fallback().applies(5)
    assert fallback(when="no_candidates").applies(5) and not fallback(when="never").applies(0)
    with pytest.raises(ValueError, match="unknown candidate source"):
        fallback(sources=("history", "clicks"))
    with pytest.raises(ValueError, match="is not one of"):
        fallback(when="always")
    with pytest.raises(ValueError, match="unknown candidate source"):
        fallback(added=("families",))
    with pytest.raises(ValueError, match="cannot be negative"):
        fallback(added=("family",), n_added=-1)


def test_an_empty_memory_falls_back_to_history_then_popular(tmp_path):
    db = lancedb.connect(str(tmp_path / "lancedb"))
    encoder = BagOfWordsEncoder()
    build_memory(db, LISTINGS.iloc[:0], encoder)
    memory = QueryMemory.from_table(db.open_table(QUERY_MEMORY_TABLE))
    settings = MemorySettings(neighbours=2, items_per_query=2)  # Q x V = 4
    found = prompt_candidates(TARGETS, memory, encoder, settings, fallback=fallback()).set_index("target_id")
    assert found.loc["t1", "candidate_item_ids"] == ["b2", "b1", "b4"]
    assert found.loc["t2", "candidate_item_ids"] == ["b1", "b3", "b2", "b4"]  # history, then popular
    assert found["candidate_source"].tolist() == ["popular", "history+popular", "history+popular"]
    assert found["target_in_candidates"].tolist() == [False, True, False]
    assert found["n_candidates"].tolist() == [3, 4, 2]
    without = prompt_candidates(TARGETS, memory, encoder, settings)
    assert without["candidate_item_ids"].tolist() == [[], [], []] and set(without["candidate_source"]) == {
        "none"
    }


def test_a_memory_with_queries_keeps_its_lists_and_by_default_leaves_the_rest_empty(tmp_path):
    db = lancedb.connect(str(tmp_path / "lancedb"))
    encoder = BagOfWordsEncoder()
    build_memory(db, LISTINGS, encoder)
    memory = QueryMemory.from_table(db.open_table(QUERY_MEMORY_TABLE))
    settings = MemorySettings(neighbours=2, items_per_query=2)
    targets = TARGETS.assign(latest_query=["red dress", None, None])
    plain = prompt_candidates(targets, memory, encoder, settings)
    default = prompt_candidates(targets, memory, encoder, settings, fallback=fallback())
    pd.testing.assert_frame_equal(plain, default)
    assert default["candidate_source"].tolist() == ["memory", "none", "none"]
    filled = prompt_candidates(targets, memory, encoder, settings, fallback=fallback(when="no_candidates"))
    assert filled["candidate_item_ids"].iloc[0] == default["candidate_item_ids"].iloc[0]
    assert filled["candidate_source"].tolist() == ["memory", "history+popular", "history+popular"]
