"""`verticals evaluate customer_service --data`: metrics that say what they count, and the report."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from customer_service.faq_eval import HANDOFF, evaluate_runtime
from shared.reports import write_report


class StubBot:
    """Replies and rankings fixed per question, as `chat` and `search` return them."""

    def __init__(self, replies, rankings):
        self.replies, self.rankings = replies, rankings

    def chat(self, session_id, message):
        return {"confidence": 0.5, "handoff_reason": None, **self.replies[message]}

    def search(self, query, k=5):
        return {"results": [{"answer_id": a, "intent": i} for a, i in self.rankings[query][:k]]}


def _reply(intent, handoff=False):
    return {"intent": intent, "answer_id": f"id-{intent}", "handoff": handoff}


@pytest.fixture()
def case(tmp_path):
    """Four questions: two answered right, one handed off (its answer was right), one wrong;
    plus two out-of-scope questions, one of them answered."""
    data = tmp_path / "data"
    data.mkdir()
    pd.DataFrame(
        {"question": ["q1", "q2", "q3", "q4"], "intent": ["freeze", "freeze", "lost", "lost"]}
    ).to_csv(data / "pairs.csv", index=False)
    pd.DataFrame({"question": ["weather", "joke"]}).to_csv(data / "out_of_scope.csv", index=False)
    replies = {
        "q1": _reply("freeze"),
        "q2": _reply("freeze"),
        "q3": _reply("lost", handoff=True),
        "q4": _reply("freeze"),
        "weather": _reply("freeze", handoff=True),
        "joke": _reply("lost"),
    }
    ranked = [("id-freeze", "freeze"), ("id-lost", "lost")]
    rankings = {"q1": ranked, "q2": ranked, "q3": ranked[::-1], "q4": ranked}
    return StubBot(replies, rankings), data


def test_a_handoff_counts_as_a_miss_and_each_metric_is_named(case):
    bot, data = case
    report = evaluate_runtime(bot, data)
    m = report.metrics
    assert report.primary == "accuracy"
    assert m["accuracy"] == 0.5  # q1, q2 of four: q3 handed off, q4 wrong
    assert m["answered_accuracy"] == pytest.approx(2 / 3)
    assert m["decision_accuracy"] == 0.75  # what the old metric reported
    assert (m["handoff_rate"], m["coverage"]) == (0.25, 0.75)
    assert (m["n_questions"], m["n_answered"], m["n_handoff"]) == (4, 3, 1)
    assert isinstance(m["n_questions"], int)
    # ranks of the right answer: 1, 1, 1 (q3's list starts with "lost"), 2
    assert (m["recall_at_1"], m["recall_at_5"], m["mrr"]) == (0.75, 1.0, pytest.approx(0.875))
    assert (m["n_out_of_scope"], m["oos_handoff_recall"]) == (2, 0.5)
    assert "handoff counts as a miss" in report.descriptions["accuracy"]


def test_the_confusion_matrix_has_a_handoff_class_and_errors_list_every_miss(case):
    bot, data = case
    report = evaluate_runtime(bot, data)
    assert report.labels == ["freeze", "lost", HANDOFF]
    names = [report.labels[i] for i in report.y_pred]
    assert names == ["freeze", "freeze", HANDOFF, "freeze", HANDOFF, "lost"]
    assert [report.labels[i] for i in report.y_true][-2:] == [HANDOFF, HANDOFF]
    errors = {e["input"]: e for e in report.errors}
    assert set(errors) == {"q3", "q4", "joke"}
    assert errors["q3"]["handoff"] and errors["q3"]["predicted"] == HANDOFF
    assert (errors["q4"]["expected"], errors["q4"]["predicted"]) == ("lost", "freeze")
    assert errors["joke"]["expected"] == HANDOFF and errors["q4"]["confidence"] == 0.5


def test_the_report_folder_holds_metrics_matrix_errors_and_the_retrieval_plot(case, tmp_path):
    bot, data = case
    folder = write_report(evaluate_runtime(bot, data), tmp_path / "report")
    names = {p.name for p in folder.iterdir()}
    assert {"metrics.json", "confusion_matrix.png", "per_class.csv", "errors.csv"} <= names
    assert "retrieval_at_k.png" in names and "classification_report.txt" in names
    payload = json.loads((folder / "metrics.json").read_text())
    assert payload["primary"] == "accuracy" and payload["metrics"]["n_questions"] == 4
    errors = pd.read_csv(folder / "errors.csv")
    assert list(errors.columns[:4]) == ["input", "expected", "predicted", "confidence"]


def test_a_row_without_answer_id_or_intent_is_named(tmp_path):
    from shared.errors import DataError

    path = tmp_path / "pairs.csv"
    pd.DataFrame({"question": ["q"], "answer_id": [""], "intent": [""]}).to_csv(path, index=False)
    with pytest.raises(DataError, match="pairs.csv: row 1: needs an answer_id or an intent"):
        evaluate_runtime(StubBot({}, {}), path)


def test_evaluate_runs_on_the_trained_bot(cs_bot, cs_trained):
    from customer_service import VERTICAL

    report = VERTICAL.evaluate(cs_bot, cs_trained[0])
    m = report.metrics
    assert m["n_questions"] >= 300 and m["n_out_of_scope"] > 0
    assert m["accuracy"] <= m["decision_accuracy"] and m["accuracy"] <= m["answered_accuracy"]
    assert m["coverage"] == pytest.approx(1 - m["handoff_rate"])
    assert len(report.y_true) == len(report.y_pred) == m["n_questions"] + m["n_out_of_scope"]
