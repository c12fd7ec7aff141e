"""Training under torchrun: two CPU processes (gloo) take the step one process takes on the same global
batch, with the same loss and, within float rounding, the same weights: the sequence models'
(``tests/distributed_steps.py``) and QLoRA's (``tests/qlora_steps.py``)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

STEPS = Path(__file__).with_name("distributed_steps.py")
QLORA_STEPS = Path(__file__).with_name("qlora_steps.py")
TORCHRUN_2 = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
# CORE weighs a session's items by a softmax over positions, which any shift shared by every position
# leaves alone: the gradient of the weight head's bias, and of the last layer's output-norm bias that
# feeds it, is 0 but for rounding, and Adam's first steps (about lr * g / |g|) turn rounding into whole
# learning-rate steps of either sign. Those two are left out; every other weight must agree.
BLIND_TO_SHIFTS = {"core": {"weight_head.bias", "layers.1.ffn_norm.bias"}}


def run(command: list[str], out: Path, script: Path = STEPS, *arguments: str) -> dict:
    out.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [*command, str(script), *arguments, str(out)], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads((out / "losses.json").read_text())


@pytest.fixture(scope="module")
def alone_and_two(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, Path, dict]:
    root = tmp_path_factory.mktemp("distributed")
    alone = run([sys.executable], root / "alone")
    two = run(TORCHRUN_2, root / "two")
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


def _tiny_home_copy(tiny_pipeline, tmp_path: Path) -> Path:
    home = tmp_path / "home"
    shutil.copytree(tiny_pipeline.home, home, ignore=shutil.ignore_patterns("dagster_home", "lancedb"))
    return home


def _torchrun(home: Path, module: str, *arguments: str) -> subprocess.CompletedProcess:
    """``torchrun --nproc-per-node 2 -m module arguments`` on ``home`` at the tiny preset; it must succeed."""
    env = {**os.environ, "FASHIONREC_HOME": str(home), "FASHIONREC_PRESET": "tiny", "OMP_NUM_THREADS": "1"}
    env.pop("FASHIONREC_RAW_DIR", None)
    done = subprocess.run(
        [*TORCHRUN_2, "-m", module, *arguments],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def test_the_baselines_train_under_torchrun_from_the_warehouse(tiny_pipeline, tmp_path: Path):
    """`torchrun --nproc-per-node 2 -m training.torchrun_baselines sasrec` on a copy of the tiny home:
    rank 0 saves the model where the asset does, and it loads and scores as the asset's."""
    from training.baselines import load_baseline
    from training.sequential import read_record

    home = _tiny_home_copy(tiny_pipeline, tmp_path)
    saved = home / "artifacts" / "baselines" / "sasrec"
    shutil.rmtree(saved)
    done = _torchrun(home, "training.torchrun_baselines", "sasrec")
    assert "training sasrec in 2 process(es)" in done.stdout
    record = read_record(saved)
    assert record["processes"] == 2 and record["method"] == "sasrec"
    scorer = load_baseline(saved)
    assert len(scorer.vocabulary.item_ids) > 0


def _relative_difference(left: torch.Tensor, right: torch.Tensor) -> float:
    return float((left.float() - right.float()).norm() / left.float().norm().clamp(min=1e-12))


def test_two_processes_take_the_qlora_steps_of_one(tmp_path: Path):
    """3 QLoRA steps of 4 prompts on the 4-bit base, alone and as 2 processes of 2 prompts a step.

    The first step's loss (same weights on both sides) must agree to float rounding, the later ones to
    1e-4, and each LoRA weight to 2 % of its norm: the base computes in bfloat16 where the CPU has it, and
    Adam's first steps (about lr * g / |g|) turn rounding of near-zero gradients into whole steps, so a
    few elements differ by a learning rate (measured: 0.25 % of the norm at worst, first losses 2e-7
    apart). A mean per process instead of the step's weighted mean gives 6 % and a first loss 1e-5 off;
    each process drawing a whole step's batch takes 2 steps, not 3.
    """
    from safetensors.torch import load_file

    sys.path.insert(0, str(QLORA_STEPS.parent))
    from qlora_steps import build_base

    base = str(build_base(tmp_path / "base"))
    alone = run([sys.executable], tmp_path / "alone", QLORA_STEPS, base)
    two = run(TORCHRUN_2, tmp_path / "two", QLORA_STEPS, base)
    assert (alone["world"], two["world"]) == (1, 2)
    assert alone["steps"] == two["steps"] == 3
    assert [step for step, _ in two["losses"]] == [step for step, _ in alone["losses"]]
    (_, first_alone), *later_alone = alone["losses"]
    (_, first_two), *later_two = two["losses"]
    assert first_two == pytest.approx(first_alone, rel=2e-6)
    for (_, one_loss), (_, two_loss) in zip(later_alone, later_two, strict=True):
        assert two_loss == pytest.approx(one_loss, rel=1e-4)
    one_process = load_file(tmp_path / "alone" / "adapter" / "adapter_model.safetensors")
    two_processes = load_file(tmp_path / "two" / "adapter" / "adapter_model.safetensors")
    assert one_process.keys() == two_processes.keys()
    trained = [name for name in one_process if "lora_B" in name]
    assert trained and all(float(one_process[name].abs().max()) > 1e-4 for name in trained), "B starts at 0"
    for name, weight in one_process.items():
        assert _relative_difference(weight, two_processes[name]) < 0.02, name


def test_the_lora_adapter_trains_under_torchrun_from_the_warehouse(tiny_pipeline, tmp_path: Path):
    """`torchrun --nproc-per-node 2 -m cli.torchrun_lora` on a copy of the tiny home: the first process
    saves the adapter where the asset does, with its selection and the number of processes."""
    from fashionrec.layout import ADAPTER_WEIGHTS_FILE, TRAINING_SUMMARY_FILE
    from fashionrec.settings import Paths
    from training.adapter_selection import AdapterSelection

    home = _tiny_home_copy(tiny_pipeline, tmp_path)
    adapter = Paths.under(home).artifacts.adapter("full")
    shutil.rmtree(adapter)
    done = _torchrun(home, "cli.torchrun_lora", "--config", json.dumps({"max_train_prompts": 8}))
    assert "QLoRA in 2 process(es)" in done.stdout
    summary = json.loads((adapter / TRAINING_SUMMARY_FILE).read_text())
    assert summary["processes"] == 2 and summary["n_examples"] == 8
    assert (adapter / ADAPTER_WEIGHTS_FILE).is_file()
    selection = AdapterSelection.load(adapter)
    assert selection is not None and selection.counts["train_prompts"] == 8
