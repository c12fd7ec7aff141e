"""RecBole interop: atomic files written and read back, the reader's errors, RecBole's leave-one-out
split, the two commands, and a sanity check that the baselines learn what a file teaches and nothing
from noise.

The sanity files: in ``cycle`` every user walks items 0 -> 1 -> ... -> k-1 -> 0 from a random start, so
the next item is a function of the last one and a working model ranks it first; in ``noise`` every item
is drawn uniformly and independently, so no model can beat the random expectation (Recall@10 = 10/k)
unless the split leaks the target into its input.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from cli.main import app
from evaluation.recbole_atomic import (
    INTER_COLUMNS,
    AtomicFileError,
    interactions_from_sequences,
    read_inter,
    read_items,
    write_atomic,
)
from evaluation.recbole_protocol import LeaveOneOut, run_baselines, title_vectors
from training.baselines import SequenceData
from training.sequence_data import COLD_INDEX, FIRST_ITEM_INDEX

runner = CliRunner()


def quiet(_: str) -> None:
    """Training logs are not under test."""


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def sequence_file(path: Path, kind: str, n_users: int, n_items: int, length: int, seed: int = 0) -> Path:
    """A ``cycle`` or ``noise`` .inter file, its lines shuffled so only the timestamps give the order."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        start, t0 = int(rng.integers(n_items)), float(rng.integers(1_600_000_000, 1_700_000_000))
        for step in range(length):
            item = (start + step) % n_items if kind == "cycle" else int(rng.integers(n_items))
            rows.append((f"u{u}", f"i{item:02d}", t0 + 60.0 * step))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    return write_atomic(path, INTER_COLUMNS, frame.sample(frac=1.0, random_state=seed))


def test_warehouse_rows_round_trip_through_atomic_files(tmp_path):
    sequences = pd.DataFrame(
        {
            "user_id": ["u2", "u1", "u1", "u1", "u2"],
            "seq_no": [2, 3, 1, 2, 1],
            "item_id": ["i2", "i1", None, "i2", "i3"],  # seq_no 1 of u1 is a search
            "ts": pd.to_datetime(
                [
                    "2024-02-29 12:00:00.000000",
                    "2024-01-01 10:00:00.123456",  # the same instant as u1's seq_no 2: seq_no decides
                    "2024-01-01 09:59:00.000000",
                    "2024-01-01 10:00:00.123456",
                    "2023-12-31 23:59:59.000000",
                ]
            ),
        }
    )
    interactions = interactions_from_sequences(sequences)
    assert interactions[["user_id", "item_id"]].values.tolist() == [
        ["u1", "i2"],
        ["u1", "i1"],
        ["u2", "i3"],
        ["u2", "i2"],
    ]
    assert interactions["timestamp"].iloc[0] == 1704103200.123456
    path = write_atomic(tmp_path / "x.inter", INTER_COLUMNS, interactions)
    assert path.read_text().splitlines()[0] == "user_id:token\titem_id:token\ttimestamp:float"
    pd.testing.assert_frame_equal(read_inter(path), interactions)
    split = LeaveOneOut(read_inter(path))  # the tie keeps the file order: i2 before i1
    assert split.sequences.loc[split.sequences["user_id"] == "u1", "item_id"].tolist() == ["i2", "i1"]


def test_item_text_is_cleaned_and_ids_must_survive(tmp_path):
    items = pd.DataFrame(
        {
            "item_id": ["i1", "i2"],
            "title": ['"Riding"\tboots\nbrown  leather', None],
            "category": ["Footwear", "Footwear & Shoes"],
            "price": [89.5, np.nan],
        }
    )
    columns = [("item_id", "token"), ("title", "token_seq"), ("category", "token"), ("price", "float")]
    path = write_atomic(tmp_path / "x.item", columns, items)
    back = read_items(path)
    assert back["title"].tolist() == ["'Riding' boots brown leather", ""]
    assert back["category"].tolist() == ["Footwear", "Footwear & Shoes"]
    assert back["price"].iloc[0] == 89.5 and np.isnan(back["price"].iloc[1])
    with pytest.raises(ValueError, match="item_id 'i\\\\t3' cannot be written"):
        write_atomic(tmp_path / "y.item", columns, items.assign(item_id=["i1", "i\t3"]))


