"""Store (dedupe, persistence), windows, alert rules, cooldown, webhook and alert quality."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pandas as pd
import pytest

from finance_sentiment.config import AlertsConfig, NegativeShareRule, VolumeRule
from finance_sentiment.monitor import detect, dispatch, parse_window, trends, window_table
from finance_sentiment.quality import alert_quality
from finance_sentiment.store import Store
from shared.errors import InputError


def _background(
    days: int, per_window: int, neg_every: int, key="Norvale Bank", topic="banking", prefix="b"
):
    """`per_window` items per 6h window, every `neg_every`-th negative."""
    rows, n = [], 0
    start = pd.Timestamp("2026-10-01")
    for w in range(days * 4):
        for j in range(per_window):
            ts = start + pd.Timedelta(hours=6 * w) + pd.Timedelta(minutes=30 * j + 1)
            rows.append(
                (
                    f"{prefix}{n}",
                    str(ts),
                    key,
                    topic,
                    "negative" if n % neg_every == 0 else "neutral",
                )
            )
            n += 1
    return rows


def _burst(prefix: str, entity: str, topic: str, every_min: int, offset_min: int, n: int = 20):
    """`n` positive items about `entity`, one every `every_min` minutes from 2026-10-05."""
    start = pd.Timestamp("2026-10-05 00:00")
    return [
        (
            f"{prefix}{i}",
            str(start + pd.Timedelta(minutes=every_min * i + offset_min)),
            entity,
            topic,
            "positive",
        )
        for i in range(n)
    ]


def test_store_drops_duplicates_by_id_and_text_and_survives_reopen(tmp_path):
    store = Store(tmp_path / "m.db")
    ts = pd.Timestamp("2026-10-01", tz="UTC")
    rows = [
        {"id": "1", "ts": ts, "source": "news", "text": "Norvale Bank cuts outlook"},
        {"id": "1", "ts": ts, "source": "news", "text": "different text, same id"},
        {"id": "2", "ts": ts, "source": "news", "text": "  NORVALE bank   cuts outlook "},
    ]
    inserted, duplicates = store.add_items(rows)
    assert [r["id"] for r in inserted] == ["1"] and duplicates == 2
    store.close()
    reopened = Store(tmp_path / "m.db")  # a restart loses nothing; unscored items wait for recovery
    assert reopened.count_items() == 1
    assert [u["id"] for u in reopened.unscored()] == ["1"]


def test_window_table_counts_volume_share_and_empty_windows(tmp_path, add_scored):
    store = Store(tmp_path / "m.db")
    add_scored(
        store,
        [
            ("a", "2026-10-01 01:00", "X", "banking", "negative"),
            ("b", "2026-10-01 02:00", "X", "banking", "positive"),
            ("c", "2026-10-01 13:00", "X", "banking", "negative"),
        ],
    )
    table = window_table(store.scored_frame(), "topic", parse_window("6h"))
    assert table["volume"].tolist() == [2, 0, 1]
    assert table["negative_share"].tolist()[0] == 0.5 and pd.isna(
        table["negative_share"].tolist()[1]
    )
    series = trends(store, window="1D", topic="banking")
    assert series[0]["points"][0]["volume"] == 3 and series[0]["points"][0][
        "mean_score"
    ] == pytest.approx(-0.2667, abs=1e-3)


def test_negative_surge_fires_once_at_the_first_decisive_item_then_cools_down(tmp_path, add_scored):
    store = Store(tmp_path / "m.db")
    cfg = AlertsConfig(
        window="6h",
        cooldown_windows=4,
        negative_share=NegativeShareRule(z_threshold=3.0, min_volume=5),
    )
    assert (
        detect(store, cfg, add_scored(store, _background(days=5, per_window=6, neg_every=4))) == []
    )
    surge_start = pd.Timestamp("2026-10-06 00:00")
    surge = [
        (
            f"s{i}",
            str(surge_start + pd.Timedelta(minutes=20 * i + 1)),
            "Norvale Bank",
            "banking",
            "negative" if i % 6 else "neutral",
        )
        for i in range(14)
    ]
    alerts = []
    for row in surge:  # item by item, as a live feed
        alerts += detect(store, cfg, add_scored(store, [row]))
    neg = [a for a in alerts if a["rule"] == "negative_share"]
    assert {(a["scope"], a["key"]) for a in neg} == {
        ("topic", "banking"),
        ("entity", "Norvale Bank"),
    }
    assert all(a["window_start"] == "2026-10-06T00:00:00+00:00" for a in neg)
    assert pd.Timestamp(neg[0]["detected_at"]) < (surge_start + pd.Timedelta(hours=2)).tz_localize(
        "UTC"
    )
    next_window = [
        (
            f"t{i}",
            str(surge_start + pd.Timedelta(hours=6, minutes=10 * i)),
            "Norvale Bank",
            "banking",
            "negative",
        )
        for i in range(8)
    ]
    assert [
        a
        for a in detect(store, cfg, add_scored(store, next_window))
        if a["rule"] == "negative_share"
    ] == []
    assert len(store.alerts(scope="topic", key="banking")) == len(
        [a for a in alerts if a["scope"] == "topic"]
    )


def test_min_volume_and_history_guard_against_early_alerts(tmp_path, add_scored):
    store = Store(tmp_path / "m.db")
    cfg = AlertsConfig(min_baseline_windows=4, negative_share=NegativeShareRule(min_volume=5))
    rows = _background(days=1, per_window=4, neg_every=4)  # one day: 4 windows of history at most
    rows += [
        ("n1", "2026-10-02 01:00", "Norvale Bank", "banking", "negative"),
        ("n2", "2026-10-02 01:10", "Norvale Bank", "banking", "negative"),
    ]
    assert [
        a for a in detect(store, cfg, add_scored(store, rows)) if a["rule"] == "negative_share"
    ] == []


def test_volume_spike_alert(tmp_path, add_scored):
    store = Store(tmp_path / "m.db")
    cfg = AlertsConfig(volume=VolumeRule(z_threshold=4.0, min_volume=10))
    detect(store, cfg, add_scored(store, _background(days=4, per_window=3, neg_every=1000)))
    spike = _burst("v", "Kestrel Petroleum", "energy", every_min=10, offset_min=1)
    spike += _burst("w", "Norvale Bank", "banking", every_min=15, offset_min=3)
    alerts = detect(store, cfg, add_scored(store, spike))
    assert ("volume", "entity", "Norvale Bank") in {
        (a["rule"], a["scope"], a["key"]) for a in alerts
    }
    # Kestrel has no history before the spike: its quiet windows count as zero volume.
    assert all(a["rule"] == "volume" for a in alerts)


def test_webhook_receives_each_alert_and_a_dead_webhook_does_not_raise():
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    alert = {"message": "negative share surge", "key": "banking", "rule": "negative_share"}
    try:
        assert dispatch([alert], f"http://127.0.0.1:{server.server_port}/hook") == 1
    finally:
        server.shutdown()
    assert received == [{"alert": alert}]
    assert dispatch([alert], "http://127.0.0.1:9/nothing-listens", timeout_s=0.5) == 0


@pytest.mark.parametrize("window", ["fortnightly", "NaT", "nan", ""])
def test_bad_window_is_a_400_naming_the_value(window):
    with pytest.raises(InputError, match=f"{window!r} is not a duration") as err:
        parse_window(window)
    assert err.value.status_code == 400


def test_alert_quality_counts_found_false_alarms_and_delay():
    events = [
        {
            "start": "2026-10-21T09:00:00+00:00",
            "topic": "banking",
            "entity": "Norvale Bank",
            "hours": 30,
        }
    ]
    alerts = [
        {"scope": "entity", "key": "Norvale Bank", "detected_at": "2026-10-21T11:30:00+00:00"},
        {"scope": "topic", "key": "banking", "detected_at": "2026-10-21T12:00:00+00:00"},
        {"scope": "topic", "key": "energy", "detected_at": "2026-10-21T12:00:00+00:00"},
        {"scope": "topic", "key": "banking", "detected_at": "2026-10-10T12:00:00+00:00"},
    ]
    q = alert_quality(alerts, events, "6h")
    assert (q["events_found"], q["false_alarms"], q["mean_delay_hours"]) == (1.0, 2.0, 2.5)
