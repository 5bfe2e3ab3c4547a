"""The public data sets of `../shared/data`, converted to each vertical's input format.

Used by `bench.generalization`. Every converter reads one data set, applies its protocol's split
(and, when `Caps` say so, a seeded subsample), writes the vertical's files under a work folder
(`runs/generalization/<dataset>/data/`, git-ignored: no dataset text lands in tracked files) and
returns a `Prepared`: the `--data` of `verticals train` and of `verticals evaluate`, the config
overrides (column and label mapping and split options only, never the recipe), the protocol in
words, and the split tables the same-run baselines are fitted on.

Splits are always fixed in the files (a `split` column, the npz's own arrays, or the
recommender's `split` option), so the vertical draws nothing of its own and ours and the
baselines see exactly the same rows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.common import DATA

SEED = 0
NEUTRAL_BAND = 0.1
"""FiQA and SemEval scores in [-NEUTRAL_BAND, NEUTRAL_BAND] are `neutral`; below, `negative`;
above, `positive`."""
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Caps:
    """Most rows kept per split (None: all), drawn with `SEED`, stratified where a label exists.

    Full-run caps are per data set (`FULL_CAPS`); `QUICK` caps every data set for a smoke test.
    """

    train: int | None = None
    val: int | None = None
    test: int | None = None
    users: int | None = None
    """Recommender: most users kept (all their interactions)."""


QUICK = Caps(train=240, val=80, test=120, users=250)
FULL_CAPS: dict[str, Caps] = {
    # 7 intents x ~1,900 rows: 5,000 keep ~700 per intent and a third of the fine-tuning time
    "snips": Caps(train=5000),
    # ~7,600 training headlines after the split; 5,000 bound the fine-tune on a 2-core CPU
    "sentfin": Caps(train=5000),
    # 150 intents x 100: half of them (50 per intent, stratified) keeps the run near an hour
    "clinc150": Caps(train=7500),
}


@dataclass
class Prepared:
    """A data set in a vertical's format: what `train` and `evaluate` read, and how it was made.

    Attributes:
        train: `verticals train --data` (train and val rows, split fixed).
        test: `verticals evaluate --data` (test rows only, or the data set whose test split the
            vertical's protocol holds out).
        overrides: `key=value` config overrides: column/label mapping and split options only.
        protocol: The split, subsampling and label mapping, in words.
        tables: What the baselines need (split tables, paths), by name.
        counts: Rows (or images, users) per split.
    """

    vertical: str
    train: Path
    test: Path
    overrides: list[str]
    protocol: str
    tables: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)


# ---------------------------------------------------------------------------- helpers


def subsample(frame: pd.DataFrame, n: int | None, by: str | None = None) -> pd.DataFrame:
    """At most `n` rows of `frame`, drawn with `SEED` (stratified by column `by` when it can be)."""
    if n is None or len(frame) <= n:
        return frame
    from sklearn.model_selection import train_test_split

    labels = frame[by] if by is not None else None
    if labels is not None and (labels.value_counts().min() < 2 or labels.nunique() > n):
        labels = None
    kept, _ = train_test_split(frame, train_size=n, random_state=SEED, stratify=labels)
    return kept.sort_index()


def cap_splits(
    parts: dict[str, pd.DataFrame], caps: Caps, by: str | None
) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """Each split capped by `caps`; also the notes ("train subsampled to N of M rows") to quote."""
    out, notes = {}, []
    for name in SPLITS:
        if name not in parts:
            continue
        limit = getattr(caps, name)
        out[name] = subsample(parts[name], limit, by)
        if len(out[name]) < len(parts[name]):
            notes.append(f"{name} subsampled to {len(out[name])} of {len(parts[name])} rows")
    return out, notes


def protocol_text(base: str, notes: list[str]) -> str:
    """`base`, then the subsampling notes (with the seed) when there are any."""
    if not notes:
        return base
    return f"{base}; " + ", ".join(notes) + f" (seed {SEED}, stratified)"


def group_split(groups: pd.Series, fractions: tuple[float, float] = (0.8, 0.1)) -> pd.Series:
    """train/val/test per row, whole groups at a time: groups shuffled with `SEED`, the first
    `fractions[0]` of them train, the next `fractions[1]` val, the rest test."""
    unique = groups.drop_duplicates().to_numpy()
    order = np.random.default_rng(SEED).permutation(len(unique))
    n_train = int(round(fractions[0] * len(unique)))
    n_val = int(round(fractions[1] * len(unique)))
    names = np.empty(len(unique), dtype=object)
    names[order[:n_train]] = "train"
    names[order[n_train : n_train + n_val]] = "val"
    names[order[n_train + n_val :]] = "test"
    return groups.map(dict(zip(unique, names, strict=True)))


def band_label(score: float) -> str:
    """A score in [-1, 1] as a sentiment, by `NEUTRAL_BAND`."""
    if score > NEUTRAL_BAND:
        return "positive"
    if score < -NEUTRAL_BAND:
        return "negative"
    return "neutral"


def fresh_folder(path: Path) -> Path:
    """An empty folder at `path` (what an earlier run left there is removed)."""
    import shutil

    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


# ---------------------------------------------------------------------------- customer_service


def _intent_prepared(
    work: Path,
    parts: dict[str, pd.DataFrame],
    protocol: str,
    oos: dict[str, pd.DataFrame] | None = None,
    val_fraction: float = 0.0,
) -> Prepared:
    """Writes an intent data set (`text, intent` per split) as a customer_service folder.

    `data/train/` holds `kb.csv` (one answer per training intent, its name as text) and
    `pairs.csv` with every row's split fixed (train or val; with `val_fraction` and no val part,
    a stratified share of train is fixed as val); `data/test/` holds the test `pairs.csv` (and
    the test `out_of_scope.csv`). `oos` holds out-of-scope `text` per split (`val`, `test`).
    """
    from bench.customer_service_common import write_intent_folder

    train_dir = fresh_folder(work / "train")
    test_dir = fresh_folder(work / "test")
    oos = oos or {}
    oos_val = oos.get("val")
    write_intent_folder(
        train_dir,
        parts["train"],
        parts["test"].iloc[:0],
        val_fraction,
        SEED,
        oos=None if oos_val is None else oos_val.assign(split="val"),
        val=parts.get("val"),
    )
    pairs = pd.read_csv(train_dir / "pairs.csv", keep_default_na=False)
    test = parts["test"].rename(columns={"text": "question"})[["question", "intent"]]
    test.to_csv(test_dir / "pairs.csv", index=False)
    if oos.get("test") is not None:
        oos["test"].rename(columns={"text": "question"})[["question"]].to_csv(
            test_dir / "out_of_scope.csv", index=False
        )
    tables = {
        name: pairs[pairs["split"] == name].rename(columns={"question": "text"})[["text", "intent"]]
        for name in ("train", "val")
    }
    tables["test"] = parts["test"][["text", "intent"]]
    counts = {k: len(v) for k, v in tables.items()}
    counts.update({f"oos_{k}": len(v) for k, v in oos.items() if v is not None})
    return Prepared(
        "customer_service", train_dir, test_dir, [], protocol, tables=tables, counts=counts
    )


def banking77(work: Path, caps: Caps) -> Prepared:
    """BANKING77: official train / test; a stratified 10% of train fixed as validation."""
    folder = DATA / "customer_service" / "banking77"
    parts = {
        name: pd.read_csv(folder / f"{name}.csv").rename(columns={"category": "intent"})
        for name in ("train", "test")
    }
    parts, notes = cap_splits(parts, caps, "intent")
    base = (
        "official train (10,003) / test (3,080), 77 intents; a stratified 10% of train "
        f"fixed as validation (seed {SEED})"
    )
    return _intent_prepared(work, parts, protocol_text(base, notes), val_fraction=0.1)


def clinc150(work: Path, caps: Caps) -> Prepared:
    """CLINC150 "full": official train / val / test; oos_train + oos_val as validation
    out-of-scope questions (they set the handoff threshold), oos_test in the test folder."""
    raw = json.loads((DATA / "customer_service" / "clinc150" / "data_full.json").read_text())

    def frame(key: str) -> pd.DataFrame:
        return pd.DataFrame(raw[key], columns=["text", "intent"])

    parts, notes = cap_splits({n: frame(n) for n in SPLITS}, caps, "intent")
    oos_val = pd.concat([frame("oos_train"), frame("oos_val")], ignore_index=True)
    oos = {"val": subsample(oos_val, caps.val), "test": subsample(frame("oos_test"), caps.test)}
    base = (
        "official train (15,000) / val (3,000) / test (4,500), 150 intents; out-of-scope: "
        "oos_train + oos_val (200) given as validation out-of-scope questions, oos_test (1,000) "
        "in the evaluate folder"
    )
    return _intent_prepared(work, parts, protocol_text(base, notes), oos=oos)


def _read_slu(folder: Path, split: str) -> pd.DataFrame:
    """A SlotGated-SLU split (`seq.in`, `label` line-aligned) as `text, intent`."""
    texts = (folder / split / "seq.in").read_text(encoding="utf-8").splitlines()
    labels = (folder / split / "label").read_text(encoding="utf-8").splitlines()
    return pd.DataFrame({"text": [t.strip() for t in texts], "intent": labels})


def snips(work: Path, caps: Caps) -> Prepared:
    """SNIPS: official train / valid / test, 7 intents."""
    folder = DATA / "customer_service" / "snips"
    parts = {
        n: _read_slu(folder, f) for n, f in zip(SPLITS, ("train", "valid", "test"), strict=True)
    }
    parts, notes = cap_splits(parts, caps, "intent")
    base = "official train (13,084) / valid (700) / test (700), 7 intents"
    return _intent_prepared(work, parts, protocol_text(base, notes))


def atis(work: Path, caps: Caps) -> Prepared:
    """ATIS: official train / valid / test; a multi-intent label (`a#b`) becomes its first intent."""
    folder = DATA / "customer_service" / "atis"
    parts = {
        n: _read_slu(folder, f) for n, f in zip(SPLITS, ("train", "valid", "test"), strict=True)
    }
    multi = {n: int(p["intent"].str.contains("#").sum()) for n, p in parts.items()}
    parts = {n: p.assign(intent=p["intent"].str.split("#").str[0]) for n, p in parts.items()}
    parts, notes = cap_splits(parts, caps, "intent")
    base = (
        "official train (4,478) / valid (500) / test (893); multi-intent labels reduced to their "
        f"first intent (train {multi['train']}, valid {multi['val']}, test {multi['test']} rows); "
        "test rows whose intent never occurs in train count as errors"
    )
    return _intent_prepared(work, parts, protocol_text(base, notes))


def stackfaq(work: Path, caps: Caps) -> Prepared:
    """StackFAQ as an FAQ: each thread is an intent whose answers are its KB entries.

    Split by query, as `bench.customer_service_stackfaq.load_stackfaq` draws it (half of each
    thread's paraphrases to test; the rest and the original question to train, 10% of them to
    validation). A test query is answered right at rank r when the r-th answer is one of its
    thread's (the pairs carry the thread as intent and no answer id).
    """
    from bench.customer_service_stackfaq import load_stackfaq

    answers, queries = load_stackfaq(
        DATA / "customer_service" / "stackfaq" / "stackExchange-FAQ.json", SEED
    )
    queries = queries.assign(intent="thread_" + queries["thread"].astype(str))
    answers = answers.assign(intent="thread_" + answers["thread"].astype(str))
    parts = {n: queries[queries["split"] == n] for n in SPLITS}
    parts, notes = cap_splits(parts, caps, None)
    train_dir = fresh_folder(work / "train")
    test_dir = fresh_folder(work / "test")
    answers[["answer_id", "answer", "intent"]].to_csv(train_dir / "kb.csv", index=False)
    pairs = pd.concat([parts["train"], parts["val"]])[["question", "intent", "split"]]
    pairs.to_csv(train_dir / "pairs.csv", index=False)
    parts["test"][["question", "intent"]].to_csv(test_dir / "pairs.csv", index=False)
    base = (
        f"split by query (seed {SEED}): per thread half of the usable paraphrases to test, the "
        "rest + the original question to train (10% of them validation); KB = the 719 answers, "
        "intent = thread; hit = an answer of the query's thread"
    )
    tables = {n: p.rename(columns={"question": "text"}) for n, p in parts.items()}
    tables["answers"] = answers
    return Prepared(
        "customer_service",
        train_dir,
        test_dir,
        [],
        protocol_text(base, notes),
        tables=tables,
        counts={n: len(p) for n, p in parts.items()},
    )


# ---------------------------------------------------------------------------- finance_sentiment


def _finance_prepared(
    work: Path,
    parts: dict[str, pd.DataFrame],
    protocol: str,
    text_col: str = "text",
    label_col: str = "sentiment",
) -> Prepared:
    """Writes `train.csv` (train + val rows, `split` fixed) and `test.csv` in the columns
    `text_col`, `label_col` (mapped with `columns.text=...`, `columns.sentiment=...` when they are
    not the schema's names); `parts` hold `text, sentiment` and optionally `score`."""
    folder = fresh_folder(work)
    names = {"text": text_col, "sentiment": label_col}
    train = pd.concat([parts["train"].assign(split="train"), parts["val"].assign(split="val")])
    scored = ["score"] if "score" in train.columns else []  # the gold score, as a user has it
    train[["text", "sentiment", *scored, "split"]].rename(columns=names).to_csv(
        folder / "train.csv", index=False
    )
    parts["test"][["text", "sentiment", *scored]].rename(columns=names).to_csv(
        folder / "test.csv", index=False
    )
    overrides = [f"columns.{k}={v}" for k, v in names.items() if k != v]
    return Prepared(
        "finance_sentiment",
        folder / "train.csv",
        folder / "test.csv",
        overrides,
        protocol,
        tables=dict(parts),
        counts={n: len(p) for n, p in parts.items()},
    )


def financial_phrasebank(work: Path, caps: Caps) -> Prepared:
    """PhraseBank Sentences_50Agree, FinBERT protocol (shuffle split 80/10/10, random_state=0)."""
    from bench.finance_phrasebank import LABELS, protocol_split, read_phrasebank

    texts, y = read_phrasebank(
        DATA / "finance_sentiment" / "financial_phrasebank" / "Sentences_50Agree.txt"
    )
    frame = pd.DataFrame({"text": texts, "sentiment": [LABELS[i] for i in y]})
    idx = dict(zip(SPLITS, protocol_split(len(frame), seed=0), strict=True))
    parts, notes = cap_splits({n: frame.iloc[i] for n, i in idx.items()}, caps, "sentiment")
    base = (
        f"Sentences_50Agree ({len(frame)} sentences), FinBERT protocol: shuffle split "
        "random_state=0, 80% train / 10% val / 10% test"
    )
    return _finance_prepared(work, parts, protocol_text(base, notes), "sentence", "label")


def _fiqa_rows() -> pd.DataFrame:
    """One row per scored FiQA target: `sentence_id, text` ("target: sentence"), `score`."""
    rows = []
    for kind in ("headline", "post"):
        path = DATA / "finance_sentiment" / "fiqa2018_task1" / f"task1_{kind}_ABSA_train.json"
        for sid, entry in json.loads(path.read_text(encoding="utf-8")).items():
            for info in entry["info"]:
                rows.append(
                    {
                        "sentence_id": f"{kind}_{sid}",
                        "text": f"{info['target']}: {entry['sentence'].strip()}",
                        "score": float(info["sentiment_score"]),
                    }
                )
    return pd.DataFrame(rows)


def fiqa2018_task1(work: Path, caps: Caps) -> Prepared:
    """FiQA 2018 task 1 (headlines + posts): per target, text "target: sentence"; seeded
    80/10/10 split by sentence; score -> sentiment by `NEUTRAL_BAND`."""
    frame = _fiqa_rows()
    frame["sentiment"] = frame["score"].map(band_label)
    frame["split"] = group_split(frame["sentence_id"])
    parts = {n: frame[frame["split"] == n] for n in SPLITS}
    parts, notes = cap_splits(parts, caps, "sentiment")
    base = (
        f"headlines + posts, one row per scored target ({len(frame)}), text 'target: sentence'; "
        f"seeded 80/10/10 split by sentence (seed {SEED}); score > {NEUTRAL_BAND} positive, "
        f"< -{NEUTRAL_BAND} negative, else neutral; the gold score is given to train (score head)"
    )
    return _finance_prepared(work, parts, protocol_text(base, notes))


def sentfin(work: Path, caps: Caps) -> Prepared:
    """SEntFiN 1.0 at headline level: headlines whose entities all carry the same sentiment
    (that sentiment is the label), one row per distinct title, seeded 80/10/10 by headline."""
    raw = pd.read_csv(DATA / "finance_sentiment" / "sentfin" / "SEntFiN.csv")
    decisions = raw["Decisions"].map(json.loads)
    agree = decisions.map(lambda d: len(set(d.values())) == 1)
    frame = pd.DataFrame(
        {
            "text": raw.loc[agree, "Title"].str.strip(),
            "sentiment": decisions[agree].map(lambda d: next(iter(d.values()))),
        }
    )
    agreeing = len(frame)
    frame = frame.drop_duplicates("text").reset_index(drop=True)
    frame["split"] = group_split(frame["text"])
    parts = {n: frame[frame["split"] == n] for n in SPLITS}
    parts, notes = cap_splits(parts, caps, "sentiment")
    base = (
        f"headline level: the {agreeing} of {len(raw)} headlines whose entities all agree, "
        f"{len(frame)} distinct titles (repeats dropped), seeded 80/10/10 by headline "
        f"(seed {SEED}); not comparable to the paper's entity-level figure"
    )
    return _finance_prepared(work, parts, protocol_text(base, notes), "Title", "sentiment")


def semeval2017_task5_headlines(work: Path, caps: Caps) -> Prepared:
    """SemEval-2017 task 5 headlines: official train / test, text "company: title"; 10% of the
    training titles (seeded, whole titles) as validation; score -> sentiment by `NEUTRAL_BAND`."""
    folder = DATA / "finance_sentiment" / "semeval2017_task5_headlines"
    train = pd.DataFrame(json.loads((folder / "Headline_Trainingdata.json").read_text()))
    test = pd.DataFrame(json.loads((folder / "Headlines_Testdata_withscores.json").read_text()))
    test = test.rename(columns={"sentiment score": "sentiment"})

    def rows(frame: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "title": frame["title"].str.strip(),
                "text": frame["company"].str.strip() + ": " + frame["title"].str.strip(),
                "score": frame["sentiment"].astype(float),
                "sentiment": frame["sentiment"].astype(float).map(band_label),
            }
        )

    train, test = rows(train), rows(test)
    train["split"] = group_split(train["title"], (0.9, 0.1))
    parts = {"train": train[train["split"] == "train"], "val": train[train["split"] == "val"]}
    parts, notes = cap_splits({**parts, "test": test}, caps, "sentiment")
    base = (
        f"official train ({len(train)}) / test ({len(test)}) rows (headline, company), text "
        f"'company: title'; 10% of the training titles as validation (seed {SEED}); score > "
        f"{NEUTRAL_BAND} positive, < -{NEUTRAL_BAND} negative, else neutral; the gold score is "
        "given to train (score head)"
    )
    return _finance_prepared(work, parts, protocol_text(base, notes))
