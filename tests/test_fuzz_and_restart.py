"""Every vertical's service, attacked as a client could: schemathesis over its OpenAPI (no 5xx,
no response outside its declared schema), then a restart on the state the fuzzer left; and
hypothesis over arbitrary Unicode and timestamps for each kind of write, each followed by a
restart that must come back ready with the same content."""

from __future__ import annotations

import datetime
import shutil
from pathlib import Path
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.registry import build_settings, get_vertical
from shared.serving import create_app

VERTICALS = ("customer_service", "finance_sentiment", "recommender", "medical_imaging")
FUZZ_EXAMPLES = 50  # per operation: the whole fuzz stays around a minute on 2 cores

# Any text a user may send: every code point but lone surrogates and NUL (which get a 422).
TEXT = st.text(
    alphabet=st.characters(exclude_categories=("Cs",), exclude_characters="\x00"),
    min_size=1,
    max_size=40,
).filter(lambda s: s.strip())
TIMES = st.datetimes(
    min_value=datetime.datetime(1900, 1, 1),
    max_value=datetime.datetime(2199, 12, 31),
    timezones=st.timezones() | st.none(),
)


def _app(name: str, artifact: Path, state: Path):
    vertical = get_vertical(name)
    overrides = {"device": "cpu", "data_dir": state}
    if name == "finance_sentiment":
        overrides["finance_db"] = state / "monitor.db"
    return create_app(vertical, artifact, build_settings(vertical, **overrides))


def _fresh(trained, name: str, tmp_path: Path) -> tuple[Path, Path]:
    artifact = Path(shutil.copytree(trained(name), tmp_path / "artifact"))
    state = tmp_path / "state"
    state.mkdir()
    return artifact, state


@pytest.mark.parametrize("name", VERTICALS)
def test_fuzzed_service_has_no_5xx_and_restarts_ready(trained, name, tmp_path):
    import schemathesis
    from schemathesis import GenerationMode
    from schemathesis.checks import (
        content_type_conformance,
        not_a_server_error,
        response_schema_conformance,
        status_code_conformance,
    )
    from schemathesis.python.asgi import shutdown_lifespans

    # Valid and invalid requests alike: no 5xx, every status declared, every body as declared.
    # (A schema-valid request may still be refused with a 422 that names the problem: an id
    # that is not in the catalogue, a text that is only spaces.)
    CHECKS = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]

    artifact, state = _fresh(trained, name, tmp_path)
    app = _app(name, artifact, state)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(
            max_examples=FUZZ_EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy() | operation.as_strategy(GenerationMode.NEGATIVE))
        def fuzz(case):
            case.call_and_validate(checks=CHECKS)

        try:
            fuzz()
        except Exception as exc:  # collect every operation's failure, then report them all
            failures.append(f"{operation.label}: {str(exc)[:1500]}")
    shutdown_lifespans()
    assert not failures, "\n\n".join(failures)
    statuses = {
        s.labels["status"]
        for metric in app.state.metrics.registry.collect()
        if metric.name == "verticals_requests"
        for s in metric.samples
        if s.name.endswith("_total")
    }
    operations = len(list(schema.get_all_operations()))
    total = sum(
        s.value
        for metric in app.state.metrics.registry.collect()
        if metric.name == "verticals_requests"
        for s in metric.samples
        if s.name.endswith("_total")
    )
    assert total >= 5 * operations and "200" in statuses and "422" in statuses, (total, statuses)
    with TestClient(_app(name, artifact, state)) as client:
        ready = client.get("/ready")
        assert ready.status_code == 200, ready.text


def _restart(name: str, artifact: Path, state: Path) -> TestClient:
    """A started app on `artifact` and `state` that answers `/ready` (closed again if not)."""
    client = TestClient(_app(name, artifact, state))
    client.__enter__()
    ready = client.get("/ready")
    if ready.status_code != 200:
        client.__exit__(None, None, None)
        raise AssertionError(f"{name} not ready after a restart: {ready.text}")
    return client


