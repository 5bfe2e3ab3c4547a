"""Reading, validating, splitting and fingerprinting the data a vertical trains on.

Tables (CSV, JSONL, Parquet) are read with pandas and checked against a :class:`TableSchema`;
an error names the file, the row and the column. The user's column names and label values are
mapped onto the schema's first (`shared.data_import`). Splits (`shared.splits`) and image
readers (`shared.data_images`: class-subfolder trees, MedMNIST-style `.npz` files) are
re-exported here.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:  # pandas loads lazily so that vertical schemas import in milliseconds
    import pandas as pd

from shared.data_images import IMAGE_SUFFIXES as IMAGE_SUFFIXES
from shared.data_images import read_image_folder as read_image_folder
from shared.data_images import read_npz_splits as read_npz_splits
from shared.data_import import label_hint, map_columns, map_labels
from shared.errors import DataError
from shared.splits import ResolvedSplits as ResolvedSplits
from shared.splits import resolve_splits as resolve_splits
from shared.splits import split_indices as split_indices

DType = Literal["str", "int", "float", "datetime", "any"]
TABLE_SUFFIXES = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".json": "json",
    ".parquet": "parquet",
}
MAX_REPORTED_PROBLEMS = 20


@dataclass(frozen=True)
class Column:
    """One column of a table schema.

    Attributes:
        name: Column name.
        dtype: Expected type; values are coerced and a failed coercion is an error.
        required: Whether the column must be present.
        nonempty: Whether empty strings and missing values are errors.
        choices: Allowed values, if restricted. Text values match them with spaces stripped and
            case folded (`" Negative"` is `negative`) and are stored as the choice.
    """

    name: str
    dtype: DType = "str"
    required: bool = True
    nonempty: bool = True
    choices: tuple[Any, ...] | None = None


@dataclass(frozen=True)
class TableSchema:
    """The columns a vertical expects in one of its input tables.

    Attributes:
        name: The table's name in messages.
        columns: Its columns.
        unique: Columns whose values may not repeat.
        label: The column holding the class labels, which a config's `label_map` maps.
    """

    name: str
    columns: tuple[Column, ...]
    unique: tuple[str, ...] = field(default_factory=tuple)
    label: str | None = None

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


def read_table(path: str | Path) -> pd.DataFrame:
    """Reads a CSV, TSV, JSONL/JSON-lines or Parquet table as strings-preserving pandas data.

    Raises:
        DataError: naming the file when it is missing, of an unknown kind, or unparseable.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    kind = TABLE_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise DataError(
            f"{path}: unknown table format {path.suffix!r}; use .csv, .jsonl or .parquet"
        )
    try:
        if kind in ("csv", "tsv"):
            return pd.read_csv(
                path,
                sep="," if kind == "csv" else "\t",
                dtype=str,
                keep_default_na=False,
                encoding="utf-8",
            )
        if kind in ("jsonl", "json"):
            return _read_jsonl(path)
        return pd.read_parquet(path)
    except DataError:
        raise
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: has no rows (the file is empty)") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start}): {exc.reason}") from None
    except Exception as exc:  # pandas raises many types; the message is what matters
        raise DataError(f"{path}: cannot be read as {kind}: {exc}") from None


def find_table(folder: str | Path, stem: str, required: bool = True) -> Path | None:
    """The `<stem>.csv|.tsv|.jsonl|.json|.parquet` table in `folder` (the first that exists).

    Raises:
        DataError: naming the folder and the expected file names when `required` and none
            exists; without `required`, None is returned instead.
    """
    folder = Path(folder)
    for suffix in TABLE_SUFFIXES:
        path = folder / f"{stem}{suffix}"
        if path.is_file():
            return path
    if not required:
        return None
    raise DataError(
        f"{folder}: no {stem} table; expected {stem}.csv, {stem}.jsonl or {stem}.parquet"
    )


def _read_jsonl(path: Path) -> pd.DataFrame:
    import pandas as pd

    records = []
    with path.open("r", encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}: line {lineno} is not valid JSON: {exc.msg}") from None
            if not isinstance(record, dict):
                raise DataError(f"{path}: line {lineno} is not a JSON object")
            records.append(record)
    return pd.DataFrame.from_records(records)


