"""The HTTP service: chat/search/KB routes and every bad input answered with a clear 4xx."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from customer_service import VERTICAL
from shared.serving import ServeSettings, create_app

CHAT = "/v1/customer_service/chat"
KEYS = {"answer", "answer_id", "intent", "confidence", "handoff", "handoff_reason", "sources"}


@pytest.fixture()
def client(cs_artifact):
    app = create_app(VERTICAL, cs_artifact, ServeSettings(device="cpu", max_body_bytes=20_000))
    with TestClient(app) as c:
        yield c


def test_chat_answers_with_the_documented_fields_and_remembers_the_session(client):
    first = client.post(CHAT, json={"session_id": "u1", "message": "I lost my card"})
    assert first.status_code == 200, first.text
    body = first.json()
    assert KEYS <= set(body) and 0.0 <= body["confidence"] <= 1.0
    assert body["handoff"] == (body["handoff_reason"] is not None)
    assert all({"answer_id", "title", "score"} <= set(s) for s in body["sources"])
    client.post(CHAT, json={"session_id": "u1", "message": "my debit card"})
    info = client.get("/v1/info").json()
    assert info["kb_answers"] == 55 and info["engine"]["items"] >= 2


def test_unknown_session_starts_a_new_one(client):
    response = client.post(CHAT, json={"session_id": "never-seen-before", "message": "hello there"})
    assert response.status_code == 200 and response.json()["context_used"] is False


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"session_id": "a", "message": ""}, "body.message"),
        ({"session_id": "a", "message": "   "}, "body.message"),
        ({"session_id": "a", "message": "x" * 2001}, "body.message"),
        ({"session_id": "a"}, "body.message"),
        ({"session_id": "", "message": "hi"}, "body.session_id"),
    ],
)
def test_bad_messages_are_422_naming_the_field(client, payload, field):
    response = client.post(CHAT, json=payload)
    assert response.status_code == 422 and field in response.json()["detail"]


def test_body_over_the_limit_is_413(client):
    response = client.post(CHAT, json={"session_id": "a", "message": "x" * 30_000})
    assert response.status_code == 413 and "exceeds the limit" in response.json()["detail"]


def test_non_utf8_text_is_rejected_with_a_reason(client):
    raw = b'{"session_id": "a", "message": "caf\xe9"}'
    response = client.post(CHAT, content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 400 and "not valid UTF-8 (byte 35" in response.json()["detail"]
    surrogate = client.post(
        CHAT,
        content=b'{"session_id": "a", "message": "bad \\ud800 text"}',
        headers={"content-type": "application/json"},
    )
    detail = surrogate.json()["detail"]
    assert surrogate.status_code == 422 and "body.message" in detail and "unicode" in detail.lower()


def test_search_returns_k_sorted_results(client):
    response = client.post("/v1/customer_service/search", json={"query": "freeze card", "k": 4})
    results = response.json()["results"]
    assert response.status_code == 200 and len(results) == 4
    assert [r["score"] for r in results] == sorted((r["score"] for r in results), reverse=True)
    assert (
        client.post("/v1/customer_service/search", json={"query": "x", "k": 0}).status_code == 422
    )


def test_kb_routes_add_change_remove_and_errors_keep_the_kb(client):
    base = "/v1/customer_service/kb/answers"
    new = {"answer_id": "H1", "answer": "We close on public holidays.", "title": "Holidays"}
    added = client.post(base, json={"answers": [new]})
    assert added.status_code == 200 and added.json()["answers"] == 56
    hit = client.post(
        "/v1/customer_service/search",
        json={"query": "Holidays. We close on public holidays.", "k": 1},
    )
    assert hit.json()["results"][0]["answer_id"] == "H1"
    assert client.post(base, json={"answers": [new]}).status_code == 409
    assert client.put(f"{base}/H1", json={"answer": "Open every day."}).status_code == 200
    assert client.put(f"{base}/NOPE", json={"answer": "x"}).status_code == 404
    assert client.post(base, json={"answers": [{"answer_id": "H2"}]}).status_code == 422
    assert client.delete(f"{base}/H1").status_code == 200
    assert client.delete(f"{base}/H1").status_code == 404
    kb = client.get("/v1/customer_service/kb").json()
    assert len(kb["answers"]) == 55 and kb["version"] == "v000004"
    assert (
        client.post(CHAT, json={"session_id": "z", "message": "I lost my card"}).status_code == 200
    )
