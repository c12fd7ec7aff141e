"""The service's snapshot on the tiny artifacts: reloads that never block the pipeline and never serve a
half-loaded snapshot, and dequantized layers that answer as the 4-bit model does (tests/serving_world.py).
"""

from __future__ import annotations

import dataclasses
import socket
import threading
import time
from pathlib import Path

import duckdb
import httpx
import lancedb
import pytest
import torch
import uvicorn
from fastapi.testclient import TestClient

from fashionrec.layout import ITEM_TITLE_VECTORS
from recommender.language_model import compute_dtype, load_recommender_model
from serving.api import create_app
from serving.artifacts import ArtifactsUnavailable, load_artifacts
from serving.service import RecommendationService
from tests.serving_world import (
    SETTINGS,
    answered_test_target,
    as_events,
    copy_serving_home,
    loaded_service,
    sharing,
)


@pytest.fixture(scope="module")
def serve_home(tiny_pipeline, tmp_path_factory) -> Path:
    return copy_serving_home(tiny_pipeline.home, tmp_path_factory.mktemp("reload_home"))


@pytest.fixture(scope="module")
def service(serve_home) -> RecommendationService:
    return loaded_service(serve_home)


@pytest.fixture(scope="module")
def evaluated_target(serve_home) -> dict:
    return answered_test_target(serve_home)


def test_the_warehouse_is_not_held_and_a_failed_reload_keeps_serving(service, serve_home, evaluated_target):
    options = dataclasses.replace(SETTINGS.load, duckdb_lock_timeout_s=0.2)
    other = sharing(service, dataclasses.replace(SETTINGS, load=options), then=load_artifacts)
    body = {"events": as_events(evaluated_target["history"])[-3:], "k": 2}
    with TestClient(create_app(other)) as client:
        before = client.get("/health").json()
        # a pipeline run writing the warehouse: possible because the service holds no connection
        with duckdb.connect(str(serve_home / "fashionrec.duckdb")) as writer:
            writer.execute("create table written_during_serving as select 1 as x")
            assert client.post("/recommend", json=body).status_code == 200
            failed = client.post("/reload")
        assert failed.status_code == 503 and "still serving" in failed.json()["detail"]
        assert client.get("/health").json() == before
        assert client.post("/recommend", json=body).status_code == 200


def test_a_second_reload_while_one_runs_is_refused(service):
    started, release = threading.Event(), threading.Event()

    def slow(paths, options):
        started.set()
        release.wait(30)
        raise ArtifactsUnavailable("interrupted on purpose")

    other = sharing(service, then=slow)
    failures: list[Exception] = []

    def first_reload() -> None:
        try:
            other.reload()
        except ArtifactsUnavailable as error:
            failures.append(error)

    first = threading.Thread(target=first_reload)
    first.start()
    assert started.wait(30)
    with TestClient(create_app(other)) as client:
        refused = client.post("/reload")
    release.set()
    first.join(30)
    assert refused.status_code == 409 and "already running" in refused.json()["detail"]
    assert [str(error) for error in failures] == ["interrupted on purpose"]


def test_reload_swaps_in_new_lancedb_versions_while_requests_keep_being_answered(
    service, serve_home, evaluated_target
):
    db = lancedb.connect(str(serve_home / "lancedb"))
    old = db.open_table(ITEM_TITLE_VECTORS)
    new_version = db.create_table(ITEM_TITLE_VECTORS, old.to_arrow(), mode="overwrite").version
    other = sharing(service, then=load_artifacts)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(other), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    body = {"events": as_events(evaluated_target["history"])[-4:], "k": 3}
    answered: list[tuple[int, str, float, float]] = []  # status, snapshot, sent, answered
    done = threading.Event()

    def keep_asking() -> None:
        with httpx.Client(base_url=url, timeout=120) as session:
            while not done.is_set():
                sent = time.monotonic()
                response = session.post("/recommend", json=body)
                ok = response.status_code == 200
                loaded_at = response.json()["artifacts_loaded_at"] if ok else response.text
                answered.append((response.status_code, loaded_at, sent, time.monotonic()))

    try:
        askers = [threading.Thread(target=keep_asking) for _ in range(2)]
        for asker in askers:
            asker.start()
        time.sleep(0.5)
        reload_started = time.monotonic()
        reloaded = httpx.post(f"{url}/reload", timeout=600)
        reload_ended = time.monotonic()
        time.sleep(1.0)
        done.set()
        for asker in askers:
            asker.join(120)
        health = httpx.get(f"{url}/health").json()
    finally:
        server.should_exit = True
        thread.join(30)

    assert reloaded.status_code == 200, reloaded.text
    result = reloaded.json()
    assert result["previous"]["lancedb_versions"][ITEM_TITLE_VECTORS] == old.version
    assert result["current"]["lancedb_versions"][ITEM_TITLE_VECTORS] == new_version
    assert health["reloads"] == 1 and health["artifacts"] == result["current"]
    assert all(status == 200 for status, *_ in answered), answered
    snapshots = {loaded_at for _, loaded_at, _, _ in answered}
    assert snapshots == {result["previous"]["loaded_at"], result["current"]["loaded_at"]}
    # requests were in flight while the new snapshot was built and swapped in, and all were answered
    assert any(sent < reload_ended and finished > reload_started for _, _, sent, finished in answered)


def test_dequantized_layers_give_the_4bit_models_logits(service, evaluated_target):
    """Dequantizing once at load holds the very weights bitsandbytes dequantizes on every call, and the
    adapter folded into them adds its low-rank product once, so only the kernels and one rounding of
    each weight in the compute dtype differ. Kernels sum in different orders, and float32 rounding (2^-24
    relative per addition) over the few thousand products behind each logit stays far below 0.1 % of the
    logit scale; 0.006 on logits of magnitude ~10 was seen on an AMD EPYC. Where the CPU computes in
    bfloat16 (AVX512-BF16), each product rounds to 2^-8, and the merged weight W + BA rounds once more
    where the unmerged model adds the adapter's output to the layer's: 0.03 on logits of ~7 was seen
    here, and 0.078 on logits of ~7.5 (1.04 %, one logit of 400k) on another CPU, so the bound is 2 %
    there. What must hold is that the answers agree: every next token whose lead over the runner-up
    is larger than that noise is the same.
    """
    snapshot = service.snapshot
    assert snapshot.versions.dequantized_layers > 0
    quantized, tokenizer = load_recommender_model(
        snapshot.versions.base_model, service.paths.artifacts.adapter("full")
    )
    encoded = tokenizer([evaluated_target["prompt_text"]], return_tensors="pt")
    with torch.inference_mode():
        expected = quantized(**encoded).logits
        served = snapshot.recommender.model(**encoded).logits
    relative = 2e-2 if compute_dtype(torch.device("cpu")) == torch.bfloat16 else 1e-3
    tolerance = relative * float(expected.abs().max())
    torch.testing.assert_close(served, expected, rtol=0.0, atol=tolerance)
    top2 = expected.topk(2, dim=-1).values
    clear = (top2[..., 0] - top2[..., 1]) > 2 * tolerance
    assert clear.float().mean() > 0.5  # the comparison below is not vacuous
    assert torch.equal(served.argmax(-1)[clear], expected.argmax(-1)[clear])
