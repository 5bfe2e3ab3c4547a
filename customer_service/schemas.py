"""Input files of the customer-service vertical, validated against schemas, and how they combine.

A data folder holds:

- `kb.csv` (required): `answer_id, answer` and optionally `intent, title, tags`. An answer may be
  a template with `{slot}` placeholders.
- `pairs.csv` (optional): `question` with `answer_id` and/or `intent`; an optional `split`
  column (`train|val|test`) fixes the split, otherwise it is drawn stratified.
- `dialogues.jsonl` (optional): `session_id, turn, role (user|agent), text, ts`; each agent reply
  becomes a training pair with the user turn before it.
- `out_of_scope.csv` (optional): `question` (and optional `split`): questions the bot must hand off.
- `slots.json` (optional): `{slot: [values]}` for filling templates from the conversation.
- `dialogue_acts.csv` (optional): `text, act`: more examples for the dialogue-act classifier
  (`greet`, `thank`, `goodbye`, `affirm`, `deny`, `human`, or an act with a configured reply).

Each table may also be `.jsonl`, `.tsv` or `.parquet` (`kb.parquet`, `pairs.jsonl`, ...).
Other column names are mapped with the config's `columns` (`columns.question=utterance`: every
table's `question` column is read from `utterance`), and intents given as other labels (`0`, `1`,
...) with `label_map`. A `split` value matches case-insensitively (`Test` is `test`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from customer_service.cleaning import mask_pii, normalise
from shared.data import Column, TableSchema, find_table, load_table
from shared.errors import DataError

SPLITS = ("train", "val", "test")
KB_SCHEMA = TableSchema(
    "knowledge_base",
    (
        Column("answer_id"),
        Column("answer"),
        Column("intent", required=False, nonempty=False),
        Column("title", required=False, nonempty=False),
        Column("tags", required=False, nonempty=False),
    ),
    unique=("answer_id",),
    label="intent",
)
PAIRS_SCHEMA = TableSchema(
    "training_pairs",
    (
        Column("question"),
        Column("answer_id", required=False, nonempty=False),
        Column("intent", required=False, nonempty=False),
        Column("split", required=False, nonempty=False, choices=("", *SPLITS)),
    ),
    label="intent",
)
DIALOGUE_SCHEMA = TableSchema(
    "dialogues",
    (
        Column("session_id"),
        Column("turn", "int"),
        Column("role", choices=("user", "agent")),
        Column("text"),
        Column("ts", "datetime", required=False, nonempty=False),
    ),
)
OOS_SCHEMA = TableSchema(
    "out_of_scope",
    (Column("question"), Column("split", required=False, nonempty=False, choices=("", *SPLITS))),
)

ACTS_SCHEMA = TableSchema("dialogue_acts", (Column("text"), Column("act")))
SCHEMAS = (KB_SCHEMA, PAIRS_SCHEMA, DIALOGUE_SCHEMA, OOS_SCHEMA, ACTS_SCHEMA)
UNMATCHED_REPLIES = "dialogue replies matching no KB answer"


@dataclass
class Dataset:
    """A validated, PII-masked data folder: the KB and the questions pointing into it."""

    kb: pd.DataFrame
    pairs: pd.DataFrame  # question, answer_id, intent, split ("" when not fixed)
    out_of_scope: pd.DataFrame  # question, split
    slots: dict[str, list[str]] = field(default_factory=dict)
    acts: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["text", "act"]))
    tables: dict[str, int] = field(default_factory=dict)  # table file -> rows read
    dropped: dict[str, int] = field(default_factory=dict)  # reason -> rows left out when read


def load_kb(
    path: str | Path, columns: dict[str, str] | None = None, label_map: dict[str, str] | None = None
) -> pd.DataFrame:
    """Reads and validates a KB table; fills the optional columns and masks PII in answers."""
    kb = load_table(path, KB_SCHEMA, columns=columns, label_map=label_map)
    for col in ("intent", "title", "tags"):
        kb[col] = kb[col].fillna("").astype(str) if col in kb.columns else ""
    kb["answer"] = kb["answer"].map(mask_pii)
    return kb[["answer_id", "answer", "intent", "title", "tags"]]


def load_dataset(
    folder: str | Path,
    columns: dict[str, str] | None = None,
    label_map: dict[str, str] | None = None,
) -> Dataset:
    """Reads a data folder (see the module doc); every error names the file, row and column.

    `columns` (schema column -> the user's column) applies to every table of the folder that
    has that column; `label_map` maps the intents of the KB and the pairs.

    Raises:
        DataError: when the KB table is missing, a file breaks its schema or has no rows, or a
            pair points nowhere.
    """
    folder = Path(folder)
    if folder.is_file():
        folder = folder.parent
    mapping = {"columns": columns, "label_map": label_map}
    kb_path = find_table(folder, "kb")
    kb = load_kb(kb_path, **mapping)
    tables, dropped = {kb_path.name: len(kb)}, {}
    frames = []
    if (pairs_path := find_table(folder, "pairs", required=False)) is not None:
        frames.append(_load_pairs(pairs_path, kb, mapping))
        tables[pairs_path.name] = len(frames[-1])
    if (dialogues_path := find_table(folder, "dialogues", required=False)) is not None:
        frames.append(dialogue_pairs(dialogues_path, kb, columns=columns))
        tables[dialogues_path.name] = frames[-1].attrs["turns"]
        dropped[UNMATCHED_REPLIES] = frames[-1].attrs["unmatched_replies"]
    pairs = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=["question", "answer_id", "intent", "split"])
    )
    oos = pd.DataFrame(columns=["question", "split"])
    if (oos_path := find_table(folder, "out_of_scope", required=False)) is not None:
        oos = load_table(oos_path, OOS_SCHEMA, columns=columns)
        oos["split"] = oos["split"].fillna("") if "split" in oos.columns else ""
        oos["question"] = oos["question"].map(mask_pii)
        tables[oos_path.name] = len(oos)
    slots = _load_slots(folder / "slots.json")
    acts = pd.DataFrame(columns=["text", "act"])
    if (acts_path := find_table(folder, "dialogue_acts", required=False)) is not None:
        acts = load_table(acts_path, ACTS_SCHEMA, columns=columns)[["text", "act"]].astype(str)
        acts.attrs["source"] = str(acts_path)
        tables[acts_path.name] = len(acts)
    return Dataset(
        kb=kb,
        pairs=pairs,
        out_of_scope=oos[["question", "split"]],
        slots=slots,
        acts=acts,
        tables=tables,
        dropped={k: v for k, v in dropped.items() if v},
    )


def _load_pairs(path: Path, kb: pd.DataFrame, mapping: dict | None = None) -> pd.DataFrame:
    pairs = load_table(path, PAIRS_SCHEMA, **(mapping or {}))
    if "answer_id" not in pairs.columns and "intent" not in pairs.columns:
        raise DataError(f"{path}: needs an 'answer_id' or an 'intent' column next to 'question'")
    for col in ("answer_id", "intent", "split"):
        pairs[col] = pairs[col].fillna("").astype(str) if col in pairs.columns else ""
    by_id = dict(zip(kb["answer_id"], kb["intent"], strict=True))
    first_for_intent = (
        kb[kb["intent"] != ""].drop_duplicates("intent").set_index("intent")["answer_id"]
    )
    problems = []
    for i, row in pairs.iterrows():
        if row["answer_id"] and row["answer_id"] not in by_id:
            problems.append(
                f"{path}: row {i + 1}, column 'answer_id': {row['answer_id']!r} is not in the KB"
            )
        elif not row["answer_id"] and not row["intent"]:
            problems.append(f"{path}: row {i + 1}: needs an answer_id or an intent")
    if problems:
        raise DataError("invalid data:\n" + "\n".join(problems[:20]))
    pairs["intent"] = [r["intent"] or by_id.get(r["answer_id"], "") for _, r in pairs.iterrows()]
    pairs["answer_id"] = [
        r["answer_id"] or first_for_intent.get(r["intent"], "") for _, r in pairs.iterrows()
    ]
    pairs["question"] = pairs["question"].map(mask_pii)
    return pairs[["question", "answer_id", "intent", "split"]]


def dialogue_pairs(
    path: str | Path,
    kb: pd.DataFrame,
    min_overlap: float = 0.6,
    columns: dict[str, str] | None = None,
) -> pd.DataFrame:
    """Turns historical dialogues into (user question -> KB answer) pairs.

    Each agent reply is matched to the KB answer whose text it shares the most words with
    (template slots ignored); a reply matching none (overlap below `min_overlap`) is skipped.
    The question is the user turn just before the reply. The frame's `attrs` count the turns
    read (`turns`) and the replies skipped (`unmatched_replies`).
    """
    frame = load_table(path, DIALOGUE_SCHEMA, columns=columns)
    unmatched = 0
    answer_words = [
        set(normalise(a.replace("{", " ").replace("}", " ")).split()) for a in kb["answer"]
    ]
    rows = []
    for _, turns in frame.sort_values(["session_id", "turn"]).groupby("session_id", sort=False):
        last_user = None
        for _, turn in turns.iterrows():
            if turn["role"] == "user":
                last_user = mask_pii(str(turn["text"]))
                continue
            if last_user is None:
                continue
            words = set(normalise(mask_pii(str(turn["text"]))).split())
            overlaps = [len(words & a) / max(1, len(a)) for a in answer_words]
            best = max(range(len(overlaps)), key=overlaps.__getitem__) if overlaps else None
            if best is not None and overlaps[best] >= min_overlap:
                kb_row = kb.iloc[best]
                rows.append(
                    {
                        "question": last_user,
                        "answer_id": kb_row["answer_id"],
                        "intent": kb_row["intent"],
                        "split": "",
                    }
                )
            else:
                unmatched += 1
            last_user = None
    out = pd.DataFrame(rows, columns=["question", "answer_id", "intent", "split"])
    out.attrs.update(turns=len(frame), unmatched_replies=unmatched)
    return out


def _load_slots(path: Path) -> dict[str, list[str]]:
    if not path.exists():
        return {}
    try:
        slots = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not valid UTF-8 JSON: {exc}") from None
    if not isinstance(slots, dict) or not all(isinstance(v, list) for v in slots.values()):
        raise DataError(f"{path}: expected an object of slot name -> list of values")
    return {str(k): [str(x) for x in v] for k, v in slots.items()}
