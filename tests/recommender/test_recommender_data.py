from __future__ import annotations

import pandas as pd
import pytest

from recommender.data import collapse, load_dataset
from recommender.generate import write_dataset
from recommender.schemas import EventWeights
from recommender.split import leave_last_out, time_cutoff
from shared.errors import DataError

ITEMS = [
    {"item_id": "a", "title": "Alpha", "category": "x"},
    {"item_id": "b", "title": "Beta", "category": "y"},
]


def _event(item, event, day, **extra):
    """One interaction of user `u` on day `day` of January 2026."""
    return {"user_id": "u", "item_id": item, "event": event, "ts": f"2026-01-{day:02d}", **extra}


def _write(folder, *events):
    """A dataset folder holding `ITEMS` and `events`."""
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(ITEMS).to_csv(folder / "items.csv", index=False)
    pd.DataFrame(list(events)).to_csv(folder / "interactions.csv", index=False)
    return folder


def test_bad_event_names_file_row_and_column(tmp_path):
    folder = _write(tmp_path / "d", _event("a", "view", 1), _event("b", "teleport", 2))
    with pytest.raises(DataError, match=r"interactions.csv: row 2, column 'event'.*teleport"):
        load_dataset(folder, EventWeights())


def test_unknown_items_are_reported_not_silently_dropped(tmp_path):
    folder = _write(tmp_path / "d", _event("a", "view", 1), _event("ghost", "click", 2))
    ds = load_dataset(folder, EventWeights())
    assert ds.report["unknown_item_events"] == 1 and ds.report["unknown_items"] == ["ghost"]
    assert list(ds.interactions["item_id"]) == ["a"]
    with pytest.raises(DataError, match="ghost"):
        load_dataset(folder, EventWeights(), on_unknown="error")


def test_duplicate_event_ids_count_once_and_collapse_keeps_strongest(tmp_path):
    folder = _write(
        tmp_path / "d",
        _event("a", "view", 1, event_id="e1"),
        _event("a", "view", 1, event_id="e1"),
        _event("a", "purchase", 3, event_id="e2"),
    )
    ds = load_dataset(folder, EventWeights(purchase=4.0))
    assert ds.report["duplicate_event_ids"] == 1 and len(ds.interactions) == 2
    row = collapse(ds.interactions).iloc[0]
    assert (
        row["weight"] == 4.0
        and row["event"] == "purchase"
        and row["ts"] == pd.Timestamp("2026-01-01", tz="UTC")
    )


def test_rating_weight_scales_with_value(tmp_path):
    folder = _write(
        tmp_path / "d", _event("a", "rating", 1, value=10), _event("b", "rating", 2, value=5)
    )
    ds = load_dataset(folder, EventWeights(rating=2.0, rating_max=10))
    assert ds.interactions["weight"].tolist() == [2.0, 1.0]


def test_event_weights_cover_exactly_the_events():
    """One list of events: the config's weights, the table schema and the request models."""
    from typing import get_args

    from recommender.schemas import DEFAULT_EVENT_WEIGHTS, EVENTS, INTERACTIONS, EventName
    from recommender.service import EventIn

    assert set(EventWeights.model_fields) == set(EVENTS) | {"rating_max"}
    assert EventWeights().model_dump() == {**DEFAULT_EVENT_WEIGHTS, "rating_max": 10.0}
    assert get_args(EventName) == EVENTS
    assert next(c for c in INTERACTIONS.columns if c.name == "event").choices == EVENTS
    assert EventIn(user_id="u", item_id="a", event="purchase").event == "purchase"
    with pytest.raises(ValueError, match="extra"):
        EventWeights(teleport=1.0)


def test_leave_last_out_never_trains_on_the_future(tmp_path):
    ds = load_dataset(write_dataset(tmp_path / "g", n_users=30, per_subtopic=2), EventWeights())
    split = leave_last_out(collapse(ds.interactions))
    assert split.test["user_id"].is_unique and split.val["user_id"].is_unique
    last_train = split.train.groupby("user_id")["ts"].max()
    for frame in (split.val, split.test):
        joined = frame.set_index("user_id")["ts"]
        assert (joined >= last_train.reindex(joined.index)).all()
    val_ts = split.val.set_index("user_id")["ts"]
    assert (split.test.set_index("user_id")["ts"].reindex(val_ts.index) >= val_ts).all()
    total = len(split.train) + len(split.val) + len(split.test)
    assert total == len(collapse(ds.interactions))


def test_time_cutoff_split(tmp_path):
    ds = load_dataset(write_dataset(tmp_path / "g", n_users=30, per_subtopic=2), EventWeights())
    c = collapse(ds.interactions)
    cutoff = c["ts"].quantile(0.8)
    split = time_cutoff(c, cutoff)
    assert (split.train["ts"] < cutoff).all() and (split.test["ts"] >= cutoff).all()
    assert set(split.test["user_id"]) <= set(split.train["user_id"])


def test_interaction_times_load_as_epoch_seconds_milliseconds_or_iso_at_any_precision(tmp_path):
    """One timestamp rule (shared.inputs): each form below is the same instant, or its day."""
    instant = pd.Timestamp("2026-01-05T10:20:30Z")
    forms = [
        int(instant.timestamp()),  # epoch seconds
        str(int(instant.timestamp() * 1000)),  # epoch milliseconds, as text
        "2026-01-05T10:20:30Z",
        "2026-01-05 10:20:30.000000000",  # naive, nanoseconds: UTC
        "2026-01-05T15:50:30+05:30",
        "2026-01-05",  # a day
    ]
    folder = _write(
        tmp_path / "d",
        *[
            {"user_id": f"u{n}", "item_id": "a", "event": "view", "ts": t}
            for n, t in enumerate(forms)
        ],
    )
    ds = load_dataset(folder, EventWeights())
    times = ds.interactions.set_index("user_id")["ts"]
    assert (times.drop("u5") == instant).all() and len(times) == len(forms)
    assert times["u5"] == pd.Timestamp("2026-01-05", tz="UTC")
