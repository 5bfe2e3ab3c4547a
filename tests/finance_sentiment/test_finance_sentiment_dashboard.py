"""The dashboard in a real headless Chromium (every non-local request blocked), and the PNG report.

The service reads a monitor database filled from the project's own stream generator, scored with
the generator's true labels (so the charts and alerts mean something with a two-step model).
Screenshots go to `VERTICALS_SCREENSHOTS` (default /tmp) as `fin_dash_*.png`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import finance_sentiment as fs
from finance_sentiment.config import AlertsConfig
from finance_sentiment.dashboard import write_png_report
from finance_sentiment.generate import Event, make_stream
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
SHOTS = Path(os.environ.get("VERTICALS_SCREENSHOTS", "/tmp"))
EVENT = Event(start="2026-10-08 09:00:00+00:00", topic="banking", entity="Norvale Bank")
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="needs Debian's chromium at /usr/bin/chromium "
    "(apt-get install -y chromium); CI installs it in .ci/run",
)


def generated_store(path: Path, days: int = 10) -> tuple[int, list[dict]]:
    """A monitor DB of a generated `days`-day stream with a Norvale Bank event on day 8, scored
    with the generator's true sentiment and topic; returns (items, alerts)."""
    stream, _ = make_stream(days=days, seed=0, events=[EVENT])
    rng = np.random.default_rng(0)
    rows, results = [], []
    for r in stream.itertuples():
        rows.append(
            {"id": r.id, "ts": pd.Timestamp(r.ts), "source": r.source, "text": r.text}
            | {"entity": r.entity}
        )
        others = [n for n in ("negative", "neutral", "positive") if n != r.true_sentiment]
        top = rng.uniform(0.55, 0.95)
        rest = rng.dirichlet([1, 1]) * (1 - top)
        probs = {r.true_sentiment: top, others[0]: rest[0], others[1]: rest[1]}
        score = probs["positive"] - probs["negative"]
        results.append(
            {"label": r.true_sentiment, "score": score, "probs": probs, "topic": r.true_topic}
        )
    store = Store(path)
    store.add_items(rows)
    store.set_scores([r["id"] for r in rows], results)
    scored = [{**row, "topic": res["topic"]} for row, res in zip(rows, results, strict=True)]
    alerts = detect(store, AlertsConfig(), scored)
    store.close()
    return len(rows), alerts


@pytest.fixture(scope="module")
def generated_db(tmp_path_factory):
    path = tmp_path_factory.mktemp("fin_dash") / "monitor.db"
    n, alerts = generated_store(path)
    assert {(a["scope"], a["key"]) for a in alerts} >= {
        ("topic", "banking"),
        ("entity", "Norvale Bank"),
    }
    return path, n


@pytest.fixture
def stream_db(generated_db, tmp_path):
    """(a private copy of the generated monitor DB, its number of items)."""
    path, n = generated_db
    for suffix in ("", "-wal"):
        if Path(f"{path}{suffix}").exists():
            shutil.copy(f"{path}{suffix}", tmp_path / f"monitor.db{suffix}")
    return tmp_path / "monitor.db", n


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _serve(artifact, settings: ServeSettings):
    import uvicorn

    app = create_app(fs.VERTICAL, artifact, settings)
    port = _free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
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


@contextlib.contextmanager
def _browser(base: str, width: int = 1400):
    """A Chromium page that may reach `base` only; yields (page, blocked request URLs)."""
    from playwright.sync_api import sync_playwright

    blocked: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": width, "height": 1000})

        def only_local(route):
            if route.request.url.startswith(base):
                return route.continue_()
            blocked.append(route.request.url)
            return route.abort()

        page.route("**/*", only_local)
        try:
            yield page, blocked
        finally:
            browser.close()


def _plot(page, key: str, what: str):
    """Evaluates `what` (a JS expression of `gd`, the plotly div) on the chart of `key`."""
    return page.eval_on_selector(
        f".card[data-key='{key}'] .js-plotly-plot",
        f"gd => {{ const trace = n => gd.data.find(t => t.name === n); return {what}; }}",
    )


def _keys(page) -> list[str]:
    return page.eval_on_selector_all(".card", "els => els.map(e => e.dataset.key)")


@needs_chromium
def test_dashboard_asks_for_the_api_key_and_sends_it(fs_artifact, stream_db, monkeypatch):
    import httpx

    monkeypatch.setenv("VERTICALS_FINANCE_DB", str(stream_db[0]))
    with _serve(fs_artifact, ServeSettings(device="cpu", api_key="s3cret")) as base:
        url = f"{base}/v1/finance_sentiment"
        for path in ("trends", "items", "catalog", "alerts"):
            assert httpx.get(f"{url}/{path}", timeout=30).status_code == 401  # data protected
        assert httpx.get(f"{url}/static/plotly.min.js", timeout=30).status_code == 200
        with _browser(base) as (page, blocked):
            page.goto(f"{url}/dashboard?window=6h&refresh=30")
            page.wait_for_selector("#keyform:not([hidden])", timeout=30_000)
            assert "API key needed" in page.text_content("#status")
            assert page.locator(".js-plotly-plot").count() == 0
            page.fill("#apikey", "wrong")
            page.click("#keyform button")
            page.wait_for_function(
                "document.getElementById('status').textContent.includes('wrong API key')",
                timeout=30_000,
            )
            page.fill("#apikey", "s3cret")
            page.click("#keyform button")
            page.wait_for_selector(".card[data-key='banking'] .js-plotly-plot", timeout=30_000)
            assert page.is_hidden("#keyform") and page.text_content("#status") == ""
            assert blocked == []