def test_reader_takes_columns_in_any_order_and_ignores_extra_ones(tmp_path):
    path = tmp_path / "any.inter"
    path.write_text(
        "rating:float\titem_id:token\ttimestamp:float\tuser_id:token\tnote:token_seq\r\n"
        "5\tb\t20\tu1\tgood fit\r\n3\ta\t10\tu1\t\r\n\r\n4\tc\t5\tu2\tx\r\n"
    )
    frame = read_inter(path)
    assert frame.columns.tolist() == ["user_id", "item_id", "timestamp"]
    assert frame.values.tolist() == [["u1", "b", 20.0], ["u1", "a", 10.0], ["u2", "c", 5.0]]
    assert LeaveOneOut(frame).sequences["item_id"].tolist() == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("user_id:token\titem_id:token\tts:float\nu1\ti1\t1\nu1\ti2\n", "line 3: 2 tab-separated values"),
        (
            "user_id:token\titem_id:token\ttimestamp:float\nu1\ti1\tyesterday\n",
            "line 2: timestamp 'yesterday'",
        ),
        ("user_id:token\titem_id:token\ttimestamp:float\nu1\ti1\t1\nu1\t\t2\n", "line 3: item_id is empty"),
        ("user_id:token\titem_id:token\ttimestamp:float\nu1\ti1\t\n", "line 2: timestamp is empty"),
        ("user:token\titem_id:token\nu1\ti1\n", "line 1: header lacks \\['user_id'\\]"),
        ("user_id:string\titem_id:token\nu1\ti1\n", "line 1: header column 'user_id:string'"),
        ("user_id:token\titem_id:token\ttimestamp:token\nu1\ti1\t1\n", "line 1: timestamp is declared"),
    ],
)
def test_reader_names_the_bad_line(tmp_path, text, message):
    path = tmp_path / "bad.inter"
    path.write_text(text)
    with pytest.raises(AtomicFileError, match=message):
        read_inter(path)


def test_leave_one_out_splits_as_recbole_does():
    """n >= 4: ..., valid, test; n = 3: train, test (no valid); n = 2: train; n = 1: history only."""
    rows = [("u5", f"a{i}", float(10 - i)) for i in range(5)]  # written newest first
    rows += [("u4", f"b{i}", 1.0) for i in range(4)]  # all at one instant: file order decides
    rows += [("u3", "c0", 1.0), ("u3", "c1", 2.0), ("u3", "c2", 3.0)]
    rows += [("u2", "d0", 1.0), ("u2", "d1", 2.0), ("u1", "e0", 1.0), ("u1", "gone", 2.0)]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    known = [i for i in frame["item_id"] if i != "gone"] + ["catalog_only"]
    split = LeaveOneOut(frame, item_ids=known)
    got = split.splits.groupby("user_id").apply(
        lambda g: list(zip(g["target_item_id"], g["split"], strict=True)), include_groups=False
    )
    assert got.to_dict() == {
        "u2": [("d1", "train")],
        "u3": [("c1", "train"), ("c2", "test")],
        "u4": [("b1", "train"), ("b2", "valid"), ("b3", "test")],
        "u5": [("a3", "train"), ("a2", "train"), ("a1", "valid"), ("a0", "test")],
    }
    assert split.dropped == 1 and "gone" not in set(split.items["item_id"])
    assert {"e0", "catalog_only"} <= set(split.items["item_id"])  # ranked, though never a target
    counts = split.counts()
    assert (counts["train_targets"], counts["valid_targets"], counts["test_targets"]) == (5, 2, 3)
    no_time = LeaveOneOut(frame.drop(columns="timestamp"))  # file order is time order
    assert no_time.splits.loc[no_time.splits["user_id"] == "u5", "target_item_id"].tolist() == [
        "a1",
        "a2",
        "a3",
        "a4",
    ]


SMALL = {  # RecBole's models at a tenth of their width, trained briefly: seconds on one CPU thread
    "max_seq_length": 10,
    "hidden_size": 32,
    "embedding_size": 32,
    "inner_size": 64,
    "n_layers": 1,
    "epochs": 40,
    "stopping_step": 3,
    "train_batch_size": 128,
    "learning_rate": 3e-3,
}


