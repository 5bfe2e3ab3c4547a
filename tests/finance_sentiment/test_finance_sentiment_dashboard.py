"""The dashboard in a real headless Chromium, and the PNG report."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

import finance_sentiment as fs
from finance_sentiment.config import AlertsConfig
from finance_sentiment.dashboard import write_png_report
from finance_sentiment.monitor import detect
from finance_sentiment.report import main as report_main
from finance_sentiment.store import Store
from shared.serving import ServeSettings, create_app

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _history(days: int = 6) -> list[tuple]:
    """Quiet banking and energy news for `days`, then a negative banking surge."""
    rows, start = [], pd.Timestamp("2026-10-01")
    for h in range(0, days * 24, 2):
        ts = start + pd.Timedelta(hours=h, minutes=5)
        rows.append(
            (f"b{h}", str(ts), "Norvale Bank", "banking", "negative" if h % 8 == 0 else "neutral")
        )
        rows.append(
            (f"e{h}", str(ts + pd.Timedelta(minutes=20)), "Kestrel Petroleum", "energy", "positive")
        )
    surge = start + pd.Timedelta(days=days)
    rows += [
        (
            f"s{i}",
            str(surge + pd.Timedelta(minutes=15 * i + 1)),
            "Norvale Bank",
            "banking",
            "negative",
        )
        for i in range(12)
    ]
    return rows


@pytest.fixture
def monitor_db(tmp_path, add_scored):
    store = Store(tmp_path / "monitor.db")
    alerts = detect(store, AlertsConfig(), add_scored(store, _history()))
    store.close()
    assert any(a["scope"] == "topic" and a["key"] == "banking" for a in alerts)
    return tmp_path / "monitor.db"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _serve(artifact, settings: ServeSettings):
    import uvicorn

    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(fs.VERTICAL, artifact, settings),
            host="127.0.0.1",
            port=port,
            log_level="warning",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(300):
            if server.started:
                break
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="needs Debian's chromium at /usr/bin/chromium "
    "(apt-get install -y chromium); CI installs it in .ci/run",
)


@needs_chromium
def test_dashboard_asks_for_the_api_key_and_sends_it(fs_artifact, monitor_db, monkeypatch):
    import httpx
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("VERTICALS_FINANCE_DB", str(monitor_db))
    with _serve(fs_artifact, ServeSettings(device="cpu", api_key="s3cret")) as base:
        url = f"{base}/v1/finance_sentiment"
        assert httpx.get(f"{url}/trends", timeout=30).status_code == 401  # data stays protected
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
            page = browser.new_page()
            page.goto(f"{url}/dashboard?window=6h&refresh=30")
            page.wait_for_selector("#keyform:not([hidden])", timeout=30_000)
            assert "API key needed" in page.text_content("#status")
            assert page.locator("svg.chart").count() == 0
            page.fill("#apikey", "wrong")
            page.click("#keyform button")
            page.wait_for_function(
                "document.getElementById('status').textContent.includes('wrong API key')",
                timeout=30_000,
            )
            page.fill("#apikey", "s3cret")
            page.click("#keyform button")
            page.wait_for_selector("svg.chart[data-key='banking'] path.neg-line", timeout=30_000)
            assert page.is_hidden("#keyform") and page.text_content("#status") == ""
            browser.close()


@pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="needs Debian's chromium at /usr/bin/chromium "
    "(apt-get install -y chromium); CI installs it in .ci/run",
)
def test_dashboard_draws_trends_and_alert_markers_and_refreshes(
    fs_artifact, monitor_db, monkeypatch
):
    import uvicorn
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("VERTICALS_FINANCE_DB", str(monitor_db))
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(fs.VERTICAL, fs_artifact, ServeSettings(device="cpu")),
            host="127.0.0.1",
            port=port,
            log_level="warning",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            if server.started:
                break
            time.sleep(0.1)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
            page = browser.new_page()
            page.goto(f"{base}/v1/finance_sentiment/dashboard?window=6h&refresh=1")
            page.wait_for_selector("svg.chart[data-key='banking'] path.neg-line", timeout=60_000)
            assert sorted(
                page.eval_on_selector_all("svg.chart", "els => els.map(e => e.dataset.key)")
            ) == ["banking", "energy"]
            assert page.locator("svg.chart[data-key='banking'] .alert-marker").count() >= 1
            assert page.locator("svg.chart[data-key='energy'] .alert-marker").count() == 0
            assert page.locator("tr.alert-row").count() >= 2  # the topic and the entity alerts
            first = page.text_content("#updated")
            import httpx  # new items arrive; the next refresh must draw them without a reload

            httpx.post(
                f"{base}/v1/finance_sentiment/ingest",
                timeout=30,
                json={
                    "items": [
                        {
                            "id": "n1",
                            "ts": "2026-10-07T03:00:00Z",
                            "text": "Corvane Therapeutics trial update",
                            "entity": "Corvane Therapeutics",
                        }
                    ]
                },
            ).raise_for_status()
            page.wait_for_function(
                f"document.getElementById('updated').textContent !== {first!r}", timeout=30_000
            )
            page.wait_for_function(
                "document.querySelectorAll('svg.chart').length === 3", timeout=30_000
            )
            assert page.text_content("#status") == ""
            browser.close()
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_png_report_from_the_module_entry(monitor_db, tmp_path):
    out = report_main(["--db", str(monitor_db), "--out", str(tmp_path / "r.png"), "--window", "6h"])
    png = Path(out["report"]).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert out["alerts"] >= 2 and out["items"] == len(_history())


def test_png_report_of_an_empty_store(tmp_path):
    store = Store(tmp_path / "empty.db")
    assert write_png_report(store, tmp_path / "e.png").stat().st_size > 1000
