"""The core's one rule for text and one for timestamps (`shared.inputs`)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from shared.errors import InputError
from shared.inputs import Text, Timestamp, check_text, parse_timestamp, parse_timestamps

IN_RANGE = st.datetimes(min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2199, 12, 31))
OFFSETS = st.integers(-14 * 3600, 14 * 3600).map(lambda s: dt.timezone(dt.timedelta(seconds=s)))


@settings(max_examples=200, deadline=None)
@given(
    moment=IN_RANGE, tz=OFFSETS, spec=st.sampled_from(["seconds", "milliseconds", "microseconds"])
)
def test_iso_8601_at_any_precision_and_offset_is_the_same_instant(moment, tz, spec):
    aware = moment.replace(tzinfo=tz)
    text = aware.isoformat(timespec=spec)
    parsed = parse_timestamp(text)
    expected = pd.Timestamp(dt.datetime.fromisoformat(text)).tz_convert("UTC")
    assert parsed == expected and str(parsed.tz) == "UTC"


@settings(max_examples=100, deadline=None)
@given(moment=st.datetimes(min_value=dt.datetime(1973, 3, 4), max_value=dt.datetime(2199, 1, 1)))
def test_epoch_seconds_and_milliseconds_read_as_the_same_instant(moment):
    utc = moment.replace(tzinfo=dt.UTC, microsecond=0)
    seconds = int(utc.timestamp())
    for value in (seconds, seconds * 1000, str(seconds), float(seconds)):
        assert parse_timestamp(value) == pd.Timestamp(utc)


def test_mixed_precisions_in_one_column_do_not_depend_on_the_first_value():
    times, bad = parse_timestamps(
        ["2026-01-01T00:00:00Z", "2026-01-01T00:00:00.250Z", "2026-01-01 00:00", 1767225600]
    )
    assert not bad.any() and times.dtype == "datetime64[ns, UTC]"
    assert times.iloc[1] - times.iloc[0] == pd.Timedelta("250ms") and times.iloc[3] == times.iloc[0]


@pytest.mark.parametrize(
    "value",
    [
        "1500-01-01",
        "1676-12-31T00:00:00Z",
        "2200-01-01",
        "9999-12-31",
        -3e9,
        1e300,
        "yesterday",
        "2026-13-01",
        True,
    ],
)
def test_times_outside_1900_to_2200_or_not_times_are_refused_with_the_rule(value):
    times, bad = parse_timestamps([value])
    assert bad.iloc[0] and pd.isna(times.iloc[0])
    with pytest.raises(InputError, match="ISO 8601.*1900 and 2200") as caught:
        parse_timestamp(value)
    assert caught.value.status_code == 422


def test_short_digit_strings_are_iso_dates_not_epochs_and_empty_is_missing():
    times, bad = parse_timestamps(["2026", "20260301", None, "", "  "])
    assert times.iloc[0] == pd.Timestamp("2026-01-01", tz="UTC")
    assert times.iloc[1] == pd.Timestamp("2026-03-01", tz="UTC")
    assert times.iloc[2:].isna().all() and not bad.any()


class _Req(BaseModel):
    text: Text
    when: Timestamp | None = None


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(exclude_categories=("Cs",), exclude_characters="\x00")))
def test_any_unicode_but_lone_surrogates_and_nul_is_text(value):
    assert _Req(text=value).text == value


@pytest.mark.parametrize("bad", ["ab\ud800cd", "\udfff", "nul\x00byte"])
def test_lone_surrogates_and_nul_are_refused_naming_the_position(bad):
    with pytest.raises(ValidationError, match="position"):
        _Req(text=bad)
    with pytest.raises(InputError, match="message contains"):
        check_text(bad, "message")


def test_timestamp_field_takes_iso_or_epoch_and_refuses_out_of_range():
    assert _Req(text="x", when=1767225600).when == dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert _Req(text="x", when="2026-01-01T01:00:00+01:00").when == dt.datetime(
        2026, 1, 1, tzinfo=dt.UTC
    )
    with pytest.raises(ValidationError, match="1900 and 2200"):
        _Req(text="x", when="1600-01-01")


@pytest.mark.parametrize("when", [2**70, -(2**70), 10**400, float("inf")])
def test_an_integer_too_large_for_numpy_is_a_named_error_not_a_crash(when):
    with pytest.raises(ValidationError, match="is not a timestamp"):
        _Req(text="x", when=when)


def test_large_requests_validate_their_timestamps_in_one_pass_not_per_item():
    import time

    from finance_sentiment.ingest import validate_rows

    stamps = [f"2026-01-01T00:{i // 60 % 60:02d}:{i % 60:02d}Z" for i in range(5000)]
    started = time.perf_counter()
    many = [_Req(text="x", when=s) for s in stamps]  # the request-model path, item by item
    good, _ = validate_rows([{"id": str(i), "ts": s, "text": "t"} for i, s in enumerate(stamps)])
    assert time.perf_counter() - started < 3.0  # was ~3 ms a value through pandas: 30 s here
    assert many[61].when == dt.datetime(2026, 1, 1, 0, 1, 1, tzinfo=dt.UTC)
    assert len(good) == 5000 and good[61]["ts"] == pd.Timestamp("2026-01-01T00:01:01Z")