@needs_chromium
def test_dashboard_charts_filters_alerts_and_texts(fs_artifact, stream_db, monkeypatch):
    import httpx
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    monkeypatch.setenv("VERTICALS_FINANCE_DB", str(stream_db[0]))
    with (
        _serve(fs_artifact, ServeSettings(device="cpu")) as base,
        _browser(base) as (page, blocked),
    ):
        page.goto(f"{base}/v1/finance_sentiment/dashboard?window=6h&refresh=2")
        page.wait_for_function(
            "document.querySelectorAll('.js-plotly-plot').length === 5", timeout=60_000
        )
        assert _keys(page) == ["banking", "energy", "pharma", "retail", "technology"]
        assert page.text_content("#status") == ""
        # real axes: the score on -1..1 with its ticks, the share in %, dates on x
        assert _plot(page, "banking", "gd._fullLayout.yaxis.range") == pytest.approx([-1.08, 1.22])
        ticks = page.eval_on_selector_all(
            ".card[data-key='banking'] :is(.ytick, .y2tick, .y3tick) text",
            "els => els.map(e => e.textContent)",
        )
        assert {"−1", "0", "1", "0%", "100%"} <= set(ticks), ticks
        dates = page.eval_on_selector_all(
            ".card[data-key='banking'] .xtick text", "els => els.map(e => e.textContent)"
        )
        assert len(dates) >= 5 and any("Oct" in d for d in dates), dates
        # full width, and it follows the window
        width = page.eval_on_selector(
            ".card[data-key='banking'] .main-svg", "e => e.getBoundingClientRect().width"
        )
        assert width > 1300
        # both the topic alerts and Norvale Bank's entity alert are drawn on banking's chart
        symbols = _plot(page, "banking", "trace('alerts').marker.symbol")
        assert "triangle-down" in symbols and "diamond" in symbols
        assert _plot(page, "energy", "trace('alerts')") is None
        rows = page.locator("tr.alert-row")
        assert rows.count() == 3
        messages = " | ".join(rows.all_text_contents())
        assert (
            "surge for entity 'Norvale Bank'" in messages
            and "surge for topic 'banking'" in messages
        )
        page.screenshot(path=str(SHOTS / "fin_dash_overview.png"), full_page=True)

        # an alert opens the texts behind it, a page at a time
        page.locator("tr.alert-row[data-scope='entity']").click()
        page.wait_for_selector("#drill:not([hidden]) tr.item-row", timeout=30_000)
        assert "Norvale Bank" in page.text_content("#drill-title")
        texts = page.locator("#drill tr.item-row").all_text_contents()
        assert texts and all("Norvale Bank" in t for t in texts)
        shown = page.text_content("#drill-range")
        assert shown.startswith("1–") and int(shown.split(" of ")[1]) >= 10  # the alert's volume
        page.select_option("#drill-label", "negative")
        page.wait_for_function(
            "[...document.querySelectorAll('#drill tr.item-row .label')]"
            ".every(e => e.textContent === 'negative')"
        )
        assert page.locator("#drill tr.item-row").count() >= 6
        page.screenshot(path=str(SHOTS / "fin_dash_drill.png"))

        # a chart's texts, a page at a time
        page.click(".card[data-key='banking'] .card-head button")
        page.wait_for_function(
            "document.getElementById('drill-range').textContent === '1–25 of 160'"
        )
        page.click("#drill-next")
        page.wait_for_function(
            "document.getElementById('drill-range').textContent === '26–50 of 160'"
        )
        assert page.locator("#drill tr.item-row").count() == 25
        page.click("#drill-close")
        page.wait_for_selector("#drill", state="hidden")

        # a click on a chart point opens that window's texts (plotly hovers on mouse movement;
        # under load a redraw can move the point, so the hover-and-click is tried again)
        point = page.locator(".card[data-key='energy'] .scatterlayer .trace:first-child .point")
        for attempt in range(4):
            point.nth(3).scroll_into_view_if_needed()
            page.wait_for_timeout(300)
            bounds = point.nth(3).bounding_box()
            x, y = bounds["x"] + bounds["width"] / 2, bounds["y"] + bounds["height"] / 2
            page.mouse.move(x - 40, y)
            page.mouse.move(x, y, steps=5)
            try:
                page.wait_for_selector(
                    ".card[data-key='energy'] .hoverlayer .hovertext", timeout=5_000
                )
                page.mouse.click(x, y)
                page.wait_for_function(
                    "!document.querySelector('#drill').hidden && document.querySelector"
                    "('#drill-title').textContent.startsWith('topic energy')",
                    timeout=10_000,
                )
                break
            except PlaywrightTimeout:
                if attempt == 3:
                    raise
        assert page.text_content("#drill-title").startswith("topic energy: 2026-10-")
        page.click("#drill-close")

        # filters: a topic, then one entity, then the entities of the topic
        page.select_option("#topic", "banking")
        page.wait_for_function("document.querySelectorAll('.card').length === 1")
        assert _keys(page) == ["banking"] and page.locator("tr.alert-row").count() == 3
        page.select_option("#entity", "Norvale Bank")
        page.wait_for_selector(
            ".card[data-scope='entity'][data-key='Norvale Bank'] .js-plotly-plot"
        )
        assert page.eval_on_selector_all("tr.alert-row", "els => els.map(e => e.dataset.key)") == [
            "Norvale Bank"
        ]
        page.select_option("#entity", "")
        page.select_option("#scope", "entity")
        page.wait_for_function("document.querySelectorAll('.card[data-scope=entity]').length === 2")
        assert _keys(page) == ["Halcrest Financial", "Norvale Bank"]
        assert "scope=entity" in page.url and "topic=banking" in page.url

        # the time range and the window change what is drawn
        before = _plot(page, "Norvale Bank", "gd.data[0].x.length")
        page.fill("#start", "2026-10-07T00:00")
        page.fill("#end", "2026-10-09T00:00")
        page.dispatch_event("#end", "change")
        page.wait_for_function(
            "document.querySelector(\".card[data-key='Norvale Bank'] .js-plotly-plot\").data[0].x.length === 8"
        )
        assert before > 8
        assert _plot(page, "Norvale Bank", "gd._fullLayout.xaxis.range.map(String)")[0].startswith(
            "2026-10-07"
        )
        page.select_option("#window", "1h")
        page.wait_for_function(
            "document.querySelector(\".card[data-key='Norvale Bank'] .js-plotly-plot\").data[0].x.length === 48"
        )
        # thin windows: out of the line, drawn as grey open circles instead
        drawn = _plot(page, "Norvale Bank", "gd.data[0].y.filter(v => v !== null).length")
        thin = _plot(page, "Norvale Bank", "gd.data[1].y.filter(v => v !== null).length")
        assert thin > 0 and drawn > 0
        page.fill("#minvol", "1000")
        page.dispatch_event("#minvol", "change")
        page.wait_for_function(
            "document.querySelector(\".card[data-key='Norvale Bank'] .js-plotly-plot\").data[0].y.every(v => v === null)"
        )
        page.fill("#minvol", "3")
        page.dispatch_event("#minvol", "change")
        page.set_viewport_size({"width": 900, "height": 1000})
        page.wait_for_function(
            "document.querySelector('.card .main-svg').getBoundingClientRect().width < 880"
        )
        page.screenshot(path=str(SHOTS / "fin_dash_filtered.png"), full_page=True)

        # new items arrive: the next refresh draws them without a reload
        assert page.text_content("#summary").startswith(f"{stream_db[1]} scored items")
        item = {"id": "n1", "ts": "2026-10-08T03:00:00Z", "text": "Pennick Market update"}
        httpx.post(
            f"{base}/v1/finance_sentiment/ingest", timeout=30, json={"items": [item]}
        ).raise_for_status()
        page.wait_for_function(
            "document.getElementById('summary').textContent"
            f".startsWith('{stream_db[1] + 1} scored items')",
            timeout=30_000,
        )
        assert page.text_content("#status") == ""
    assert blocked == []


