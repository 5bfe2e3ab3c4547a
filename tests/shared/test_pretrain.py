"""`verticals pretrain`: SimCSE and MLM on unlabelled text, a folder that `model:` accepts."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from shared.cli import app
from shared.models import load_model
from shared.pretrain import PretrainConfig, pretrain, read_texts

runner = CliRunner()
TEXTS = [
    "Shares of Acme rose 5% after results.",
    "The bank cut its outlook for the year.",
    "Revenue fell in the third quarter.",
    "Analysts expect higher margins next year.",
    "The company announced a share buyback.",
    "A profit warning hit the stock.",
    "Café owners report record sales 📈",
    "Regulators fined the lender.",
]


@pytest.fixture()
def unlabelled(tmp_path):
    path = tmp_path / "news.txt"
    path.write_text("\n".join(TEXTS + ["", TEXTS[0]]) + "\n", encoding="utf-8")  # blank, repeat
    return path


def _cfg(objective: str) -> PretrainConfig:
    return PretrainConfig(
        model="random:bert-tiny",
        objective=objective,
        trainer={"batch_size": 4, "epochs": 2, "lr": 1e-3, "progress": False},
    )


def test_read_texts_drops_blank_and_repeated_lines(unlabelled):
    assert read_texts(unlabelled) == TEXTS


@pytest.mark.parametrize("objective", ["simcse", "mlm"])
def test_pretraining_moves_the_body_and_writes_a_loadable_encoder(objective, unlabelled, tmp_path):
    from shared.devices import seed_everything

    seed_everything(0)  # pretrain() seeds the same way before building the random encoder
    before = load_model("random:bert-tiny", "sentence-encoder")[0].auto_model.state_dict()
    folder = pretrain(_cfg(objective), unlabelled, tmp_path / "out")
    record = json.loads((folder / "pretrain.json").read_text())
    assert (record["objective"], record["texts"]) == (objective, len(TEXTS))
    encoder = load_model(str(folder), "sentence-encoder")
    after = encoder[0].auto_model.state_dict()
    moved = [k for k in before if not torch.equal(before[k], after[k])]
    assert any("encoder.layer" in k for k in moved)  # the transformer layers were trained
    tokenizer, body = load_model(str(folder), "text-backbone")  # what finance_sentiment loads
    assert body.config.hidden_size == after["embeddings.word_embeddings.weight"].shape[1]
    assert encoder.encode(["hello"]).shape == (1, body.config.hidden_size)


def test_a_pretrained_folder_trains_a_vertical(unlabelled, tmp_path):
    from finance_sentiment import VERTICAL

    folder = pretrain(_cfg("simcse"), unlabelled, tmp_path / "tapt")
    data = VERTICAL.example_data(tmp_path / "data")
    overrides = {**VERTICAL.smoke_overrides, "model": str(folder)}
    from shared.config import load_config

    artifact = VERTICAL.train(
        load_config(VERTICAL.config_cls, overrides=overrides), data, tmp_path / "run"
    )
    manifest = json.loads((artifact / "manifest.json").read_text())
    assert manifest["model_name"] == str(folder)


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [
        (None, "missing.txt", "no such file"),
        ("\n \n", "blank.txt", "0 non-empty text"),
        (b"\xff\xfe\x00bad", "binary.txt", "not UTF-8"),
        ("a,b\n1,2\n", "table.csv", "no column 'text'"),
        ("x", "notes.docx", "unsupported file type"),
    ],
)
def test_bad_text_files_get_a_clear_error(content, name, message, tmp_path):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    args = ["pretrain", "finance_sentiment", "--data", str(path), "--out", str(tmp_path / "o")]
    result = runner.invoke(app, [*args, "model=random:bert-tiny"])
    assert result.exit_code != 0 and message in result.output
    assert "Traceback" not in result.output


def test_an_image_vertical_has_nothing_to_pretrain(unlabelled, tmp_path):
    args = ["pretrain", "medical_imaging", "--data", str(unlabelled), "--out", str(tmp_path / "o")]
    result = runner.invoke(app, args)
    assert result.exit_code != 0 and "not a text encoder" in result.output
