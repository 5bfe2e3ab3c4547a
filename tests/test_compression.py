"""`shared.compression` and `verticals compress`: int8, ONNX, ONNX int8, WiSE-FT and half
precision on tiny models, and finance_sentiment end to end.

Tolerances, on max |logit difference| against fp32 on the same inputs:
- ONNX (fp32 graph): 1e-4, float rounding only;
- int8 (torch or ONNX Runtime) and bf16: 5% of the largest |logit| on the MLP below, with the
  same label on every row whose top two logits are further apart than twice that; an absolute
  0.02 on the tiny finance model (whose logits are about 0.3).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from torch import nn
from typer.testing import CliRunner

import finance_sentiment as fs
from shared.artifacts import load_weights, save_weights
from shared.cli import app
from shared.compression import (
    DEFAULT_ALPHAS,
    DynamicLinear,
    FullRangeDynamicLinear,
    OnnxModule,
    Validation,
    compare_outputs,
    compress_artifact,
    export_onnx,
    int8_full_range,
    int8_state_dict,
    interpolate_state_dicts,
    linear_names,
    load_int8_state_dict,
    measure_runtimes,
    quantize_int8,
    quantize_onnx_int8,
    sweep_interpolation,
)
from shared.errors import ArtifactError
from shared.registry import build_settings, load_runtime
from shared.serving import create_app

runner = CliRunner()
ONNX_ATOL = 1e-4
INT8_RELATIVE = 0.05
FINANCE_ATOL = {"int8": 0.02, "onnx": ONNX_ATOL, "onnx-int8": 0.02, "bf16": 0.02}


class TinyTask(nn.Module):
    """A task in the suite's convention: `forward(batch) -> dict`, here over features `x`."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU())
        self.head = nn.Linear(64, 3)

    def forward(self, batch):
        return {"logits": self.head(self.body(batch["x"]))}


@pytest.fixture(scope="module")
def features():
    torch.manual_seed(1)
    return {"x": torch.randn(64, 16) * 3}


def _assert_close_to(reference, candidate, batch, relative: float) -> None:
    with torch.inference_mode():
        want, got = reference(batch)["logits"], candidate(batch)["logits"]
    tolerance = relative * want.abs().max()
    assert got.shape == want.shape
    assert (want - got).abs().max() <= tolerance
    top2 = want.topk(2, dim=-1).values
    clear = top2[:, 0] - top2[:, 1] > 2 * tolerance  # a closer row may rightly flip
    assert clear.float().mean() > 0.5
    assert torch.equal(want.argmax(-1)[clear], got.argmax(-1)[clear])


# --- int8 ------------------------------------------------------------------------------------


def test_int8_quantizes_the_named_linear_layers_and_agrees_with_fp32(features):
    task = TinyTask().eval()
    quantized = quantize_int8(task, linear_names(task.body, "body"))
    assert type(quantized.head) is nn.Linear  # left out: stays float
    assert isinstance(quantized.body[0], DynamicLinear)
    assert type(task.body[0]) is nn.Linear  # the original is untouched
    _assert_close_to(task, quantized, features, INT8_RELATIVE)


@pytest.mark.parametrize("full_range", [True, False])
def test_int8_activations_over_7_or_8_bits_agree_with_fp32(features, full_range):
    if full_range and not int8_full_range():
        pytest.skip("8-bit activations saturate without VNNI or AMX; this CPU gets 7 bits")
    task = TinyTask().eval()
    quantized = quantize_int8(task, full_range=full_range)
    assert isinstance(quantized.body[0], FullRangeDynamicLinear) == full_range
    _assert_close_to(task, quantized, features, INT8_RELATIVE)


def test_int8_weights_round_trip_through_safetensors_exactly(features, tmp_path):
    quantized = quantize_int8(TinyTask().eval())
    tensors = int8_state_dict(quantized)
    assert tensors["body.0.weight_int8"].dtype == torch.int8
    assert tensors["body.0.weight_scale"].shape == (64,)  # one scale per output channel
    save_weights(tmp_path / "int8.safetensors", tensors)
    fresh = TinyTask()
    nn.init.normal_(fresh.body[0].weight)  # the skeleton's own weights must not matter
    loaded = load_int8_state_dict(fresh, load_weights(tmp_path / "int8.safetensors"))
    with torch.inference_mode():
        assert torch.equal(loaded(features)["logits"], quantized(features)["logits"])


def test_loading_int8_weights_into_another_architecture_fails(tmp_path):
    tensors = int8_state_dict(quantize_int8(TinyTask().eval()))
    other = nn.Sequential(nn.Linear(16, 3))
    with pytest.raises(RuntimeError):
        load_int8_state_dict(other, tensors)


