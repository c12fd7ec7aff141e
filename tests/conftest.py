"""Shared fixtures: one tiny warehouse per test session, built the way a user builds it."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from dagster import DagsterInstance

from cli.runs import RunSummary

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def point_at(mp: pytest.MonkeyPatch, home: Path, raw_dir: Path | None = None) -> None:
    mp.setenv("FASHIONREC_HOME", str(home))
    if raw_dir is None:
        mp.delenv("FASHIONREC_RAW_DIR", raising=False)
    else:
        mp.setenv("FASHIONREC_RAW_DIR", str(raw_dir))
    mp.setenv("FASHIONREC_PRESET", "tiny")


@dataclass(frozen=True)
class TinyRun:
    home: Path
    summary: RunSummary
    instance: DagsterInstance  # the run's ephemeral instance: its assets' metadata

    def metadata(self, asset: str) -> dict:
        """The latest materialization metadata of ``asset``, values unwrapped."""
        from dagster import AssetKey

        event = self.instance.get_latest_materialization_event(AssetKey(asset))
        assert event is not None and event.asset_materialization is not None, f"{asset} not materialized"
        return {k: getattr(v, "value", v) for k, v in event.asset_materialization.metadata.items()}


@pytest.fixture
def one_torch_thread():
    """Small models train faster on one thread than with thread synchronisation on a busy machine."""
    import torch  # only the tests that train pay for it

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def small_tiny_logs():
    """The tiny preset's logs with fewer users and items (60 and 300 instead of 150 and 800): the whole
    graph on them takes about half of tiny's time (the base LM pretrains on every item)."""
    from warehouse.generator import PRESETS

    return PRESETS["tiny"].with_(n_users=60, n_items=300, n_interactions=2_200)


def run_whole_pipeline(home: Path, write_raw: Callable[[Path], object]) -> TinyRun:
    """``write_raw(home / "raw")`` writes the logs, then every asset of the code location is materialized
    once on the tiny preset, as `fashionrec run` does: warehouse -> features -> llm -> evaluation, with
    every asset check."""
    from cli.runs import materialize_selection

    instance = DagsterInstance.ephemeral()
    with pytest.MonkeyPatch.context() as mp:
        point_at(mp, home)
        write_raw(home / "raw")
        summary = materialize_selection(None, instance=instance, log_level="WARNING")
    assert summary.success, summary
    return TinyRun(home=home, summary=summary, instance=instance)


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory: pytest.TempPathFactory) -> TinyRun:
    """Fresh tiny logs, then the whole pipeline (:func:`run_whole_pipeline`)."""
    from warehouse.generator import generate

    return run_whole_pipeline(tmp_path_factory.mktemp("tiny_home"), lambda raw: generate("tiny", raw, seed=0))


@pytest.fixture
def tiny_home(tiny_pipeline: TinyRun, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The session's tiny pipeline home, with FASHIONREC_* pointing at it for this test."""
    point_at(monkeypatch, tiny_pipeline.home)
    return tiny_pipeline.home
