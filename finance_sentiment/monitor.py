"""Windows per topic and entity, and the surge alert rules (see `AlertsConfig`).

Alerts go to the log, to the `alerts` table and, when a webhook URL is set, to an HTTP POST.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from shared.errors import InputError

from .config import AlertsConfig
from .store import Store

log = logging.getLogger(__name__)
SCOPES = ("topic", "entity")


def parse_window(window: str) -> pd.Timedelta:
    """`"6h"`, `"1D"`, `"30min"` -> Timedelta; a 400 naming the value when it is not one."""
    try:
        delta = pd.Timedelta(window)
    except (ValueError, TypeError):
        raise InputError(
            f"window {window!r} is not a duration such as '1h', '6h' or '1D'", 400
        ) from None
    if pd.isna(delta):  # "nat", "nan" and "" parse as NaT: not a duration either
        raise InputError(f"window {window!r} is not a duration such as '1h', '6h' or '1D'", 400)
    if delta < pd.Timedelta("1min"):
        raise InputError(f"window {window!r} is shorter than one minute", 400)
    return delta


MAX_TREND_POINTS = 20_000
"""Most points one trends answer may hold (windows times series): about 1 MB of JSON."""


def check_points(windows: int, keys: int, window: pd.Timedelta) -> None:
    """422 naming the cap and a window that fits, when `windows * keys` points exceed it."""
    if windows * keys <= MAX_TREND_POINTS:
        return
    fits = pd.Timedelta(
        seconds=min(window.total_seconds() * windows * max(keys, 1) / MAX_TREND_POINTS, 1e9)
    )
    hint = next(
        (w for w in ("1h", "6h", "1D", "7D", "30D", "365D") if pd.Timedelta(w) >= fits), None
    )
    advice = f"use window={hint} or more" if hint else "use a longer window"
    raise InputError(
        f"trends would hold {windows * keys} points ({windows} windows of {window} x {keys} "
        f"series), more than the cap of {MAX_TREND_POINTS}; {advice}, or narrow start/end, "
        "topic or entity"
    )


def window_table(
    df: pd.DataFrame,
    scope: str,
    window: pd.Timedelta,
    start: pd.Timestamp | None = None,
    end: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Per key and window: `volume`, `negatives`, `mean_score`, `negative_share` on a full grid.

    Windows with no items are present with volume 0 (a volume baseline needs its quiet windows).
    """
    columns = ["key", "window_start", "volume", "negatives", "mean_score", "negative_share"]
    df = df[df[scope].notna() & (df[scope] != "")] if len(df) else df
    if not len(df):
        return pd.DataFrame(columns=columns)
    origin = pd.Timestamp(0, tz="UTC")
    buckets = origin + ((df["ts"] - origin) // window) * window
    grouped = (
        df.assign(window_start=buckets, neg=(df["label"] == "negative").astype(int))
        .groupby([scope, "window_start"])
        .agg(volume=("score", "size"), negatives=("neg", "sum"), mean_score=("score", "mean"))
    )
    first = origin + ((start if start is not None else buckets.min()) - origin) // window * window
    last = end if end is not None else buckets.max()
    keys = sorted(df[scope].unique())
    # in seconds: two valid times may lie further apart than a pandas Timedelta reaches (292 y)
    span_s = last.timestamp() - first.timestamp()
    check_points(int(span_s // window.total_seconds()) + 1, len(keys), window)
    grid = pd.date_range(first, last, freq=window)
    full = grouped.reindex(pd.MultiIndex.from_product([keys, grid], names=[scope, "window_start"]))
    full[["volume", "negatives"]] = full[["volume", "negatives"]].fillna(0).astype(int)
    full["negative_share"] = full["negatives"] / full["volume"].replace(0, np.nan)
    return full.reset_index().rename(columns={scope: "key"})[columns]


def trends(
    store: Store,
    window: str = "1D",
    topic: str | None = None,
    entity: str | None = None,
    since: float | None = None,
    until: float | None = None,
    scope: str | None = None,
) -> list[dict[str, Any]]:
    """Series per topic or per entity with their alerts, for charts and the API.

    `topic` and `entity` keep only their items; `scope` says what a series is (default: entity
    when `entity` is given, else topic), so `topic="banking", scope="entity"` gives one series
    per banking entity. `since` and `until` (epoch seconds) bound the items read and the alerts
    (by window overlap), `[since, until)`. A window grid of more than `MAX_TREND_POINTS` points
    is refused with a 422 that suggests a window.
    """
    delta = parse_window(window)
    df = store.scored_frame(start=since, end=until)
    scope = scope or ("entity" if entity else "topic")
    for column, value in (("topic", topic), ("entity", entity)):
        if value and len(df):
            df = df[df[column] == value]
    table = window_table(df, scope, delta)
    bounds = {
        "start": None if since is None else pd.Timestamp(since, unit="s", tz="UTC"),
        "end": None if until is None else pd.Timestamp(until, unit="s", tz="UTC"),
    }
    series = []
    for name, part in table.groupby("key", sort=True):
        points = [
            {
                "t": ws.isoformat(),
                "volume": int(v),
                "mean_score": _num(m),
                "negative_share": _num(s),
            }
            for ws, v, m, s in zip(
                part["window_start"],
                part["volume"],
                part["mean_score"],
                part["negative_share"],
                strict=True,
            )
        ]
        alerts = store.alerts(scope=scope, key=str(name), **bounds)
        series.append(
            {"scope": scope, "key": str(name), "window": window, "points": points, "alerts": alerts}
        )
    return series


def _num(value: float) -> float | None:
    return (
        None
        if value is None or (isinstance(value, float) and math.isnan(value))
        else round(float(value), 4)
    )


def detect(
    store: Store, cfg: AlertsConfig, new_items: Iterable[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Evaluates the rules for the windows and keys that new scored items fell in.

    Args:
        new_items: Rows with `ts` (UTC Timestamp), `entity` and `topic`, just stored and scored.

    Returns:
        The new alerts, already stored (an alert repeated for the same window is not returned).
    """
    window = parse_window(cfg.window)
    width = window.total_seconds()
    targets: set[tuple[str, str, int]] = set()
    for row in new_items:
        bucket = int(row["ts"].timestamp() // width)
        for scope in SCOPES:
            if row.get(scope):
                targets.add((scope, str(row[scope]), bucket))
    if not targets:
        return []
    first_bucket = int(store.first_epoch() // width)
    new = []
    for scope, key, bucket in sorted(targets, key=lambda t: (t[2], t[0], t[1])):
        lo = max(bucket - cfg.baseline_windows, first_bucket)
        if bucket - lo < cfg.min_baseline_windows:
            continue
        counts = store.window_counts(scope, key, width, lo, bucket)
        volume = np.array([counts.get(b, (0, 0))[0] for b in range(lo, bucket)], dtype=float)
        negatives = np.array([counts.get(b, (0, 0))[1] for b in range(lo, bucket)], dtype=float)
        items = store.window_items(scope, key, bucket * width, (bucket + 1) * width)
        ws = pd.Timestamp(bucket * width, unit="s", tz="UTC")
        for alert in _rules(cfg, scope, key, ws, window, items, volume, negatives):
            if not _cooling(store, alert, window, cfg.cooldown_windows) and store.add_alert(alert):
                new.append(alert)
    return new


def _rules(
    cfg: AlertsConfig,
    scope: str,
    key: str,
    ws: pd.Timestamp,
    window: pd.Timedelta,
    items: list[tuple[float, str]],
    volume: np.ndarray,
    negatives: np.ndarray,
) -> list[dict[str, Any]]:
    """Alerts of both rules for one window; each at the first item where its rule held.

    Args:
        items: (ts_epoch, label) of the window's items in time order.
        volume: Baseline windows' volumes; negatives: their negative counts.
    """
    n = np.arange(1, len(items) + 1)
    k = np.cumsum([label == "negative" for _, label in items])
    share, spike = cfg.negative_share, cfg.volume
    out = []
    if volume.sum() > 0:
        p0 = float(np.clip(negatives.sum() / volume.sum(), 0.02, 0.98))
        z = (k - n * p0) / np.sqrt(n * p0 * (1 - p0))
        hit = (n >= share.min_volume) & (z >= share.z_threshold) & (k / n >= share.min_share)
        out += _alert("negative_share", scope, key, ws, window, items, hit, k / n, p0, z)
    if spike.enabled:
        mean, std = float(volume.mean()), float(volume.std())
        z = (n - mean) / max(std, math.sqrt(mean), spike.min_std)
        hit = (n >= spike.min_volume) & (z >= spike.z_threshold)
        out += _alert("volume", scope, key, ws, window, items, hit, n.astype(float), mean, z)
    return out


def _alert(rule, scope, key, ws, window, items, hit, values, baseline, z) -> list[dict[str, Any]]:
    if not hit.any():
        return []
    i = int(np.flatnonzero(hit)[0])
    what = "negative share" if rule == "negative_share" else "volume"
    value = float(values[i])
    message = (
        f"{what} surge for {scope} {key!r}: {value:.2f} vs baseline {baseline:.2f} "
        f"(z={float(z[i]):.1f}, {i + 1} items) in window starting {ws.isoformat()}"
    )
    return [
        {
            "rule": rule,
            "scope": scope,
            "key": key,
            "window_start": ws.isoformat(),
            "window_end": (ws + window).isoformat(),
            "detected_at": pd.Timestamp(items[i][0], unit="s", tz="UTC").isoformat(),
            "value": round(value, 4),
            "baseline": round(float(baseline), 4),
            "z": round(float(z[i]), 3),
            "volume": i + 1,
            "message": message,
        }
    ]


def _cooling(store: Store, alert: dict[str, Any], window: pd.Timedelta, cooldown: int) -> bool:
    """Whether the same rule fired for the same key within `cooldown` windows before this one."""
    if cooldown <= 0:
        return False
    ws = pd.Timestamp(alert["window_start"])
    for past in store.alerts(scope=alert["scope"], key=alert["key"], limit=50):
        start = pd.Timestamp(past["window_start"])
        if past["rule"] == alert["rule"] and ws - window * cooldown <= start < ws:
            return True
    return False


def dispatch(alerts: list[dict[str, Any]], webhook_url: str | None, timeout_s: float = 2.0) -> int:
    """Sends alerts to the log and, if set, POSTs each to the webhook; returns webhook successes."""
    sent = 0
    for alert in alerts:
        log.warning("ALERT %s", alert["message"])
        if not webhook_url:
            continue
        import httpx

        try:
            httpx.post(webhook_url, json={"alert": alert}, timeout=timeout_s).raise_for_status()
            sent += 1
        except (
            httpx.HTTPError
        ) as exc:  # a dead webhook must not stop ingestion; the table keeps the alert
            log.error("webhook %s failed for alert %s: %s", webhook_url, alert["key"], exc)
    return sent
