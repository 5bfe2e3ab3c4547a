"""The service routes with a tiny trained artifact: scoring, ingest, files, trends, alerts, recovery."""

from __future__ import annotations

import pandas as pd
import pytest
from fastapi.testclient import TestClient

import finance_sentiment as fs
from finance_sentiment.model import aggregate, split_sentences
from finance_sentiment.settings import FinanceSettings
from shared.registry import load_runtime
from shared.serving import ServeSettings, create_app

URL = "/v1/finance_sentiment"


@pytest.fixture
def client(fs_artifact, tmp_path, monkeypatch):
    monkeypatch.setenv("VERTICALS_FINANCE_DB", str(tmp_path / "monitor.db"))
    with TestClient(create_app(fs.VERTICAL, fs_artifact, ServeSettings(device="cpu"))) as c:
        yield c


def test_aggregation_rule_lets_an_opinionated_sentence_outweigh_neutral_ones():
    neutral = [0.05, 0.9, 0.05]
    negative = [0.9, 0.05, 0.05]
    p = aggregate(__import__("numpy").array([neutral, neutral, neutral, negative]))
    assert p.argmax() == 0 and p.sum() == pytest.approx(1.0)
    assert split_sentences("Profit fell 3%. The CEO left! Shares rose $4.50 today.") == [
        "Profit fell 3%.",
        "The CEO left!",
        "Shares rose $4.50 today.",
    ]


