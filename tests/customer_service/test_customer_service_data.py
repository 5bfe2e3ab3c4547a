from __future__ import annotations

import json

import pandas as pd
import pytest

from customer_service.kb_data import KB, OUT_OF_SCOPE_FAMILIES, out_of_scope_rows, write_demo_data
from customer_service.schemas import load_dataset
from shared.errors import DataError


def test_demo_data_meets_the_issue_sizes(tmp_path):
    data = load_dataset(write_demo_data(tmp_path))
    templates = data.kb["answer"].str.contains(r"\{\w+\}", regex=True)
    assert len(data.kb) >= 50 and templates.sum() >= 5
    assert len(data.pairs) >= 300 and len(data.out_of_scope) == len(out_of_scope_rows()) >= 200
    assert set(data.pairs["answer_id"]) <= set(data.kb["answer_id"])
    assert (data.pairs["intent"] != "").all()
    assert data.slots["card_type"][0] == "debit"
    assert len(KB) == len(data.kb)


def test_out_of_scope_families_never_straddle_validation_and_test(tmp_path):
    oos = load_dataset(write_demo_data(tmp_path)).out_of_scope.set_index("question")["split"]
    assert set(oos) == {"val", "test"} and abs((oos == "val").mean() - 0.5) < 0.1
    for family, questions in OUT_OF_SCOPE_FAMILIES.items():
        assert oos[questions].nunique() == 1, family
    in_scope = {q.lower() for _, _, phr in KB.values() for q in phr.split("|")}
    assert not in_scope & {q.lower() for q in oos.index}


def test_dialogues_become_masked_pairs_with_matched_answers(tmp_path):
    data = load_dataset(write_demo_data(tmp_path))
    from_dialogues = data.pairs.tail(8)
    kb = data.kb.set_index("answer_id")
    stolen = from_dialogues[from_dialogues["question"].str.contains("stolen")].iloc[0]
    assert kb.loc[stolen["answer_id"], "intent"] == "report_stolen_card"
    replacement = from_dialogues[from_dialogues["question"].str.contains("replacement")].iloc[0]
    assert kb.loc[replacement["answer_id"], "intent"] == "replacement_card"
    text = " ".join(data.pairs["question"])
    assert (
        "[CARD]" in text and "[EMAIL]" in text and "4111" not in text and "@example.com" not in text
    )


def test_kb_with_a_missing_column_names_file_and_column(tmp_path):
    write_demo_data(tmp_path)
    pd.DataFrame({"answer_id": ["A1"], "title": ["x"]}).to_csv(tmp_path / "kb.csv", index=False)
    with pytest.raises(DataError, match=r"kb\.csv.*missing required column\(s\) \['answer'\]"):
        load_dataset(tmp_path)


def test_pairs_pointing_to_an_unknown_answer_name_the_row(tmp_path):
    write_demo_data(tmp_path)
    pd.DataFrame({"question": ["hi", "where is my card"], "answer_id": ["A001", "NOPE"]}).to_csv(
        tmp_path / "pairs.csv", index=False
    )
    with pytest.raises(
        DataError, match=r"pairs\.csv: row 2, column 'answer_id': 'NOPE' is not in the KB"
    ):
        load_dataset(tmp_path)


def test_duplicate_answer_ids_and_empty_answers_are_reported(tmp_path):
    write_demo_data(tmp_path)
    pd.DataFrame({"answer_id": ["A1", "A1"], "answer": ["yes", ""]}).to_csv(
        tmp_path / "kb.csv", index=False
    )
    with pytest.raises(DataError) as err:
        load_dataset(tmp_path)
    assert "row 2, column 'answer': empty value" in str(err.value)
    assert "row 2, column 'answer_id': duplicate value 'A1'" in str(err.value)


def test_non_utf8_kb_is_rejected_with_a_reason(tmp_path):
    write_demo_data(tmp_path)
    (tmp_path / "kb.csv").write_bytes("answer_id,answer\nA1,caf\xe9\n".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8"):
        load_dataset(tmp_path)


def test_dialogue_with_a_bad_role_names_the_row(tmp_path):
    write_demo_data(tmp_path)
    lines = [
        {"session_id": "s", "turn": 0, "role": "user", "text": "hi", "ts": "2026-01-01T00:00:00Z"},
        {
            "session_id": "s",
            "turn": 1,
            "role": "robot",
            "text": "hello",
            "ts": "2026-01-01T00:00:01Z",
        },
    ]
    (tmp_path / "dialogues.jsonl").write_text("\n".join(json.dumps(x) for x in lines))
    with pytest.raises(DataError, match=r"row 2, column 'role': 'robot' is not one of"):
        load_dataset(tmp_path)
