"""Alert quality against known injected events: found, false alarms and detection delay."""

from __future__ import annotations

from typing import Any

import pandas as pd


def alert_quality(
    alerts: list[dict[str, Any]], events: list[Any], window: str = "6h"
) -> dict[str, float]:
    """Matches alerts to events.

    An alert matches an event when its key is the event's topic (topic scope) or entity (entity
    scope) and it was detected between the event's start and its end plus one window. An event
    is found when at least one alert matches it; an alert matching no event is a false alarm.
    Delay is from the event's start to its first matching alert, in hours (mean over found events).
    """
    slack = pd.Timedelta(window)
    matched: set[int] = set()
    delays = []
    for event in events:
        e = event if isinstance(event, dict) else event.__dict__
        start = pd.Timestamp(e["start"])
        end = start + pd.Timedelta(hours=e["hours"]) + slack
        hits = [
            i
            for i, a in enumerate(alerts)
            if (
                (a["scope"] == "topic" and a["key"] == e["topic"])
                or (a["scope"] == "entity" and a["key"] == e["entity"])
            )
            and start <= pd.Timestamp(a["detected_at"]) <= end
        ]
        matched.update(hits)
        if hits:
            first = min(pd.Timestamp(alerts[i]["detected_at"]) for i in hits)
            delays.append((first - start).total_seconds() / 3600)
    return {
        "events_injected": float(len(events)),
        "events_found": float(len(delays)),
        "false_alarms": float(len(alerts) - len(matched)),
        "mean_delay_hours": float(sum(delays) / len(delays)) if delays else float("nan"),
        "alerts": float(len(alerts)),
    }
