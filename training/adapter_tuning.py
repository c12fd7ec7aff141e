"""Choosing an adapter's learning rate and number of steps on valid prompts, not on its training loss.

Each learning rate of the grid trains one adapter (``training.adapter_training``), saved part-way at the
grid's checkpoints (shares of the schedule's optimizer steps, the paper's schedule unchanged). Every
saved adapter is scored by ``score`` (the ``lora_adapter`` asset passes the target's NDCG@10 when the
model alone ranks the candidates of a seeded sample of valid prompts, ``recommender.adapter_scoring``);
the best one becomes the adapter, and the grid with each point's score is saved beside it
(``ADAPTER_TUNING_FILE``) and returned for the asset's metadata. Ties go to the earlier point of the grid
(learning rates in the order given, fewer steps first): the cheaper choice when the valid prompts cannot
tell them apart.

A steps choice is early stopping under the full schedule (the cosine decay is not shortened); a grid of
one point with no score trains straight into the adapter's folder, as a run without selection.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from fashionrec.layout import ADAPTER_CHECKPOINTS_DIR, ADAPTER_TUNING_FILE, ADAPTER_WEIGHTS_FILE
from training import distributed
from training.adapter_selection import AdapterSelection
from training.adapter_training import AdapterTraining, train_adapter
from training.qlora_config import QLoRAConfig, TuningGrid

SCRATCH_SUFFIX = ".tuning"  # the grid's runs, beside the adapter's folder until the choice is made


@dataclass(frozen=True)
class TuningPoint:
    learning_rate: float
    step: int  # optimizer steps the adapter had taken
    valid_score: float


@dataclass(frozen=True)
class AdapterTuning:
    trained: AdapterTraining  # the chosen learning rate's run (its loss curve, its facts)
    points: list[TuningPoint]  # grid order: learning rates as given, steps ascending
    chosen: TuningPoint | None  # None: one point, not scored
    score_name: str

    def facts(self) -> dict[str, Any]:
        """The run's facts with the choice: the chosen learning rate and steps, the grid's scores."""
        facts = self.trained.facts()
        if self.chosen is None:
            return {**facts, "hyperparameter_selection": "none (one learning rate, the whole schedule)"}
        return {
            **facts,
            "learning_rate": self.chosen.learning_rate,
            "optimizer_steps": self.chosen.step,
            "optimizer_steps_scheduled": self.trained.result.n_steps,
            "hyperparameter_selection": self.score_name,
            "selection_valid_score": round(self.chosen.valid_score, 4),
            "selection_grid_points": len(self.points),
        }

    def table_markdown(self) -> str:
        """The grid as a Markdown table, the chosen point in bold."""
        lines = [f"| learning rate | steps | {self.score_name} |", "|---|---|---|"]
        for point in self.points:
            mark = "**" if point == self.chosen else ""
            cells = (f"{point.learning_rate:g}", str(point.step), f"{point.valid_score:.4f}")
            lines.append("| " + " | ".join(f"{mark}{cell}{mark}" for cell in cells) + " |")
        return "\n".join(lines)


def best_point(points: Sequence[TuningPoint]) -> TuningPoint:
    """The point with the highest valid score, the earliest one on a tie; ValueError when none is finite
    (a choice on no score would only look made)."""
    finite = [point for point in points if point.valid_score == point.valid_score]
    if not finite:
        raise ValueError(f"no finite valid score among {len(points)} grid points")
    best = max(point.valid_score for point in finite)
    return next(point for point in finite if point.valid_score == best)


def tune_adapter(
    base_model: str,
    rows: Sequence[Mapping[str, Any]],
    selection: AdapterSelection,
    cap: int | None,
    config: QLoRAConfig,
    grid: TuningGrid,
    out_dir: Path,
    score: Callable[[Path], float] | None,
    score_name: str = "valid score",
    log: Callable[[str], None] = print,
) -> AdapterTuning:
    """Train ``selection``'s adapter at every point of ``grid`` and keep the one ``score`` (a saved
    adapter's folder -> its valid score) rates best in ``out_dir``; ``score`` None trains the grid's
    single point without scoring it (ValueError for a larger grid)."""
    if score is None:
        if grid.size > 1:
            raise ValueError(f"a grid of {grid.size} points needs valid prompts to choose on")
        trained = train_adapter(
            base_model,
            rows,
            selection,
            cap,
            replace(config, learning_rate=grid.learning_rates[0]),
            out_dir,
            log,
        )
        return AdapterTuning(trained, [], None, score_name)

    # Under torchrun every process trains and scores every point (the same scores: each chooses alike);
    # the first one alone writes the folders.
    main = distributed.is_main()
    scratch = out_dir.with_name(out_dir.name + SCRATCH_SUFFIX)
    if main:
        shutil.rmtree(scratch, ignore_errors=True)
    fractions = tuple(sorted(set(grid.checkpoints)))
    runs: dict[float, AdapterTraining] = {}
    points: list[TuningPoint] = []
    saved: dict[TuningPoint, Path] = {}
    for n, rate in enumerate(grid.learning_rates):
        log(f"learning rate {rate:g} ({n + 1} of {len(grid.learning_rates)})")
        run_config = replace(config, learning_rate=rate, checkpoint_fractions=fractions)
        runs[rate] = train_adapter(base_model, rows, selection, cap, run_config, scratch / f"lr-{n}", log)
        steps = runs[rate].result.checkpoints
        for step in sorted(steps):
            point = TuningPoint(rate, step, float(score(steps[step])))
            log(f"learning rate {rate:g}, step {step}: {score_name} {point.valid_score:.4f}")
            points.append(point)
            saved[point] = steps[step]
    chosen = best_point(points)
    run = runs[chosen.learning_rate]
    distributed.barrier()  # every process has scored the checkpoints before they move
    if main:
        _keep(run.result.adapter_dir, saved[chosen], out_dir)
        shutil.rmtree(scratch, ignore_errors=True)
    kept = replace(
        run.result, adapter_dir=out_dir, loss_plot=out_dir / run.result.loss_plot.name, checkpoints={}
    )
    tuning = AdapterTuning(replace(run, result=kept), points, chosen, score_name)
    record = {
        "score": score_name,
        "grid": asdict(grid),
        "points": [asdict(point) for point in points],
        "chosen": asdict(chosen),
    }
    if main:
        (out_dir / ADAPTER_TUNING_FILE).write_text(json.dumps(record, indent=2))
    distributed.barrier()
    return tuning


def _keep(run_dir: Path, chosen: Path, out_dir: Path) -> None:
    """``run_dir`` (the chosen learning rate's folder: its selection, loss curve and summary) becomes
    ``out_dir``, with the chosen checkpoint's weights when it stopped before the end."""
    if chosen != run_dir:
        shutil.copy2(chosen / ADAPTER_WEIGHTS_FILE, run_dir / ADAPTER_WEIGHTS_FILE)
    shutil.rmtree(run_dir / ADAPTER_CHECKPOINTS_DIR, ignore_errors=True)
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(run_dir), str(out_dir))
