"""Title encoder: (query, purchased title) pairs, the paper's two hard negatives, training and reporting."""

import json

import numpy as np
import pandas as pd
import pytest

from recommender.encoder_specs import build_encoder
from recommender.lstm_encoder import LstmTextEncoder, LstmTitleConfig
from training.title_encoder import (
    TitleEncoderConfig,
    fit_title_encoder,
    load_title_encoder_pairs,
    load_title_encoder_spec,
    train_title_encoder,
)
from training.title_pairs import (
    mine_hard_negatives,
    purchase_query_pairs,
    purchase_sequence_pairs,
    title_pairs,
    title_recall,
)
from training.user_share import UserShare


def unit(rows) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


ITEMS = pd.DataFrame(
    {
        "item_id": ["r1", "r2", "b1", "b2", "s1", "s2"],
        "title": [
            "Womens Red Midi Dress Summer",
            "Womens Red Maxi Dress Party",
            "Mens Black Leather Boots Winter",
            "Womens Brown Ankle Boots",
            "Kids Blue Canvas Sneakers",
            "Mens White Running Sneakers",
        ],
        "category": ["Clothing", "Clothing", "Footwear", "Footwear", "Footwear", "Footwear"],
    }
)


def sequences_and_splits():
    rows = [
        # user, seq, event, session, action, query, search_id, item
        ("u1", 1, "e1", "u1/s1", "search", "Red Dress", "q1", None),
        ("u1", 2, "e2", "u1/s1", "purchase", None, "q1", "r1"),  # linked by search id
        ("u1", 3, "e3", "u1/s2", "search", "black boots", None, None),
        ("u1", 4, "e4", "u1/s2", "purchase", None, None, "b1"),  # no search id: latest search in session
        ("u2", 1, "e5", "u2/s1", "purchase", None, None, "s1"),  # no search at all: not a pair
        ("u2", 2, "e6", "u2/s2", "search", "running sneakers", "q2", None),
        ("u2", 3, "e7", "u2/s2", "purchase", None, "q2", "s2"),
    ]
    sequences = pd.DataFrame(
        rows,
        columns=["user_id", "seq_no", "event_id", "session_key", "action", "query", "search_id", "item_id"],
    )
    sequences["query_norm"] = sequences["query"].str.lower()
    splits = pd.DataFrame(
        {"target_id": ["e2", "e4", "e5", "e7"], "split": ["train", "train", "train", "valid"]}
    )
    return sequences, splits


def test_pairs_link_purchases_to_their_search():
    sequences, splits = sequences_and_splits()
    train = purchase_query_pairs(sequences, splits, ITEMS, "train")
    assert train[["query", "item_id"]].values.tolist() == [["red dress", "r1"], ["black boots", "b1"]]
    assert train["title"].tolist() == ["Womens Red Midi Dress Summer", "Mens Black Leather Boots Winter"]
    valid = purchase_query_pairs(sequences, splits, ITEMS, "valid")
    assert valid[["query", "item_id", "category"]].values.tolist() == [["running sneakers", "s2", "Footwear"]]


def test_logs_without_searches_give_no_pairs():
    sequences, splits = sequences_and_splits()
    purchases_only = sequences.loc[sequences["action"] == "purchase"].assign(search_id=None, query_norm=None)
    pairs = purchase_query_pairs(purchases_only, splits, ITEMS, "train")
    assert pairs.empty and list(pairs.columns) == ["query", "item_id", "title", "category", "target_id"]


def purchases_only():
    sequences, splits = sequences_and_splits()
    purchases = sequences.loc[sequences["action"] == "purchase"].assign(search_id=None, query_norm=None)
    return purchases.reset_index(drop=True), splits.assign(user_id=["u1", "u1", "u2", "u2"])


