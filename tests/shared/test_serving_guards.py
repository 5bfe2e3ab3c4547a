"""The core's guards around every service: key before body, 413 for any body, errors as
declared, no server paths, docs switch, metrics, JSON logs and upload slots."""

from __future__ import annotations

import asyncio
import json
import logging
from types import SimpleNamespace

import pytest
from fastapi import HTTPException
from fastapi.testclient import TestClient

from shared.config import load_config
from shared.observability import JsonFormatter
from shared.registry import get_vertical
from shared.serving import ServeSettings, create_app, redact_paths, upload_slot

URL = "/v1/toy/predict"


@pytest.fixture(scope="module")
def toy(toy_vertical, tmp_path_factory):
    vertical = get_vertical(toy_vertical)
    tmp = tmp_path_factory.mktemp("toy_guards")
    cfg = load_config(vertical.config_cls, overrides={"trainer": {"epochs": 5}})
    return vertical, vertical.train(cfg, vertical.example_data(tmp / "data"), tmp / "run")


def test_chunked_body_over_the_limit_gets_413(toy):
    vertical, artifact = toy
    with TestClient(
        create_app(vertical, artifact, ServeSettings(device="cpu", max_body_bytes=100))
    ) as c:
        chunks = iter([b'{"x": 1, ', b" " * 200, b'"y": 0}'])  # no Content-Length: chunked
        r = c.post(URL, content=chunks, headers={"content-type": "application/json"})
        assert r.status_code == 413 and "100 bytes" in r.json()["detail"]
        small = c.post(
            URL,
            content=iter([b'{"x": 1,', b' "y": 0}']),
            headers={"content-type": "application/json"},
        )
        assert small.status_code == 200


def test_api_key_is_checked_before_the_body_is_parsed(toy):
    vertical, artifact = toy
    with TestClient(create_app(vertical, artifact, ServeSettings(device="cpu", api_key="k"))) as c:
        broken = c.post(URL, content=b"{not json", headers={"content-type": "application/json"})
        assert broken.status_code == 401
        huge = c.post(
            URL, content=b"x" * (11 * 1024 * 1024), headers={"content-type": "application/json"}
        )
        assert huge.status_code == 401
        assert (
            c.post(
                URL,
                content=b"{not json",
                headers={"content-type": "application/json", "X-API-Key": "k"},
            ).status_code
            == 422
        )


def test_422_and_other_errors_match_the_schema_declared_in_openapi(toy):
    import jsonschema

    vertical, artifact = toy
    with TestClient(create_app(vertical, artifact, ServeSettings(device="cpu"))) as c:
        spec = c.get("/openapi.json").json()
        declared = spec["paths"][URL]["post"]["responses"]
        assert {"400", "401", "413", "422", "503"} <= set(declared)
        resolver = {"components": spec["components"]}
        for status, body in (
            (422, c.post(URL, json={"x": "left"}).json()),
            (
                400,
                c.post(
                    URL, content=b'{"x": "\xff"}', headers={"content-type": "application/json"}
                ).json(),
            ),
        ):
            schema = declared[str(status)]["content"]["application/json"]["schema"]
            jsonschema.validate(body, {**schema, **resolver})
        assert isinstance(c.post(URL, json={"x": "left"}).json()["detail"], str)


@pytest.mark.parametrize(
    "name", ["customer_service", "finance_sentiment", "recommender", "medical_imaging"]
)
def test_every_vertical_route_documents_the_statuses_it_can_return(name):
    spec = create_app(get_vertical(name), None, ServeSettings(device="cpu")).openapi()
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            codes = set(op["responses"])
            if path.startswith("/v1/"):
                assert {"400", "503"} <= codes, (method, path, codes)
                assert "401" in codes or op.get("x-verticals-public"), (method, path)
            if "requestBody" in op:
                assert {"413", "422"} <= codes, (method, path, codes)
            content = op.get("requestBody", {}).get("content", {})
            if "multipart/form-data" in content or path.endswith("/file"):
                assert {"415", "429"} <= codes, (method, path, codes)


def test_no_server_path_in_ready_or_in_errors(toy, tmp_path):
    vertical, _ = toy
    missing = tmp_path / "deep" / "artifact"
    with TestClient(create_app(vertical, missing, ServeSettings(device="cpu"))) as c:
        reason = c.get("/ready").json()["reason"]
        assert (
            "not a verticals artifact" in reason
            and str(tmp_path) not in reason
            and "/deep/" not in reason
        )
        assert str(tmp_path) not in c.post(URL, json={"x": 1, "y": 0}).text
    assert redact_paths("/tmp/tmpab12/upload.csv: missing column") == "upload.csv: missing column"
    assert redact_paths("ratio 1/2 and v1") == "ratio 1/2 and v1"


def test_docs_can_be_switched_off(toy):
    vertical, artifact = toy
    with TestClient(create_app(vertical, artifact, ServeSettings(device="cpu", docs=False))) as c:
        assert [c.get(p).status_code for p in ("/docs", "/redoc", "/openapi.json")] == [404] * 3
        assert c.get("/ready").status_code == 200


def test_metrics_count_requests_by_route_and_batches(toy):
    vertical, artifact = toy
    with TestClient(create_app(vertical, artifact, ServeSettings(device="cpu"))) as c:
        for _ in range(3):
            c.post(URL, json={"x": 1, "y": 0})
        c.post(URL, json={"x": "bad"})
        text = c.get("/metrics").text
    assert (
        'verticals_requests_total{method="POST",route="/v1/toy/predict",status="200"} 3.0' in text
    )
    assert (
        'verticals_requests_total{method="POST",route="/v1/toy/predict",status="422"} 1.0' in text
    )
    assert "verticals_request_duration_seconds_bucket" in text
    assert "verticals_batch_size_count 3.0" in text and "verticals_queue_seconds_count 3.0" in text
    assert "verticals_ready 1.0" in text


def test_json_logs_carry_one_object_per_request(toy, caplog):
    vertical, artifact = toy
    settings = ServeSettings(device="cpu", log_format="json")
    with caplog.at_level(logging.INFO, logger="verticals.access"):
        with TestClient(create_app(vertical, artifact, settings)) as c:
            c.post(URL, json={"x": 1, "y": 0})
    records = [r for r in caplog.records if getattr(r, "event", None) == "request"]
    line = json.loads(JsonFormatter().format(records[-1]))
    assert (
        line["route"] == URL
        and line["status"] == 200
        and line["method"] == "POST"
        and line["ms"] >= 0
    )


def test_uploads_beyond_the_slots_wait_then_get_429_and_slots_are_given_back():
    settings = ServeSettings(max_concurrent_uploads=2, upload_wait_s=0.05)
    state = SimpleNamespace(
        settings=settings, uploads_in_progress=0, upload_slots=asyncio.Semaphore(2)
    )
    request = SimpleNamespace(app=SimpleNamespace(state=state))

    async def scenario():
        first, second = upload_slot(request), upload_slot(request)
        await first.__anext__()
        await second.__anext__()
        with pytest.raises(HTTPException) as caught:
            await upload_slot(request).__anext__()
        assert caught.value.status_code == 429 and caught.value.headers["Retry-After"] == "1"
        await first.aclose()
        third = upload_slot(request)
        await third.__anext__()
        await second.aclose()
        await third.aclose()
        return state.uploads_in_progress

    assert asyncio.run(scenario()) == 0
