"""Cleaning before anything is trained, indexed or logged: PII masking and de-duplication."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

import numpy as np
import pandas as pd

from shared.data_report import DataReport

# Order matters: e-mails and IBANs first, then card numbers, bare account numbers, then phones.
_DATE = re.compile(r"^\d{4}[-/.]\d{1,2}[-/.]\d{1,2}$|^\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}$")
_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("[EMAIL]", re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")),
    ("[ACCOUNT]", re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,4})?\b")),
    ("[CARD]", re.compile(r"\b(?:\d[ -]?){12,18}\d\b")),
    ("[ACCOUNT]", re.compile(r"\b\d{8,12}\b")),
    ("[PHONE]", re.compile(r"(?<![\w-])\+?\(?\d{1,4}\)?(?:[ .-]?\(?\d{2,4}\)?){2,4}(?![\w-])")),
)


def _replace(token: str):
    def sub(match: re.Match[str]) -> str:
        text = match.group(0)
        if token == "[PHONE]" and (sum(c.isdigit() for c in text) < 7 or _DATE.match(text.strip())):
            return text  # dates and short numbers are not phone numbers
        return token

    return sub


def mask_pii(text: str) -> str:
    """Replaces e-mails, IBAN-like and long account numbers, card numbers and phone numbers.

    Example:
        >>> mask_pii("card 4111 1111 1111 1111, mail me at a.b@example.com")
        'card [CARD], mail me at [EMAIL]'
    """
    for token, pattern in _PATTERNS:
        text = pattern.sub(_replace(token), text)
    return text


def normalise(text: str) -> str:
    """Lower-cased, accent-folded, punctuation-free text with single spaces (the exact-duplicate key)."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()
    return " ".join(re.findall(r"[a-z0-9\[\]]+", text))


def dedupe(
    texts: Sequence[str], keys: Sequence[str] | None = None, threshold: float = 0.9
) -> np.ndarray:
    """Indices of the rows to keep after removing exact and near-duplicate texts.

    Two rows are duplicates when they share `keys` (e.g. the answer they point to) and their
    normalised texts are equal, or their character 3-5-gram TF-IDF cosine (term frequencies, no IDF: stable on small tables) is at least `threshold`.
    The first occurrence is kept. Rows with different keys are never merged: that would be a
    labelling conflict, not a duplicate.

    Returns:
        Sorted indices into `texts`.
    """
    keys = list(keys) if keys is not None else [""] * len(texts)
    norm = [normalise(t) for t in texts]
    keep, seen = [], set()
    for i, (text, key) in enumerate(zip(norm, keys, strict=True)):
        if (key, text) not in seen:
            seen.add((key, text))
            keep.append(i)
    if len(keep) < 2 or threshold >= 1:
        return np.asarray(keep, dtype=int)
    from sklearn.feature_extraction.text import TfidfVectorizer

    kept = np.asarray(keep)
    matrix = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), use_idf=False).fit_transform(
        [norm[i] for i in kept]
    )
    key_arr = np.asarray([keys[i] for i in kept], dtype=object)
    drop = np.zeros(len(kept), dtype=bool)
    for start in range(0, len(kept), 512):  # chunked: memory stays O(chunk x n)
        sims = (matrix[start : start + 512] @ matrix.T).toarray()
        for row, sim in enumerate(sims):
            i = start + row
            if drop[i]:
                continue
            earlier = np.flatnonzero(sim[:i] >= threshold)
            if any(key_arr[j] == key_arr[i] and not drop[j] for j in earlier):
                drop[i] = True
    return kept[~drop]


def clean_pairs(pairs: pd.DataFrame, report: DataReport | None = None) -> pd.DataFrame:
    """Drops exact and near-duplicate questions pointing to the same answer (PII is already masked).

    Rows the user fixed as `val` or `test` are kept as given: a held-out set is measured whole
    (a benchmark's official test set stays official). The rest, training rows and rows still to be
    split, are de-duplicated before the split is drawn, so no near-copy lands on both sides of a
    drawn split (fixed held-out rows are not compared with them). `report` counts the rows
    dropped as exact and as near duplicates.
    """
    held = pairs["split"].isin(["val", "test"]).to_numpy()
    free = np.flatnonzero(~held)
    questions, answers = list(pairs["question"].iloc[free]), list(pairs["answer_id"].iloc[free])
    keep = free[dedupe(questions, keys=answers)]
    if report is not None:
        keys = {(a, normalise(q)) for q, a in zip(questions, answers, strict=True)}
        exact = len(questions) - len(keys)
        report.drop("repeated question (same normalised text) for the same answer", exact)
        report.drop(
            "near-duplicate question for the same answer (char n-gram cosine >= 0.9)",
            len(free) - len(keep) - exact,
        )
    return pairs.iloc[np.sort(np.r_[keep, np.flatnonzero(held)])].reset_index(drop=True)