def test_score_returns_probabilities_score_and_topic_and_rejects_empty_rows(client):
    long_text = " ".join(["Norvale Bank reported results in line with expectations."] * 8)
    r = client.post(f"{URL}/score", json={"texts": ["Norvale Bank cuts outlook", "  ", long_text]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["rejected"] == [{"row": 2, "id": None, "reason": "empty text"}]
    first, skipped, article = body["results"]
    assert skipped is None
    assert sum(first["probs"].values()) == pytest.approx(1.0, abs=1e-4)
    assert first["score"] == pytest.approx(
        first["probs"]["positive"] - first["probs"]["negative"], abs=1e-6
    )
    assert first["topic"] in {"banking", "energy", "technology", "retail", "pharma"}
    assert article["sentences"] == 8


def test_score_bad_requests_are_4xx_with_reasons(client):
    r = client.post(f"{URL}/score", json={"texts": ["", " "]})
    assert r.status_code == 422 and "every text is empty" in r.json()["detail"]
    r = client.post(f"{URL}/score", json={"texts": []})
    assert r.status_code == 422 and "texts" in r.json()["detail"]
    r = client.post(
        f"{URL}/score", content=b'{"texts": ["\xff"]}', headers={"content-type": "application/json"}
    )
    assert 400 <= r.status_code < 500


def test_ingest_stores_dedupes_and_rejects_row_by_row(client):
    items = [
        {
            "id": "1",
            "ts": "2026-10-01T09:00:00Z",
            "text": "Norvale Bank cuts outlook",
            "entity": "Norvale Bank",
        },
        {"id": "2", "ts": "not-a-date", "text": "Bad time"},
        {"id": "3", "ts": "2026-10-01T10:00:00Z", "text": ""},
        {"id": "1", "ts": "2026-10-01T11:00:00Z", "text": "same id again"},
        {"id": "5", "ts": "2026-10-01T12:00:00Z", "text": "norvale bank  cuts outlook"},
        {"id": "6", "ts": "2026-10-02T12:00:00Z", "text": "Quillon Systems beats expectations"},
    ]
    r = client.post(f"{URL}/ingest", json={"items": items})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["accepted"], body["duplicates"]) == (2, 2)
    assert [(x["row"], x["id"]) for x in body["rejected"]] == [(2, "2"), (3, "3")]
    assert "bad timestamp" in body["rejected"][0]["reason"]
    series = client.get(f"{URL}/trends", params={"window": "1D"}).json()["series"]
    assert sum(p["volume"] for s in series for p in s["points"]) == 2
    entity = client.get(f"{URL}/trends", params={"entity": "Norvale Bank", "window": "6h"}).json()[
        "series"
    ]
    assert [s["key"] for s in entity] == ["Norvale Bank"] and entity[0]["scope"] == "entity"
    assert client.get(f"{URL}/trends", params={"window": "soon"}).status_code == 400
    assert client.get(f"{URL}/alerts").json() == {"alerts": []}
    assert client.get(f"{URL}/alerts", params={"scope": "galaxy"}).status_code == 422


def test_ingest_file_upload_keeps_good_rows_of_a_file_with_bad_bytes(client):
    data = (
        b"id,ts,source,text,entity\n10,2026-10-03T00:00:00Z,news,Kestrel Petroleum raises guidance,Kestrel\n"
        b"11,2026-10-03T01:00:00Z,news,Broken \xff text,Kestrel\n12,2026-10-03T02:00:00Z,news,,Kestrel\n"
    )
    r = client.post(f"{URL}/ingest/file", files={"file": ("feed.csv", data, "text/csv")})
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 1
    assert [(x["row"], x["reason"][:11]) for x in r.json()["rejected"]] == [
        (2, "undecodable"),
        (3, "empty text"),
    ]
    r = client.post(
        f"{URL}/ingest/file", files={"file": ("feed.xlsx", b"x", "application/octet-stream")}
    )
    assert r.status_code == 415 and "must be .csv or .jsonl" in r.json()["detail"]


def test_dashboard_page_is_served(client):
    r = client.get(f"{URL}/dashboard", params={"window": "1D", "refresh": 5})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert (
        'WINDOW="1D"' in r.text
        and "setInterval(refresh,REFRESH)" in r.text
        and "REFRESH=5*1000" in r.text
    )


def test_with_an_api_key_only_the_dashboard_shell_is_public(fs_artifact, tmp_path, monkeypatch):
    monkeypatch.setenv("VERTICALS_FINANCE_DB", str(tmp_path / "monitor.db"))
    settings = ServeSettings(device="cpu", api_key="s3cret")
    with TestClient(create_app(fs.VERTICAL, fs_artifact, settings)) as c:
        assert c.get(f"{URL}/dashboard").status_code == 200  # no data in the page itself
        for path in ("trends", "alerts"):
            assert c.get(f"{URL}/{path}").status_code == 401
            assert c.get(f"{URL}/{path}", headers={"X-API-Key": "s3cret"}).status_code == 200
        assert c.post(f"{URL}/score", json={"texts": ["x"]}).status_code == 401


def test_crash_between_store_and_score_is_recovered_on_restart(fs_artifact, tmp_path):
    settings = FinanceSettings(device="cpu", finance_db=tmp_path / "m.db")
    runtime = load_runtime(fs.VERTICAL, fs_artifact, settings)
    step = runtime.accept(
        [{"id": "a", "ts": "2026-10-01T00:00:00Z", "text": "Pennick Market cuts jobs"}]
    )
    assert len(step["inserted"]) == 1
    runtime.close()  # "crash": stored, never scored
    restarted = load_runtime(fs.VERTICAL, fs_artifact, settings)
    try:
        assert restarted.store.unscored() == []
        assert restarted.store.scored_frame()["id"].tolist() == ["a"]
    finally:
        restarted.close()


def test_watched_folder_ingests_new_files_once(fs_artifact, tmp_path):
    folder = tmp_path / "inbox"
    folder.mkdir()
    runtime = load_runtime(
        fs.VERTICAL, fs_artifact, FinanceSettings(device="cpu", finance_db=tmp_path / "m.db")
    )
    try:
        from finance_sentiment.ingest import FolderWatcher

        watcher = FolderWatcher(folder, runtime.store, runtime.ingest_file, settle_s=0)
        pd.DataFrame(
            {
                "id": ["f1", "f2"],
                "ts": ["2026-10-01T00:00:00Z", "bad"],
                "source": "news",
                "text": ["Marlowe Stores posts record profit", "x"],
            }
        ).to_csv(folder / "a.csv", index=False)
        (folder / "b.jsonl").write_text(
            '{"id": "f3", "ts": "2026-10-01T02:00:00Z", "text": "Elmsworth Pharma trial"}\n'
        )
        (folder / "notes.txt").write_text("ignored")
        summaries = watcher.poll_once()
        assert [(s["accepted"], len(s["rejected"])) for s in summaries] == [(1, 1), (1, 0)]
        assert watcher.poll_once() == []  # already ingested
        assert runtime.store.count_items() == 2
    finally:
        runtime.close()


def test_evaluate_reports_accuracy_on_a_labelled_file(fs_artifact, tmp_path):
    data = fs.example_data(tmp_path / "d")
    runtime = load_runtime(
        fs.VERTICAL, fs_artifact, FinanceSettings(device="cpu", finance_db=tmp_path / "m.db")
    )
    try:
        metrics = fs.evaluate(runtime, data).metrics
    finally:
        runtime.close()
    assert {"accuracy", "macro_f1", "ece"} <= set(metrics) and 0.0 <= metrics["accuracy"] <= 1.0
