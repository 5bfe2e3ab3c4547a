"""The contract every registered vertical honours: train two steps (the same weights twice from
the same seed, and not the weights it started from), save, load, predict, serve."""

from __future__ import annotations

import json

import pytest
import torch
from fastapi.testclient import TestClient
from safetensors import safe_open

from shared.artifacts import read_manifest
from shared.config import deep_merge, load_config
from shared.errors import ArtifactError
from shared.registry import get_vertical, load_runtime, vertical_names
from shared.serving import create_app
from shared.settings import ServeSettings


def _tensors(path):
    with safe_open(str(path), "pt") as handle:
        return {key: handle.get_tensor(key) for key in handle.keys()}


def run_contract(name, tmp_path):
    vertical = get_vertical(name)
    data = vertical.example_data(tmp_path / "data")
    cfg = load_config(vertical.config_cls, overrides=dict(vertical.smoke_overrides))
    artifact = vertical.train(cfg, data, tmp_path / "run")

    manifest = read_manifest(artifact)
    assert manifest["vertical"] == name
    assert manifest["data_fingerprint"].startswith("sha256:")
    assert "torch" in manifest["versions"]
    card = (artifact / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: verticals\n") and "\n# Model card: " in card
    weights = list(artifact.rglob("*.safetensors"))
    assert weights, "weights must be stored as safetensors"
    with safe_open(str(weights[0]), "pt") as handle:
        assert list(handle.keys())
    assert not list(artifact.rglob("*.pkl")) and not list(artifact.rglob("*.pickle"))

    torch.rand(17)  # the global RNG is elsewhere now: a seeded run must not depend on it
    again = vertical.train(cfg, data, tmp_path / "run_again")
    untrained_cfg = load_config(
        vertical.config_cls,
        overrides=deep_merge(dict(vertical.smoke_overrides), {"trainer": {"max_steps": 0}}),
    )
    untrained = vertical.train(untrained_cfg, data, tmp_path / "run_untrained")
    moved = []
    for path in weights:
        trained, twin = _tensors(path), _tensors(again / path.relative_to(artifact))
        start = _tensors(untrained / path.relative_to(artifact))
        for key, value in trained.items():
            assert torch.equal(value, twin[key]), f"{path.name}:{key}"
            moved.append(not torch.equal(value, start[key]))
    assert any(moved), "two training steps left every weight where it started"

    runtime = load_runtime(vertical, artifact, ServeSettings(device="cpu"))
    inputs = vertical.example_inputs(data)
    predictions = runtime.predict(inputs)
    assert len(predictions) == len(inputs)
    json.dumps(predictions, default=str)

    app = create_app(vertical, artifact, ServeSettings(device="cpu"))
    with TestClient(app) as client:
        assert client.get("/ready").json() == {"ready": True}
        info = client.get("/v1/info").json()
        assert info["vertical"] == name
        if vertical.smoke_request is not None:
            response = vertical.smoke_request(client, data)
            assert response.status_code == 200, response.text


def test_an_artifact_of_another_vertical_is_refused_by_name(toy_vertical, tmp_path):
    vertical = get_vertical(toy_vertical)
    data = vertical.example_data(tmp_path / "data")
    cfg = load_config(vertical.config_cls, overrides=dict(vertical.smoke_overrides))
    artifact = vertical.train(cfg, data, tmp_path / "run")
    for other in vertical_names():
        if other != toy_vertical:
            with pytest.raises(ArtifactError, match=f"is a 'toy' artifact, not a '{other}' one"):
                load_runtime(get_vertical(other), artifact, ServeSettings(device="cpu"))


@pytest.mark.parametrize("name", vertical_names())
def test_registered_vertical_contract(name, tmp_path):
    run_contract(name, tmp_path)


def test_throwaway_vertical_needs_one_folder_and_one_entry_point(toy_vertical, tmp_path):
    assert toy_vertical in vertical_names()
    run_contract(toy_vertical, tmp_path)
