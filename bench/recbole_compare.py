"""One-to-one comparison with RecBole: our baselines and RecBole's own models on the same atomic files,
the same LS protocol (leave-one-out by time, full ranking, Recall/NDCG/MRR@10) and the same budget.

RecBole is not a dependency of fashionrec (its pins conflict with ours: numpy < 2, pandas < 2.2, ray),
so it runs in an interpreter of its own, given with ``--recbole-python``; for example:

    uv venv /tmp/recbole-env && uv pip install --python /tmp/recbole-env/bin/python \\
        recbole "numpy<2" "pandas<2.2" "scipy<1.14" "setuptools<81"
    uv run fashionrec export-recbole --out /tmp/recbole-data          # or any .inter/.item pair
    uv run python bench/recbole_compare.py --inter /tmp/recbole-data/fashionrec/fashionrec.inter \\
        --item /tmp/recbole-data/fashionrec/fashionrec.item --recbole-python /tmp/recbole-env/bin/python \\
        [--methods sasrec,gru4rec] [--epochs 20] [--out results.json]

This same file is the child that runs in RecBole's interpreter (``--recbole-child``): it imports only
RecBole, torch, numpy and the standard library there. RecBole 1.2 needs three shims on today's stack,
applied in the child only: numpy aliases it still uses (``np.float`` ...), ``torch.load(weights_only=False)``
for its own checkpoints (torch >= 2.6 defaults to True), and its trainer classes imported directly,
because ``recbole.quick_start`` imports ray.

Prints, per method, both test rows and the relative difference of ours to RecBole's. Both sides seed
their own generators, so the figures differ by seed noise even for identical models: ``--seeds`` runs
each side several times and prints the spread.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = "--recbole-child"
ROOT = Path(__file__).resolve().parents[1]
# our method name -> RecBole's model class
RECBOLE_MODELS = {"gru4rec": "GRU4Rec", "sasrec": "SASRec", "bert4rec": "BERT4Rec", "nextitnet": "NextItNet"}
METRICS = ("recall@10", "ndcg@10", "mrr@10")


def recbole_child(request_path: str) -> None:
    """Train and test one RecBole model as the request says; print its result as one JSON line."""
    import numpy as np
    import torch

    request = json.loads(Path(request_path).read_text())
    torch_load = torch.load

    def load(*args, **kwargs):  # RecBole's checkpoints hold its Config object
        kwargs.setdefault("weights_only", False)
        return torch_load(*args, **kwargs)

    torch.load = load
    for name, alias in (("float", float), ("int", int), ("bool", bool), ("long", int)):
        if not hasattr(np, name):
            setattr(np, name, alias)
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, get_trainer, init_seed

    config = Config(model=request["model"], dataset=request["dataset"], config_dict=request["config"])
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train, valid, test = data_preparation(config, dataset)
    model = get_model(config["model"])(config, train._dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    curve = []  # RecBole's per-epoch valid metrics, which its trainer only logs
    valid_epoch = trainer._valid_epoch

    def recorded_valid_epoch(*args, **kwargs):
        score, metrics = valid_epoch(*args, **kwargs)
        curve.append({"epoch": len(curve) + 1, **{m: float(v) for m, v in metrics.items()}})
        return score, metrics

    trainer._valid_epoch = recorded_valid_epoch
    start = time.perf_counter()
    _, best_valid = trainer.fit(train, valid, saved=True, show_progress=False)
    for row in curve:  # train_loss_dict is keyed by 0-based epoch
        row["train_loss"] = float(trainer.train_loss_dict[row["epoch"] - 1]) / len(train)
    result = trainer.evaluate(test, load_best_model=True, show_progress=False)
    print(
        "RECBOLE_RESULT "
        + json.dumps(
            {
                "valid_ndcg@10": float(best_valid["ndcg@10"]),
                **{f"test_{m}": float(result[m]) for m in METRICS},
                "epochs": len(trainer.train_loss_dict),  # one entry per epoch trained
                "train_targets": len(train.dataset),
                "test_users": len(test.dataset),
                "seconds": round(time.perf_counter() - start, 2),
                "curve": curve,
            }
        ),
        flush=True,
    )


def run_recbole(
    python: str, inter: Path, model: str, epochs: int, patience: int, seed: int, scratch: Path
) -> dict:
    """One RecBole run in ``python`` on ``inter`` (which must sit at ``<data_path>/<name>/<name>.inter``)."""
    import yaml

    from evaluation.recbole_atomic import recbole_config

    name = inter.stem
    if inter.parent.name != name:
        raise SystemExit(f"RecBole reads <data_path>/<name>/<name>.inter; {inter} is not laid out so")
    config = yaml.safe_load(recbole_config(inter.parent.parent))
    if not (inter.parent / f"{name}.item").is_file():
        config["load_col"].pop("item")
    config.update(
        epochs=epochs,
        stopping_step=patience,
        seed=seed,
        reproducibility=True,
        device="cpu",
        use_gpu=False,
        show_progress=False,
        worker=0,
        checkpoint_dir=str(scratch / "checkpoints"),
    )
    request = scratch / f"{model}-{seed}.json"
    request.write_text(json.dumps({"model": model, "dataset": name, "config": config}))
    done = subprocess.run(
        [python, __file__, CHILD, str(request)], capture_output=True, text=True, cwd=scratch, check=False
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RECBOLE_RESULT ")]
    if done.returncode or not lines:
        raise SystemExit(f"RecBole {model} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(lines[-1].removeprefix("RECBOLE_RESULT "))


def run_ours(
    inter: Path, item: Path | None, method: str, epochs: int, patience: int, seed: int, item_table: str
) -> dict:
    """One run of ``fashionrec baselines``' code path on the same files."""
    from evaluation.recbole_atomic import read_inter, read_items
    from evaluation.recbole_protocol import LeaveOneOut, run_baselines

    items = read_items(item) if item else None
    split = LeaveOneOut(read_inter(inter), None if items is None else items["item_id"].tolist())
    (row,) = run_baselines(
        split,
        [method],
        {"epochs": epochs, "stopping_step": patience, "seed": seed, "item_table": item_table},
        log=lambda _: None,
    )
    return row


