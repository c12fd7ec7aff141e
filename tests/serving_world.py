"""A serving home for the service tests: a copy of the tiny pipeline's warehouse and vectors (model
artifacts linked, not copied), so a reload test can write new LanceDB versions without touching the home
other tests read; and the helpers that find a test target the LLM answered offline and send its events.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest

from fashionrec.settings import Paths
from serving.artifacts import LoadOptions
from serving.schemas import ServeLimits
from serving.service import RecommendationService, ServiceSettings

SETTINGS = ServiceSettings(limits=ServeLimits(), load=LoadOptions(preset="tiny"))


def copy_serving_home(source: Path, home: Path) -> Path:
    for database in source.glob("fashionrec.duckdb*"):  # with its write-ahead log, if one is left
        shutil.copy2(database, home / database.name)
    shutil.copytree(source / "lancedb", home / "lancedb")
    (home / "artifacts").symlink_to(source / "artifacts", target_is_directory=True)
    return home


def home_paths(home: Path) -> Paths:
    return Paths(home=home, raw_dir=home / "raw")


def loaded_service(home: Path) -> RecommendationService:
    service = RecommendationService(home_paths(home), SETTINGS)
    service.reload()
    return service


def sharing(service: RecommendationService, settings: ServiceSettings = SETTINGS, then=None):
    """A second service that starts on ``service``'s snapshot (no second model load), then ``then``."""
    calls = []

    def loader(paths: Paths, options: LoadOptions):
        calls.append(options)
        return service.snapshot if len(calls) == 1 else then(paths, options)

    other = RecommendationService(service.paths, settings, loader=loader)
    other.reload()
    return other


def warehouse(home: Path, sql: str, params: list | None = None) -> list[tuple]:
    with duckdb.connect(str(home / "fashionrec.duckdb"), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def as_events(history: list[dict]) -> list[dict]:
    """``prompt_inputs`` history structs as a client sends them."""
    events = []
    for event in history:
        sent = {"action": event["action"], "ts": event["ts"].isoformat()}
        sent.update(
            {"query": event["query"]} if event["action"] == "search" else {"item_id": event["item_id"]}
        )
        events.append(sent)
    return events


def answered_test_target(home: Path) -> dict:
    """A test target the LLM answered offline whose last search lies inside its history window (a live
    session can only send what it holds), with the prompt the pipeline rendered for it."""
    rows = warehouse(
        home,
        "select p.target_id, p.category, p.history, p.latest_query, p.target_ts, r.prompt_text, "
        "r.candidate_item_ids from prompt_inputs p join prompts r using (target_id) "
        "join generations g using (target_id) where r.variant = 'full' and g.variant = 'full' "
        "and g.constrained and p.split = 'test' and len(p.history) > 0 order by p.target_id",
    )
    names = ["target_id", "category", "history", "latest_query", "target_ts", "prompt_text", "candidates"]
    for row in map(lambda values: dict(zip(names, values, strict=True)), rows):
        has_search = any(event["action"] == "search" for event in row["history"])
        if row["latest_query"] is None or has_search:
            return row
    pytest.fail("no test target with its latest search inside the history window")