def test_plotly_bundle_is_served_gzipped_with_caching(fs_artifact, tmp_path, monkeypatch):
    from fastapi.testclient import TestClient

    monkeypatch.setenv("VERTICALS_FINANCE_DB", str(tmp_path / "monitor.db"))
    settings = ServeSettings(device="cpu", api_key="s3cret")
    with TestClient(create_app(fs.VERTICAL, fs_artifact, settings)) as c:
        url = "/v1/finance_sentiment/static/plotly.min.js"
        r = c.get(url, headers={"Accept-Encoding": "gzip"})  # public, like the page
        assert r.status_code == 200 and r.headers["content-encoding"] == "gzip"
        assert r.headers["content-type"].startswith("text/javascript")
        assert "max-age" in r.headers["cache-control"] and r.headers["etag"]
        assert b"plotly.js" in r.content[:200] and len(r.content) > 1_000_000
        again = c.get(url, headers={"If-None-Match": r.headers["etag"]})
        assert again.status_code == 304 and not again.content
        page = c.get("/v1/finance_sentiment/dashboard").text
        assert 'src="static/plotly.min.js?v=' in page and "cdn" not in page.lower()
        assert url not in c.get("/openapi.json", headers={"X-API-Key": "s3cret"}).text


def test_png_report_from_the_module_entry(stream_db, tmp_path):
    path, n = stream_db
    out = report_main(["--db", str(path), "--out", str(tmp_path / "r.png"), "--window", "6h"])
    png = Path(out["report"]).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert out["alerts"] == 3 and out["items"] == n


def test_png_report_of_an_empty_store(tmp_path):
    store = Store(tmp_path / "empty.db")
    assert write_png_report(store, tmp_path / "e.png").stat().st_size > 1000
