"""The `verticals compress finance_sentiment` hook: int8, ONNX, ONNX int8, WiSE-FT, half precision,
LoRA merge, distillation.

Every method starts from the original's fp32 task and leaves `model/`'s config and tokenizer:

- `int8`: the body's Linear layers in int8, the heads in fp32, in `model/int8.safetensors`;
- `onnx` / `onnx-int8`: the whole task as one graph in `model.onnx`;
- `interpolate`, `fp16`, `bf16`: `model/` as `verticals train` writes it (the transformers
  format), with interpolated body weights or half-precision weights;
- `lora-merge`: an adapter artifact's LoRA folded into its base (`lora.merged_task`), written as
  `model/` like a full fine-tune;
- `distill`: a student with half the layers, trained against the original (`distill.py`) on
  the training split of `--data`, written as `model/` like a full fine-tune.

Every method other than `lora-merge` merges an adapter artifact first too.

Weights the new format replaces are removed, so the folder's size is the compressed model's.
`model.load_task` reads each back by the manifest's `compression.method`.
"""

from __future__ import annotations

import copy
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoTokenizer

from shared.artifacts import load_json, read_manifest, save_weights
from shared.compression import (
    HALF_DTYPES,
    MANIFEST_UPDATE,
    ONNX_FILE,
    CompressJob,
    OnnxModule,
    Validation,
    cast_for_device,
    compare_outputs,
    export_onnx,
    int8_full_range,
    int8_state_dict,
    linear_names,
    quantize_int8,
    quantize_onnx_int8,
    sweep_interpolation,
)
from shared.data import fingerprint
from shared.errors import ArtifactError, DataError
from shared.evaluation import classification_metrics
from shared.hf_modeling import export_classifier

from .config import FinanceConfig
from .lora import ADAPTER_DIR, is_adapter_artifact, load_adapter_task, merged_task
from .lora import MANIFEST_KEY as ADAPTER_KEY
from .model import INT8_WEIGHTS, SentimentTask, float_task, make_collate
from .training import evaluate_rows, prepare_data

log = logging.getLogger(__name__)

FLOAT_WEIGHTS = ("model/model.safetensors", "model/modeling_verticals.py", "heads.safetensors")
"""The fp32 task's files (current and earlier layouts), which int8 and ONNX artifacts drop."""
CHECK_BATCH = 32


def validation_rows(
    cfg: FinanceConfig, data: Path, split: str = "val"
) -> list[tuple[str, int, int]]:
    """The `split` rows of `data`, split as `verticals train` split it with `cfg`.

    Raises:
        DataError: when that split has no row.
    """
    rows = prepare_data(cfg, Path(data)).rows(split)
    if not rows:
        raise DataError(
            f"{data} has no {split} rows under this artifact's split (val_fraction "
            f"{cfg.val_fraction}, seed {cfg.trainer.seed}); give rows with split={split}"
        )
    return rows


def validation(artifact: Path, data: Path, split: str = "val") -> Validation:
    """The validation split of `data` and its macro-F1, as `Compressor.validation` (another
    `split` of it, such as `test`, for a benchmark's report)."""
    manifest = read_manifest(artifact, vertical="finance_sentiment")
    cfg = FinanceConfig.model_validate(manifest["config"])
    rows = validation_rows(cfg, data, split)
    if fingerprint(data) != manifest.get("data_fingerprint"):
        log.warning("%s is not the table %s was trained on; measuring on its split", data, artifact)
    truth = np.array([r[1] for r in rows])

    def score(predictions: list[dict[str, Any]]) -> float:
        probs = np.array([[p["probs"][name] for name in cfg.labels] for p in predictions])
        return float(classification_metrics(truth, probs, cfg.labels)["macro_f1"])

    return Validation(
        inputs=[{"text": r[0]} for r in rows],
        score=score,
        metric=f"{split}_macro_f1",
        description=f"the {split} split of {data} ({len(rows)} rows, seed {cfg.trainer.seed})",
    )


