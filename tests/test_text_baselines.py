"""The text-based baselines: LLMSeqSim, LLM2SASRec's table initialisation, and ``text_seq_query``.

Title vectors are made by hand (clusters of items with nearly the same text) and the text encoder is a
bag of words, so the right answer of every ranking is known without a language model.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from fashionrec.layout import ITEM_TITLE_VECTORS
from recommender.ranking import catalog_by_category
from recommender.retrieval import VectorCatalog
from training import text_seq_query
from training.baselines import SequenceData, train_baseline
from training.bert4rec import Bert4RecConfig
from training.llm2sasrec import Llm2Bert4RecModel, Llm2SasRecModel, pca_item_table, text_initialised_model
from training.llmseqsim import LlmSeqSimConfig, fit_llmseqsim, llmseqsim_model, title_vocabulary
from training.sasrec import SasRecConfig
from training.sequence_data import CategoryCatalog, ItemVocabulary, build_examples
from training.sequential import rank_examples, score_indices
from training.text_seq_query import (
    TextSeqQueryConfig,
    check_title_share,
    choose_max_titles,
    fit_text_seq_query,
    manifest_encoder,
    read_title_manifest,
    render_text,
    text_scorer,
    user_texts,
)
from training.user_share import UserShare

N_CLUSTERS, PER_CLUSTER, DIM = 4, 6, 16


def clustered_titles(seed: int = 0) -> tuple[list[str], np.ndarray]:
    """Item ids ``k{cluster}i{j}`` and unit vectors: a cluster centre plus a little noise."""
    rng = np.random.default_rng(seed)
    centres = np.linalg.qr(rng.normal(size=(DIM, DIM)))[0][:N_CLUSTERS]  # orthonormal
    ids, vectors = [], []
    for k in range(N_CLUSTERS):
        for j in range(PER_CLUSTER):
            ids.append(f"k{k}i{j}")
            vectors.append(centres[k] + 0.1 * rng.normal(size=DIM))
    vectors = np.array(vectors)
    return ids, vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def switching_marts(n_users: int = 60, seed: int = 0):
    """Users browse one cluster, then switch to another for their last item before each purchase: the
    next purchase is from the cluster they switched to (the latest item matters, the mean misleads)."""
    rng = np.random.default_rng(seed)
    events, splits = [], []
    for u in range(n_users):
        old, new = rng.choice(N_CLUSTERS, size=2, replace=False)
        walk = [f"k{old}i{j}" for j in rng.integers(0, PER_CLUSTER, 3)]
        walk += [f"k{new}i{j}" for j in rng.integers(0, PER_CLUSTER, 2)]  # the switch, then the purchase
        walk += [f"k{old}i{j}" for j in rng.integers(0, PER_CLUSTER, 3)]
        walk += [f"k{new}i{j}" for j in rng.integers(0, PER_CLUSTER, 2)]
        for seq_no, item in enumerate(walk, start=1):
            events.append((f"u{u}", seq_no, f"u{u}-{seq_no}", item))
        for seq_no, split in ((5, "valid"), (10, "test")):
            splits.append((f"u{u}-{seq_no}", f"u{u}", walk[seq_no - 1], "Bags", seq_no, split))
    return (
        pd.DataFrame(events, columns=["user_id", "seq_no", "event_id", "item_id"]),
        pd.DataFrame(
            splits, columns=["target_id", "user_id", "target_item_id", "category", "seq_no", "split"]
        ),
    )


def test_llmseqsim_picks_the_aggregation_that_fits_and_ranks_the_right_cluster_first():
    ids, vectors = clustered_titles()
    sequences, splits = switching_marts()
    items = pd.DataFrame({"item_id": ids + ["no-title"], "category": "Bags"})
    vocabulary = title_vocabulary(ids)
    catalog = CategoryCatalog.from_items(items, vocabulary)
    aligned = vectors[pd.Index(ids).get_indexer(vocabulary.item_ids)]
    valid = build_examples(sequences, splits, vocabulary, split="valid", max_len=50)
    logged: list[str] = []
    result = fit_llmseqsim(valid, vocabulary, catalog, aligned, log=logged.append)
    by_aggregation = {row["aggregation"]: row["ndcg@10"] for row in result.history}
    assert set(by_aggregation) == {"mean", "linear", "exponential", "last"} and len(logged) == 4
    chosen = result.model.config.aggregation
    assert by_aggregation[chosen] == max(by_aggregation.values()) and chosen in ("exponential", "last")
    assert by_aggregation[chosen] > by_aggregation["mean"]

    test = build_examples(sequences, splits, vocabulary, split="test", max_len=50)
    ranks = rank_examples(result.model, test, catalog)
    assert np.all(ranks <= PER_CLUSTER)  # the target's whole cluster comes before every other item
    scores = score_indices(result.model, test.inputs[:1], vocabulary.index_of(["no-title", "k0i0"]))
    assert scores[0, 0] == 0.0  # an item without a title vector has no text to be similar to


def test_llmseqsim_weights():
    ids, vectors = clustered_titles()
    vocabulary = title_vocabulary(ids)
    window = torch.tensor([[2, 3, 4, 0]])
    weights = {}
    for aggregation in ("mean", "linear", "exponential", "last"):
        model = llmseqsim_model(vocabulary, vectors, LlmSeqSimConfig(aggregation=aggregation))
        weights[aggregation] = model.position_weights(window)[0].tolist()
    assert weights == {
        "mean": [1, 1, 1, 0],
        "linear": [1, 2, 3, 0],
        "exponential": [0.25, 0.5, 1, 0],
        "last": [0, 0, 1, 0],
    }
    with pytest.raises(ValueError, match="aggregation"):
        llmseqsim_model(vocabulary, vectors, LlmSeqSimConfig(aggregation="median"))


def test_pca_table_keeps_the_title_geometry_at_sasrecs_scale():
    ids, vectors = clustered_titles()
    vocabulary = ItemVocabulary(np.array(ids, dtype=object))
    found = np.ones(len(ids), dtype=bool)
    found[-1] = False  # one item without a title vector
    config = SasRecConfig(hidden_size=8)
    table, record = pca_item_table(vocabulary, vectors, found, config, seed=0)
    assert table.shape == (len(vocabulary), 8) and record.items_with_text == len(ids) - 1
    assert record.components == 8 and 0.5 < record.explained_variance <= 1.0
    text_rows = table[2 : 2 + len(ids) - 1]
    assert text_rows.std() == pytest.approx(config.initializer_range, rel=1e-3)
    unit = text_rows / np.linalg.norm(text_rows, axis=1, keepdims=True)
    cosine = unit @ unit.T
    same = np.equal.outer(np.arange(len(ids) - 1) // PER_CLUSTER, np.arange(len(ids) - 1) // PER_CLUSTER)
    assert cosine[same].mean() > 0.8 and cosine[~same].mean() < 0.3  # clusters survive the projection

    with_text = slice(2, 2 + len(ids) - 1)  # rows without text are random draws
    for model_class, model_config in [
        (Llm2SasRecModel, config),
        (Llm2Bert4RecModel, Bert4RecConfig(hidden_size=8)),
    ]:
        model, _ = text_initialised_model(model_class, vocabulary, vectors, found, model_config)
        weights = model.item_embedding.weight.detach().numpy()
        np.testing.assert_allclose(weights[with_text], table[with_text])
        assert np.all(weights[0] == 0)
    assert model.model_name == "LLM2BERT4Rec" and len(weights) == len(vocabulary) + 1  # + the mask row


def test_llm2sasrec_trains_from_the_title_table(tmp_path):
    ids, vectors = clustered_titles()
    sequences, splits = switching_marts()
    splits = pd.concat([splits, splits.assign(split="train", seq_no=splits["seq_no"] - 1)], ignore_index=True)
    splits["target_id"] = splits["user_id"] + "-" + splits["seq_no"].astype(str)
    splits["target_item_id"] = splits["target_id"].map(sequences.set_index("event_id")["item_id"])
    items = pd.DataFrame({"item_id": ids, "category": "Bags"})
    data = SequenceData.from_marts(sequences, splits, items, max_len=10)
    titles = VectorCatalog(ids, ["Bags"] * len(ids), vectors)
    settings = {"max_seq_length": 10, "epochs": 2, "stopping_step": 2, "train_batch_size": 64}
    result, extra = train_baseline("llm2sasrec", data, settings, titles, device="cpu", log=lambda _: None)
    assert extra["text_initialisation"]["items_with_text"] == len(data.vocabulary.item_ids)
    assert len(result.history) == 2 and result.model.model_name == "LLM2SASRec"
    with pytest.raises(ValueError, match="item_title_vectors"):
        train_baseline("llm2sasrec", data, settings, None, device="cpu")


# --- text_seq_query -------------------------------------------------------------------------------

WORDS = ["red", "blue", "black", "boot", "bag", "dress", "leather", "shoes"]


class BagOfWords:
    """A deterministic stand-in for the title encoder: unit word-count vectors over ``WORDS``."""

    spec, dim, fingerprint = "bag-of-words", len(WORDS), "bow"

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def encode(self, texts):
        self.calls.append(list(texts))
        out = np.array([[t.lower().replace(";", " ").split().count(w) for w in WORDS] for t in texts], float)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return (out / np.maximum(norms, 1e-12)).astype(np.float32)


def event(seq_no, action, title=None):
    return {"seq_no": seq_no, "action": action, "title": title, "query": None}


def test_user_text_is_the_query_then_distinct_titles_latest_first():
    history = np.array(
        [
            event(1, "search"),
            event(2, "click", "red leather boot"),
            event(3, "click", "blue bag"),
            event(4, "add_to_cart", "red leather boot"),
            event(5, "click", "black dress"),
        ]
    )  # prompt_inputs.history arrives as a numpy array of dicts
    assert render_text("boots ", history, 2) == "boots; black dress; red leather boot"
    assert render_text("boots", history, 10) == "boots; black dress; red leather boot; blue bag"
    assert render_text("boots", history, 0) == "boots"
    assert render_text(None, history, 1) == "black dress"
    assert render_text(None, None, 5) == ""


def shop_titles() -> tuple[pd.DataFrame, BagOfWords, VectorCatalog]:
    """Six items of one category, the bag-of-words encoder and their title vectors."""
    titles = [
        "red leather boot",
        "blue leather boot",
        "black leather boot",
        "red bag",
        "blue bag",
        "black dress",
    ]
    items = pd.DataFrame(
        {"item_id": [f"i{j}" for j in range(len(titles))], "title": titles, "category": "Shop"}
    )
    encoder = BagOfWords()
    catalog = VectorCatalog(items["item_id"], items["category"], encoder.encode(titles))
    return items, encoder, catalog


def last_click_inputs(items: pd.DataFrame) -> pd.DataFrame:
    """Valid ``prompt_inputs`` rows in which the query says nothing useful and the last clicked title is
    the item bought next: one title is the best text."""
    rows = []
    for j, title in enumerate(items["title"]):
        history = np.array([event(1, "search"), event(2, "click", "red bag"), event(3, "click", title)])
        rows.append((f"v{j}", f"u{j}", "Shop", f"i{j}", False, "shoes", history))
    return pd.DataFrame(
        rows,
        columns=[
            "target_id",
            "user_id",
            "category",
            "target_item_id",
            "is_cold_item",
            "latest_query",
            "history",
        ],
    )


@pytest.fixture
def shop():
    return shop_titles()


def test_text_scorer_ranks_the_matching_title_first_and_scores_empty_texts_zero(shop):
    items, encoder, titles = shop
    texts = pd.Series({"t1": "blue boot; blue leather boot", "t2": ""})
    chunk = pd.DataFrame({"target_id": ["t1", "t2"], "category": ["Shop", "Shop"]})
    scores = text_scorer(texts, encoder, titles)(chunk, items["item_id"].to_numpy())
    assert scores.shape == (2, len(items))
    assert items["item_id"][int(scores[0].argmax())] == "i1"
    assert np.all(scores[1] == 0) and encoder.calls[-1] == ["blue boot; blue leather boot"]
    with pytest.raises(KeyError, match="no user text"):
        text_scorer(texts, encoder, titles)(chunk.assign(target_id=["t1", "t9"]), items["item_id"].to_numpy())


def test_the_number_of_titles_is_chosen_on_valid(shop, tmp_path):
    items, encoder, titles = shop
    valid = last_click_inputs(items)
    catalog = catalog_by_category(items)
    best, metrics, history = choose_max_titles(valid, catalog, encoder, titles, (0, 1, 5), log=lambda _: None)
    by_option = {row["max_titles"]: row["ndcg@10"] for row in history}
    assert best == 1 and metrics["recall@10"] == 1.0
    assert by_option[1] > by_option[0] and by_option[1] >= by_option[5]
    texts = user_texts(valid, best)
    assert texts["v0"] == "shoes; red leather boot"

    saved = TextSeqQueryConfig(encoder.spec, encoder.fingerprint, best, best_valid=metrics, history=history)
    assert TextSeqQueryConfig.load(saved.save(tmp_path / "text_seq_query")) == saved
    with pytest.raises(FileNotFoundError, match="text_seq_query"):
        TextSeqQueryConfig.load(tmp_path / "missing")


def test_fitting_saves_the_choice_with_the_title_table_and_the_share_its_encoder_learnt_from(shop, tmp_path):
    items, encoder, titles = shop
    share = UserShare("users_50", 0.5).record(3, 6)
    manifest = {"encoder_spec": encoder.spec, "encoder_fingerprint": encoder.fingerprint, "user_share": share}
    directory = tmp_path / "text_seq_query-users_50"
    valid = (last_click_inputs(items), catalog_by_category(items), encoder, titles)
    saved, facts = fit_text_seq_query(
        *valid,
        manifest,
        directory,
        method="text_seq_query-users_50",
        title_vectors_table="item_title_vectors_users_50",
        options=(0, 1),
        log=lambda _: None,
    )
    assert TextSeqQueryConfig.load(directory) == saved
    assert saved.max_titles == 1 and [row["max_titles"] for row in saved.history] == [0, 1]
    assert saved.title_vectors_table == "item_title_vectors_users_50" and saved.user_share == share
    assert saved.encoder_fingerprint == "bow" and saved.best_valid["recall@10"] == 1.0
    assert facts["path"] == directory and facts["method"] == "text_seq_query-users_50"
    assert facts["max_titles"] == 1 and facts["valid_targets"] == 6 and facts["options"] == saved.history
    assert facts["title_encoder_user_share"] == share and facts["valid_recall@10"] == 1.0

    _, capped = fit_text_seq_query(*valid, {}, tmp_path / "capped", max_valid_targets=2, log=lambda _: None)
    assert capped["valid_targets"] == 2 and capped["method"] == "text_seq_query"
    assert TextSeqQueryConfig.load(tmp_path / "capped").title_vectors_table == ITEM_TITLE_VECTORS


def test_a_run_on_a_share_needs_title_vectors_from_an_encoder_trained_on_that_share():
    share = UserShare("users_50", 0.5)
    check_title_share(share, "item_title_vectors_users_50", share.record(3, 6))
    check_title_share(UserShare("rerun"), ITEM_TITLE_VECTORS, {})  # every user: any encoder learnt from them
    with pytest.raises(ValueError) as error:
        check_title_share(share, ITEM_TITLE_VECTORS, {})
    assert str(error.value) == (
        "text_seq_query on 50% of the training users needs title vectors from a title encoder trained on "
        "that share, but 'item_title_vectors' comes from one trained on 100% (user_seed 0). Train it "
        "(title_encoder run_name, train_user_fraction), write its vectors (item_title_vectors "
        "title_encoder_run, table) and set title_vectors_table"
    )
    with pytest.raises(ValueError, match=r"'other' comes from one trained on 50% \(user_seed 1\)"):
        check_title_share(share, "other", UserShare("users_50", 0.5, seed=1).record(3, 6))


def test_the_titles_manifest_names_their_encoder_and_a_changed_encoder_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "item_title_vectors.json"
    with pytest.raises(FileNotFoundError, match="item_title_vectors.json is missing; materialize item_title"):
        read_title_manifest(path)
    path.write_text(json.dumps({"encoder_spec": "bag-of-words", "encoder_fingerprint": "bow", "dim": 8}))
    monkeypatch.setattr(text_seq_query, "build_encoder", lambda spec, show_progress: BagOfWords())
    manifest = read_title_manifest(path)
    assert manifest["dim"] == 8 and isinstance(manifest_encoder(manifest, ITEM_TITLE_VECTORS), BagOfWords)
    with pytest.raises(
        ValueError, match="bag-of-words no longer matches the one that made item_title_vectors;"
    ):
        manifest_encoder({**manifest, "encoder_fingerprint": "retrained"}, ITEM_TITLE_VECTORS)