def test_purchase_only_logs_pair_a_purchase_with_the_users_purchase_before_it():
    purchases, splits = purchases_only()
    train = purchase_sequence_pairs(purchases, splits, ITEMS, "train")
    # u1 bought r1 then b1; the first purchases of u1 and u2 have nothing before them
    assert train[["query", "item_id", "target_id"]].values.tolist() == [
        ["Womens Red Midi Dress Summer", "b1", "e4"]
    ]
    valid = purchase_sequence_pairs(purchases, splits, ITEMS, "valid")
    assert valid[["query", "item_id", "category"]].values.tolist() == [
        ["Kids Blue Canvas Sneakers", "s2", "Footwear"]
    ]
    # buying the same title again teaches nothing about the next purchase
    again = purchases.assign(item_id=["r1", "r1", "s1", "s2"])
    assert purchase_sequence_pairs(again, splits, ITEMS, "train").empty


def test_pairs_are_queries_when_the_logs_have_them_else_purchase_sequences_else_none():
    sequences, splits = sequences_and_splits()
    with_searches = title_pairs(sequences, splits, ITEMS, splits)
    assert with_searches.source == "query" and len(with_searches.train) == with_searches.available == 2
    purchases, splits = purchases_only()
    sequence = title_pairs(purchases, splits, ITEMS, splits)
    assert sequence.source == "purchase_sequence" and sequence.train["item_id"].tolist() == ["b1"]
    assert sequence.valid["item_id"].tolist() == ["s2"]
    one_each = purchases.drop_duplicates("user_id")
    nothing = title_pairs(one_each, splits, ITEMS, splits)
    assert nothing.source == "none" and nothing.train.empty and nothing.valid.empty


TINY_LSTM = TitleEncoderConfig(
    kind="lstm", lstm=LstmTitleConfig(token_dim=8, hidden_size=8, output_dim=8, epochs=1, batch_size=4)
)


def test_without_any_pairs_the_untuned_encoder_is_saved_and_a_share_without_pairs_is_refused(tmp_path):
    purchases, splits = purchases_only()
    directory = tmp_path / "title_encoder"
    result, record = fit_title_encoder(
        purchases.drop_duplicates("user_id"), splits, ITEMS, directory, TINY_LSTM, log=lambda _: None
    )
    assert result.pairs_source == "none" and result.train_pairs == 0 and result.epochs == 0
    assert record["train_users_used"] == 0 and np.isnan(result.recall_after)
    assert load_title_encoder_pairs(directory) == ("none", 0)
    untuned = build_encoder(load_title_encoder_spec(directory), show_progress=False)
    assert untuned.encode(["a"]).shape == (1, 8)

    result, _ = fit_title_encoder(purchases, splits, ITEMS, directory, TINY_LSTM, log=lambda _: None)
    assert load_title_encoder_pairs(directory) == ("purchase_sequence", 1) and result.epochs == 1
    # neither u1 nor u2 is in this 30 % share, while all users give one pair
    with pytest.raises(ValueError, match=r"among the 30% .* all of them give 1; raise train_user_fraction"):
        fit_title_encoder(purchases, splits, ITEMS, directory, TINY_LSTM, UserShare("users_30", 0.3))


def test_hard_negatives_are_the_nearest_non_positives():
    # queries: q0, q1; titles: t0..t3
    queries = unit([[1, 0, 0], [0, 1, 0]])
    titles = unit([[1, 0.1, 0], [1, 0.3, 0], [0.2, 1, 0], [0, 0, 1]])
    pair_query, pair_title = np.array([0, 1, 0]), np.array([0, 2, 1])  # q0 bought t0 and t1
    neg_title, neg_query = mine_hard_negatives(queries, titles, pair_query, pair_title, relative_margin=0.0)
    # q0's positives are t0 and t1, so its nearest non-positive title is t2; q1's is t1
    assert neg_title.tolist() == [2, 1, 2]
    # t0 and t1 were bought from q0 only -> nearest other query is q1; t2 from q1 -> q0
    assert neg_query.tolist() == [1, 0, 1]


