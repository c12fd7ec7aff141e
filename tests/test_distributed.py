"""Training under torchrun: two CPU processes (gloo) take the step one process takes on the same global
batch, with the same loss and, within float rounding, the same weights (``tests/distributed_steps.py``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

STEPS = Path(__file__).with_name("distributed_steps.py")
# CORE weighs a session's items by a softmax over positions, which any shift shared by every position
# leaves alone: the gradient of the weight head's bias, and of the last layer's output-norm bias that
# feeds it, is 0 but for rounding, and Adam's first steps (about lr * g / |g|) turn rounding into whole
# learning-rate steps of either sign. Those two are left out; every other weight must agree.
BLIND_TO_SHIFTS = {"core": {"weight_head.bias", "layers.1.ffn_norm.bias"}}


def run(command: list[str], out: Path) -> dict:
    out.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [*command, str(STEPS), str(out)], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads((out / "losses.json").read_text())


@pytest.fixture(scope="module")
def alone_and_two(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, Path, dict]:
    root = tmp_path_factory.mktemp("distributed")
    alone = run([sys.executable], root / "alone")
    two = run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"], root / "two"
    )
    return root / "alone", alone, root / "two", two


def test_two_processes_ran_as_one_group(alone_and_two):
    _, alone, _, two = alone_and_two
    assert (alone["world"], two["world"]) == (1, 2)


@pytest.mark.parametrize("model", ["sasrec", "gru4rec", "core", "nextitnet"])
def test_two_processes_take_the_step_of_one(alone_and_two, model: str):
    alone_dir, alone, two_dir, two = alone_and_two
    assert two["losses"][model] == pytest.approx(alone["losses"][model], rel=1e-6)
    one_process = torch.load(alone_dir / f"{model}.pt")
    two_processes = torch.load(two_dir / f"{model}.pt")
    initial = torch.load(alone_dir / f"{model}-initial.pt")
    moved = 0.0
    for name, weight in one_process.items():
        moved = max(moved, float((weight.float() - initial[name].float()).abs().max()))
        if name not in BLIND_TO_SHIFTS.get(model, set()):
            torch.testing.assert_close(
                two_processes[name], weight, atol=1e-5, rtol=1e-4, msg=f"{model}.{name}"
            )
    assert moved > 1e-3, "the steps did not change the weights: equal weights would prove nothing"


def test_the_baselines_train_under_torchrun_from_the_warehouse(tiny_pipeline, tmp_path: Path):
    """`torchrun --nproc-per-node 2 -m training.torchrun_baselines sasrec` on a copy of the tiny home:
    rank 0 saves the model where the asset does, and it loads and scores as the asset's."""
    import shutil

    from training.baselines import load_baseline
    from training.sequential import read_record

    home = tmp_path / "home"
    shutil.copytree(tiny_pipeline.home, home, ignore=shutil.ignore_patterns("dagster_home", "lancedb"))
    saved = home / "artifacts" / "baselines" / "sasrec"
    shutil.rmtree(saved)
    env = {**os.environ, "FASHIONREC_HOME": str(home), "FASHIONREC_PRESET": "tiny", "OMP_NUM_THREADS": "1"}
    env.pop("FASHIONREC_RAW_DIR", None)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    done = subprocess.run(
        [*command, "-m", "training.torchrun_baselines", "sasrec"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "training sasrec in 2 process(es)" in done.stdout
    record = read_record(saved)
    assert record["processes"] == 2 and record["method"] == "sasrec"
    scorer = load_baseline(saved)
    assert len(scorer.vocabulary.item_ids) > 0