def test_kb_answers_of_any_unicode_survive_restarts(trained, tmp_path):
    artifact, state = _fresh(trained, "customer_service", tmp_path)
    url = "/v1/customer_service/kb/answers"
    counter = iter(range(10**6))

    @settings(max_examples=6, deadline=None, database=None)
    @given(answers=st.lists(TEXT, min_size=1, max_size=4), title=TEXT)
    def write_then_restart(answers, title):
        client = _restart("customer_service", artifact, state)
        try:
            items = [
                {"answer_id": f"h{next(counter)}", "answer": a, "title": title} for a in answers
            ]
            assert client.post(url, json={"answers": items}).status_code == 200
        finally:
            client.__exit__(None, None, None)
        again = _restart("customer_service", artifact, state)
        try:
            stored = {
                a["answer_id"]: a for a in again.get("/v1/customer_service/kb").json()["answers"]
            }
            for item in items:
                assert stored[item["answer_id"]]["answer"] == item["answer"]
                assert stored[item["answer_id"]]["title"] == title
        finally:
            again.__exit__(None, None, None)

    write_then_restart()


def test_finance_items_of_any_text_and_time_survive_restarts(trained, tmp_path):
    import pandas as pd

    artifact, state = _fresh(trained, "finance_sentiment", tmp_path)
    counter = iter(range(10**6))

    @settings(max_examples=6, deadline=None, database=None)
    @given(
        texts=st.lists(TEXT, min_size=1, max_size=4),
        times=st.lists(TIMES, min_size=4, max_size=4),
        entity=TEXT,
    )
    def write_then_restart(texts, times, entity):
        items = [
            # the id in the text: the store drops a text it already holds as a duplicate
            {"id": f"f{n}", "ts": t.isoformat(), "text": f"{x} #{n}", "entity": entity}
            for x, t, n in zip(texts, times, counter, strict=False)
        ]
        sent_times = {item["id"]: t for item, t in zip(items, times, strict=False)}
        client = _restart("finance_sentiment", artifact, state)
        try:
            body = client.post("/v1/finance_sentiment/ingest", json={"items": items}).json()
            assert body["accepted"] == len(items), body
        finally:
            client.__exit__(None, None, None)
        again = _restart("finance_sentiment", artifact, state)
        try:
            frame = again.app.state.runtime.store.scored_frame().set_index("id")
            for item in items:
                assert frame.loc[item["id"], "text"] == item["text"].strip()
                # the datetime itself: pandas cannot read every offset it may carry
                sent = sent_times[item["id"]]
                sent = sent.replace(tzinfo=datetime.UTC) if sent.tzinfo is None else sent
                expected = pd.Timestamp(sent.astimezone(datetime.UTC))
                assert abs(frame.loc[item["id"], "ts"] - expected) < pd.Timedelta("1ms")
            trends = again.get("/v1/finance_sentiment/trends", params={"window": "36500D"})
            assert trends.status_code == 200, trends.text
        finally:
            again.__exit__(None, None, None)

    write_then_restart()


def test_recommender_items_and_events_of_any_text_and_time_survive_restarts(trained, tmp_path):
    artifact, state = _fresh(trained, "recommender", tmp_path)
    url = "/v1/recommender"
    counter = iter(range(10**6))

    @settings(max_examples=5, deadline=None, database=None)
    @given(titles=st.lists(TEXT, min_size=1, max_size=3), created=TIMES, seen=TIMES, user=TEXT)
    def write_then_restart(titles, created, seen, user):
        items = [
            {
                "item_id": f"new{next(counter)}",
                "title": t,
                "category": t[:5],
                "created_at": created.isoformat(),
            }
            for t in titles
        ]
        events = [
            {"user_id": user, "item_id": i["item_id"], "event": "click", "ts": seen.isoformat()}
            for i in items
        ]
        client = _restart("recommender", artifact, state)
        try:
            assert client.post(f"{url}/items", json={"items": items}).status_code == 200
            assert client.post(f"{url}/events", json={"events": events}).status_code == 200
        finally:
            client.__exit__(None, None, None)
        again = _restart("recommender", artifact, state)
        try:
            runtime = again.app.state.runtime
            titles_by_id = {r["item_id"]: r["title"] for r in runtime.catalogue.records}
            for item in items:
                assert titles_by_id[item["item_id"]] == item["title"]
                assert again.get(f"{url}/items/{item['item_id']}/similar").status_code == 200
            assert user in runtime.history.users
            posted = again.post(f"{url}/recommend", json={"user_id": user, "k": 3})
            assert posted.status_code == 200, posted.text
            assert posted.json()["user_id"] == user and not posted.json()["cold_start"]
            if user not in (".", ".."):  # clients normalise dot segments out of a URL
                path = f"{url}/users/{quote(user, safe='')}/recommendations"
                recs = again.get(path, params={"k": 3})
                assert recs.status_code == 200, recs.text
                assert recs.json()["items"] == posted.json()["items"]
        finally:
            again.__exit__(None, None, None)

    write_then_restart()