def apply(job: CompressJob) -> dict[str, Any]:
    """Rewrites `job.out` (a copy of the original) by `job.method`; returns what to record.

    An adapter artifact is first merged (`lora-merge`: that is all), so every method gives a
    plain artifact; the check compares the result with the adapter on its base.
    """
    manifest = read_manifest(job.source)
    cfg = FinanceConfig.model_validate(manifest["config"])
    meta = load_json(job.source / "finance.json")
    original, tokenizer = source_task(job.source, manifest, meta)
    rows = validation_rows(cfg, job.data)
    collate = make_collate(tokenizer, cfg.text.max_length)
    task, update = original, {}
    if is_adapter_artifact(manifest):
        task, params = merge_into(job.out, original, tokenizer, meta, manifest[ADAPTER_KEY])
        update = {MANIFEST_UPDATE: {ADAPTER_KEY: None, "formats": None}}
    elif job.method == "lora-merge":
        raise ArtifactError(
            f"{job.source} is a full model, not an adapter artifact: lora-merge folds the "
            "adapter of a model trained with adapter.method=lora into its base"
        )
    if job.method == "lora-merge":
        candidate = task
    elif job.method == "distill":
        task, params, update = distilled(job, task, tokenizer, cfg, manifest, update)
        candidate = write_float(job.out, task, tokenizer, meta)
    elif job.method == "interpolate":
        task = copy.deepcopy(task)
        params = interpolate(task, cfg, collate, rows, job.alphas)
        candidate = write_float(job.out, task, tokenizer, meta)
    elif job.method in HALF_DTYPES:
        params = {"dtype": str(HALF_DTYPES[job.method]).removeprefix("torch.")}
        candidate = write_float(job.out, task, tokenizer, meta, job.method)
    else:
        for name in FLOAT_WEIGHTS:
            (job.out / name).unlink(missing_ok=True)
        params, candidate = write_quantized(job, task, collate, rows)
    batches = [
        _inputs(collate(rows[i : i + CHECK_BATCH])) for i in range(0, len(rows), CHECK_BATCH)
    ]
    return {**params, "check": compare_outputs(original, candidate, batches), **update}


def distilled(job: CompressJob, teacher, tokenizer, cfg, manifest, update) -> tuple:
    """`distill`: the student of `distill.distill`, what to record, and the manifest update
    (the student's held-out metrics in place of the teacher's, and where it came from)."""
    from .distill import distill

    with tempfile.TemporaryDirectory(prefix="verticals-distill-") as run_dir:
        student, params = distill(teacher, tokenizer, cfg, job.data, Path(run_dir))
    scores = params["metrics"]
    metrics = dict(manifest.get("metrics", {}))
    for key in [k for k in metrics if k.startswith(("val_", "test_"))]:
        metrics[key] = scores.get(f"student_{key}", metrics[key])
    record = {"artifact": str(job.source), "model": cfg.model, **params["layers"]}
    manifest_update = {**update.get(MANIFEST_UPDATE, {}), "metrics": metrics}
    manifest_update["distilled_from"] = record
    return student, params, {MANIFEST_UPDATE: manifest_update}


def source_task(
    artifact: Path, manifest: dict[str, Any], meta: dict[str, Any]
) -> tuple[SentimentTask, Any]:
    """The original's fp32 task (an adapter artifact's: LoRA on its checked base) and tokenizer."""
    if is_adapter_artifact(manifest):
        tokenizer, task = load_adapter_task(artifact, meta, manifest[ADAPTER_KEY])
        return task.eval(), tokenizer
    tokenizer = AutoTokenizer.from_pretrained(str(artifact / "model"))
    return float_task(artifact, meta).eval(), tokenizer


