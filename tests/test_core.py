"""CORE-trm and its sequence data: vocabulary from train only, windows, cold items, training, scoring."""

from dataclasses import asdict

import numpy as np
import pandas as pd
import pytest
import torch

from training.core import (
    CoreConfig,
    CoreModel,
    CoreScorer,
    rank_examples,
    save_core,
    score_indices,
    train_core,
    trim_padding,
)
from training.sequence_data import (
    COLD_INDEX,
    PAD_INDEX,
    CategoryCatalog,
    build_examples,
    build_vocabulary,
    sequences_to_inputs,
)
from training.user_share import in_user_fraction, of_train_users


def marts(user_items: dict[str, list[tuple[str, str]]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``user_sequences`` and ``splits`` rows from per-user (action, item) lists; purchases become targets
    and the last two of each user are test and valid, as the splits mart does."""
    events, splits = [], []
    for user, actions in user_items.items():
        purchases = [i for i, (action, _) in enumerate(actions) if action == "purchase"]
        for seq_no, (action, item) in enumerate(actions, start=1):
            event_id = f"{user}-{seq_no}"
            events.append(
                {
                    "user_id": user,
                    "seq_no": seq_no,
                    "event_id": event_id,
                    "action": action,
                    "item_id": None if action == "search" else item,
                }
            )
            if action == "purchase":
                rank = purchases.index(seq_no - 1)
                split = (
                    "test"
                    if rank == len(purchases) - 1
                    else "valid"
                    if rank == len(purchases) - 2
                    else "train"
                )
                splits.append(
                    {
                        "target_id": event_id,
                        "user_id": user,
                        "target_item_id": item,
                        "category": "Bags",
                        "seq_no": seq_no,
                        "split": split,
                    }
                )
    return pd.DataFrame(events), pd.DataFrame(splits)


@pytest.fixture
def small_marts():
    return marts(
        {
            "u1": [
                ("click", "a"),
                ("purchase", "b"),
                ("search", None),
                ("click", "c"),
                ("purchase", "c"),
                ("click", "x"),
                ("purchase", "d"),
                ("purchase", "e"),
            ],
            "u2": [("click", "b"), ("purchase", "b"), ("purchase", "f")],  # no train target
        }
    )


def test_vocabulary_holds_items_up_to_each_users_last_train_target(small_marts):
    sequences, splits = small_marts
    vocabulary = build_vocabulary(sequences, splits)
    # u1's train targets are b (seq 2) and c (seq 5): items up to seq 5; u2 has none
    assert vocabulary.item_ids.tolist() == ["a", "b", "c"]
    assert vocabulary.index_of(["a", "c", "x"]).tolist() == [2, 4, COLD_INDEX]
    assert len(vocabulary) == 5


def test_windows_are_left_aligned_truncated_and_map_unknown_items_to_cold(small_marts):
    sequences, splits = small_marts
    vocabulary = build_vocabulary(sequences, splits)
    valid = build_examples(sequences, splits, vocabulary, split="valid", max_len=3)
    by_user = dict(zip(valid.user_ids, range(len(valid)), strict=True))
    u1 = by_user["u1"]  # target d (seq 7): items before are a b c c x -> latest 3: c c x
    assert valid.inputs[u1].tolist() == [4, 4, COLD_INDEX] and valid.lengths[u1] == 3
    assert valid.target_item_ids[u1] == "d" and valid.targets[u1] == COLD_INDEX
    u2 = by_user["u2"]  # target b (seq 2): only the click on b before it
    assert valid.inputs[u2].tolist() == [3, PAD_INDEX, PAD_INDEX] and valid.lengths[u2] == 1

    train = build_examples(sequences, splits, vocabulary, split="train", max_len=3)
    assert train.target_item_ids.tolist() == ["b", "c"]
    assert train.inputs.tolist() == [[2, 0, 0], [2, 3, 4]]

    augmented = build_examples(sequences, splits, vocabulary, split="train", max_len=3, targets="all_items")
    # every item event of u1 up to seq 5 with a non-empty history: b(2), c(4), c(5)
    assert augmented.target_item_ids.tolist() == ["b", "c", "c"]
    assert augmented.inputs.tolist() == [[2, 0, 0], [2, 3, 0], [2, 3, 4]]
    with pytest.raises(ValueError, match="train only"):
        build_examples(sequences, splits, vocabulary, split="valid", targets="all_items")


def test_a_share_of_the_users_knows_only_their_items_and_is_validated_on_everyone():
    """Low-resource training (paper §5.4): every user clicked an item nobody else saw; the share-trained
    vocabulary holds the sampled users' items only, the others' are cold, and valid stays whole."""
    sequences, splits = marts(
        {
            f"u{n}": [
                ("click", f"own{n}"),
                ("purchase", "shared"),
                ("purchase", f"own{n}"),
                ("purchase", "z"),
            ]
            for n in range(40)
        }
    )
    users = [f"u{n}" for n in range(40)]
    sampled = {user for user, kept in zip(users, in_user_fraction(users, 0.25), strict=True) if kept}
    assert 0 < len(sampled) < 20
    share = of_train_users(splits, 0.25)
    assert set(share.loc[share["split"] == "train", "user_id"]) == sampled
    assert share[share["split"] != "train"].equals(splits[splits["split"] != "train"])

    vocabulary = build_vocabulary(sequences, share)
    assert set(vocabulary.item_ids) == {"shared"} | {f"own{user[1:]}" for user in sampled}
    train = build_examples(sequences, share, vocabulary, split="train", max_len=3, targets="all_items")
    assert set(train.user_ids) == sampled and len(train) == len(sampled)  # "shared", after their own item

    whole = build_vocabulary(sequences, splits)
    valid = build_examples(sequences, share, vocabulary, split="valid", max_len=3)
    assert (
        valid.target_ids.tolist()
        == build_examples(sequences, splits, whole, split="valid").target_ids.tolist()
    )
    others = ~np.isin(valid.user_ids, list(sampled))
    assert (valid.inputs[others, 0] == COLD_INDEX).all()  # their own item: unknown to the share
    assert (valid.inputs[~others, 0] >= 2).all()

    assert of_train_users(splits, 1.0).equals(splits)
    with pytest.raises(ValueError, match=r"train_user_fraction must be in \(0, 1\]; got 0.0"):
        of_train_users(splits, 0.0)


def test_raw_histories_become_the_same_windows(small_marts):
    sequences, splits = small_marts
    vocabulary = build_vocabulary(sequences, splits)
    inputs, lengths = sequences_to_inputs([["a", "b", "c", "c", "x"], []], vocabulary, max_len=3)
    assert inputs.tolist() == [[4, 4, COLD_INDEX], [0, 0, 0]] and lengths.tolist() == [3, 0]


def test_defaults_are_recboles():
    config = asdict(CoreConfig())
    expected = {
        "embedding_size": 64,
        "n_layers": 2,
        "n_heads": 2,
        "inner_size": 256,
        "hidden_dropout_prob": 0.5,
        "attn_dropout_prob": 0.5,
        "item_dropout": 0.2,
        "sess_dropout": 0.2,
        "temperature": 0.07,
        "max_seq_length": 50,
        "learning_rate": 1e-3,
        "train_batch_size": 2048,
        "stopping_step": 10,
    }
    assert {k: config[k] for k in expected} == expected


def test_session_vectors_live_in_item_space():
    torch.manual_seed(0)
    model = CoreModel(n_items=12, config=CoreConfig(max_seq_length=5)).eval()
    seq = torch.tensor([[3, 4, 5, 0, 0], [7, 0, 0, 0, 0], [0, 0, 0, 0, 0]])
    with torch.no_grad():
        out = model(seq)
        items = model.normalized_items()
    assert out.shape == (3, 64)
    np.testing.assert_allclose(out[:2].norm(dim=1).numpy(), 1.0, rtol=1e-5)
    assert torch.all(out[2] == 0)  # empty session: no information, every item scores 0
    # a one-item session is exactly that item's direction: weights sum to 1 over real items
    np.testing.assert_allclose(out[1].numpy(), items[7].numpy(), atol=1e-5)
    assert torch.all(model.item_embedding.weight[PAD_INDEX] == 0)


def clustered_marts(
    n_users: int = 150, n_clusters: int = 5, per_cluster: int = 6, length: int = 7, seed: int = 0
):
    """Each user shops inside one cluster of items: a taste an ID model must pick up from the train split."""
    rng = np.random.default_rng(seed)
    users = {}
    for u in range(n_users):
        cluster = int(rng.integers(0, n_clusters))
        walk = [f"c{cluster}i{int(rng.integers(0, per_cluster))}" for _ in range(length)]
        users[f"u{u}"] = [("click", item) for item in walk[:3]] + [("purchase", item) for item in walk[3:]]
    sequences, splits = marts(users)
    catalog = [f"c{c}i{i}" for c in range(n_clusters) for i in range(per_cluster)] + ["new1", "new2"]
    return sequences, splits, pd.DataFrame({"item_id": catalog, "category": "Bags"})


def test_training_learns_tastes_and_round_trips_through_safetensors(tmp_path):
    sequences, splits, items = clustered_marts()
    vocabulary = build_vocabulary(sequences, splits)
    config = CoreConfig(max_seq_length=8, epochs=8, train_batch_size=128, learning_rate=1e-2, seed=1)
    train = build_examples(sequences, splits, vocabulary, split="train", max_len=8, targets="all_items")
    valid = build_examples(sequences, splits, vocabulary, split="valid", max_len=8)
    catalog = CategoryCatalog.from_items(items, vocabulary)
    logged: list[str] = []
    result = train_core(train, valid, vocabulary, catalog, config, device="cpu", log=logged.append)
    # 32 items, the user's cluster holds 6: chance recall@10 is about 0.3
    assert result.best_valid["recall@10"] > 0.8, result.history
    assert len(result.history) >= result.best_epoch >= 1 and logged
    ranks = rank_examples(result.model, valid, catalog)
    assert ranks.min() >= 1 and np.mean(ranks <= 10) == pytest.approx(result.best_valid["recall@10"])

    directory = save_core(result, tmp_path / "core")
    assert (directory / "model.safetensors").is_file() and (directory / "config.json").is_file()
    scorer = CoreScorer.load(directory, device="cpu")
    histories = [["c0i1", "c0i2", "c0i3"], ["c1i0"], []]
    candidates = [f"c0i{i}" for i in range(6)] + [f"c1i{i}" for i in range(6)] + ["new1", "new2"]
    scores = scorer.score(histories, candidates)
    assert scores.shape == (3, 14)
    assert scores[0, :6].mean() > scores[0, 6:12].mean()  # own cluster first
    assert scores[1, 6:12].mean() > scores[1, :6].mean()
    assert scores[0, 12] == scores[0, 13]  # unseen items share the cold vector, so they tie
    assert np.all(scores[2] == 0)
    original = CoreScorer(result.model, vocabulary).score(histories, candidates)
    np.testing.assert_allclose(scores, original, atol=1e-6)
    inputs, _ = sequences_to_inputs(histories, vocabulary, 8)
    np.testing.assert_allclose(
        score_indices(scorer.model, inputs, vocabulary.index_of(candidates), batch_size=1), scores, atol=1e-6
    )
    vectors = scorer.item_vectors(["c0i1", "new1", "new2"])
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(vectors[1], vectors[2])


def test_training_refuses_empty_data(small_marts):
    sequences, splits = small_marts
    vocabulary = build_vocabulary(sequences, splits)
    empty = build_examples(sequences, splits.iloc[:0], vocabulary, split="train")
    catalog = CategoryCatalog.from_items(pd.DataFrame({"item_id": ["a"], "category": ["Bags"]}), vocabulary)
    with pytest.raises(ValueError, match="no training sequences"):
        train_core(empty, empty, vocabulary, catalog, CoreConfig(epochs=1), device="cpu")


def test_trimming_padding_leaves_session_vectors_unchanged():
    torch.manual_seed(0)
    model = CoreModel(n_items=20, config=CoreConfig(max_seq_length=10)).eval()
    seq = torch.tensor([[3, 4, 5, 0, 0, 0, 0, 0, 0, 0], [7, 8, 0, 0, 0, 0, 0, 0, 0, 0]])
    trimmed = trim_padding(seq)
    assert trimmed.shape == (2, 3)
    with torch.no_grad():
        np.testing.assert_allclose(model(trimmed).numpy(), model(seq).numpy(), atol=1e-6)
    assert trim_padding(torch.zeros((2, 10), dtype=torch.long)).shape == (2, 1)


@pytest.mark.parametrize("name, bucketed", [("demo", True), ("tiny", False), ("luggage", False)])
def test_only_the_demo_core_sorts_batches_by_length(name, bucketed):
    """Random batches everywhere (RecBole's); the demo's CORE trades them for its time budget."""
    from assets.id_vectors import CoreAssetConfig, core_settings
    from fashionrec.presets import get_preset

    assert core_settings(CoreAssetConfig(), get_preset(name).core).bucket_by_length is bucketed
