"""What every vertical accepts as text and as a timestamp: one rule each, in the core.

Text: any Unicode a model can take. A lone surrogate (`"\\ud800"`, legal in JSON, not encodable
as UTF-8) or a NUL is refused, with the position named, before it reaches a tokenizer, a hash or
a store.

Timestamps: ISO 8601 at any precision (`2026`, `2026-03`, `2026-03-01T12:00:00.123456789+05:30`,
`...Z`; a space may separate date and time; naive times are UTC), or epoch seconds or
milliseconds (a number, or a string of nine or more digits; a magnitude above 10^10 is read as
milliseconds). Shorter digit strings are ISO dates: `2026` is a year, `20260301` a day.
Every timestamp must fall in [1900-01-01, 2200-01-01): pandas' nanosecond range (1677–2262)
holds it with room to spare, so a stored time can always be read, bucketed and compared.

Request models use :data:`Text` and :data:`Timestamp`; table loaders use
:func:`parse_timestamps`; code that already holds one value uses :func:`parse_timestamp`.
"""

from __future__ import annotations

import re
import reprlib
from datetime import UTC, datetime
from typing import Annotated, Any

import numpy as np
import pandas as pd
from pydantic import AfterValidator, BeforeValidator, PlainSerializer, WithJsonSchema

from shared.errors import InputError

EARLIEST = pd.Timestamp("1900-01-01", tz="UTC")
LATEST = pd.Timestamp("2200-01-01", tz="UTC")
MS_ABOVE = 1e10
"""Epoch values larger than this (in magnitude) are milliseconds: 10^10 s is the year 2286."""

_BAD_CHAR = re.compile("[\x00\ud800-\udfff]")


def text_problem(value: str) -> str | None:
    """Why no model can take `value`, or None when it is fine."""
    found = _BAD_CHAR.search(value)
    if found is None:
        return None
    char = found.group()
    what = "a NUL character" if char == "\x00" else f"a lone surrogate (U+{ord(char):04X})"
    return f"contains {what} at position {found.start()}; send valid Unicode text"


def check_text(value: str, what: str = "text") -> str:
    """Returns `value`, or raises :class:`InputError` (422) naming `what` and the problem."""
    problem = text_problem(value)
    if problem is not None:
        raise InputError(f"{what} {problem}")
    return value


def _validate_text(value: str) -> str:
    problem = text_problem(value)
    if problem is not None:
        raise ValueError(problem)  # pydantic reports it as a 422 on the field
    return value


Text = Annotated[str, AfterValidator(_validate_text)]
"""A request string any model can take (no lone surrogate, no NUL)."""


def parse_timestamps(values: Any) -> tuple[pd.Series, pd.Series]:
    """Parses timestamps (see the module doc) into UTC.

    Args:
        values: Anything `pd.Series` takes: strings, numbers, datetimes, None.

    Returns:
        (times, bad): `datetime64[ns, UTC]` with NaT where a value is empty or bad, and a boolean
        mask of the values that were given but are not a timestamp in range.
    """
    raw = pd.Series(values, dtype=object).reset_index(drop=True)
    text = raw.map(lambda v: v.strip() if isinstance(v, str) else v)
    empty = text.isna() | text.map(lambda v: isinstance(v, str) and v == "")
    numeric = pd.to_numeric(text.where(~empty & text.map(_is_epoch)), errors="coerce")
    times = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ns, UTC]")
    is_num = numeric.notna()
    if is_num.any():
        times[is_num.to_numpy()] = pd.DatetimeIndex(
            _from_epoch(numeric[is_num].to_numpy(dtype=np.float64)), tz="UTC"
        )
    rest = ~empty & ~is_num
    if rest.any():
        times[rest.to_numpy()] = pd.DatetimeIndex(_from_iso(text[rest]), tz="UTC")
    times = times.where((times >= EARLIEST) & (times < LATEST))
    return times, times.isna() & ~empty


