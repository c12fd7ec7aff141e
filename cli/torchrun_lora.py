"""The ``lora_adapter`` step under torchrun, data-parallel, from the warehouse of ``FASHIONREC_HOME``:

    torchrun --standalone --nproc-per-node 2 -m cli.torchrun_lora [--config '{"max_train_prompts": 64}']

Each of the N processes reads the train prompts (DuckDB, read-only) and trains exactly as the asset does
(``assets.language_model.fit_lora_adapter``, with the asset's run config as ``--config``); transformers'
``Trainer`` shares each step's prompts among the processes (gloo on CPU, nccl on GPU with one GPU per
process), and the loss is scaled so that N processes take the steps of one (``training.qlora``). The
first process saves the adapter where the asset saves it, ``artifacts/lora_adapter/<name>``, with
``"processes"`` in its training summary; the steps after it then run as usual (``fashionrec run
'key:generations+'``). Outside torchrun it trains in one process.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

import duckdb

from assets.language_model import LoraAdapterConfig, fit_lora_adapter
from assets.resources import PipelineSettings
from training.distributed import is_main, join, position


def _log(message: str) -> None:
    if is_main():
        print(message, flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="torchrun ... -m cli.torchrun_lora", description=__doc__)
    parser.add_argument(
        "--config",
        type=json.loads,
        default={},
        help="the lora_adapter asset's run config as a JSON object (its fields: `fashionrec run` docs)",
    )
    config = LoraAdapterConfig(**parser.parse_args(argv).config)
    join()
    settings = PipelineSettings.from_env()
    database = str(settings.paths.duckdb_path)
    _log(f"QLoRA in {position()[1]} process(es)")
    tuned, selection, _ = fit_lora_adapter(
        config, settings, lambda: duckdb.connect(database, read_only=True), _log
    )
    _log(f"{selection.adapter}: {json.dumps(tuned.facts(), default=str)}")


if __name__ == "__main__":
    main()