# --- ONNX ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory, features):
    folder = tmp_path_factory.mktemp("onnx")
    task = TinyTask().eval()
    export_onnx(task, {"x": features["x"][:2]}, folder / "model.onnx", ["logits"])
    quantize_onnx_int8(folder / "model.onnx", folder / "int8.onnx")
    return task, folder


def test_onnx_export_has_a_dynamic_batch_and_matches_torch(tiny_onnx, features):
    task, folder = tiny_onnx
    session = OnnxModule(folder / "model.onnx")
    assert session.input_names == ["x"] and session.output_names == ["logits"]
    for rows in (1, 5, 64):  # exported with 2 rows
        batch = {"x": features["x"][:rows]}
        check = compare_outputs(task, session, [batch])
        assert check["rows"] == rows
        assert check["max_abs_logit_diff"] <= ONNX_ATOL and check["label_agreement"] == 1.0


def test_onnx_int8_is_smaller_and_agrees_with_fp32(tiny_onnx, features):
    task, folder = tiny_onnx
    assert (folder / "int8.onnx").stat().st_size < (folder / "model.onnx").stat().st_size / 2
    _assert_close_to(task, OnnxModule(folder / "int8.onnx"), features, INT8_RELATIVE)


def test_compare_outputs_reports_a_disagreement(features):
    task, other = TinyTask().eval(), TinyTask().eval()
    with torch.no_grad():
        other.head.bias += torch.tensor([0.0, 0.0, 1e3])  # always predicts class 2
    check = compare_outputs(task, other, [features])
    assert check["max_abs_logit_diff"] > 900 and check["label_agreement"] < 1.0


def test_a_missing_onnx_file_is_an_artifact_error(tmp_path):
    with pytest.raises(ArtifactError, match="missing"):
        OnnxModule(tmp_path / "model.onnx")


# --- WiSE-FT ---------------------------------------------------------------------------------


def _states():
    base = {"w": torch.zeros(2, 2), "b": torch.ones(3), "ids": torch.arange(4)}
    finetuned = {"w": torch.full((2, 2), 2.0), "b": torch.zeros(3), "ids": torch.arange(4) + 1}
    finetuned["new"] = torch.ones(5)  # a head the base lacks
    return finetuned, base


def test_interpolation_is_the_base_at_0_and_the_finetuned_model_at_1():
    finetuned, base = _states()
    at0 = interpolate_state_dicts(finetuned, base, 0.0)
    at1 = interpolate_state_dicts(finetuned, base, 1.0)
    half = interpolate_state_dicts(finetuned, base, 0.5)
    assert torch.equal(at0["w"], base["w"]) and torch.equal(at0["b"], base["b"])
    assert all(torch.equal(at1[k], finetuned[k]) for k in finetuned)
    assert torch.equal(half["w"], torch.ones(2, 2)) and torch.equal(
        half["b"], torch.full((3,), 0.5)
    )
    for state in (at0, half):  # integers and tensors the base lacks keep the fine-tuned value
        assert torch.equal(state["ids"], finetuned["ids"]) and torch.equal(
            state["new"], finetuned["new"]
        )


def test_interpolation_refuses_a_base_that_shares_nothing():
    finetuned, _ = _states()
    with pytest.raises(ArtifactError, match="not the model"):
        interpolate_state_dicts(finetuned, {"other": torch.zeros(1)}, 0.5)
    with pytest.raises(ValueError, match="alpha"):
        interpolate_state_dicts(finetuned, finetuned, 1.5)


def test_the_sweep_keeps_the_best_alpha_and_records_every_score():
    finetuned, base = _states()
    sweep = sweep_interpolation(finetuned, base, lambda s: -abs(float(s["w"][0, 0]) - 0.6))
    assert sweep.alpha == 0.3  # w = 2 alpha is nearest 0.6 there
    assert sorted(sweep.scores) == list(DEFAULT_ALPHAS)
    assert torch.equal(sweep.state["w"], torch.full((2, 2), 0.6))
    flat = sweep_interpolation(finetuned, base, lambda s: 1.0, alphas=(0.0, 0.5))
    assert flat.alpha == 0.5  # a tie goes to the larger alpha


# --- measurement -----------------------------------------------------------------------------


class _Sleepy:
    def __init__(self, label: str, delay: float) -> None:
        self.label, self.delay = label, delay

    def predict(self, items):
        import time

        time.sleep(self.delay)
        return [{"label": self.label} for _ in items]


