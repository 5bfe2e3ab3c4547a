"""Generated demo and test data: a labelled set and a 30-day stream about fictional companies.

Everything here is written from templates in this file (no dataset text is copied). The stream
has a steady background of news headlines and social posts and negative events injected at known
times, so alert quality (found, false alarms, delay) can be measured exactly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

COMPANIES = {
    "banking": [("Norvale Bank", "NRVB"), ("Halcrest Financial", "HLCF")],
    "energy": [("Brightmoor Energy", "BRME"), ("Kestrel Petroleum", "KSTP")],
    "technology": [("Quillon Systems", "QLNS"), ("Vantory Semiconductors", "VNTS")],
    "retail": [("Marlowe Stores", "MRLW"), ("Pennick Market", "PNKM")],
    "pharma": [("Corvane Therapeutics", "CRVT"), ("Elmsworth Pharma", "ELMP")],
}
THINGS = {
    "banking": [
        "loan book",
        "deposit base",
        "net interest margin",
        "mortgage lending",
        "credit card arm",
    ],
    "energy": [
        "oil output",
        "gas production",
        "refinery margins",
        "power generation",
        "pipeline volumes",
    ],
    "technology": [
        "cloud revenue",
        "chip shipments",
        "software subscriptions",
        "device sales",
        "data centre unit",
    ],
    "retail": [
        "same-store sales",
        "online orders",
        "holiday sales",
        "store traffic",
        "grocery volumes",
    ],
    "pharma": [
        "drug sales",
        "trial programme",
        "treatment pipeline",
        "vaccine revenue",
        "biotech unit",
    ],
}
TEMPLATES = {
    "positive": [
        "{co} posts record quarterly profit as {thing} grows {n}%",
        "{co} shares jump {n}% after strong {thing}",
        "{co} raises full-year guidance on robust {thing}",
        "Analysts upgrade {co} to buy, citing improving {thing}",
        "{co} beats expectations with {thing} up {n}% on the year",
        "{co} announces {n}% dividend increase after a strong year",
        "$ {tick} looking great, {thing} keeps climbing",
        "Bought more $ {tick} today, that {thing} growth is impressive",
        "{co} wins major contract that will lift {thing}",
        "{co} margins expand as {thing} recovers strongly",
        "{co} swings to a profit, helped by {thing}",
        "Investors cheer {co} as {thing} tops forecasts",
        "{co} lifts its targets after a bumper quarter in {thing}",
        "{co} stock rallies to an all-time high on {thing}",
        "Strong demand for {thing} boosts {co} earnings by {n}%",
        "{co} unveils {n} billion share buyback as cash flow soars",
        "{co} secures approval that opens a lucrative market for its {thing}",
        "Credit agency raises {co} rating, pointing to healthier {thing}",
        "$ {tick} breaking out, {thing} numbers were excellent",
        "{co} reports {n}% jump in net income thanks to {thing}",
    ],
    "negative": [
        "{co} shares plunge {n}% after profit warning",
        "{co} cuts outlook as {thing} falls {n}%",
        "Regulators open probe into {co} over {thing}",
        "{co} reports quarterly loss as {thing} collapses",
        "Analysts downgrade {co} to sell on weak {thing}",
        "{co} to cut {n}00 jobs after slump in {thing}",
        "Sold all my $ {tick}, the {thing} numbers are a disaster",
        "$ {tick} tanking again, {thing} is falling apart",
        "{co} faces lawsuit and mounting losses in {thing}",
        "{co} suspends dividend as {thing} deteriorates",
        "{co} swings to a loss, hurt by {thing}",
        "Investors flee {co} as {thing} misses forecasts",
        "{co} slashes its targets after a dismal quarter in {thing}",
        "{co} stock sinks to a five-year low on {thing} worries",
        "Weak demand for {thing} drags {co} earnings down {n}%",
        "{co} warns of writedowns of {n} million in its {thing}",
        "{co} recalls products and halts {thing} after safety failures",
        "Credit agency cuts {co} rating, pointing to weaker {thing}",
        "$ {tick} crashing, {thing} numbers were terrible",
        "{co} reports {n}% drop in net income because of {thing}",
    ],
    "neutral": [
        "{co} to publish quarterly results on {day}",
        "{co} appoints new head of {thing}",
        "{co} will hold its annual general meeting on {day}",
        "{co} says {thing} was in line with last year",
        "{co} completes previously announced reorganisation of {thing}",
        "{co} to present at an industry conference on {day}",
        "Anyone know when $ {tick} reports? Watching {thing}",
        "$ {tick} flat today, waiting on the {thing} update",
        "{co} moves {thing} team to a new office",
        "{co} names {n} members to its advisory board",
        "{co} confirms the date of its next {thing} briefing",
        "{co} publishes its annual report on {thing}",
        "{co} lists {n} new bonds on the exchange",
        "{co} chief executive to speak about {thing} on {day}",
        "{co} renews its existing agreement covering {thing}",
        "{co} files routine quarterly statement on {thing}",
        "{co} will release {thing} figures next {day}",
        "Shareholders of {co} vote on board seats on {day}",
        "$ {tick} volume normal today, nothing new on {thing}",
        "{co} relocates its {thing} headquarters within the city",
    ],
}
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]
WIRES = ["Ledger Wire", "Market Desk", "FinPost Daily", "Harbour Street Journal"]
HANDLES = [
    f"{a}{b}" for a in ("trader", "value", "bull", "bear", "quant", "div") for b in range(40)
]
TOPICS = list(COMPANIES)
ENTITIES = [(topic, name, tick) for topic, cos in COMPANIES.items() for name, tick in cos]


def _fill(template: str, topic: str, rng: np.random.Generator) -> tuple[str, str]:
    name, tick = COMPANIES[topic][rng.integers(len(COMPANIES[topic]))]
    thing = THINGS[topic][rng.integers(len(THINGS[topic]))]
    text = template.format(
        co=name, tick=tick, thing=thing, n=int(rng.integers(2, 40)), day=DAYS[rng.integers(5)]
    )
    return _decorate(text.replace("$ ", "$"), rng), name


def _decorate(text: str, rng: np.random.Generator, when: pd.Timestamp | None = None) -> str:
    """Adds a wire name and date to a headline, or a handle to a post, as real feeds do."""
    if "$" in text:
        return f"@{HANDLES[rng.integers(len(HANDLES))]}: {text}"
    when = (
        when
        if when is not None
        else pd.Timestamp("2026-01-01") + pd.Timedelta(days=int(rng.integers(300)))
    )
    return f"{text} ({WIRES[rng.integers(len(WIRES))]}, {when:%b %d})"


def make_labelled(n_per_template: int = 10, seed: int = 0) -> pd.DataFrame:
    """Labelled rows `text, sentiment, topic, group` (group = template, for a leak-free split)."""
    rng = np.random.default_rng(seed)
    rows = []
    for sentiment, templates in TEMPLATES.items():
        for t_id, template in enumerate(templates):
            for _ in range(n_per_template):
                topic = TOPICS[rng.integers(len(TOPICS))]
                text, _ = _fill(template, topic, rng)
                rows.append(
                    {
                        "text": text,
                        "sentiment": sentiment,
                        "topic": topic,
                        "group": f"{sentiment}-{t_id}",
                    }
                )
    return (
        pd.DataFrame(rows)
        .drop_duplicates("text")
        .sample(frac=1.0, random_state=seed)
        .reset_index(drop=True)
    )


@dataclass(frozen=True)
class Event:
    """A negative event: extra, mostly negative items about one entity from `start` for `hours`."""

    start: str
    topic: str
    entity: str
    hours: int = 30
    extra_rate_per_h: float = 1.5
    negative_share: float = 0.85


def make_stream(
    days: int = 30,
    seed: int = 0,
    events: list[Event] | None = None,
    rate_per_h: float = 0.25,
    start: str = "2026-10-01",
) -> tuple[pd.DataFrame, list[Event]]:
    """A stream `id, ts, source, text, entity` of news and posts, with `events` injected.

    Background: each company gets Poisson(`rate_per_h`) items an hour, 25% negative, 50%
    neutral, 25% positive. Default event: Norvale Bank (banking), day 21 at 09:00.
    """
    rng = np.random.default_rng(seed)
    t0 = pd.Timestamp(start, tz="UTC")
    if events is None:
        events = [
            Event(
                start=str(t0 + pd.Timedelta(days=20, hours=9)),
                topic="banking",
                entity="Norvale Bank",
            )
        ]
    rows = []
    for hour in range(days * 24):
        t = t0 + pd.Timedelta(hours=hour)
        for topic, name, tick in ENTITIES:
            share = _event_share(events, name, t)
            for _ in range(rng.poisson(rate_per_h)):
                neg = 0.25 if share is None else 0.7
                rows.append(_item(rng, topic, name, tick, t, _pick(rng, neg)))
            if share is not None:
                event = next(e for e in events if e.entity == name and _active(e, t))
                for _ in range(rng.poisson(event.extra_rate_per_h)):
                    rows.append(_item(rng, topic, name, tick, t, _pick(rng, event.negative_share)))
    df = pd.DataFrame(rows).sort_values("ts").reset_index(drop=True)
    df.insert(0, "id", [f"item-{seed}-{i:06d}" for i in range(len(df))])
    return df, events


def _active(event: Event, t: pd.Timestamp) -> bool:
    begin = pd.Timestamp(event.start)
    return begin <= t < begin + pd.Timedelta(hours=event.hours)


def _event_share(events: list[Event], entity: str, t: pd.Timestamp) -> float | None:
    for event in events:
        if event.entity == entity and _active(event, t):
            return event.negative_share
    return None


def _pick(rng: np.random.Generator, negative: float) -> str:
    rest = (1 - negative) / 3
    return str(rng.choice(["negative", "neutral", "positive"], p=[negative, 2 * rest, rest]))


def _item(rng, topic: str, name: str, tick: str, t: pd.Timestamp, sentiment: str) -> dict:
    templates = TEMPLATES[sentiment]
    template = templates[rng.integers(len(templates))]
    thing = THINGS[topic][rng.integers(len(THINGS[topic]))]
    text = template.format(
        co=name, tick=tick, thing=thing, n=int(rng.integers(2, 40)), day=DAYS[rng.integers(5)]
    )
    ts = t + pd.Timedelta(seconds=int(rng.integers(3600)))
    text = _decorate(text.replace("$ ", "$"), rng, ts)
    source = "social" if "$" in text else "news"
    return {
        "ts": ts.isoformat(),
        "source": source,
        "text": text,
        "entity": name,
        "true_sentiment": sentiment,
        "true_topic": topic,
    }


def write_demo_data(
    folder: Path, n_per_template: int = 10, days: int = 30, seed: int = 0
) -> dict[str, Path]:
    """Writes `labelled.csv`, `stream.csv` (without the truth columns) and `events.json`."""
    import json

    folder.mkdir(parents=True, exist_ok=True)
    make_labelled(n_per_template, seed).to_csv(folder / "labelled.csv", index=False)
    stream, events = make_stream(days=days, seed=seed)
    stream.drop(columns=["true_sentiment", "true_topic"]).to_csv(folder / "stream.csv", index=False)
    (folder / "events.json").write_text(
        json.dumps([asdict(e) for e in events], indent=2), encoding="utf-8"
    )
    return {
        "labelled": folder / "labelled.csv",
        "stream": folder / "stream.csv",
        "events": folder / "events.json",
    }
