"""Data import as users expect it: their column names and their label values, mapped onto a schema.

A user's table rarely uses our column names or our label names. Like AutoTrain's
`--text-column`, a vertical's config carries `columns` (schema column -> the user's column, e.g.
`columns.text=headline`) and `label_map` (the user's label -> a schema label, e.g.
`label_map.0=negative`). :func:`map_columns` and :func:`map_labels` apply them when a table is
read, before it is validated (see `shared.data.load_table`), so every error still names the
user's file and rows.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BeforeValidator

from shared.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

    from shared.data import TableSchema


def _as_text(value: Any) -> str:
    """A YAML scalar as the text it stands for: `0` -> "0", `1.0` -> "1", "x " -> "x"."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _string_mapping(value: Any) -> Any:
    # YAML reads `label_map: {0: negative}` with an int key; the file's labels are text.
    if isinstance(value, Mapping):
        return {_as_text(k): _as_text(v) for k, v in value.items()}
    return value


ColumnMap = Annotated[dict[str, str], BeforeValidator(_string_mapping)]
"""Schema column -> the user's column name (config `columns`, override `columns.text=headline`)."""
LabelMap = Annotated[dict[str, str], BeforeValidator(_string_mapping)]
"""The user's label -> the schema's label (config `label_map`, override `label_map.0=negative`)."""


def check_column_map(columns: dict[str, str], schemas: Iterable[TableSchema]) -> dict[str, str]:
    """Returns `columns` when every key is a column of one of `schemas` (a config validator).

    Raises:
        ValueError: naming the unknown keys and the columns that can be mapped.
    """
    known = sorted({c.name for schema in schemas for c in schema.columns})
    unknown = sorted(set(columns) - set(known))
    if unknown:
        raise ValueError(
            f"{unknown} are not columns of the data; map one of {known} onto your column "
            f"(e.g. columns.{known[0]}=your_column)"
        )
    return columns


def map_columns(
    df: pd.DataFrame, columns: Mapping[str, str] | None, schema: TableSchema, source: Any
) -> pd.DataFrame:
    """Renames the user's columns to the schema's names (`columns`: schema column -> user column).

    Keys that are not columns of `schema` are skipped (one mapping may serve several tables of a
    data folder). A mapped column that the file lacks is an error when the schema needs that
    column and the file has no column of the schema's name either. When the file has both, the
    mapped column wins and the one of the schema's name is dropped.

    Raises:
        DataError: naming the file, the missing column and the columns the file has.
    """
    mapping = {
        key: user
        for key, user in (columns or {}).items()
        if key in schema.column_names and user != key
    }
    if not mapping:
        return df
    by_name = {c.name: c for c in schema.columns}
    present = {}
    for key, user in mapping.items():
        if user in df.columns:
            present[user] = key
        elif by_name[key].required and key not in df.columns:
            raise DataError(
                f"{source}: no column {user!r} (columns.{key}={user} maps it onto {key!r}); "
                f"the file has columns {list(df.columns)}"
            )
    replaced = [key for key in present.values() if key in df.columns]
    return df.drop(columns=replaced).rename(columns=present)


def map_labels(
    df: pd.DataFrame, label_map: Mapping[str, str] | None, schema: TableSchema
) -> pd.DataFrame:
    """Maps the values of the schema's label column through `label_map`.

    Labels are compared as text with spaces stripped and case folded, so the integer `0` of a
    JSONL or Parquet file, `"0"` of a CSV and `" 0"` all match the key "0". Values the map does
    not name are kept as they are (the schema's choices check then judges them).
    """
    column = schema.label
    if column is None or column not in df.columns:
        return df
    out = df.copy()
    values = out[column]
    present = values.notna() & values.astype(str).str.strip().ne("")
    text = values.where(~present, values.map(_as_text))
    if label_map:
        folded = {str(k).casefold(): v for k, v in label_map.items()}
        text = text.where(~present, text.map(lambda v: folded.get(str(v).casefold(), v)))
    out[column] = text
    return out


def label_hint(raw: pd.Series, column: str, choices: tuple[Any, ...]) -> str | None:
    """One line naming the label values outside `choices` and how to map them, or None."""
    allowed = {str(c).strip().casefold() for c in choices}
    text = raw.dropna().astype(str).str.strip()
    outside = sorted({v for v in text if v and v.casefold() not in allowed})
    if not outside:
        return None
    shown = outside[:10]
    more = f" and {len(outside) - len(shown)} more" if len(outside) > len(shown) else ""
    example = next((str(c) for c in choices if str(c)), "...")
    return (
        f"column {column!r} has labels {shown}{more} outside {[c for c in choices if c != '']}; "
        f"set label_map to map them (e.g. label_map.{shown[0]}={example})"
    )
