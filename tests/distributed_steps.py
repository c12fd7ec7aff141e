"""A few optimizer steps of the sequence trainer on a small fixed task, for ``tests/test_distributed.py``:
run alone (``python tests/distributed_steps.py OUT``) or under ``torchrun --nproc-per-node 2``, it writes
each model's epoch loss, its initial and its trained weights to OUT (rank 0 only).

Dropout and the cold-row replacement are off, so that the only difference between one process and two is
how the batches are split: the steps must agree up to float rounding.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script by torchrun, from any directory
    sys.path.insert(0, str(ROOT))

from training.core import CoreConfig, CoreModel  # noqa: E402
from training.distributed import is_main, join, position  # noqa: E402
from training.gru4rec import Gru4RecConfig, Gru4RecModel  # noqa: E402
from training.nextitnet import NextItNetConfig, NextItNetModel  # noqa: E402
from training.sasrec import SasRecConfig, SasRecModel  # noqa: E402
from training.sequence_data import (  # noqa: E402
    CategoryCatalog,
    ItemVocabulary,
    SequenceExamples,
    sequences_to_inputs,
)
from training.sequential import train_sequential  # noqa: E402

N_ITEMS, MAX_LEN = 40, 8
# 49 training windows in batches of 24: two full steps and a last batch of one example, which leaves the
# second of two processes without any (it runs with weight 0)
N_TRAIN, BATCH = 49, 24
COMMON = {
    "epochs": 1,
    "train_batch_size": BATCH,
    "max_seq_length": MAX_LEN,
    "length_pieces": 2,
    "cold_replace_prob": 0.0,
    "eval_batch_size": 64,
}
MODELS = {
    "sasrec": (SasRecModel, SasRecConfig(**COMMON, hidden_dropout_prob=0.0, attn_dropout_prob=0.0)),
    "gru4rec": (Gru4RecModel, Gru4RecConfig(**COMMON, dropout_prob=0.0)),
    "core": (
        CoreModel,
        CoreConfig(
            **COMMON, hidden_dropout_prob=0.0, attn_dropout_prob=0.0, sess_dropout=0.0, item_dropout=0.0
        ),
    ),
    "nextitnet": (NextItNetModel, NextItNetConfig(**COMMON)),
}


def examples(n: int, vocabulary: ItemVocabulary, rng: np.random.Generator) -> SequenceExamples:
    """Windows of 1..MAX_LEN items whose target follows the last item (item i -> i + 1)."""
    histories = [list(rng.choice(vocabulary.item_ids, size=rng.integers(1, MAX_LEN + 1))) for _ in range(n)]
    inputs, lengths = sequences_to_inputs(histories, vocabulary, MAX_LEN)
    following = [
        vocabulary.item_ids[(list(vocabulary.item_ids).index(h[-1]) + 1) % N_ITEMS] for h in histories
    ]
    return SequenceExamples(
        inputs=inputs,
        lengths=lengths,
        targets=vocabulary.index_of(following),
        target_item_ids=np.array(following, dtype=object),
        target_ids=np.array([f"t{i}" for i in range(n)], dtype=object),
        user_ids=np.array([f"u{i}" for i in range(n)], dtype=object),
        categories=np.array(["Tops"] * n, dtype=object),
    )


def main(out: Path) -> None:
    join()
    torch.set_num_threads(1)
    vocabulary = ItemVocabulary(np.array([f"i{i:02d}" for i in range(N_ITEMS)], dtype=object))
    catalog = CategoryCatalog.from_items(
        pd.DataFrame({"item_id": vocabulary.item_ids, "category": "Tops"}), vocabulary
    )
    rng = np.random.default_rng(7)
    train, valid = examples(N_TRAIN, vocabulary, rng), examples(12, vocabulary, rng)
    losses = {}
    for name, (model_class, config) in MODELS.items():
        result = train_sequential(
            lambda c=config, m=model_class: m(len(vocabulary), c),
            config,
            train,
            valid,
            vocabulary,
            catalog,
            device="cpu",
            log=lambda _: None,
        )
        losses[name] = result.history[0]["train_loss"]
        if is_main():
            torch.save(result.model.state_dict(), out / f"{name}.pt")
            torch.manual_seed(config.seed)  # the initialisation train_sequential started from
            torch.save(model_class(len(vocabulary), config).state_dict(), out / f"{name}-initial.pt")
    if is_main():
        (out / "losses.json").write_text(json.dumps({"world": position()[1], "losses": losses}))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