def test_baselines_learn_the_cycle_and_nothing_from_noise(tmp_path):
    n_items, k = 30, 10
    cycle = LeaveOneOut(read_inter(sequence_file(tmp_path / "cycle.inter", "cycle", 200, n_items, 12)))
    rows = {
        r["method"]: r for r in run_baselines(cycle, ["popularity", "sasrec", "gru4rec"], SMALL, log=quiet)
    }
    print({m: (r["test_recall@10"], r["test_ndcg@10"], r["epochs"], r["seconds"]) for m, r in rows.items()})
    assert rows["popularity"]["test_recall@10"] < 0.5  # every item is about as popular as any other
    for name in ("sasrec", "gru4rec"):
        assert rows[name]["test_users"] == 200 and rows[name]["test_cold_targets"] == 0
        assert rows[name]["test_recall@10"] >= 0.95 and rows[name]["test_ndcg@10"] >= 0.9, rows[name]
        assert rows[name]["test_recall@10"] - rows["popularity"]["test_recall@10"] >= 0.5

    n_items = 50
    noise = LeaveOneOut(
        read_inter(sequence_file(tmp_path / "noise.inter", "noise", 300, n_items, 12, seed=1))
    )
    assert len(noise.items) == n_items
    (row,) = run_baselines(noise, ["sasrec"], SMALL, log=quiet)
    print({"noise": (row["test_recall@10"], row["test_ndcg@10"], row["test_mrr@10"], row["epochs"])})
    random_ndcg = sum(1 / math.log2(r + 1) for r in range(1, k + 1)) / n_items
    assert abs(row["test_recall@10"] - k / n_items) < 0.08  # 3.5 standard errors at 300 users
    assert abs(row["test_ndcg@10"] - random_ndcg) < 0.05


class CircleEncoder:
    """Title "item N" -> the unit vector at angle 2*pi*N/n: neighbours on the cycle are nearest."""

    spec, dim, fingerprint = "circle", 2, "circle"

    def __init__(self, n: int) -> None:
        self.n = n

    def encode(self, texts):
        angles = np.array([2 * np.pi * int(t.split()[-1]) / self.n for t in texts])
        return np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)


def test_catalog_item_table_gives_every_item_its_own_row_as_recbole(tmp_path):
    """``item_table='catalog'``: one row per item of the files, the never-trained ones included, as
    RecBole's table has; the default gives unseen items the one shared cold row, where they tie."""
    inter = sequence_file(tmp_path / "cycle.inter", "cycle", 30, 12, 6)
    split = LeaveOneOut(read_inter(inter), [f"i{i:02d}" for i in range(12)] + ["never_a", "never_b"])
    trained = SequenceData.from_marts(
        split.sequences, split.splits, split.items, 50, "purchases", item_table="trained"
    )
    catalog = SequenceData.from_marts(
        split.sequences, split.splits, split.items, 50, "purchases", item_table="catalog"
    )
    never = ["never_a", "never_b"]
    assert trained.vocabulary.index_of(never).tolist() == [COLD_INDEX, COLD_INDEX]
    assert len(catalog.vocabulary) == len(split.items) + FIRST_ITEM_INDEX
    assert len(set(catalog.vocabulary.index_of(never).tolist()) - {COLD_INDEX}) == 2
    assert np.array_equal(catalog.train.target_item_ids, trained.train.target_item_ids)
    with pytest.raises(ValueError, match="unknown item_table 'all'"):
        SequenceData.from_marts(split.sequences, split.splits, split.items, item_table="all")

    settings = SMALL | {"epochs": 2, "item_table": "catalog"}
    (row,) = run_baselines(split, ["gru4rec"], settings, log=quiet)
    assert row["test_users"] == 30 and row["test_cold_targets"] == 0 and len(row["curve"]) == 2


def test_text_baseline_ranks_with_its_own_vocabulary(tmp_path):
    """LLMSeqSim on titles whose vectors place each item between its cycle neighbours: with the latest
    item as the session (chosen on valid), the next item ties with the previous one right after the item
    itself, so every target ranks 2nd or 3rd."""
    n_items = 30
    split = LeaveOneOut(read_inter(sequence_file(tmp_path / "c.inter", "cycle", 60, n_items, 8)))
    items = pd.DataFrame({"item_id": [f"i{i:02d}" for i in range(n_items)]})
    titles = title_vectors(items.assign(title=[f"item {i}" for i in range(n_items)]), CircleEncoder(n_items))
    (row,) = run_baselines(split, ["llmseqsim"], {"max_seq_length": 10}, titles, log=quiet)
    assert row["epochs"] == 0 and row["test_recall@10"] == 1.0
    assert 1 / math.log2(4) - 1e-6 <= row["test_ndcg@10"] <= 1 / math.log2(3) + 1e-6
    with pytest.raises(ValueError, match="needs item titles"):
        run_baselines(split, ["llm2sasrec"], {}, None, log=quiet)
    with pytest.raises(ValueError, match="needs search queries"):
        run_baselines(split, ["text_seq_query"], {}, titles, log=quiet)