def print_curves(ours: list[dict], theirs: list[dict]) -> None:
    """Both sides' valid NDCG@10 and train loss per epoch. With our trained item table the losses differ
    by a constant-ish offset: RecBole's softmax runs over every item of the files, ours over the trained
    vocabulary and cold row."""
    print(
        f"{'epoch':>5s} {'valid ndcg@10 ours':>19s} {'RecBole':>8s} {'train loss ours':>16s} {'RecBole':>8s}"
    )
    for epoch in range(1, max(len(ours), len(theirs)) + 1):
        cells = []
        for key in ("ndcg@10", "train_loss"):
            for side in (ours, theirs):
                cells.append(f"{side[epoch - 1][key]:.4f}" if epoch <= len(side) else "-")
        print(f"{epoch:5d} {cells[0]:>19s} {cells[1]:>8s} {cells[2]:>16s} {cells[3]:>8s}")


def spread(values: list[float]) -> str:
    mean = statistics.fmean(values)
    return f"{mean:.4f}" + (f" ± {statistics.stdev(values):.4f}" if len(values) > 1 else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inter", type=Path, required=True)
    parser.add_argument("--item", type=Path, help="The .item file; its items join the ranking on both sides.")
    parser.add_argument(
        "--recbole-python", required=True, help="An interpreter where `import recbole` works."
    )
    parser.add_argument("--methods", default="sasrec,gru4rec", help=f"Any of {', '.join(RECBOLE_MODELS)}.")
    parser.add_argument("--epochs", type=int, default=20, help="Max epochs on both sides.")
    parser.add_argument(
        "--patience",
        type=int,
        default=10,
        help="Epochs without valid gain before stopping, both sides (RecBole's stopping_step); "
        "--patience EPOCHS trains every epoch, to compare the curves.",
    )
    parser.add_argument(
        "--seeds", type=int, default=1, help="Runs per side, seeds 2020 (RecBole's default), 2021, ..."
    )
    parser.add_argument(
        "--item-table",
        choices=["catalog", "trained"],
        default="catalog",
        help="Our embedding rows: 'catalog' (default, as the pipeline's models train), one per item of the "
        "files as RecBole's table has, so both sides compute the same softmax; 'trained': items seen in "
        "training and one shared cold row.",
    )
    parser.add_argument("--curves", action="store_true", help="Print both per-epoch valid curves.")
    parser.add_argument("--out", type=Path, help="Also write every run, curves included, as JSON.")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in RECBOLE_MODELS]
    if unknown:
        raise SystemExit(
            f"methods {unknown} have no RecBole counterpart here; choose from {list(RECBOLE_MODELS)}"
        )

    runs = []
    with tempfile.TemporaryDirectory(prefix="recbole_compare_") as scratch:
        for method in methods:
            for seed in range(2020, 2020 + args.seeds):
                ours = run_ours(
                    args.inter, args.item, method, args.epochs, args.patience, seed, args.item_table
                )
                theirs = run_recbole(
                    args.recbole_python,
                    args.inter,
                    RECBOLE_MODELS[method],
                    args.epochs,
                    args.patience,
                    seed,
                    Path(scratch),
                )
                runs.append({"method": method, "seed": seed, "ours": ours, "recbole": theirs})
                print(
                    f"{method} seed {seed}: ours "
                    + " ".join(f"{m} {ours[f'test_{m}']:.4f}" for m in METRICS)
                    + f" ({ours['seconds']:.0f} s) | RecBole "
                    + " ".join(f"{m} {theirs[f'test_{m}']:.4f}" for m in METRICS)
                    + f" ({theirs['seconds']:.0f} s)",
                    flush=True,
                )
                if args.curves:
                    print_curves(ours["curve"], theirs["curve"])
    print(f"\n{args.inter}: test, mean over {args.seeds} seed(s), max {args.epochs} epochs")
    print(f"{'method':10s} {'metric':10s} {'ours':>18s} {'RecBole':>18s} {'ours/RecBole':>13s}")
    for method in methods:
        chosen = [run for run in runs if run["method"] == method]
        for metric in METRICS:
            ours = [run["ours"][f"test_{metric}"] for run in chosen]
            theirs = [run["recbole"][f"test_{metric}"] for run in chosen]
            ratio = (
                statistics.fmean(ours) / statistics.fmean(theirs)
                if statistics.fmean(theirs)
                else float("nan")
            )
            print(f"{method:10s} {metric:10s} {spread(ours):>18s} {spread(theirs):>18s} {ratio:13.3f}")
    if args.out:
        args.out.write_text(json.dumps(runs, indent=2))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == CHILD:
        recbole_child(sys.argv[2])
    else:
        os.environ.setdefault("GOMP_SPINCOUNT", "1000")  # see bench/contention.py
        main()
