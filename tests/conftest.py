"""Shared fixtures: one tiny warehouse per test session, built the way a user builds it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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


@pytest.fixture(scope="session")
def tiny_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A FASHIONREC_HOME with the tiny synthetic logs and every dbt model built (`group:warehouse`)."""
    from dagster import DagsterInstance

    from fashionrec.pipeline import materialize_selection
    from warehouse.generator import generate

    home = tmp_path_factory.mktemp("tiny_home")
    with pytest.MonkeyPatch.context() as mp:
        point_at(mp, home)
        generate("tiny", home / "raw", seed=0)
        summary = materialize_selection("group:warehouse", instance=DagsterInstance.ephemeral())
    assert summary.success, summary
    assert not summary.checks_failed, summary.checks_failed
    return home


@pytest.fixture
def tiny_home(tiny_warehouse: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The session's tiny warehouse, with FASHIONREC_* pointing at it for this test."""
    point_at(monkeypatch, tiny_warehouse)
    return tiny_warehouse
