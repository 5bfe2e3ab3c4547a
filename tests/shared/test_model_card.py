"""Model cards: a metadata header that parses, usage that names the standard ways in, integer counts."""

from __future__ import annotations

import yaml

from shared.artifacts import write_artifact


def _front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


def test_card_has_metadata_header_usage_and_standard_formats(tmp_path):
    with write_artifact(
        tmp_path / "a",
        vertical="finance_sentiment",
        model_name="minilm",
        config={},
        metrics={"test_macro_f1": 0.81234, "n_test": 51.0},
        extra={"formats": [{"library": "timm", "code": "import timm  # example"}]},
    ) as tmp:
        (tmp / "model").mkdir()
        (tmp / "model" / "modeling_verticals.py").write_text("# model code")
        (tmp / "encoder").mkdir()
        (tmp / "encoder" / "modules.json").write_text("[]")
    card = (tmp_path / "a" / "README.md").read_text()
    meta = _front_matter(card)
    assert meta["library_name"] == "verticals"
    assert meta["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"  # the alias resolved
    assert {"finance_sentiment", "transformers", "sentence-transformers", "timm"} <= set(
        meta["tags"]
    )
    assert meta["metrics"] == {"test_macro_f1": 0.8123, "n_test": 51}
    assert meta["pipeline_tag"] in {"text-classification", "sentence-similarity"}
    assert "| n_test | 51 |" in card
    assert 'shared.load("ARTIFACT")' in card and "verticals predict finance_sentiment" in card
    assert 'pipeline("text-classification", model="ARTIFACT/model"' in card
    assert 'SentenceTransformer("ARTIFACT/encoder")' in card and "import timm  # example" in card


def test_card_of_a_random_model_names_no_hub_base(tmp_path):
    with write_artifact(tmp_path / "a", vertical="v", model_name="random:bert-tiny", config={}):
        pass
    meta = _front_matter((tmp_path / "a" / "README.md").read_text())
    assert "base_model" not in meta and "pipeline_tag" not in meta
    assert meta["verticals"]["model_name"] == "random:bert-tiny"


def test_card_states_the_decision_rule_calibration_and_warnings(tmp_path):
    with write_artifact(
        tmp_path / "a",
        vertical="v",
        model_name="m",
        config={},
        extra={
            "decision_rule": {"text": "'malignant' when its calibrated probability >= 0.3"},
            "calibration": {
                "reason": "kept T=1.4: cv NLL 0.31 < 0.35",
                "small_validation_warning": "validation has 78 images",
            },
            "warnings": ["test has 12 rows"],
        },
    ):
        pass
    card = (tmp_path / "a" / "README.md").read_text()
    assert "- **Decision rule:** 'malignant' when its calibrated probability >= 0.3" in card
    assert "- **Calibration:** kept T=1.4" in card
    assert (
        "- **Warning:** test has 12 rows" in card
        and "- **Warning:** validation has 78 images" in card
    )


def test_card_shows_the_data_report(tmp_path):
    report = {
        "rows_read": 339,
        "rows_used": 338,
        "dropped": {"near-duplicate question": 1},
        "splits": {
            "train": {"rows": 258, "fixed": 0, "drawn": 258},
            "test": {"rows": 34, "fixed": 34, "drawn": 0},
        },
        "warnings": ["validation has 11 rows (fewer than 30)"],
    }
    with write_artifact(
        tmp_path / "a", vertical="v", model_name="m", config={}, extra={"data_report": report}
    ):
        pass
    card = (tmp_path / "a" / "README.md").read_text()
    assert "Read 339 rows, used 338." in card and "| near-duplicate question | 1 |" in card
    assert "| test | 34 | 34 | 0 |" in card
    assert "- **Warning:** validation has 11 rows (fewer than 30)" in card


def test_card_states_the_recipe_and_how_it_was_chosen(tmp_path):
    recipe = {
        "recipe": "frozen",
        "method": "cv",
        "folds": 5,
        "scores": {"frozen": 1.0, "fewshot": 0.5},
        "metric": "macro_f1",
    }
    with write_artifact(
        tmp_path / "a", vertical="v", model_name="m", config={}, extra={"recipe": recipe}
    ):
        pass
    card = (tmp_path / "a" / "README.md").read_text()
    assert (
        "- **Recipe:** frozen, chosen by 5-fold cross-validation on the training rows (macro_f1: frozen 1.000, fewshot 0.500)"
        in card
    )