def merge_into(
    out: Path, task: SentimentTask, tokenizer, meta: dict[str, Any], section: dict[str, Any]
) -> tuple[SentimentTask, dict[str, Any]]:
    """Replaces `adapter/` in `out` by `model/`: a copy of `task` with its adapter folded into
    the body, with the base's tokenizer. Returns the merged task and the parameters to record."""
    merged = merged_task(copy.deepcopy(task)).eval()
    shutil.rmtree(out / ADAPTER_DIR)
    write_float(out, merged, tokenizer, meta)
    keys = ("base_model", "base_sha256", "r", "alpha", "target_modules")
    return merged, {"merged_adapter": {k: section[k] for k in keys if k in section}}


def _inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: batch[k] for k in ("input_ids", "attention_mask")}


def write_quantized(
    job: CompressJob, task: SentimentTask, collate, rows: list[tuple[str, int, int]]
) -> tuple[dict[str, Any], torch.nn.Module]:
    """`int8`: `model/int8.safetensors`; `onnx`, `onnx-int8`: `model.onnx`. Returns the params
    and the compressed task, as the runtime will load it."""
    if job.method == "int8":
        quantized = quantize_int8(task, linear_names(task.backbone, "backbone"))
        save_weights(job.out / INT8_WEIGHTS, int8_state_dict(quantized))
        bits = 8 if int8_full_range() else 7  # decided again where the artifact is loaded
        params = {"quantized": "body Linear layers, int8 weights per channel; heads fp32"}
        return {**params, "activation_bits_here": bits}, quantized
    outputs = ["logits"] + (["topic_logits"] if task.topic_head is not None else [])
    example = _inputs(collate(rows[:2] if len(rows) > 1 else rows * 2))
    if job.method == "onnx":
        export_onnx(task, example, job.out / ONNX_FILE, outputs)
        params = {"outputs": outputs}
    else:
        with tempfile.TemporaryDirectory() as tmp:
            export_onnx(task, example, Path(tmp) / ONNX_FILE, outputs)
            quantize_onnx_int8(Path(tmp) / ONNX_FILE, job.out / ONNX_FILE)
        params = {"outputs": outputs, "quantized": "onnxruntime dynamic int8, per channel"}
    return params, OnnxModule(job.out / ONNX_FILE)


def interpolate(
    task: SentimentTask, cfg: FinanceConfig, collate, rows, alphas: tuple[float, ...]
) -> dict[str, Any]:
    """WiSE-FT on the body against `cfg.model`, the pretrained body it started from; the heads
    stay fine-tuned. Alpha is chosen by validation macro-F1; `task` gets the chosen weights."""
    from shared.models import load_model

    _, base = load_model(cfg.model, "text-backbone")
    finetuned = {k: v.detach().clone() for k, v in task.backbone.state_dict().items()}

    def score(state: dict[str, torch.Tensor]) -> float:
        task.backbone.load_state_dict(state)
        return evaluate_rows(task, collate, rows, cfg.labels)["macro_f1"]

    sweep = sweep_interpolation(finetuned, base.state_dict(), score, alphas)
    task.backbone.load_state_dict(sweep.state)
    return {**sweep.as_dict(), "base_model": cfg.model, "metric": "val_macro_f1", "part": "body"}


def write_float(
    out: Path, task: SentimentTask, tokenizer, meta: dict[str, Any], half: str | None = None
) -> torch.nn.Module:
    """`model/` in the transformers format of `verticals train`, in half precision for `half`
    (`fp16`, `bf16`); returns the task as the runtime will load it (upcast on the CPU)."""
    shutil.rmtree(out / "model", ignore_errors=True)  # an adapter artifact has none
    (out / "heads.safetensors").unlink(missing_ok=True)  # an earlier layout's separate heads
    topics = meta["topics"] if meta["topic_mode"] == "classifier" else None
    model = export_classifier(
        str(out / "model"),
        task.backbone,
        task.head,
        meta["labels"],
        tokenizer,
        task.topic_head,
        topics,
    )
    if half is None:
        return task
    model.to(HALF_DTYPES[half]).save_pretrained(str(out / "model"))
    return cast_for_device(float_task(out, meta), half, torch.device("cpu")).eval()
