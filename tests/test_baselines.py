"""The sequential baselines on hand-made sequences whose right answer is known.

The sanity data set is a deterministic cycle: every user walks items c00 -> c01 -> ... -> c11 -> c00
from a random start, so the next item is a function of the last one. Each trained model must rank it
first for (nearly) every test user. Around that: hyperparameter defaults against RecBole's files, shapes,
causality, padding invariance, the cold vector, and save/load round trips through safetensors.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from fashionrec.layout import WEIGHTS_FILE
from recommender.retrieval import VectorCatalog
from training import sequential
from training.baseline_names import parse_run_method
from training.baselines import (
    SEQUENCE_BASELINES,
    SequenceData,
    baseline_config,
    load_baseline,
    train_baseline,
)
from training.bert4rec import append_item
from training.gru4rec import Gru4RecModel
from training.sequence_data import COLD_INDEX, build_examples
from training.sequential import (
    SequenceScorer,
    as_cold,
    batch_pieces,
    rank_examples,
    save_sequential,
    score_indices,
    shuffled_batches,
    trim_padding,
)
from training.user_share import UserShare, in_user_fraction

ID_MODELS = ("gru4rec", "sasrec", "bert4rec", "nextitnet", "llm2sasrec", "llm2bert4rec")
N_ITEMS, WINDOW = 12, 5


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def cycle_marts(n_users: int = 120, length: int = 10, seed: int = 0):
    """``user_sequences``, ``splits`` and ``items`` of the cycle; the last two purchases are test and
    valid. ``new`` is a catalog item nobody ever bought (cold)."""
    rng = np.random.default_rng(seed)
    events, splits = [], []
    for u in range(n_users):
        start = int(rng.integers(0, N_ITEMS))
        for seq_no in range(1, length + 1):
            item = f"c{(start + seq_no) % N_ITEMS:02d}"
            events.append((f"u{u}", seq_no, f"u{u}-{seq_no}", item))
            split = "test" if seq_no == length else "valid" if seq_no == length - 1 else "train"
            splits.append((f"u{u}-{seq_no}", f"u{u}", item, "Bags", seq_no, split))
    return (
        pd.DataFrame(events, columns=["user_id", "seq_no", "event_id", "item_id"]),
        pd.DataFrame(
            splits, columns=["target_id", "user_id", "target_item_id", "category", "seq_no", "split"]
        ),
        pd.DataFrame({"item_id": [f"c{i:02d}" for i in range(N_ITEMS)] + ["new"], "category": "Bags"}),
    )


def random_titles(items: pd.DataFrame, dim: int = 16, seed: int = 0) -> VectorCatalog:
    vectors = np.random.default_rng(seed).normal(size=(len(items), dim))
    return VectorCatalog(items["item_id"].tolist(), items["category"].tolist(), vectors)


@pytest.fixture(scope="module")
def cycle():
    sequences, splits, items = cycle_marts()
    data = SequenceData.from_marts(sequences, splits, items, max_len=WINDOW)
    test = build_examples(sequences, splits, data.vocabulary, split="test", max_len=WINDOW)
    return data, test, random_titles(items)


QUICK = {
    "max_seq_length": WINDOW,
    "epochs": 30,
    "stopping_step": 3,
    "train_batch_size": 128,
    "learning_rate": 3e-3,
}


@pytest.fixture(scope="module")
def trained(cycle):
    """Every ID model trained on the cycle (once per module)."""
    data, _, titles = cycle
    torch.set_num_threads(1)
    return {
        name: train_baseline(name, data, QUICK, titles, device="cpu", log=lambda _: None)
        for name in ID_MODELS
    }


# RecBole 1.2.1 recbole/properties/model/<Model>.yaml and overall.yaml
RECBOLE_DEFAULTS = {
    "sasrec": {
        "n_layers": 2,
        "n_heads": 2,
        "hidden_size": 64,
        "inner_size": 256,
        "hidden_dropout_prob": 0.5,
        "attn_dropout_prob": 0.5,
        "initializer_range": 0.02,
    },
    "gru4rec": {"embedding_size": 64, "hidden_size": 128, "num_layers": 1, "dropout_prob": 0.3},
    "bert4rec": {
        "n_layers": 2,
        "n_heads": 2,
        "hidden_size": 64,
        "inner_size": 256,
        "hidden_dropout_prob": 0.2,
        "attn_dropout_prob": 0.2,
        "mask_ratio": 0.2,
        "ft_ratio": 0.5,
    },
    "nextitnet": {
        "embedding_size": 64,
        "kernel_size": 3,
        "block_num": 5,
        "dilations": (1, 4),
        "reg_weight": 1e-5,
    },
}
RECBOLE_TRAINING = {
    "learning_rate": 1e-3,
    "train_batch_size": 2048,
    "epochs": 300,
    "stopping_step": 10,
    "metric_decimal_place": 4,
}


@pytest.mark.parametrize("name", sorted(RECBOLE_DEFAULTS))
def test_defaults_are_recboles(name):
    expected = RECBOLE_DEFAULTS[name] | RECBOLE_TRAINING | {"max_seq_length": 50, "valid_metric_k": 10}
    config = baseline_config(name)
    assert {k: getattr(config, k) for k in expected} == expected
    # a preset's budget overrides training fields; fields the model lacks are ignored
    assert baseline_config(name, {"epochs": 3, "no_such_field": 7}).epochs == 3


@pytest.mark.parametrize("name", ID_MODELS)
def test_each_model_learns_the_cycle(name, cycle, trained):
    data, test, _ = cycle
    result, _ = trained[name]
    ranks = rank_examples(result.model, test, data.catalog)
    assert np.mean(ranks == 1) >= 0.9, (name, result.history)
    assert result.best_valid["ndcg@10"] >= 0.9 and 1 <= result.best_epoch <= len(result.history)


@pytest.mark.parametrize("name", ID_MODELS)
def test_shapes_padding_and_empty_windows(name, trained):
    model = trained[name][0].model.eval()
    seq = torch.tensor([[3, 4, 5, 0, 0], [7, 0, 0, 0, 0], [0, 0, 0, 0, 0]])
    candidates = torch.arange(2, model.n_items)
    with torch.no_grad():
        sessions = model.session_vectors(seq)
        assert sessions.shape[0] == 3 and sessions.ndim == 2
        assert model.candidate_scores(sessions, candidates).shape == (3, model.n_items - 2)
        # right padding never changes a session: the models read up to the last item only
        np.testing.assert_allclose(model.session_vectors(trim_padding(seq[:2])), sessions[:2], atol=1e-5)
    scores = score_indices(model, seq.numpy(), candidates.numpy())
    assert np.all(scores[2] == 0)  # no history: no information, the target ties with every item


@pytest.mark.parametrize("name", ["sasrec", "gru4rec", "nextitnet"])
def test_causal_models_ignore_what_comes_after_a_position(name, trained):
    """The hidden state at an item must not see later items, or training on prefixes would leak targets."""
    model = trained[name][0].model.eval()
    with torch.no_grad():
        short = model.session_vectors(torch.tensor([[3, 4, 5, 0, 0]]))
        # the same first three items with two more after them, read at the third item
        longer = torch.tensor([[3, 4, 5, 9, 10]])
        if name == "sasrec":
            from training.transformer import attention_bias

            x = model.input_norm(
                model.item_embedding(longer) + model.position_embedding(torch.arange(5))[None]
            )
            for layer in model.layers:
                x = layer(x, attention_bias(longer, causal=True, dtype=x.dtype))
            at_third = x[:, 2]
        elif name == "gru4rec":
            at_third = model.dense(model.gru(model.item_embedding(longer))[0])[:, 2]
        else:
            at_third = model.final_layer(model.blocks(model.item_embedding(longer))[:, 2])
    np.testing.assert_allclose(at_third.numpy(), short.numpy(), atol=1e-5)


@pytest.mark.parametrize("name", ID_MODELS)
def test_every_catalog_item_has_its_own_row_and_only_unknown_ids_are_cold(name, cycle, trained):
    """The default (catalog) table: ``new``, never bought, is a row of its own that training pushes
    below the items that do follow a window; an id outside the catalog is the cold row."""
    data, _, _ = cycle
    result, _ = trained[name]
    assert data.item_table == "catalog" and "new" in data.vocabulary
    assert data.vocabulary.index_of(["new", "other"]).tolist() != [COLD_INDEX] * 2
    assert data.vocabulary.index_of(["other"]).tolist() == [COLD_INDEX]
    window = data.vocabulary.index_of(["c01", "c02", "c03"])[None]
    scores = score_indices(result.model, window, data.vocabulary.index_of(["c04", "new"]))
    assert scores[0, 0] > scores[0, 1]  # the known next item beats the never-bought one


@pytest.mark.parametrize("name", ["sasrec", "gru4rec"])
def test_with_the_trained_table_unseen_items_share_the_cold_vector(name):
    sequences, splits, items = cycle_marts()
    data = SequenceData.from_marts(sequences, splits, items, max_len=WINDOW, item_table="trained")
    assert "new" not in data.vocabulary
    assert data.vocabulary.index_of(["new", "other"]).tolist() == [COLD_INDEX] * 2
    settings = {**QUICK, "item_table": "trained"}
    result, _ = train_baseline(name, data, settings, device="cpu", log=lambda _: None)
    window = data.vocabulary.index_of(["c01", "c02", "c03"])[None]
    scores = score_indices(result.model, window, data.vocabulary.index_of(["c04", "new", "other"]))
    assert scores[0, 1] == scores[0, 2]  # both cold: they tie, so a cold target never ranks above its twin
    assert scores[0, 0] > scores[0, 1]  # the known next item beats the cold vector
    with pytest.raises(ValueError, match="build them with"):
        train_baseline(name, data, QUICK, device="cpu", log=lambda _: None)  # catalog model, trained rows


def test_rare_items_stand_in_for_unseen_ones():
    occurrences = torch.tensor([[2, 3, 4], [4, 4, 0]])
    rare = torch.tensor([False, False, False, True, False])  # item 3 is rare
    assert as_cold(occurrences, rare, 1.0).tolist() == [[2, COLD_INDEX, 4], [4, 4, 0]]
    assert as_cold(occurrences, rare, 0.0).tolist() == occurrences.tolist()


def test_the_cold_vector_learns_what_rare_items_lead_to():
    """Every user first clicks an item nobody else clicks, then "hub": a window holding only an unseen
    item must then predict "hub", which only a trained cold row can do."""
    sequences, splits, items = cycle_marts(n_users=80)
    sequences["seq_no"] += 2
    splits["seq_no"] += 2
    splits["target_id"] = splits["user_id"] + "-" + splits["seq_no"].astype(str)
    sequences["event_id"] = sequences["user_id"] + "-" + sequences["seq_no"].astype(str)
    users = sequences["user_id"].unique()
    prefix = pd.DataFrame(
        [(u, 1, f"{u}-1", f"once-{u}") for u in users] + [(u, 2, f"{u}-2", "hub") for u in users],
        columns=sequences.columns,
    )
    sequences = pd.concat([prefix, sequences], ignore_index=True)
    items = pd.concat([items, pd.DataFrame({"item_id": ["hub"], "category": ["Bags"]})], ignore_index=True)
    data = SequenceData.from_marts(sequences, splits, items, max_len=WINDOW, item_table="trained")
    assert all(f"once-{u}" in data.vocabulary for u in users)  # rare, but in the vocabulary
    settings = {**QUICK, "cold_replace_prob": 0.5, "item_table": "trained"}
    result, _ = train_baseline("sasrec", data, settings, device="cpu", log=lambda _: None)
    only_unseen = data.vocabulary.index_of(["never-seen"])[None]
    scores = score_indices(result.model, only_unseen, data.vocabulary.index_of(items["item_id"]))
    assert items["item_id"].iloc[int(scores[0].argmax())] == "hub"


@pytest.mark.parametrize("name", SEQUENCE_BASELINES)
def test_save_and_load_round_trip(name, cycle, trained, tmp_path):
    data, _, titles = cycle
    if name == "llmseqsim":
        result, extra = train_baseline(name, data, QUICK, titles, log=lambda _: None)
    else:
        result, extra = trained[name]
    directory = save_sequential(result, tmp_path / name, {"method": name, **extra})
    assert (directory / WEIGHTS_FILE).is_file()
    scorer = load_baseline(directory, device="cpu")
    assert type(scorer.model) is type(result.model) and scorer.model.model_name == result.model.model_name
    histories = [["c01", "c02"], ["c05"], ["new"], []]
    candidates = [f"c{i:02d}" for i in range(N_ITEMS)] + ["new"]
    original = SequenceScorer(result.model, result.vocabulary).score(histories, candidates)
    np.testing.assert_allclose(scorer.score(histories, candidates), original, atol=1e-6)
    assert np.all(original[3] == 0)


def test_a_share_of_the_users_trains_on_their_examples_and_validates_on_everyone():
    sequences, splits, items = cycle_marts()
    full = SequenceData.from_marts(sequences, splits, items, max_len=WINDOW)
    users = sorted(set(splits["user_id"]))
    shares = {}
    for fraction in (0.25, 0.5):
        share = UserShare(f"users_{fraction}".replace(".", ""), fraction)
        data = SequenceData.from_marts(sequences, splits, items, max_len=WINDOW, share=share)
        sampled = {u for u, kept in zip(users, in_user_fraction(users, fraction), strict=True) if kept}
        assert set(data.train.user_ids) == sampled
        assert len(data.train) == np.isin(full.train.user_ids, list(sampled)).sum()
        assert data.valid.target_ids.tolist() == full.valid.target_ids.tolist()
        shares[fraction] = sampled
    assert 0 < len(shares[0.25]) < len(shares[0.5]) < len(users) and shares[0.25] <= shares[0.5]


@pytest.mark.parametrize(
    ("run_name", "fraction", "message"),
    [
        ("users_10", 0.0, r"train_user_fraction must be in \(0, 1\]"),
        ("users_10", 1.5, r"train_user_fraction must be in \(0, 1\]"),
        ("", 0.1, "needs a run_name"),
        ("../users_10", 0.1, "only letters, digits and '_'"),
    ],
)
def test_a_share_needs_a_valid_fraction_and_its_own_name(run_name, fraction, message):
    with pytest.raises(ValueError, match=message):
        UserShare(run_name, fraction)
    assert UserShare("users_10", 0.1).method("sasrec") == "sasrec-users_10"
    assert UserShare().is_default and UserShare().method("sasrec") == "sasrec"  # the default model
    assert parse_run_method("core-users_10") == ("core", "users_10")
    for bad in ("sasrec", "llmseqsim-users_10", "sasrec-users/10"):
        with pytest.raises(ValueError, match="is not <method>-<run_name>"):
            parse_run_method(bad)


def test_bert4rec_appends_after_the_last_item_and_shifts_only_full_windows():
    seq = torch.tensor([[5, 6, 0], [5, 6, 7], [0, 0, 0]])
    appended = append_item(seq, torch.tensor([9, 9, 9]), max_len=3)
    assert appended.tolist() == [[5, 6, 9], [6, 7, 9], [9, 0, 0]]
    assert append_item(seq[:1], torch.tensor([9]), max_len=5).tolist() == [[5, 6, 9, 0]]


def test_length_buckets_cover_every_example_once():
    lengths = np.random.default_rng(0).integers(1, 50, size=1000)
    config = baseline_config("sasrec", {"train_batch_size": 32, "bucket_by_length": True})
    batches = shuffled_batches(lengths, config, np.random.default_rng(0))
    assert sorted(np.concatenate([b.numpy() for b in batches]).tolist()) == list(range(1000))
    spread = np.mean([np.ptp(lengths[b.numpy()]) for b in batches])
    unsorted = baseline_config("sasrec", {"train_batch_size": 32, "bucket_by_length": False})
    plain = shuffled_batches(lengths, unsorted, np.random.default_rng(0))
    assert spread < 0.5 * np.mean([np.ptp(lengths[b.numpy()]) for b in plain])


@pytest.mark.parametrize("name", ID_MODELS)
def test_batches_are_random_draws_as_in_recbole(name):
    assert not baseline_config(name).bucket_by_length


def test_length_pieces_take_the_whole_batch_step():
    """A random batch run in length-sorted pieces gives the gradient of one pass over the batch."""
    torch.manual_seed(0)
    config = baseline_config("gru4rec", {"length_pieces": 3})
    lengths = np.array([1, 5, 2, 4, 3, 1, 5])
    inputs = torch.zeros(len(lengths), 5, dtype=torch.long)
    for row, length in enumerate(lengths):
        inputs[row, :length] = torch.randint(2, N_ITEMS + 2, (int(length),))
    targets = torch.randint(2, N_ITEMS + 2, (len(lengths),))
    batch = torch.tensor([6, 0, 3, 2, 5, 1])
    pieces = batch_pieces(batch, lengths, config)
    assert len(pieces) == 3 and sorted(torch.cat(pieces).tolist()) == sorted(batch.tolist())
    assert [lengths[p.numpy()].max() for p in pieces] == [1, 4, 5]  # each piece trimmed to its longest
    bucketed = baseline_config("gru4rec", {"bucket_by_length": True})
    assert [p.tolist() for p in batch_pieces(batch, lengths, bucketed)] == [batch.tolist()]

    model = Gru4RecModel(N_ITEMS + 2, config).eval()  # no dropout: both passes see the same network
    model.loss(trim_padding(inputs[batch]), targets[batch]).backward()
    whole = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    for piece in pieces:
        (model.loss(trim_padding(inputs[piece]), targets[piece]) * len(piece) / len(batch)).backward()
    for expected, parameter in zip(whole, model.parameters(), strict=True):
        torch.testing.assert_close(parameter.grad, expected, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize(
    "scores, best_epoch, epochs_run",
    [
        # epoch 2 ties epoch 1 at 4 decimals: a gain, and the later epoch is kept
        ([0.1, 0.10004, 0.05, 0.05, 0.05, 0.9], 2, 5),
        # 3 and 4 bring nothing, not yet more than 2 epochs; 5 gains; 6, 7, 8 bring nothing: stop
        ([0.1, 0.1, 0.09, 0.09, 0.2, 0.05, 0.05, 0.05, 0.9], 5, 8),
    ],
)
def test_early_stopping_is_recboles(scores, best_epoch, epochs_run, cycle, monkeypatch):
    """recbole.utils.early_stopping: scores rounded to 4 decimals, a tie is a gain, and training stops
    once more than stopping_step epochs in a row bring none."""
    data, _, _ = cycle
    script = iter(scores)

    def scripted_validate(*_):
        score = next(script)
        return {"ndcg@10": score, "_score": score}

    monkeypatch.setattr(sequential, "validate", scripted_validate)
    settings = QUICK | {"epochs": len(scores), "stopping_step": 2, "train_batch_size": 512}
    result, _ = train_baseline("gru4rec", data, settings, device="cpu", log=lambda _: None)
    assert (result.best_epoch, len(result.history)) == (best_epoch, epochs_run)
    assert result.best_valid["ndcg@10"] == scores[best_epoch - 1]
