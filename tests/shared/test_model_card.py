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
