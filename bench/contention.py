"""Contention benchmark: torch training throughput alone and beside a second training process, under
libgomp's default busy-wait and under the short spin that ``fashionrec`` and the Makefile set.

PyTorch's CPU wheels run intra-op parallel regions on libgomp's OpenMP threads. Between regions an idle
thread busy-waits (300,000 spins by default) before it sleeps. Alone, that saves a wake-up; with two
processes on two cores, each spinning thread holds a core the other process needs, and both crawl. The
step measured is a CORE-sized training step (2-layer transformer, hidden 64, 50 positions, batch 256,
softmax over 4,000 items), so the figure is the one the demo's training steps see.

    uv run python bench/contention.py [--seconds 8] [--spin 1000] [--out results.json]

Prints steps/s for each setting: one process alone, then each of two processes run side by side.
``GOMP_SPINCOUNT`` must be set before torch loads libgomp, so each measurement is its own process.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

WORKER = "--worker"


def worker(seconds: float) -> None:
    """Train the step for ``seconds`` and print steps/s (runs in a child process)."""
    import torch

    torch.manual_seed(0)
    encoder = torch.nn.TransformerEncoder(
        torch.nn.TransformerEncoderLayer(64, 2, 256, batch_first=True), num_layers=2
    )
    head = torch.nn.Linear(64, 4000)
    optimizer = torch.optim.Adam([*encoder.parameters(), *head.parameters()])
    inputs, targets = torch.randn(256, 50, 64), torch.randint(0, 4000, (256,))

    def step() -> None:
        loss = torch.nn.functional.cross_entropy(head(encoder(inputs)[:, -1]), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step()  # warm-up: allocations and thread-pool start
    start, steps = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        step()
        steps += 1
    print(
        json.dumps(
            {"steps_per_second": steps / (time.perf_counter() - start), "threads": torch.get_num_threads()}
        )
    )


def measure(spin: str | None, processes: int, seconds: float) -> list[float]:
    """steps/s of each of ``processes`` workers run at once, with GOMP_SPINCOUNT=``spin`` (None: unset)."""
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    if spin is not None:
        env["GOMP_SPINCOUNT"] = spin
    children = [
        subprocess.Popen(
            [sys.executable, __file__, WORKER, str(seconds)], env=env, stdout=subprocess.PIPE, text=True
        )
        for _ in range(processes)
    ]
    return [json.loads(child.communicate()[0])["steps_per_second"] for child in children]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="Measured seconds per run.")
    parser.add_argument("--spin", default="1000", help="The short spin count compared with the default.")
    parser.add_argument("--out", type=Path, help="Also write the figures as JSON.")
    args = parser.parse_args()

    print(f"cpus={os.cpu_count()} seconds={args.seconds}")
    results = []
    for processes in (1, 2):
        for label, spin in (("default busy-wait", None), (f"GOMP_SPINCOUNT={args.spin}", args.spin)):
            rates = measure(spin, processes, args.seconds)
            results.append({"setting": label, "processes": processes, "steps_per_second": rates})
            shown = " / ".join(f"{rate:.2f}" for rate in rates)
            print(f"{processes} process(es), {label:24s} steps/s per process: {shown}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == WORKER:
        worker(float(sys.argv[2]))
    else:
        main()
