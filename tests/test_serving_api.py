"""The recommendation service over HTTP on the tiny artifacts: a real session, its category, fallbacks,
bad input, limits, the read-only endpoints, the CLI and the README's request (tests/serving_world.py).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import lancedb
import pytest
import torch
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from fashionrec.layout import ITEM_ID_VECTORS, ITEM_TITLE_VECTORS, QUERY_MEMORY_TABLE
from serving.api import create_app
from serving.service import RecommendationService, ServiceSettings
from tests.serving_world import (
    answered_test_target,
    as_events,
    copy_serving_home,
    loaded_service,
    sharing,
    warehouse,
)

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture(scope="module")
def serve_home(tiny_pipeline, tmp_path_factory) -> Path:
    return copy_serving_home(tiny_pipeline.home, tmp_path_factory.mktemp("serve_home"))


@pytest.fixture(scope="module")
def service(serve_home) -> RecommendationService:
    return loaded_service(serve_home)


@pytest.fixture(scope="module")
def evaluated_target(serve_home) -> dict:
    return answered_test_target(serve_home)


@pytest.fixture(scope="module")
def client(service):
    with TestClient(create_app(service)) as client:
        yield client


def test_a_live_session_gets_the_evaluations_prompt_and_a_mixup_list(client, serve_home, evaluated_target):
    target = evaluated_target
    body = {
        "events": as_events(target["history"]),
        "k": 10,
        "category": target["category"],
        "at": target["target_ts"].isoformat(),
        "include_prompt": True,
    }
    response = client.post("/recommend", json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    # the same prompt, byte for byte, and the same query-memory candidates as the prompts asset
    assert answer["prompt_text"] == target["prompt_text"]
    assert answer["query_memory_candidates"] == list(target["candidates"])
    assert answer["generated"]["format_ok"] and answer["generated"]["id_in_catalog"]

    items = answer["items"]
    assert [item["rank"] for item in items] == list(range(1, 11))
    assert len({item["item_id"] for item in items}) == 10
    catalog = dict(
        (row[0], row[1:])
        for row in warehouse(
            serve_home, "select item_id, title, category from items where category = ?", [target["category"]]
        )
    )
    for item in items:
        assert (item["title"], item["category"]) == catalog[item["item_id"]]
    generated = answer["generated"]["item_id"]
    if generated in catalog:  # mixup: the generated item itself heads the ID list (cosine 1)
        assert items[0] == {**items[0], "item_id": generated, "source": "id"}
        assert items[0]["score"] == pytest.approx(1.0)
    title_scores = [item["score"] for item in items if item["source"] == "title"]
    assert title_scores == sorted(title_scores, reverse=True) and len(title_scores) >= 9
    assert answer["category_source"] == "request" and answer["fallback"] is None
    assert answer["llm_batch_size"] == 1
    stages = answer["timings_ms"]
    assert all(stages[name] > 0 for name in ("query_memory", "prompt", "generation", "retrieval"))
    assert stages["total"] >= stages["generation"] + stages["retrieval"]


def test_category_comes_from_the_latest_item_or_else_from_the_llm(client, serve_home, evaluated_target):
    events = as_events(evaluated_target["history"])
    latest_item = [e for e in events if "item_id" in e][-1]["item_id"]
    (latest_category,) = warehouse(serve_home, "select category from items where item_id = ?", [latest_item])[
        0
    ]
    answer = client.post("/recommend", json={"events": events, "k": 5}).json()
    assert (answer["category"], answer["category_source"]) == (latest_category, "latest_item")
    assert {item["category"] for item in answer["items"]} == {latest_category}

    search_only = {
        "events": [{"action": "search", "query": "black leather boots", "ts": "2024-05-01T10:00:00"}]
    }
    answer = client.post("/recommend", json=search_only).json()
    assert answer["category_source"] == "generated"
    named = client.get(f"/items/{answer['generated']['item_id']}").json()
    assert answer["category"] == named["category"]
    assert {item["category"] for item in answer["items"]} == {named["category"]}


def test_an_empty_session_falls_back_to_popularity_in_the_asked_category(client, serve_home):
    (category,) = warehouse(serve_home, "select min(category) from items")[0]
    answer = client.post("/recommend", json={"events": [], "k": 5, "category": category}).json()
    expected = warehouse(
        serve_home,
        "select i.item_id, count(s.target_id) as n from items i left join splits s "
        "on s.target_item_id = i.item_id and s.split = 'train' where i.category = ? "
        "group by i.item_id order by n desc, i.item_id limit 5",
        [category],
    )
    assert answer["fallback"] == "popularity" and answer["generated"] is None
    assert [(i["item_id"], i["score"], i["source"]) for i in answer["items"]] == [
        (item_id, float(n), "popularity") for item_id, n in expected
    ]
    assert any("no usable events" in warning and category in warning for warning in answer["warnings"])


def test_unknown_item_ids_are_ignored_with_a_warning(client, evaluated_target):
    events = as_events(evaluated_target["history"])[-5:]
    events.insert(0, {"action": "click", "item_id": "NOT-AN-ITEM", "ts": "2020-01-01T00:00:00"})
    answer = client.post("/recommend", json={"events": events, "k": 3}).json()
    assert any("events[0].item_id 'NOT-AN-ITEM'" in warning for warning in answer["warnings"])
    assert len(answer["items"]) == 3 and answer["fallback"] is None

    only_unknown = {"events": events[:1], "k": 3}
    answer = client.post("/recommend", json=only_unknown).json()
    assert answer["fallback"] == "popularity" and len(answer["items"]) == 3


@pytest.mark.parametrize(
    ("body", "location", "message"),
    [
        (
            {"events": [{"action": "wishlist", "item_id": "x", "ts": "2024-01-01"}]},
            ["events", 0, "action"],
            "search",
        ),
        ({"events": [{"action": "search", "ts": "2024-01-01"}]}, ["events", 0], "query"),
        ({"events": [{"action": "click", "ts": "2024-01-01"}]}, ["events", 0], "item_id"),
        (
            {"events": [{"action": "click", "item_id": "x", "ts": "yesterday"}]},
            ["events", 0, "ts"],
            "datetime",
        ),
        ({"events": [], "k": 0}, ["k"], "greater than or equal to 1"),
        ({"events": [], "k": 101}, ["k"], "less than or equal to 100"),
        ({"events": [], "category": "Spaceships"}, ["category"], "unknown category 'Spaceships'"),
        ({"evnts": []}, ["evnts"], "Extra inputs"),
    ],
)
def test_bad_input_is_a_422_naming_the_field(client, body, location, message):
    response = client.post("/recommend", json=body)
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", *location]
    assert message in error["msg"]


def test_request_limits_come_from_the_environment(service, monkeypatch):
    monkeypatch.setenv("FASHIONREC_PRESET", "tiny")
    monkeypatch.setenv("FASHIONREC_SERVE_MAX_EVENTS", "3")
    monkeypatch.setenv("FASHIONREC_SERVE_MAX_QUERY_CHARS", "12")
    limited = sharing(service, ServiceSettings.from_env())
    event = {"action": "search", "query": "red dress", "ts": "2024-01-01T00:00:00"}
    with TestClient(create_app(limited)) as client:
        too_many = client.post("/recommend", json={"events": [event] * 4})
        too_long = client.post("/recommend", json={"events": [{**event, "query": "a much longer query"}]})
        schema = client.get("/openapi.json").json()["components"]["schemas"]
    assert too_many.status_code == 422 and too_many.json()["detail"][0]["loc"] == ["body", "events"]
    assert "at most 3" in too_many.json()["detail"][0]["msg"]
    assert too_long.status_code == 422 and too_long.json()["detail"][0]["loc"] == [
        "body",
        "events",
        0,
        "query",
    ]
    assert schema["RecommendRequest"]["properties"]["events"]["maxItems"] == 3
    monkeypatch.setenv("FASHIONREC_SERVE_MAX_EVENTS", "many")
    with pytest.raises(ValueError, match="FASHIONREC_SERVE_MAX_EVENTS='many'"):
        ServiceSettings.from_env()


def test_items_health_and_docs(client, serve_home):
    item_id, title, brand = warehouse(serve_home, "select item_id, title, brand from items order by item_id")[
        0
    ]
    found = client.get(f"/items/{item_id}").json()
    assert (found["title"], found["brand"]) == (title, brand)
    missing = client.get("/items/NOT-AN-ITEM")
    assert missing.status_code == 404 and "NOT-AN-ITEM" in missing.json()["detail"]

    health = client.get("/health").json()
    db = lancedb.connect(str(serve_home / "lancedb"))
    assert health["status"] == "ok"
    assert health["artifacts"]["lancedb_versions"] == {
        name: db.open_table(name).version
        for name in (ITEM_ID_VECTORS, ITEM_TITLE_VECTORS, QUERY_MEMORY_TABLE)
    }
    (latest_run,) = warehouse(serve_home, "select run_id from eval_metrics order by created_at desc limit 1")[
        0
    ]
    assert health["artifacts"]["eval_run_id"] == latest_run
    assert len(health["artifacts"]["adapter_sha256"]) == 16
    assert client.get("/docs").status_code == 200
    assert {"/recommend", "/items/{item_id}", "/health", "/reload"} <= set(
        client.get("/openapi.json").json()["paths"]
    )


def test_cli_recommend_answers_a_session_file(tiny_home, tmp_path, evaluated_target):
    session = tmp_path / "session.json"
    session.write_text(json.dumps(as_events(evaluated_target["history"])[-6:]))
    runner = CliRunner()
    from cli.main import app

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"action": "wishlist", "item_id": "x", "ts": "2024-01-01"}]))
    refused = runner.invoke(app, ["recommend", "--events", str(bad)])
    assert refused.exit_code == 2 and "events.0.action" in refused.output

    threads = torch.get_num_threads()
    try:
        result = runner.invoke(app, ["recommend", "--events", str(session), "--k", "4"])
    finally:
        torch.set_num_threads(threads)  # the command sets a serving process's threads; this one runs on
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert len(answer["items"]) == 4 and answer["generated"]["format_ok"]


def test_the_readme_request_is_answered(client):
    serving = README.read_text().split("## Serving", 1)[1]
    body = json.loads(re.search(r"```json\n(.*?)```", serving, flags=re.S).group(1))
    response = client.post("/recommend", json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert len(answer["items"]) == body["k"] and answer["fallback"] is None
    assert not any("events[" in warning for warning in answer["warnings"])  # every event was used
    assert answer["latest_query"] == body["events"][-1]["query"]
    assert {item["category"] for item in answer["items"]} == {body["category"]}
