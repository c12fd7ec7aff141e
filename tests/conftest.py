"""Shared fixtures: one tiny warehouse per test session, built the way a user builds it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

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


@pytest.fixture
def one_torch_thread():
    """Small models train faster on one thread than with thread synchronisation on a busy machine."""
    import torch  # only the tests that train pay for it

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory: pytest.TempPathFactory) -> TinyRun:
    """Fresh tiny logs, then every asset of the code location materialized once, as `fashionrec run` does:
    warehouse -> features -> llm -> evaluation, with every asset check."""
    from dagster import DagsterInstance

    from cli.runs import materialize_selection
    from warehouse.generator import generate

    home = tmp_path_factory.mktemp("tiny_home")
    with pytest.MonkeyPatch.context() as mp:
        point_at(mp, home)
        generate("tiny", home / "raw", seed=0)
        summary = materialize_selection(None, instance=DagsterInstance.ephemeral(), log_level="WARNING")
    assert summary.success, summary
    return TinyRun(home=home, summary=summary)


@pytest.fixture
def tiny_home(tiny_pipeline: TinyRun, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The session's tiny pipeline home, with FASHIONREC_* pointing at it for this test."""
    point_at(monkeypatch, tiny_pipeline.home)
    return tiny_pipeline.home