def validate_table(
    df: pd.DataFrame,
    schema: TableSchema,
    source: str | Path = "<table>",
    *,
    columns: dict[str, str] | None = None,
    label_map: dict[str, str] | None = None,
) -> pd.DataFrame:
    """Checks `df` against `schema` and returns a copy with values coerced to the schema's types.

    `columns` (schema column -> the user's column) and `label_map` (the user's label -> the
    schema's) are applied first; see :func:`shared.data_import.map_columns` and
    :func:`~shared.data_import.map_labels`. Rows are reported 1-based, counting data rows (a
    CSV's header is not a row).

    Raises:
        DataError: listing up to 20 problems, each with the file, row and column.
    """
    df = map_labels(map_columns(df, columns, schema, source), label_map, schema)
    missing = [c.name for c in schema.columns if c.required and c.name not in df.columns]
    if missing:
        raise DataError(
            f"{source}: missing required column(s) {missing} for {schema.name}; "
            f"found {list(df.columns)}, expected {schema.column_names}"
        )
    out = df.copy()
    problems: list[str] = []
    label = next((c for c in schema.columns if c.name == schema.label and c.choices), None)
    if label is not None and label.name in out.columns:
        hint = label_hint(out[label.name], label.name, label.choices)
        problems.extend([f"{source}: {hint}"] if hint else [])
    for col in schema.columns:
        if col.name not in out.columns:
            continue
        values, bad = _coerce(out[col.name], col)
        for idx, reason in bad:
            problems.append(f"{source}: row {idx + 1}, column {col.name!r}: {reason}")
        out[col.name] = values
    for key in schema.unique:
        if key in out.columns:
            dup = out[key].duplicated(keep="first")
            for idx in np.flatnonzero(dup.to_numpy()):
                problems.append(
                    f"{source}: row {idx + 1}, column {key!r}: duplicate value {out[key].iloc[idx]!r}"
                )
    if problems:
        shown = problems[:MAX_REPORTED_PROBLEMS]
        more = f"\n... and {len(problems) - len(shown)} more" if len(problems) > len(shown) else ""
        raise DataError("invalid data:\n" + "\n".join(shown) + more)
    return out.reset_index(drop=True)


def _coerce(series: pd.Series, col: Column) -> tuple[pd.Series, list[tuple[int, str]]]:
    import pandas as pd

    from shared.inputs import TIMESTAMP_RULE, parse_timestamps, text_problem

    bad: list[tuple[int, str]] = []
    raw = series.reset_index(drop=True)
    empty = raw.isna() | raw.astype(str).str.strip().eq("")
    if col.nonempty:
        bad.extend((int(i), "empty value") for i in np.flatnonzero(empty.to_numpy()))
    if col.dtype == "str":
        values = raw.where(empty, raw.astype(str))
        problems = values.map(lambda v: text_problem(v) if isinstance(v, str) else None)
        bad.extend((int(i), str(problems.iloc[i])) for i in np.flatnonzero(problems.notna()))
    elif col.dtype in ("int", "float"):
        values = pd.to_numeric(raw.where(~empty), errors="coerce")
        failed = values.isna() & ~empty
        bad.extend(
            (int(i), f"{raw.iloc[i]!r} is not a number") for i in np.flatnonzero(failed.to_numpy())
        )
        if col.dtype == "int" and not failed.any() and not (empty.any() and not col.nonempty):
            fractional = values.notna() & (values % 1 != 0)
            bad.extend(
                (int(i), f"{raw.iloc[i]!r} is not an integer")
                for i in np.flatnonzero(fractional.to_numpy())
            )
    elif col.dtype == "datetime":
        values, failed = parse_timestamps(raw.where(~empty))
        bad.extend(
            (int(i), f"{raw.iloc[i]!r} is not a timestamp ({TIMESTAMP_RULE})")
            for i in np.flatnonzero(failed.to_numpy())
        )
    else:
        values = raw
    if col.choices is not None:
        canonical = {str(c).strip().casefold(): c for c in col.choices}
        folded = raw.astype(str).str.strip().str.casefold()
        outside = ~empty & ~folded.isin(list(canonical))
        bad.extend(
            (int(i), f"{raw.iloc[i]!r} is not one of {list(col.choices)}")
            for i in np.flatnonzero(outside.to_numpy())
        )
        if col.dtype == "str":  # `Negative ` is stored as the choice `negative`
            values = values.where(~(~empty & ~outside), folded.map(canonical))
    return values, sorted(bad)


def load_table(
    path: str | Path,
    schema: TableSchema,
    *,
    columns: dict[str, str] | None = None,
    label_map: dict[str, str] | None = None,
) -> pd.DataFrame:
    """Reads and validates one table; see :func:`read_table` and :func:`validate_table`.

    Raises:
        DataError: also when the file has no rows (empty, or a header alone).
    """
    df = read_table(path)
    if len(df) == 0:
        found = f" (only a header: {list(df.columns)})" if len(df.columns) else ""
        raise DataError(
            f"{path}: has no rows{found}; {schema.name} needs columns {schema.column_names}"
        )
    return validate_table(df, schema, source=path, columns=columns, label_map=label_map)


def fingerprint(*sources: str | Path | pd.DataFrame | np.ndarray) -> str:
    """SHA-256 of data files (or folders, recursively), frames or arrays; stored with the model."""
    import pandas as pd

    digest = hashlib.sha256()
    for source in sources:
        if isinstance(source, pd.DataFrame):
            digest.update(pd.util.hash_pandas_object(source, index=False).to_numpy().tobytes())
        elif isinstance(source, np.ndarray):
            digest.update(np.ascontiguousarray(source).tobytes())
        else:
            path = Path(source)
            files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
            for file in files:
                digest.update(str(file.relative_to(path) if path.is_dir() else file.name).encode())
                with file.open("rb") as handle:
                    for chunk in iter(lambda: handle.read(1 << 20), b""):
                        digest.update(chunk)
    return "sha256:" + digest.hexdigest()
