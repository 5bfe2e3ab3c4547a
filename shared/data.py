"""Reading, validating, splitting and fingerprinting the data a vertical trains on.

Tables (CSV, JSONL, Parquet) are read with pandas and checked against a :class:`TableSchema`;
an error names the file, the row and the column. Images come from class-subfolder trees or
MedMNIST-style `.npz` files.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:  # pandas loads lazily so that vertical schemas import in milliseconds
    import pandas as pd

from shared.errors import DataError

DType = Literal["str", "int", "float", "datetime", "any"]
TABLE_SUFFIXES = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".json": "json",
    ".parquet": "parquet",
}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".dcm"}
MAX_REPORTED_PROBLEMS = 20


@dataclass(frozen=True)
class Column:
    """One column of a table schema.

    Attributes:
        name: Column name.
        dtype: Expected type; values are coerced and a failed coercion is an error.
        required: Whether the column must be present.
        nonempty: Whether empty strings and missing values are errors.
        choices: Allowed values, if restricted.
    """

    name: str
    dtype: DType = "str"
    required: bool = True
    nonempty: bool = True
    choices: tuple[Any, ...] | None = None


@dataclass(frozen=True)
class TableSchema:
    """The columns a vertical expects in one of its input tables."""

    name: str
    columns: tuple[Column, ...]
    unique: tuple[str, ...] = field(default_factory=tuple)

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
    df: pd.DataFrame, schema: TableSchema, source: str | Path = "<table>"
) -> pd.DataFrame:
    """Checks `df` against `schema` and returns a copy with values coerced to the schema's types.

    Rows are reported 1-based, counting data rows (a CSV's header is not a row).

    Raises:
        DataError: listing up to 20 problems, each with the file, row and column.
    """
    missing = [c.name for c in schema.columns if c.required and c.name not in df.columns]
    if missing:
        raise DataError(
            f"{source}: missing required column(s) {missing} for {schema.name}; "
            f"found {list(df.columns)}, expected {schema.column_names}"
        )
    out = df.copy()
    problems: list[str] = []
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
        outside = ~empty & ~raw.astype(str).isin([str(c) for c in col.choices])
        bad.extend(
            (int(i), f"{raw.iloc[i]!r} is not one of {list(col.choices)}")
            for i in np.flatnonzero(outside.to_numpy())
        )
    return values, sorted(bad)


def load_table(path: str | Path, schema: TableSchema) -> pd.DataFrame:
    """Reads and validates one table; see :func:`read_table` and :func:`validate_table`."""
    return validate_table(read_table(path), schema, source=path)


def split_indices(
    n: int,
    *,
    labels: Sequence[Any] | None = None,
    groups: Sequence[Any] | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Deterministic train/val/test indices: stratified by `labels`, and by `groups` when given.

    With `groups`, every group (a user, a patient) falls in exactly one split. Stratification is
    dropped for a label too rare to appear in every split rather than failing.
    """
    from sklearn.model_selection import GroupShuffleSplit, StratifiedGroupKFold, train_test_split

    idx = np.arange(n)
    if n < 3:
        return idx, idx[:0], idx[:0]

    def two_way(pool: np.ndarray, fraction: float, salt: int) -> tuple[np.ndarray, np.ndarray]:
        if fraction <= 0 or len(pool) < 2:
            return pool, pool[:0]
        if groups is not None:
            g = np.asarray(groups, dtype=object)[pool]
            if labels is not None and len(set(g)) >= 2:
                y = np.asarray(labels, dtype=object)[pool]
                k = max(2, min(round(1 / fraction), len(set(g))))
                cv = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed + salt)
                try:
                    keep, held = next(cv.split(pool, y.astype(str), g.astype(str)))
                    return pool[keep], pool[held]
                except ValueError:
                    pass
            gss = GroupShuffleSplit(n_splits=1, test_size=fraction, random_state=seed + salt)
            keep, held = next(gss.split(pool, groups=g.astype(str)))
            return pool[keep], pool[held]
        y = None if labels is None else np.asarray(labels, dtype=object)[pool].astype(str)
        if y is not None:
            _, counts = np.unique(y, return_counts=True)
            if counts.min() < 2 or round(len(pool) * fraction) < len(counts):
                y = None
        keep, held = train_test_split(
            pool, test_size=fraction, random_state=seed + salt, stratify=y
        )
        return np.sort(keep), np.sort(held)

    rest, test = two_way(idx, test_fraction, 0)
    relative_val = val_fraction / max(1e-9, 1 - test_fraction)
    train, val = two_way(rest, relative_val, 1)
    return np.sort(train), np.sort(val), np.sort(test)


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


def read_image_folder(root: str | Path) -> tuple[list[Path], list[str]]:
    """Lists images under `root/<class>/...`; returns paths and their class names.

    Raises:
        DataError: when `root` has no class subfolders holding images.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: image folder not found")
    paths, labels = [], []
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for file in sorted(class_dir.rglob("*")):
            if file.is_file() and file.suffix.lower() in IMAGE_SUFFIXES:
                paths.append(file)
                labels.append(class_dir.name)
    if not paths:
        raise DataError(
            f"{root}: no images found in class subfolders (expected root/<class>/<image>)"
        )
    return paths, labels


def read_npz_splits(path: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Reads a MedMNIST-style npz (`train_images`, `train_labels`, ...) into split -> (images, labels).

    Images are (N, H, W) or (N, H, W, C) uint8; labels are flattened to (N,).
    """
    path = Path(path)
    try:
        archive = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise DataError(f"{path}: not a readable npz file: {exc}") from None
    splits = {}
    for split in ("train", "val", "test"):
        ik, lk = f"{split}_images", f"{split}_labels"
        if ik in archive and lk in archive:
            images, labels = archive[ik], archive[lk].reshape(len(archive[lk]), -1)[:, 0]
            if images.ndim not in (3, 4) or len(images) != len(labels):
                raise DataError(
                    f"{path}: {ik} has shape {images.shape}, expected (N, H, W[, C]) matching {lk}"
                )
            splits[split] = (images, labels)
    if not splits:
        raise DataError(
            f"{path}: no <split>_images / <split>_labels arrays (keys: {list(archive.keys())})"
        )
    return splits
