"""The service factory: readiness, API key, body limit, 422 with field paths, batching engine."""

from __future__ import annotations

import asyncio
import time

import pytest
from fastapi.testclient import TestClient

from shared.config import load_config
from shared.engine import InferenceEngine
from shared.registry import get_vertical
from shared.serving import ServeSettings, create_app


@pytest.fixture(scope="module")
def toy_artifact(toy_vertical, tmp_path_factory):
    vertical = get_vertical(toy_vertical)
    tmp = tmp_path_factory.mktemp("toy")
    cfg = load_config(vertical.config_cls, overrides={"trainer": {"epochs": 20, "lr": 0.05}})
    return vertical, vertical.train(cfg, vertical.example_data(tmp / "data"), tmp / "run")


def test_health_ready_info_and_docs(toy_artifact):
    vertical, artifact = toy_artifact
    with TestClient(create_app(vertical, artifact, ServeSettings(device="cpu"))) as client:
        assert client.get("/health").json() == {"status": "ok"}
        assert client.get("/ready").json() == {"ready": True}
        info = client.get("/v1/info").json()
        assert info["model"] == "mlp" and "accuracy" in info["metrics"] and "engine" in info
        assert "/v1/toy/predict" in client.get("/openapi.json").json()["paths"]
        assert client.post("/v1/toy/predict", json={"x": 2.0, "y": 0.0}).json()["label"] == "right"


def test_model_that_fails_to_load_makes_ready_fail_and_say_why(toy_artifact, tmp_path):
    vertical, _ = toy_artifact
    with TestClient(
        create_app(vertical, tmp_path / "nothing", ServeSettings(device="cpu"))
    ) as client:
        response = client.get("/ready")
        assert (
            response.status_code == 503 and "not a verticals artifact" in response.json()["reason"]
        )
        assert client.get("/health").status_code == 200
        assert client.post("/v1/toy/predict", json={"x": 1.0, "y": 0.0}).status_code == 503


def test_api_key_body_limit_and_validation(toy_artifact):
    vertical, artifact = toy_artifact
    settings = ServeSettings(device="cpu", api_key="s3cret", max_body_bytes=200)
    with TestClient(create_app(vertical, artifact, settings)) as client:
        assert client.post("/v1/toy/predict", json={"x": 1, "y": 0}).status_code == 401
        assert client.get("/v1/info", headers={"X-API-Key": "wrong"}).status_code == 401
        auth = {"X-API-Key": "s3cret"}
        assert (
            client.post("/v1/toy/predict", json={"x": 1, "y": 0}, headers=auth).status_code == 200
        )
        assert client.get("/health").status_code == 200  # probes need no key

        big = client.post(
            "/v1/toy/predict",
            content=b"{" + b" " * 500 + b"}",
            headers={**auth, "content-type": "application/json"},
        )
        assert big.status_code == 413 and "200 bytes" in big.json()["detail"]

        bad = client.post("/v1/toy/predict", json={"x": "left", "y": 500}, headers=auth)
        assert bad.status_code == 422
        fields = {e["field"] for e in bad.json()["errors"]}
        assert fields == {"body.x", "body.y"}
        broken = client.post(
            "/v1/toy/predict",
            content=b"{not json",
            headers={**auth, "content-type": "application/json"},
        )
        assert broken.status_code == 422


def test_engine_gathers_concurrent_requests_into_batches():
    sizes = []

    def batch_fn(items):
        sizes.append(len(items))
        return [i * 2 for i in items]

    engine = InferenceEngine(batch_fn, max_batch_size=8, max_wait_ms=20)

    async def main():
        await engine.start()
        results = await asyncio.gather(*(engine.submit(i) for i in range(20)))
        await engine.stop()
        return results

    assert asyncio.run(main()) == [i * 2 for i in range(20)]
    assert max(sizes) == 8 and len(sizes) == 3
    assert engine.run(list(range(10))) == [i * 2 for i in range(10)]


def test_engine_without_wait_runs_a_lone_request_at_once_and_batches_under_load(monkeypatch):
    sizes, waits = [], []
    real_wait_for = asyncio.wait_for

    def recording_wait_for(*args, **kwargs):  # the worker's only way to hold a batch open
        waits.append(kwargs.get("timeout", args[1] if len(args) > 1 else None))
        return real_wait_for(*args, **kwargs)

    monkeypatch.setattr(asyncio, "wait_for", recording_wait_for)

    def batch_fn(items):
        sizes.append(len(items))
        time.sleep(0.05)  # a busy device: requests arriving meanwhile form the next batch
        return [i + 1 for i in items]

    engine = InferenceEngine(batch_fn, max_batch_size=16)  # default max_wait_ms=0

    async def main():
        await engine.start()
        lone = await engine.submit(0)
        first = asyncio.ensure_future(engine.submit(1))
        await asyncio.sleep(0.01)  # the worker is now busy with [1]
        rest = await asyncio.gather(*(engine.submit(i) for i in range(2, 12)))
        await engine.stop()
        return lone, [await first, *rest]

    lone, results = asyncio.run(main())
    assert lone == 1 and waits == []  # no batch was held open waiting for more items
    assert results == list(range(2, 13))
    assert sizes == [1, 1, 10]


def test_a_failing_batch_fails_every_waiter_only_when_every_item_fails():
    def boom(items):
        raise ValueError("bad batch")

    engine = InferenceEngine(boom, max_batch_size=4, max_wait_ms=5)

    async def main():
        await engine.start()
        results = await asyncio.gather(engine.submit(1), engine.submit(2), return_exceptions=True)
        await engine.stop()
        return results

    assert all(isinstance(r, ValueError) for r in asyncio.run(main()))


def test_one_bad_item_fails_only_its_own_request():
    sizes = []

    def fragile(items):
        sizes.append(len(items))
        if "bad" in items:
            raise ValueError("cannot tokenize 'bad'")
        return [item.upper() for item in items]

    engine = InferenceEngine(fragile, max_batch_size=8, max_wait_ms=20)

    async def main():
        await engine.start()
        words = ["a", "b", "bad", "c", "d"]
        results = await asyncio.gather(*(engine.submit(w) for w in words), return_exceptions=True)
        await engine.stop()
        return results

    results = asyncio.run(main())
    assert results[:2] == ["A", "B"] and results[3:] == ["C", "D"]
    assert isinstance(results[2], ValueError) and "bad" in str(results[2])
    assert sizes[0] == 5 and sizes[1:] == [1] * 5  # one batch, then each item on its own
