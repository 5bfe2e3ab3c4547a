"""`/docs` and `/redoc` render in a real headless Chromium with every non-local request blocked."""

from __future__ import annotations

import os
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from shared.config import load_config
from shared.registry import get_vertical
from shared.serving import ServeSettings, create_app

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
]


@contextmanager
def _serve(app):
    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 60
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")
def test_swagger_ui_and_redoc_render_with_no_network(toy_vertical, tmp_path):
    from playwright.sync_api import sync_playwright

    vertical = get_vertical(toy_vertical)
    cfg = load_config(vertical.config_cls, overrides={"trainer": {"epochs": 2}})
    artifact = vertical.train(cfg, vertical.example_data(tmp_path / "data"), tmp_path / "run")
    blocked: list[tuple[str, str]] = []
    shots = Path(os.environ.get("VERTICALS_SCREENSHOTS", tmp_path))
    with _serve(create_app(vertical, artifact, ServeSettings(device="cpu"))) as base:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
            page = browser.new_page(viewport={"width": 1200, "height": 900})

            def only_local(route):
                if route.request.url.startswith(base):
                    return route.continue_()
                blocked.append((route.request.resource_type, route.request.url))
                return route.abort()

            page.route("**/*", only_local)
            page.goto(f"{base}/docs")
            page.wait_for_selector(".opblock-summary-path", timeout=30_000)
            paths = page.locator(".opblock-summary-path").all_text_contents()
            assert any("/v1/toy/predict" in t for t in paths), paths
            page.screenshot(path=str(shots / "docs.png"))
            page.goto(f"{base}/redoc")
            page.wait_for_function(
                "document.body.innerText.includes('/v1/toy/predict')", timeout=30_000
            )
            page.screenshot(path=str(shots / "redoc.png"))
            browser.close()
    # ReDoc's footer links its maker's logo from a CDN: a decoration, blocked, the page whole.
    needed = [(kind, url) for kind, url in blocked if kind != "image"]
    assert needed == [], f"the docs pages needed the network for {needed}"