def test_baselines_command_prints_and_writes_the_table(tmp_path):
    inter = sequence_file(tmp_path / "small.inter", "cycle", 40, 12, 6)
    out = tmp_path / "out"
    args = ["baselines", "--inter", str(inter), "--methods", "popularity,gru4rec", "--epochs", "2"]
    result = runner.invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "popularity" in result.stdout and "gru4rec" in result.stdout and "test_ndcg@10" in result.stdout
    table = pd.read_csv(out / "baselines.csv")
    assert table["method"].tolist() == ["popularity", "gru4rec"] and table.loc[1, "epochs"] == 2
    record = json.loads((out / "baselines.json").read_text())
    assert record["protocol"]["test_targets"] == 40 and record["protocol"]["settings"] == {"epochs": 2}
    popularity, gru4rec = record["rows"]
    assert popularity["curve"] == [] and [row["epoch"] for row in gru4rec["curve"]] == [1, 2]
    assert "ndcg@10" in gru4rec["curve"][0] and "train_loss" in gru4rec["curve"][0]
    assert "curve" not in table.columns and "curve" not in result.stdout

    bad = runner.invoke(app, ["baselines", "--inter", str(inter), "--methods", "sasrec,svd"])
    assert bad.exit_code != 0 and "unknown method 'svd'" in bad.output
    bad = runner.invoke(
        app, ["baselines", "--inter", str(inter), "--methods", "gru4rec", "--item-table", "all"]
    )
    assert bad.exit_code != 0 and "unknown item_table 'all'" in bad.output
    broken = tmp_path / "broken.inter"
    broken.write_text(inter.read_text() + "u1\ti01\n")
    bad = runner.invoke(app, ["baselines", "--inter", str(broken), "--methods", "popularity"])
    assert bad.exit_code != 0 and "line 242: 2 tab-separated values" in bad.output


def test_export_recbole_writes_the_warehouse_as_atomic_files(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    with duckdb.connect(str(home / "fashionrec.duckdb")) as con:
        con.execute(
            "create table user_sequences as select * from (values "
            "('u1', 1, null, timestamp '2024-05-01 10:00:00', 'search'),"
            "('u1', 2, 'i1', timestamp '2024-05-01 10:01:00', 'click'),"
            "('u1', 3, 'i2', timestamp '2024-05-01 10:01:00', 'purchase'))"
            " t(user_id, seq_no, item_id, ts, action)"
        )
        con.execute(
            "create table items as select * from (values "
            "('i1', 'Tote\tbag', 'Bags', 'Acme', 20.0, date '2024-01-01'),"
            "('i2', 'Belt', 'Accessories', null, 9.5, date '2024-02-01'),"
            "('i3', 'Scarf', 'Accessories', 'Acme', 12.0, date '2024-03-01')"
            ") t(item_id, title, category, brand, price, first_seen)"
        )
    monkeypatch.setenv("FASHIONREC_HOME", str(home))
    result = runner.invoke(app, ["export-recbole", "--out", str(tmp_path / "recbole"), "--name", "shop"])
    assert result.exit_code == 0, result.output
    folder = tmp_path / "recbole" / "shop"
    inter = read_inter(folder / "shop.inter")
    assert inter.values.tolist() == [["u1", "i1", 1714557660.0], ["u1", "i2", 1714557660.0]]
    item_lines = (folder / "shop.item").read_text().splitlines()
    assert item_lines[0] == "item_id:token\ttitle:token_seq\tcategory:token\tbrand:token\tprice:float"
    assert item_lines[1:] == [
        "i1\tTote bag\tBags\tAcme\t20.0",
        "i2\tBelt\tAccessories\t\t9.5",
        "i3\tScarf\tAccessories\tAcme\t12.0",
    ]
    config = (tmp_path / "recbole" / "shop.yaml").read_text()
    assert f"data_path: {(tmp_path / 'recbole').resolve()}" in config and "'LS': 'valid_and_test'" in config

    out = ["export-recbole", "--out", str(tmp_path / "bought"), "--name", "shop"]
    result = runner.invoke(app, [*out, "--actions", "purchase"])
    assert result.exit_code == 0, result.output
    assert read_inter(tmp_path / "bought/shop/shop.inter").values.tolist() == [["u1", "i2", 1714557660.0]]
    result = runner.invoke(app, [*out, "--actions", "purchase,impression"])
    assert result.exit_code != 0 and "impression" in result.output
