"""A hand-made evaluation world: the warehouse tables the evaluation reads, its vector tables, and small
randomly initialised models saved where the training assets save theirs.

Two categories, 8 users with a train, valid and test purchase each, generations for the test targets
and the candidates their prompts showed.
The numbers the models give are arbitrary; the asset tests (tests/test_evaluation_assets.py,
tests/test_evaluation_options.py) and the scorer tests (tests/test_evaluation_scorers.py) check how they
are computed and stored. :func:`evaluate` materializes the evaluation assets on a world with resources
alone: no FASHIONREC_* variable is read.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb
import lancedb
import numpy as np
import pandas as pd
import torch

from assets.evaluation import evaluation_assets
from assets.resources import PipelineSettings, pipeline_resources
from recommender.lstm_encoder import LstmTextEncoder, LstmTitleConfig
from recommender.vector_store import frame_to_arrow, write_vectors
from training.baselines import MODEL_TYPES, SEQUENCE_BASELINES, baseline_config
from training.core import CoreConfig, CoreModel, CoreScorer, CoreTrainResult, save_core
from training.llmseqsim import LlmSeqSimConfig, llmseqsim_model, title_vocabulary
from training.sequence_data import ItemVocabulary
from training.sequential import TrainResult, save_sequential
from training.text_seq_query import TextSeqQueryConfig

COLORS = ["red", "blue", "black", "white", "green", "brown", "grey", "pink"]
TITLE_ENCODER_DIR = "small_title_encoder"  # under artifacts/: the LSTM the title vectors are written with


def hand_made_world(home):
    """Two categories, 8 users with a train, valid and test purchase each, generations for the test."""
    items = pd.DataFrame(
        [(f"f{i:02d}", f"{c} leather boot size {i}", "Footwear") for i, c in enumerate(COLORS)]
        + [(f"l{i:02d}", f"{c} travel backpack", "Luggage & Bags") for i, c in enumerate(COLORS[:6])],
        columns=["item_id", "title", "category"],
    )
    items["parent_id"] = items["item_id"]  # every item its own family, as the items mart fills it
    rows, splits, generations = [], [], []
    footwear, luggage = items["item_id"][:8].tolist(), items["item_id"][8:].tolist()
    for u in range(8):
        pool = footwear if u % 2 == 0 else luggage
        # the test item of the last two users is never seen before it: a cold-start target
        history = [pool[(u + j) % 5] for j in range(5)] + [
            pool[5 + u % (len(pool) - 5)] if u >= 6 else pool[u % 5]
        ]
        for seq_no, item in enumerate(history, start=1):
            action = "purchase" if seq_no in (2, 4, 6) else "click"
            rows.append((f"u{u}", seq_no, f"e{u}_{seq_no}", action, item))
        for seq_no, split in ((2, "train"), (4, "valid"), (6, "test")):
            splits.append((f"e{u}_{seq_no}", f"u{u}", history[seq_no - 1], seq_no, split))
    events = pd.DataFrame(rows, columns=["user_id", "seq_no", "event_id", "action", "item_id"])
    splits = pd.DataFrame(splits, columns=["target_id", "user_id", "target_item_id", "seq_no", "split"])
    splits["category"] = splits["target_item_id"].map(items.set_index("item_id")["category"])
    train_vocabulary = set(events.loc[events["seq_no"] <= 2, "item_id"])
    splits["is_cold_item"] = ~splits["target_item_id"].isin(train_vocabulary)
    title_of = items.set_index("item_id")["title"]
    for row in splits[splits["split"] == "test"].itertuples():
        u = int(row.user_id[1:])
        item = row.target_item_id if u < 4 else None if u == 7 else "no-such-item"
        title = title_of[row.target_item_id] if u % 3 else None
        raw = (
            "{<id>" + str(item) + "</id>,<title>" + str(title) + "</title>}" if u != 7 else "red travel thing"
        )
        # the LLM answered a sample: u5's full-prompt answer is missing, so u5 is not evaluated
        for variant in ("full", "no_attributes") if u != 5 else ("no_attributes",):
            generations.append((row.target_id, "test", row.category, variant, True, raw, item, title))
    generations = pd.DataFrame(
        generations,
        columns=["target_id", "split", "category", "variant", "constrained", "raw_text", "item_id", "title"],
    )
    prompts = candidate_prompts(splits, items)
    generations["format_ok"] = generations["item_id"].notna()
    generations["id_in_catalog"] = generations["item_id"].isin(items["item_id"])

    with duckdb.connect(str(home / "fashionrec.duckdb")) as con:
        for name, frame in (
            ("items", items),
            ("user_sequences", events),
            ("splits", splits),
            ("generations", generations),
            ("prompts", prompts),
        ):
            con.register("frame", frame)
            con.execute(f"create table {name} as select * from frame")
            con.unregister("frame")
        # what text_seq_query reads: the history before each target, and (no searches here) no query
        con.execute(
            """
            create table prompt_inputs as
            select t.target_id, t.user_id, t.split, t.category, t.target_item_id, t.is_cold_item,
                   cast(null as varchar) as latest_query,
                   list({'seq_no': e.seq_no, 'action': e.action, 'title': i.title} order by e.seq_no)
                       as history
            from splits as t
            join user_sequences as e on e.user_id = t.user_id and e.seq_no < t.seq_no
            join items as i on i.item_id = e.item_id
            group by all
            """
        )

    torch.manual_seed(0)
    vocabulary = ItemVocabulary(np.array(sorted(train_vocabulary), dtype=object))
    model = CoreModel(len(vocabulary), CoreConfig(embedding_size=16, n_layers=1, max_seq_length=10))
    save_core(CoreTrainResult(model, vocabulary, best_epoch=0, best_valid={}), home / "artifacts" / "core")
    scorer = CoreScorer.load(home / "artifacts" / "core", device="cpu")
    small = LstmTitleConfig(token_dim=16, hidden_size=16, output_dim=16)
    encoder = LstmTextEncoder.create(small, device="cpu", show_progress=False)
    title_encoder_spec = encoder.save(home / "artifacts" / TITLE_ENCODER_DIR)
    db = lancedb.connect(str(home / "lancedb"))
    keys = items[["item_id", "category"]]
    title_vectors = encoder.encode(items["title"].tolist())
    write_vectors(db, "item_id_vectors", frame_to_arrow(keys, scorer.item_vectors(items["item_id"])))
    write_vectors(db, "item_title_vectors", frame_to_arrow(items, title_vectors))
    save_baselines(
        home / "artifacts" / "baselines", vocabulary, items, title_vectors, encoder, title_encoder_spec
    )
    return items, splits, title_encoder_spec


def shown_candidates(user: int, target_item_id: str, pool: list[str]) -> list[str]:
    """The candidates a test prompt shows: the target first (u0, u1), second (u2, u3), absent (u4, u5,
    u6), or no candidates at all (u7)."""
    others = [item for item in pool if item != target_item_id][:3]
    if user < 2:
        return [target_item_id, *others[:2]]
    if user < 4:
        return [others[0], target_item_id, others[1]]
    return others if user < 7 else []


def candidate_prompts(splits: pd.DataFrame, items: pd.DataFrame) -> pd.DataFrame:
    """The columns of ``prompts`` the evaluation reads, for the test targets and both answered variants."""
    rows = []
    for row in splits[splits["split"] == "test"].itertuples():
        pool = items.loc[items["category"] == row.category, "item_id"].tolist()
        shown = shown_candidates(int(row.user_id[1:]), row.target_item_id, pool)
        for variant in ("full", "no_attributes"):
            rows.append(
                (row.target_id, row.user_id, "test", row.category, variant, row.target_item_id, shown)
            )
    columns = ["target_id", "user_id", "split", "category", "variant", "target_item_id", "candidate_item_ids"]
    return pd.DataFrame(rows, columns=columns)


def save_baselines(directory, vocabulary, items, title_vectors, encoder, encoder_spec) -> None:
    """Randomly initialised baselines saved as the baselines assets save them, plus text_seq_query's
    configuration with the small title encoder, so the evaluation scores every default method."""
    for name in SEQUENCE_BASELINES:
        config = baseline_config(name, {"max_seq_length": 10})
        if name == "llmseqsim":
            text_vocabulary = title_vocabulary(items["item_id"].tolist())
            rows = items.set_index("item_id").index.get_indexer(text_vocabulary.item_ids)
            model = llmseqsim_model(text_vocabulary, title_vectors[rows], LlmSeqSimConfig(max_seq_length=10))
            result = TrainResult(model, text_vocabulary, best_epoch=0, best_valid={})
        else:
            model = MODEL_TYPES[name][1](len(vocabulary), config)
            result = TrainResult(model, vocabulary, best_epoch=0, best_valid={})
        save_sequential(result, directory / name, {"method": name})
    TextSeqQueryConfig(encoder_spec, encoder.fingerprint, max_titles=3).save(directory / "text_seq_query")


def tiny_resources(home: Path) -> dict:
    """The pipeline's resources on ``home`` at the tiny preset."""
    return pipeline_resources(PipelineSettings(home=str(home), raw_dir=str(home / "raw"), preset="tiny"))


def evaluate(home: Path, config: dict, raise_on_error: bool = False) -> dg.ExecuteInProcessResult:
    """Materialize the evaluation assets on ``home``'s warehouse with this evaluation config."""
    return dg.materialize(
        evaluation_assets,
        resources=tiny_resources(home),
        run_config={"ops": {"evaluation": {"config": config}}},
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=raise_on_error,
    )


def step_error(result: dg.ExecuteInProcessResult) -> str:
    """The error of a run that must have failed."""
    assert not result.success
    return result.get_step_failure_events()[0].event_specific_data.error.to_string()


def evaluated_world(home: Path):
    """The hand-made world in ``home``, evaluated twice (runs labelled first and second): the home, its
    items and splits, and the two runs."""
    items, splits, title_encoder_spec = hand_made_world(home)
    results = []
    for label in ("first", "second"):
        result = evaluate(home, {"label": label, "title_encoder": title_encoder_spec}, raise_on_error=True)
        assert result.success
        results.append(result)
    return home, items, splits, results