def test_false_negative_margin_skips_negatives_as_close_as_the_positive():
    queries = unit([[1, 0], [0, 1]])
    titles = unit([[1, 0.2], [1, 0.21], [0.3, 1]])  # t1 is practically the positive t0 again
    neg_title, _ = mine_hard_negatives(queries, titles, np.array([0]), np.array([0]), relative_margin=0.0)
    assert neg_title.tolist() == [1]
    neg_title, _ = mine_hard_negatives(queries, titles, np.array([0]), np.array([0]), relative_margin=0.05)
    assert neg_title.tolist() == [2]
    none_left, no_query = mine_hard_negatives(queries[:1], titles[:1], np.array([0]), np.array([0]))
    assert none_left.tolist() == [-1] and no_query.tolist() == [-1]


class KeywordEncoder:
    """Vectors from a few keywords, so the right title is found for the right query."""

    spec, dim, fingerprint = "keywords", 4, "k"
    words = ("dress", "boots", "sneakers", "red")

    def encode(self, texts):
        return unit([[t.lower().count(w) + 0.01 for w in self.words] for t in texts])


def test_recall_ranks_the_purchase_among_its_category():
    pairs = pd.DataFrame(
        {
            "query": ["red dress", "sneakers", "boots"],
            "item_id": ["r1", "s2", "s1"],
            "category": ["Clothing", "Footwear", "Footwear"],
        }
    )
    # r1 ties with r2 (2 items: rank 2), s2 ties with s1 (rank 2), s1 for "boots" ranks 3rd of 4
    assert title_recall(KeywordEncoder(), pairs, ITEMS, k=2) == pytest.approx(2 / 3)
    assert title_recall(KeywordEncoder(), pairs, ITEMS, k=1) == 0.0
    assert np.isnan(title_recall(KeywordEncoder(), pairs.iloc[:0], ITEMS))


def test_lstm_variant_trains_saves_and_loads(tmp_path):
    train = pd.DataFrame(
        {
            "query": [
                "red dress",
                "party dress",
                "black boots",
                "leather boots",
                "running sneakers",
                "canvas sneakers",
            ],
            "item_id": ["r1", "r2", "b1", "b2", "s2", "s1"],
        }
    ).merge(ITEMS, on="item_id")
    valid = train.iloc[[0, 2, 4]].reset_index(drop=True)
    config = TitleEncoderConfig(
        kind="lstm", lstm=LstmTitleConfig(token_dim=16, hidden_size=16, output_dim=16, epochs=2, batch_size=4)
    )
    result = train_title_encoder(
        train, valid, ITEMS, tmp_path / "title_encoder", config, device="cpu", log=lambda _: None
    )
    assert result.train_pairs == 6 and result.valid_pairs == 3 and result.epochs == 2 and result.dim == 16
    assert 0.0 <= result.recall_before <= 1.0 and 0.0 <= result.recall_after <= 1.0
    assert all(np.isfinite(h["train_loss"]) for h in result.history)

    manifest = json.loads((tmp_path / "title_encoder" / "title_encoder.json").read_text())
    assert manifest["spec"] == "lstm:./model"  # relative, so the artifacts directory can move
    spec = load_title_encoder_spec(tmp_path / "title_encoder")
    assert spec == f"lstm:{tmp_path / 'title_encoder' / 'model'}"
    encoder = build_encoder(spec, show_progress=False)
    assert isinstance(encoder, LstmTextEncoder)
    vectors = encoder.encode(ITEMS["title"].tolist() + ["red dress"])
    assert vectors.shape == (7, 16)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert (tmp_path / "title_encoder" / "model" / "model.safetensors").is_file()


def test_unknown_kind_and_missing_model_are_reported(tmp_path):
    with pytest.raises(ValueError, match="unknown title encoder kind"):
        train_title_encoder(pd.DataFrame(), pd.DataFrame(), ITEMS, tmp_path, TitleEncoderConfig(kind="bert"))  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError, match="materialize the title_encoder asset"):
        load_title_encoder_spec(tmp_path)