def test_measurement_compares_every_runtime_with_the_first(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "w.bin").write_bytes(b"0" * 2_000_000)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "w.bin").write_bytes(b"0" * 500_000)
    validation = Validation(
        inputs=[{"text": "x"}] * 4,
        score=lambda preds: sum(p["label"] == "yes" for p in preds) / len(preds),
        metric="accuracy",
        description="four rows",
    )
    rows = measure_runtimes(
        {"original": _Sleepy("yes", 0.004), "fast": _Sleepy("no", 0.001)},
        {"original": tmp_path / "a", "fast": tmp_path / "b"},
        validation,
        rounds=1,
        repeats=3,
        batch_items=8,
    )
    assert rows["original"]["speedup"] == 1.0 and rows["original"]["metric_delta"] == 0.0
    assert rows["fast"]["speedup"] > 1.5 and rows["fast"]["metric_delta"] == -1.0
    assert rows["original"]["size_mb"] == 2.0 and rows["fast"]["size_mb"] == 0.5
    assert rows["fast"]["throughput"] > rows["original"]["throughput"]


# --- finance_sentiment end to end ------------------------------------------------------------


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            h.update(str(path.relative_to(folder)).encode() + path.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def finance(trained, tmp_path_factory):
    """The smoke artifact, its example data, and `compressed(method)`: each method run once."""
    artifact = trained("finance_sentiment")
    root = tmp_path_factory.mktemp("compressed")
    data = fs.example_data(root / "data")  # the table the smoke artifact was trained on
    before = _digest(artifact)
    cache: dict[str, Path] = {}

    def compressed(method: str) -> Path:
        if method not in cache:
            compress_artifact(fs.VERTICAL, artifact, root / method, method, data, measure=False)
            cache[method] = root / method
        return cache[method]

    yield artifact, data, compressed
    assert _digest(artifact) == before, "compressing modified the original artifact"


def _logits(runtime, texts: list[str]) -> torch.Tensor:
    enc = runtime.scorer.tokenizer(texts, padding=True, return_tensors="pt")
    batch = {k: enc[k] for k in ("input_ids", "attention_mask")}
    with torch.inference_mode():
        return runtime.scorer.task(batch)["logits"].float()


def _load(artifact: Path):
    return load_runtime(fs.VERTICAL, artifact, build_settings(fs.VERTICAL, device="cpu"))


@pytest.mark.parametrize("method", ["int8", "onnx", "onnx-int8", "bf16"])
def test_a_compressed_finance_artifact_loads_and_agrees_with_the_original(finance, method):
    artifact, data, compressed = finance
    folder = compressed(method)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["compression"]["method"] == method
    assert manifest["vertical"] == "finance_sentiment" and "model/config.json" in manifest["files"]
    texts = [r["text"] for r in fs.example_inputs(data)] + ["Shares were flat.", "Profit fell."]
    original, runtime = _load(artifact), _load(folder)
    want, got = _logits(original, texts), _logits(runtime, texts)
    assert got.shape == want.shape == (len(texts), 3)
    assert (want - got).abs().max() <= FINANCE_ATOL[method]
    recorded = manifest["compression"]["params"]["check"]
    assert recorded["max_abs_logit_diff"] <= FINANCE_ATOL[method] and recorded["rows"] > 0
    predictions = runtime.predict([{"text": t} for t in texts])
    assert [p["label"] for p in predictions] and all(
        set(p["probs"]) == {"negative", "neutral", "positive"} for p in predictions
    )
    assert runtime.info()["compression"] == method


def test_int8_and_onnx_artifacts_drop_the_fp32_weights(finance):
    _, _, compressed = finance
    int8, onnx, onnx_int8 = (compressed(m) for m in ("int8", "onnx", "onnx-int8"))
    assert (int8 / "model" / "int8.safetensors").is_file()
    assert not (int8 / "model" / "model.safetensors").exists()
    assert (onnx / "model.onnx").is_file() and not (onnx / "model" / "model.safetensors").exists()
    assert (onnx_int8 / "model.onnx").stat().st_size < (onnx / "model.onnx").stat().st_size
    for folder in (int8, onnx):  # the card offers no transformers snippet without its weights
        assert "With transformers" not in (folder / "README.md").read_text()


def test_interpolation_at_0_is_the_pretrained_body_and_at_1_the_finetuned_one(finance, tmp_path):
    from shared.models import load_model

    artifact, data, _ = finance
    _, base = load_model("random:bert-tiny", "text-backbone")
    finetuned = _load(artifact).scorer.task
    for alpha, want_body in ((0.0, base.state_dict()), (1.0, finetuned.backbone.state_dict())):
        out = tmp_path / f"alpha{alpha}"
        section = compress_artifact(
            fs.VERTICAL, artifact, out, "interpolate", data, alphas=(alpha,), measure=False
        )
        assert section["params"]["alpha"] == alpha and list(section["params"]["scores"]) == [
            str(alpha)
        ]
        task = _load(out).scorer.task
        for key, value in task.backbone.state_dict().items():
            assert torch.equal(value, want_body[key]), key
        assert torch.equal(task.head.weight, finetuned.head.weight)  # the head stays fine-tuned


def test_the_interpolation_sweep_is_recorded(finance):
    _, _, compressed = finance
    params = json.loads((compressed("interpolate") / "manifest.json").read_text())["compression"][
        "params"
    ]
    assert sorted(float(a) for a in params["scores"]) == list(DEFAULT_ALPHAS)
    assert params["scores"][str(params["alpha"])] == max(params["scores"].values())
    assert params["base_model"] == "random:bert-tiny"


def test_a_compressed_artifact_is_served_unchanged(finance):
    _, data, compressed = finance
    with TestClient(create_app(fs.VERTICAL, compressed("onnx-int8"))) as client:
        response = fs.smoke_request(client, data)
        assert response.status_code == 200, response.text
        assert response.json()["results"][0]["label"] in {"negative", "neutral", "positive"}
        assert client.get("/v1/info").json()


def test_the_command_writes_a_measured_artifact_and_prints_the_table(finance, tmp_path):
    artifact, data, _ = finance
    out = tmp_path / "int8"
    args = ["compress", "finance_sentiment", "--artifact", str(artifact), "--method", "int8"]
    result = runner.invoke(app, [*args, "--data", str(data), "--out", str(out), "--rounds", "1"])
    assert result.exit_code == 0, result.output
    for column in ("size MB", "p50 ms", "inputs/s", "speedup", "val_macro_f1"):
        assert column in result.output
    measured = json.loads((out / "manifest.json").read_text())["compression"]["measured"]
    assert set(measured["rows"]) == {"original", "int8"}
    assert measured["rows"]["original"]["speedup"] == 1.0 and measured["metric"] == "val_macro_f1"
    assert "## Compression" in (out / "README.md").read_text()

    evaluated = runner.invoke(
        app,
        [
            "evaluate",
            "finance_sentiment",
            "--artifact",
            str(out),
            "--data",
            str(data),
            "--out",
            str(tmp_path / "report"),
            "--json",
        ],
    )
    assert evaluated.exit_code == 0, evaluated.output
    assert 0.0 <= json.loads(evaluated.output)["macro_f1"] <= 1.0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"vertical": "toy"}, "toy cannot be compressed (it has no compress hook)"),
        (
            {"vertical": "customer_service", "method": "onnx"},
            "customer_service does not support --method onnx; it supports: int8",
        ),
        ({"method": "magic"}, "known methods: int8"),
        ({"artifact": "missing"}, "does not exist"),
        ({"artifact": "data"}, "is not a verticals artifact"),
        ({"out": "existing"}, "already exists"),
        ({"data": "missing.csv"}, "does not exist"),
        ({"alphas": "0,2"}, "not in [0, 1]"),
        ({"alphas": "0,x"}, "'x' is not a number"),
    ],
)
def test_bad_requests_get_one_clear_error(finance, toy_vertical, tmp_path, change, message):
    artifact, data, _ = finance
    (tmp_path / "existing").mkdir()
    args = {
        "vertical": "finance_sentiment",
        "artifact": str(artifact),
        "method": "interpolate",
        "data": str(data),
        "out": str(tmp_path / "new"),
        "alphas": "0,1",
    }
    for key, value in change.items():
        args[key] = (
            value
            if key in ("vertical", "method", "alphas")
            else str(data.parent if value == "data" else tmp_path / value)
        )
    vertical = args.pop("vertical")
    flags = [item for key, value in args.items() for item in (f"--{key}", value)]
    result = runner.invoke(app, ["compress", vertical, *flags])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "new").exists()


def test_an_already_compressed_artifact_is_refused(finance, tmp_path):
    _, data, compressed = finance
    with pytest.raises(ArtifactError, match="already compressed"):
        compress_artifact(fs.VERTICAL, compressed("int8"), tmp_path / "again", "onnx", data)


def test_the_finance_methods_are_the_ones_the_hook_runs():
    from shared.compression import METHODS

    assert set(fs.VERTICAL.compress.methods) <= set(METHODS)
    assert {"lora-merge", "distill"} <= set(fs.VERTICAL.compress.methods)
