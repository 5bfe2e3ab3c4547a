"""The monitor's views: an analyst's HTML dashboard and the same charts as a PNG report.

The page (`static/dashboard.html`, with its CSS and script inlined) draws with plotly.js, which
the service itself serves from the `plotly` package (`static/plotly.min.js`, see `assets.py`):
no CDN, so it works offline. It has a from/to time range, a window, topic and entity filters and
a minimum volume per window (thinner windows are greyed out, not drawn as spikes); it draws
topic and entity alerts, lists them with their message, and shows the texts behind a point, a
bar or an alert (the `items` route, a page at a time). It refreshes every `refresh` seconds.
When the service requires an API key, the page asks for it once and sends it as `X-API-Key`
(kept in the tab's sessionStorage).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from .assets import plotly_version
from .store import Store

STATIC = Path(__file__).parent / "static"


@lru_cache(maxsize=1)
def _template() -> str:
    """The page with its stylesheet and script inlined (one request, nothing to go stale)."""
    page = (STATIC / "dashboard.html").read_text(encoding="utf-8")
    css = (STATIC / "dashboard.css").read_text(encoding="utf-8")
    script = (STATIC / "dashboard.js").read_text(encoding="utf-8")
    return page.replace("__CSS__", css).replace("__JS__", script)


def render_page(window: str = "6h", refresh_s: int = 10) -> str:
    """The dashboard HTML for one default window size and refresh period (in seconds)."""
    window_js = json.dumps(window).replace("<", "\\u003c")  # a JS string that cannot end the script
    return (
        _template()
        .replace("__WINDOW__", window_js)
        .replace("__REFRESH__", str(int(refresh_s)))
        .replace("__PLOTLY_VERSION__", plotly_version())
    )


def write_png_report(store: Store, out: str | Path, window: str = "6h") -> Path:
    """Writes one chart per topic (negative share, mean score, volume, alerts) to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from .monitor import trends

    series = trends(store, window=window)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = max(1, len(series))
    fig, axes = plt.subplots(rows, 1, figsize=(11, 2.4 * rows), sharex=True, squeeze=False)
    for ax, s in zip(axes[:, 0], series, strict=False):
        _plot_series(ax, s, pd)
    if not series:
        axes[0, 0].text(
            0.5, 0.5, "no scored items yet", ha="center", transform=axes[0, 0].transAxes
        )
    fig.suptitle(f"Financial sentiment by topic ({window} windows)")
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def _plot_series(ax, s: dict[str, Any], pd) -> None:
    t = pd.to_datetime([p["t"] for p in s["points"]])
    volume = ax.twinx()
    volume.bar(
        t,
        [p["volume"] for p in s["points"]],
        width=0.8 * (t[1] - t[0]) if len(t) > 1 else 0.2,
        color="#ddd",
        zorder=0,
    )
    volume.set_ylabel("volume", fontsize=8)
    ax.set_zorder(volume.get_zorder() + 1)
    ax.patch.set_visible(False)
    ax.plot(t, [p["negative_share"] for p in s["points"]], color="#c0392b", label="negative share")
    ax.plot(t, [p["mean_score"] for p in s["points"]], color="#2c6fbb", label="mean score")
    for alert in s["alerts"]:
        ax.axvline(
            pd.Timestamp(alert["window_start"]), color="#c0392b", linestyle="--", linewidth=1
        )
        ax.plot([pd.Timestamp(alert["window_start"])], [1.0], marker="v", color="#c0392b")
    ax.set_ylim(-1.05, 1.1)
    ax.set_title(f"{s['scope']}: {s['key']} ({len(s['alerts'])} alerts)", fontsize=9, loc="left")
    ax.legend(fontsize=7, loc="lower left")