def parse_timestamp(value: Any, what: str = "timestamp") -> pd.Timestamp:
    """One timestamp in UTC, or :class:`InputError` (422) that names `what` and the rule."""
    times, bad = parse_timestamps([value])
    if bad.iloc[0] or pd.isna(times.iloc[0]):
        raise InputError(f"{what} {reprlib.repr(value)} is not a timestamp: {TIMESTAMP_RULE}")
    return times.iloc[0]


TIMESTAMP_RULE = (
    "use ISO 8601 (e.g. 2026-03-01T12:00:00Z) or epoch seconds or milliseconds, "
    f"between {EARLIEST.year} and {LATEST.year}"
)


EPOCH_ABS_LIMIT = 10**15
"""Larger integers are no epoch time (2200 is 7.3e12 in milliseconds): not a timestamp."""


def _is_epoch(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | np.integer):  # a Python int may be too large for any ufunc
        return abs(int(value)) < EPOCH_ABS_LIMIT
    if isinstance(value, float | np.floating):
        return bool(np.isfinite(value))
    return isinstance(value, str) and re.fullmatch(r"[+-]?\d{9,}(\.\d+)?", value) is not None


def _from_epoch(seconds_or_ms: np.ndarray) -> np.ndarray:
    seconds = np.where(np.abs(seconds_or_ms) > MS_ABOVE, seconds_or_ms / 1000, seconds_or_ms)
    lo, hi = EARLIEST.timestamp(), LATEST.timestamp()
    seconds = np.where((seconds >= lo) & (seconds < hi), seconds, np.nan)
    return pd.to_datetime(seconds, unit="s").as_unit("ns").to_numpy()


def _from_iso(values: pd.Series) -> np.ndarray:
    """ISO 8601 strings and datetime objects to `datetime64[ns, UTC]`; anything else is NaT."""
    is_time = values.map(lambda v: isinstance(v, datetime | pd.Timestamp | np.datetime64))
    is_iso = values.map(lambda v: isinstance(v, str) and v[:1].isdigit())
    out = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns, UTC]")
    for mask, fmt in ((is_time, None), (is_iso, "ISO8601")):
        if mask.any():
            times = pd.to_datetime(values[mask], format=fmt, errors="coerce", utc=True)
            times = times.where((times >= EARLIEST) & (times < LATEST))
            out[mask] = times.astype("datetime64[ns, UTC]")
    retry = is_iso & out.isna()  # offsets with seconds (`+02:10:08`), which pandas refuses
    for index in retry[retry].index:
        out[index] = _from_python_iso(values[index])
    return out.to_numpy(dtype="datetime64[ns]")


def _from_python_iso(value: str) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(datetime.fromisoformat(value))
    except (ValueError, TypeError, OverflowError):
        return pd.NaT
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts if EARLIEST <= ts < LATEST else pd.NaT


def _quick_iso(value: Any) -> datetime | None:
    """The common case, one ISO string in microseconds, without pandas (a request of 10,000
    events validates in milliseconds); None sends anything else to :func:`parse_timestamps`."""
    if not isinstance(value, str) or _is_epoch(value.strip()):
        return None
    try:
        ts = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def _validate_timestamp(value: Any) -> datetime | None:
    if value is None:
        return None
    quick = _quick_iso(value)
    if quick is not None and EARLIEST <= quick < LATEST:
        return quick
    times, bad = parse_timestamps([value])
    if bad.iloc[0] or pd.isna(times.iloc[0]):
        raise ValueError(f"{value!r} is not a timestamp: {TIMESTAMP_RULE}")
    return times.iloc[0].floor("us").to_pydatetime()


Timestamp = Annotated[
    datetime,
    BeforeValidator(_validate_timestamp),
    PlainSerializer(lambda t: t.isoformat(), return_type=str),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "format": "date-time"},
                {"type": "number"},
            ],
            "description": "ISO 8601 or epoch seconds or milliseconds, 1900 to 2200",
        }
    ),
]
"""A request timestamp: parsed by :func:`parse_timestamps`'s rule into an aware UTC datetime."""
