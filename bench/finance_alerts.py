"""Alert quality on generated 30-day streams: events found, false alarms, detection delay.

Each stream (seeds 101, 102, ...) has background news and posts about ten fictional companies
and two negative events injected at random entities and times (days 8-27, 24-36 hours each).
Ours: the fine-tuned model scores every item through the runtime, the stream is replayed hour by
hour, and the monitor's rules (default `AlertsConfig`) raise alerts. Baseline in the same run:
the same rules on the true labels (what a perfect classifier would give), to separate rule
quality from model errors. Matching rule: see `finance_sentiment.quality.alert_quality`.

Run: python bench/finance_alerts.py --artifact /tmp/demo_finance_sentiment/finance_sentiment/model/artifact
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import finance_sentiment as fs  # noqa: E402
from bench.common import bench_parser, write_result  # noqa: E402
from finance_sentiment.config import AlertsConfig  # noqa: E402
from finance_sentiment.demo import replay  # noqa: E402
from finance_sentiment.generate import ENTITIES, Event, make_stream  # noqa: E402
from finance_sentiment.monitor import detect  # noqa: E402
from finance_sentiment.quality import alert_quality  # noqa: E402
from finance_sentiment.settings import FinanceSettings  # noqa: E402
from finance_sentiment.store import Store  # noqa: E402
from shared.registry import load_runtime  # noqa: E402


def random_events(seed: int, n: int = 2) -> list[Event]:
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(ENTITIES), size=n, replace=False)
    days = rng.choice(np.arange(8, 28), size=n, replace=False)
    return [
        Event(
            start=str(
                pd.Timestamp("2026-10-01", tz="UTC")
                + pd.Timedelta(days=int(d), hours=int(rng.integers(24)))
            ),
            topic=ENTITIES[i][0],
            entity=ENTITIES[i][1],
            hours=int(rng.integers(24, 37)),
        )
        for i, d in zip(picks, days, strict=True)
    ]


def oracle_alerts(stream: pd.DataFrame, cfg: AlertsConfig, folder: Path) -> list[dict]:
    """The same rules on the true labels and topics, replayed hour by hour."""
    store = Store(folder / "oracle.db")
    alerts = []
    ts = pd.to_datetime(stream["ts"], utc=True)
    for _, part in stream.assign(ts=ts).groupby(ts.dt.floor("6h"), sort=True):
        rows = [
            {"id": r.id, "ts": r.ts, "source": r.source, "text": r.text, "entity": r.entity}
            for r in part.itertuples()
        ]
        inserted, _ = store.add_items(rows)
        keep = {r["id"] for r in inserted}
        part = part[part["id"].isin(keep)]
        results = [
            {
                "label": lab,
                "score": {"negative": -1.0, "neutral": 0.0, "positive": 1.0}[lab],
                "probs": {k: float(k == lab) for k in ("negative", "neutral", "positive")},
                "topic": top,
            }
            for lab, top in zip(part["true_sentiment"], part["true_topic"], strict=True)
        ]
        store.set_scores(part["id"].tolist(), results)
        alerts += detect(
            store,
            cfg,
            [
                {"ts": t, "entity": e, "topic": k}
                for t, e, k in zip(part["ts"], part["entity"], part["true_topic"], strict=True)
            ],
        )
    store.close()
    return alerts


def total(qualities: list[dict[str, float]]) -> dict[str, float]:
    found = sum(q["events_found"] for q in qualities)
    delays = [q["mean_delay_hours"] * q["events_found"] for q in qualities if q["events_found"]]
    return {
        "events_found": found,
        "events_injected": sum(q["events_injected"] for q in qualities),
        "false_alarms": sum(q["false_alarms"] for q in qualities),
        "mean_delay_hours": float(sum(delays) / found) if found else float("nan"),
        "false_alarms_per_30_days": sum(q["false_alarms"] for q in qualities) / len(qualities),
    }


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument(
        "--artifact",
        type=Path,
        required=True,
        help="a finance_sentiment artifact (e.g. the demo's)",
    )
    parser.add_argument("--streams", type=int, default=3)
    parser.add_argument("--days", type=int, default=30)
    args = parser.parse_args()
    started = time.perf_counter()
    ours, oracle, per_stream = [], [], []
    for k in range(args.streams):
        seed = 101 + k
        events = random_events(seed)
        stream, _ = make_stream(days=args.days, seed=seed, events=events)
        with tempfile.TemporaryDirectory() as tmp:
            settings = FinanceSettings(device="cpu", finance_db=Path(tmp) / "monitor.db")
            runtime = load_runtime(fs.VERTICAL, args.artifact, settings)
            try:
                alerts = replay(runtime, stream)
            finally:
                runtime.close()
            q = alert_quality(alerts, events, runtime.cfg.alerts.window)
            o = alert_quality(
                oracle_alerts(stream, runtime.cfg.alerts, Path(tmp)),
                events,
                runtime.cfg.alerts.window,
            )
        ours.append(q)
        oracle.append(o)
        per_stream.append(
            {
                "seed": seed,
                "items": len(stream),
                "events": [(e.entity, e.start) for e in events],
                "ours": q,
                "true_labels": o,
            }
        )
        print(per_stream[-1])
    write_result(
        "finance_alerts",
        dataset=f"generated streams ({args.streams} x {args.days} days, 10 fictional companies, "
        "2 injected negative events each; seeds 101..)",
        protocol="replay in 6-hour chunks (alerts are dated at the first item where the rule held); an alert matches an event when its topic/entity is the event's and it is detected "
        "between the event start and its end + one window; unmatched alerts are false alarms",
        metrics=total(ours),
        baselines={"same_rules_true_labels": total(oracle)},
        seconds=time.perf_counter() - started,
        seed=101,
        notes=f"artifact {args.artifact}; default AlertsConfig; per stream: {per_stream}",
    )


if __name__ == "__main__":
    main()
