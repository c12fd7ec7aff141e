"""The sequence baselines trained under torchrun, data-parallel, from the warehouse of ``FASHIONREC_HOME``:

    torchrun --standalone --nproc-per-node 2 -m training.torchrun_baselines sasrec gru4rec

Each of the N processes reads the marts (DuckDB, read-only) and, where a method needs them, the title
vectors, then trains with :func:`training.sequential.train_sequential`, which shares each batch among the
processes (``training.distributed``: gloo on CPU, nccl on GPU with one GPU per process). Rank 0 saves
each model where the ``baselines`` assets save it, ``artifacts/baselines/<method>``, with the number of
processes in its record; the evaluation then scores it as any other (``fashionrec run
'key:eval_metrics+'``). The preset's budget applies as in the asset (``FASHIONREC_PRESET``).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

import duckdb

from fashionrec.presets import get_preset
from fashionrec.settings import paths, preset_name
from recommender.ranking import catalog_by_category
from training.baseline_names import SEQUENCE_BASELINES, TITLE_VECTOR_BASELINES
from training.baseline_training import BaselineInputs, BaselineOptions, open_title_vectors, train_baselines
from training.distributed import is_main, join, position
from warehouse.marts import read_sequence_marts


def _log(message: str) -> None:
    if is_main():
        print(message, flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="torchrun ... -m training.torchrun_baselines", description=__doc__)
    parser.add_argument(
        "methods",
        nargs="*",
        choices=SEQUENCE_BASELINES,
        metavar="METHOD",
        help="default: every sequence baseline",
    )
    methods = parser.parse_args(argv).methods or list(SEQUENCE_BASELINES)
    join()
    where = paths()
    with duckdb.connect(str(where.duckdb_path), read_only=True) as con:
        sequences, splits, items = read_sequence_marts(con)
    options = BaselineOptions(get_preset(preset_name()).baselines)
    titles = None
    if set(methods) & set(TITLE_VECTOR_BASELINES):
        import lancedb

        titles = open_title_vectors(lancedb.connect(str(where.lancedb_dir)), options.table)
    inputs = BaselineInputs(sequences, splits, items, None, catalog_by_category(items))
    _log(f"training {', '.join(methods)} in {position()[1]} process(es)")
    for name, facts in train_baselines(methods, inputs, titles, options, where.artifacts, _log):
        shown = {
            key: facts[key] for key in ("path", "processes", "best_epoch", "train_seconds") if key in facts
        }
        _log(f"{name}: {json.dumps(shown, default=str)}")


if __name__ == "__main__":
    main()
