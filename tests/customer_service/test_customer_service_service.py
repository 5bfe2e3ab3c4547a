"""The HTTP service: chat/search/KB routes and every bad input answered with a clear 4xx."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from customer_service import VERTICAL
from shared.serving import ServeSettings, create_app

CHAT = "/v1/customer_service/chat"
KEYS = {"answer", "answer_id", "intent", "confidence", "handoff", "handoff_reason", "sources"}
ADDED = {"act", "act_confidence", "missing_slots", "context_used", "slots", "in_scope"}


@pytest.fixture()
def client(cs_artifact):
    app = create_app(VERTICAL, cs_artifact, ServeSettings(device="cpu", max_body_bytes=20_000))
    with TestClient(app) as c:
        yield c


def test_chat_answers_with_the_documented_fields_and_remembers_the_session(client):
    first = client.post(CHAT, json={"session_id": "u1", "message": "I lost my card"})
    assert first.status_code == 200, first.text
    body = first.json()
    assert KEYS | ADDED <= set(body) and 0.0 <= body["confidence"] <= 1.0
    assert body["handoff"] == (body["handoff_reason"] is not None)
    assert all({"answer_id", "title", "score"} <= set(s) for s in body["sources"])
    client.post(CHAT, json={"session_id": "u1", "message": "my debit card"})
    info = client.get("/v1/info").json()
    assert info["kb_answers"] == 55 and info["engine"]["items"] >= 2


def test_a_request_for_a_person_hands_off_through_the_api_with_its_act(client, monkeypatch):
    runtime = client.app.state.runtime
    monkeypatch.setattr(runtime, "classify_act", lambda text, vector: ("human", 0.9))
    body = client.post(CHAT, json={"session_id": "p1", "message": "agent please"}).json()
    assert body["handoff"] and body["act"] == "human" and body["act_confidence"] == 0.9
    assert body["handoff_reason"] == "the customer asked for a person"
    assert body["answer"] == runtime.replies["human"]


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


class CountingStore:
    """A session store that counts its reads and writes."""

    def __init__(self, inner) -> None:
        self.inner, self.gets, self.puts = inner, 0, 0

    def get(self, session_id):
        self.gets += 1
        return self.inner.get(session_id)

    def put(self, session) -> None:
        self.puts += 1
        self.inner.put(session)

    def delete(self, session_id) -> None:
        self.inner.delete(session_id)


def test_each_message_reads_and_writes_its_session_once(client, cs_bot):
    runtime = client.app.state.runtime
    runtime.sessions = CountingStore(runtime.sessions)
    for message in ("I lost my card", "and my debit card?", "how do I reset my password"):
        assert client.post(CHAT, json={"session_id": "once", "message": message}).status_code == 200
    client.post("/v1/customer_service/search", json={"query": "freeze card", "k": 2})
    assert (runtime.sessions.gets, runtime.sessions.puts) == (3, 3)
    cs_bot.sessions = CountingStore(cs_bot.sessions)  # the synchronous path is the same code
    cs_bot.predict([{"session_id": "p", "message": m} for m in ("I lost my card", "and debit?")])
    assert (cs_bot.sessions.gets, cs_bot.sessions.puts) == (2, 2)


def test_concurrent_messages_of_one_session_take_turns_and_none_is_lost(client, monkeypatch):
    """Eight messages of one session at once: all are remembered (two turns each), and each is
    answered from the session as the previous message left it (no stale read, no lost write)."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    from customer_service.scoring import Decision

    runtime = client.app.state.runtime
    answer_id = next(iter(runtime.kb_snapshot().answers))

    def decide(vector, query, kb, index, k=20):  # surer in context: a message that saw its
        confident = query.count("and is it") > 1  # predecessor is answered in context
        return Decision(answer_id, None, 0.9 if confident else 0.6, [], "intent")

    monkeypatch.setattr(runtime, "_decide", decide)
    monkeypatch.setattr(runtime, "classify_act", lambda text, vector: (None, 0.0))
    runtime.calibration.threshold = 0.5
    batch_fn = runtime.engine.batch_fn
    monkeypatch.setattr(  # a slow encoder: the messages overlap while it runs
        runtime.engine, "batch_fn", lambda texts: time.sleep(0.05) or batch_fn(texts)
    )
    messages = [f"and is it {i}" for i in range(8)]  # a pronoun: each is a follow-up
    with ThreadPoolExecutor(len(messages)) as pool:
        responses = list(
            pool.map(
                lambda m: client.post(CHAT, json={"session_id": "busy", "message": m}), messages
            )
        )
    assert [r.status_code for r in responses] == [200] * len(messages)
    turns = runtime.sessions.get("busy").turns
    assert len(turns) == 2 * len(messages)
    assert [t["role"] for t in turns] == ["user", "bot"] * len(messages)
    assert sorted(t["text"] for t in turns if t["role"] == "user") == sorted(messages)
    assert sum(not r.json()["context_used"] for r in responses) == 1  # only the first answered
    assert len(runtime.locks) == 0  # the session's lock is dropped with its last message


def test_settings_reach_the_runtime(cs_artifact, monkeypatch):
    from customer_service.config import CustomerServiceSettings
    from shared.registry import load_runtime

    monkeypatch.setenv("VERTICALS_PRECISION", "bf16")  # not this vertical's variable
    monkeypatch.setenv("VERTICALS_CUSTOMER_SERVICE_PRECISION", "fp32")
    app = create_app(VERTICAL, cs_artifact, ServeSettings(device="cpu", max_batch_size=4))
    assert isinstance(app.state.settings, CustomerServiceSettings)
    assert app.state.settings.customer_service_precision == "fp32"
    runtime = load_runtime(VERTICAL, cs_artifact, app.state.settings)
    assert runtime.precision == "fp32" and runtime.device == "cpu"
    assert runtime.engine.max_batch_size == 4 and runtime.engine.warmup_items == ["hello"]
    bf16 = load_runtime(
        VERTICAL,
        cs_artifact,
        CustomerServiceSettings(device="cpu", customer_service_precision="bf16"),
    )
    assert bf16.precision == "bf16"
