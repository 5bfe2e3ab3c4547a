"""The routes behind the dashboard: `items` (drill-down with paging), `catalog`, `alerts` and
`trends` over a time range, and the bad inputs each must answer with a 422, never a 500."""

from __future__ import annotations

import pandas as pd
import pytest
from fastapi.testclient import TestClient

import finance_sentiment as fs
from finance_sentiment.config import AlertsConfig
from finance_sentiment.monitor import detect
from finance_sentiment.store import Store
from shared.serving import ServeSettings, create_app

URL = "/v1/finance_sentiment"


def _rows() -> list[tuple]:
    """Six days of quiet banking and energy items, then 12 negative Norvale Bank items."""
    rows, start = [], pd.Timestamp("2026-10-01")
    for h in range(0, 6 * 24, 2):
        ts = start + pd.Timedelta(hours=h, minutes=5)
        label = "negative" if h % 8 == 0 else "neutral"
        rows.append((f"b{h:03d}", str(ts), "Norvale Bank", "banking", label))
        rows.append(
            (f"e{h:03d}", str(ts + pd.Timedelta(minutes=20)), "Kestrel", "energy", "positive")
        )
    surge = start + pd.Timedelta(days=6)
    rows += [
        (
            f"s{i:02d}",
            str(surge + pd.Timedelta(minutes=15 * i + 1)),
            "Norvale Bank",
            "banking",
            "negative",
        )
        for i in range(12)
    ]
    return rows


@pytest.fixture
def client(fs_artifact, tmp_path, monkeypatch, add_scored):
    store = Store(tmp_path / "monitor.db")
    alerts = detect(store, AlertsConfig(), add_scored(store, _rows()))
    store.close()
    assert {a["scope"] for a in alerts} == {"topic", "entity"}
    monkeypatch.setenv("VERTICALS_FINANCE_DB", str(tmp_path / "monitor.db"))
    with TestClient(create_app(fs.VERTICAL, fs_artifact, ServeSettings(device="cpu"))) as c:
        yield c


def test_items_filter_by_topic_entity_label_and_time_newest_first(client):
    r = client.get(
        f"{URL}/items",
        params={
            "entity": "Norvale Bank",
            "start": "2026-10-07T00:00:00Z",
            "end": "2026-10-07T02:00Z",
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["total"], body["limit"], body["offset"]) == (8, 50, 0)
    assert [i["id"] for i in body["items"]] == [f"s{i:02d}" for i in range(7, -1, -1)]
    first = body["items"][0]
    assert first["text"] == "text s07" and first["label"] == "negative"
    assert (first["entity"], first["topic"], first["score"]) == ("Norvale Bank", "banking", -0.8)
    assert first["ts"].startswith("2026-10-07T01:46") and first["probs"]["negative"] == 1.0
    energy = client.get(f"{URL}/items", params={"topic": "energy", "limit": 500}).json()
    assert energy["total"] == 72 and {i["topic"] for i in energy["items"]} == {"energy"}
    neutral = client.get(f"{URL}/items", params={"topic": "banking", "label": "neutral"}).json()
    assert neutral["total"] == 54 and {i["label"] for i in neutral["items"]} == {"neutral"}
    none = client.get(f"{URL}/items", params={"entity": "Nobody"}).json()
    assert none == {"items": [], "total": 0, "limit": 50, "offset": 0}


def test_items_pages_cover_every_match_once(client):
    seen, offset = [], 0
    while True:
        page = client.get(
            f"{URL}/items", params={"topic": "banking", "limit": 25, "offset": offset}
        )
        body = page.json()
        assert body["total"] == 84 and len(body["items"]) <= 25
        if not body["items"]:
            break
        seen += [i["id"] for i in body["items"]]
        offset += 25
    assert len(seen) == len(set(seen)) == 84 and offset == 100


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 501},
        {"offset": -1},
        {"offset": 10**20},
        {"start": "yesterday"},
        {"end": "2400-01-01"},
        {"label": "bearish"},
        {"topic": "bank\x00ing"},
        {"start": "2026-10-02", "end": "2026-10-01"},
    ],
)
def test_items_bad_input_is_a_422_naming_the_field(client, params):
    r = client.get(f"{URL}/items", params=params)
    assert r.status_code == 422, r.text
    name = "end" if "end" in params and "start" in params else next(iter(params))
    assert name in r.json()["detail"]


def test_alerts_keep_the_windows_that_overlap_start_end(client):
    every = client.get(f"{URL}/alerts").json()["alerts"]
    assert len(every) == 4 and {a["window_start"] for a in every} == {"2026-10-07T00:00:00+00:00"}
    inside = client.get(f"{URL}/alerts", params={"start": "2026-10-07T05:00Z", "end": "2026-10-08"})
    assert len(inside.json()["alerts"]) == 4  # the 00:00-06:00 window overlaps
    for params in (
        {"start": "2026-10-07T06:00Z"},  # the window ends at 06:00, excluded
        {"end": "2026-10-07T00:00Z"},  # the window starts at 00:00, excluded
    ):
        assert client.get(f"{URL}/alerts", params=params).json()["alerts"] == []
    entity = client.get(f"{URL}/alerts", params={"scope": "entity", "start": "2026-10-01"})
    assert {(a["key"], a["rule"]) for a in entity.json()["alerts"]} == {
        ("Norvale Bank", "negative_share"),
        ("Norvale Bank", "volume"),
    }
    bad = client.get(f"{URL}/alerts", params={"start": "2026-10-08", "end": "2026-10-07"})
    assert bad.status_code == 422 and "is not after start" in bad.json()["detail"]
    assert client.get(f"{URL}/alerts", params={"end": "soon"}).status_code == 422


def test_trends_per_entity_within_a_topic_and_range(client):
    r = client.get(
        f"{URL}/trends",
        params={"topic": "banking", "scope": "entity", "window": "1D", "start": "2026-10-05"},
    )
    (series,) = r.json()["series"]
    assert (series["scope"], series["key"]) == ("entity", "Norvale Bank")
    assert [p["t"][:10] for p in series["points"]] == ["2026-10-05", "2026-10-06", "2026-10-07"]
    assert [a["scope"] for a in series["alerts"]] == ["entity", "entity"]
    early = client.get(f"{URL}/trends", params={"window": "1D", "end": "2026-10-03"}).json()
    assert all(s["alerts"] == [] for s in early["series"])  # the alerts fall after the range


def test_catalog_lists_the_span_topics_and_entities(client):
    body = client.get(f"{URL}/catalog").json()
    assert body["items"] == len(_rows())
    assert body["first"] == "2026-10-01T00:05:00+00:00" and body["last"].startswith(
        "2026-10-07T02:46"
    )
    assert body["topics"] == [{"key": "banking", "items": 84}, {"key": "energy", "items": 72}]
    assert body["entities"] == [
        {"key": "Kestrel", "items": 72, "topic": "energy"},
        {"key": "Norvale Bank", "items": 84, "topic": "banking"},
    ]
