"""Smaller and faster artifacts: `verticals compress`, and the functions it applies to a model.

The methods, each a function over a trained model that a vertical's hook composes:

- `int8`: dynamic int8 quantization of Linear layers for CPU serving (int8 weights, per output
  channel; activations quantized per batch at run time), with torch's fbgemm/x86 kernels; on
  CPUs with VNNI or AMX the activations use all 8 bits (see `FullRangeDynamicLinear`).
  `torch.ao.quantization` is deprecated in favour of torchao, but torchao's `quantize_` gave no
  CPU speed-up in eager mode here (MiniLM, one thread: 19.6 ms against 19.1 ms for fp32, where
  torch.ao runs it in 6-9 ms), so the deprecated API stays until that changes.
- `onnx`: the task exported by `torch.onnx` (dynamo exporter, dynamic batch and sequence axes)
  and run by ONNX Runtime through :class:`OnnxModule`, which behaves like the torch task.
- `onnx-int8`: the same graph after ONNX Runtime's own dynamic int8 quantization.
- `interpolate`: WiSE-FT, theta = alpha * theta_ft + (1 - alpha) * theta_0 over the float tensors
  the fine-tuned model shares with its pretrained base, alpha picked on validation.
- `fp16` / `bf16`: half-precision weights, run in that precision on CUDA (upcast elsewhere).
- `distill` (the vertical's own student, trained by `shared.distill`) and `lora-merge` (an
  adapter folded into its base): ordinary float artifacts, like `interpolate`'s, which another
  method may compress again (`FLOAT_RESULTS`; the new section keeps the chain under `after`).

A compressed artifact is a new folder: a copy of the original's files, rewritten by the
vertical's hook (`shared.registry.Compressor`), whose manifest gains a `compression` section:
the method, its parameters, the checks against the original, and the table measured on the
validation split (`shared.compression_measure`). The vertical's `load` reads the method there, so `serve`, `predict` and
`evaluate` run a compressed artifact unchanged. The original is never modified.
"""

from __future__ import annotations

import copy
import logging
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

with warnings.catch_warnings(action="ignore"):  # torch.ao's deprecation notice
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

from shared.artifacts import MANIFEST, atomic_folder, library_versions, read_manifest, save_json
from shared.compression_measure import Validation as Validation  # re-exported
from shared.compression_measure import _files, measure_artifacts
from shared.compression_measure import folder_size_mb as folder_size_mb
from shared.compression_measure import format_table as format_table
from shared.compression_measure import measure_runtimes as measure_runtimes
from shared.errors import ArtifactError, DataError, VerticalsError
from shared.registry import Vertical, all_verticals

log = logging.getLogger(__name__)

METHODS = ("int8", "onnx", "onnx-int8", "interpolate", "fp16", "bf16", "distill", "lora-merge")
"""Every method `verticals compress` knows; a vertical's `Compressor.methods` says which it runs."""
HALF_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}
ONNX_FILE = "model.onnx"
DEFAULT_ALPHAS = tuple(round(0.1 * i, 1) for i in range(11))
INT8_SUFFIXES = (".weight_int8", ".weight_scale", ".weight_zero_point")
MANIFEST_UPDATE = "manifest"
FLOAT_RESULTS = ("distill", "interpolate", "lora-merge")
"""Methods whose artifact is an ordinary float one, which another method may compress further."""
"""Key of `Compressor.apply`'s result whose dict replaces manifest keys of the new artifact
(a method that changes the model itself, such as `distill`: its config, metrics, ...)."""


class UnsupportedMethodError(VerticalsError):
    """The vertical has no compress hook, or does not support the method asked for."""


@dataclass(frozen=True)
class CompressJob:
    """One run, as `Compressor.apply` receives it: the original artifact `source` (read only),
    `out` (the new artifact's temporary folder, holding a copy of the original's files), the
    `method`, the labelled `data` (its validation split picks alpha) and the `alphas` to try."""

    source: Path
    out: Path
    method: str
    data: Path
    alphas: tuple[float, ...] = DEFAULT_ALPHAS


def _quiet() -> warnings.catch_warnings:
    """Silences the deprecation and exporter notices of torch.ao, torch.onnx and onnxruntime."""
    return warnings.catch_warnings(action="ignore")


# --- int8 ------------------------------------------------------------------------------------


def linear_names(module: nn.Module, prefix: str = "") -> list[str]:
    """Qualified names of the `nn.Linear` layers in `module`, each prefixed with `prefix.`."""
    lead = f"{prefix}." if prefix else ""
    return [lead + n for n, m in module.named_modules() if isinstance(m, nn.Linear)]


def int8_full_range() -> bool:
    """Whether this CPU's int8 dot products accumulate without saturating (VNNI or AMX)."""
    return bool(getattr(torch.cpu, "_is_vnni_supported", lambda: False)())


class FullRangeDynamicLinear(DynamicLinear):
    """torch's dynamic int8 Linear with activations over all 8 bits instead of 7.

    torch keeps 7 (`reduce_range`) so that AVX2's 16-bit accumulation cannot saturate; with
    VNNI or AMX it cannot, and the eighth bit pays: fine-tuned MiniLM on PhraseBank validation
    agreed with fp32 on 99.2% of labels, against 97.1% with 7 bits, and ran no slower.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        packed = self._packed_params._packed_params
        return torch.ops.quantized.linear_dynamic(x, packed, reduce_range=False).to(x.dtype)


def quantize_int8(
    module: nn.Module, names: Iterable[str] | None = None, full_range: bool | None = None
) -> nn.Module:
    """A CPU copy of `module` whose Linear layers named in `names` (all when None) run in int8.

    Weights are quantized per output channel, activations per batch at run time (dynamic
    quantization): no calibration data is needed, and the layers the caller leaves out (small
    heads, say) stay exactly as they were. `full_range` (default: :func:`int8_full_range` of
    this CPU) quantizes activations over 8 bits; it is decided where the model runs.
    """
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    names = linear_names(module) if names is None else list(names)
    full_range = int8_full_range() if full_range is None else full_range
    with _quiet():
        return quantize_dynamic(
            copy.deepcopy(module).float().cpu().eval(),
            {name: per_channel_dynamic_qconfig for name in names},
            dtype=torch.qint8,
            mapping={nn.Linear: FullRangeDynamicLinear} if full_range else None,
        )


def _int8_layers(module: nn.Module) -> dict[str, nn.Module]:
    return {n: m for n, m in module.named_modules() if isinstance(m, DynamicLinear)}


def int8_state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    """A :func:`quantize_int8` model as plain tensors for safetensors: each int8 layer `<name>`
    as `<name>.weight_int8`, `.weight_scale`, `.weight_zero_point` (per output channel) and
    `.bias`; every other tensor as it is."""
    layers = _int8_layers(module)
    state = {
        k: v
        for k, v in module.state_dict().items()
        if isinstance(v, torch.Tensor) and not any(k.startswith(f"{n}.") for n in layers)
    }
    for name, layer in layers.items():
        weight = layer.weight()
        state[f"{name}.weight_int8"] = weight.int_repr()
        state[f"{name}.weight_scale"] = weight.q_per_channel_scales()
        state[f"{name}.weight_zero_point"] = weight.q_per_channel_zero_points()
        if layer.bias() is not None:
            state[f"{name}.bias"] = layer.bias()
    return state


def load_int8_state_dict(module: nn.Module, tensors: Mapping[str, torch.Tensor]) -> nn.Module:
    """The CPU int8 model whose `int8_state_dict` is `tensors`, with exactly its int8 weights.

    `module` is a float model of the same architecture (its own weights do not matter); the
    load is strict, so a tensor missing or left over fails.
    """
    names = sorted(k.removesuffix(".weight_int8") for k in tensors if k.endswith(".weight_int8"))
    state = {k: v for k, v in tensors.items() if not k.endswith(INT8_SUFFIXES)}
    for name in names:  # dequantized weights fill the float model; quantizing them is exact
        scale, zero = tensors[f"{name}.weight_scale"], tensors[f"{name}.weight_zero_point"]
        weight = tensors[f"{name}.weight_int8"].float() - zero.float().unsqueeze(1)
        state[f"{name}.weight"] = weight * scale.float().unsqueeze(1)
    module.load_state_dict(state, strict=True)
    quantized = quantize_int8(module, names)
    with _quiet():
        for name, layer in _int8_layers(quantized).items():
            weight = torch.quantize_per_channel(
                state[f"{name}.weight"],
                tensors[f"{name}.weight_scale"].double(),
                tensors[f"{name}.weight_zero_point"].long(),
                0,
                torch.qint8,
            )
            layer.set_weight_bias(weight, layer.bias())
    return quantized


# --- half precision --------------------------------------------------------------------------


def cast_for_device(module: nn.Module, method: str | None, device: torch.device) -> nn.Module:
    """`module` on `device`, in half precision on CUDA for `fp16`/`bf16`, else in float32
    (CPU kernels for fp16 are slow, and bf16 ones pay only with AVX512-BF16 or AMX)."""
    dtype = HALF_DTYPES.get(method or "")
    if dtype is not None and device.type == "cuda":
        return module.to(device=device, dtype=dtype)
    if dtype is not None:
        log.info("%s weights run in float32 on %s (half precision pays on CUDA)", method, device)
    return module.to(device=device, dtype=torch.float32)


# --- ONNX ------------------------------------------------------------------------------------


class _PositionalTask(nn.Module):
    """A task (`forward(batch) -> dict`) as `forward(*tensors) -> tuple`, which the exporter takes."""

    def __init__(self, task: nn.Module, inputs: Sequence[str], outputs: Sequence[str]) -> None:
        super().__init__()
        self.task, self.inputs, self.outputs = task, list(inputs), list(outputs)

    def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.task(dict(zip(self.inputs, tensors, strict=True)))
        return tuple(out[name] for name in self.outputs)


def export_onnx(
    task: nn.Module, example: Mapping[str, torch.Tensor], path: str | Path, outputs: Sequence[str]
) -> Path:
    """Exports `task` (`forward(batch: dict) -> dict`, in eval mode) to one ONNX file (weights
    inside), its `outputs` named as in the task's dict and every input's axes 0 and 1 dynamic.

    `example` holds (B, T) inputs named as the task reads them (`input_ids`, `attention_mask`);
    take B and T of at least 2, so that the exporter specialises neither axis to 1.
    """
    names = list(example)
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("seq")
    view = _PositionalTask(copy.deepcopy(task).float().cpu().eval(), names, outputs)
    with _quiet(), torch.no_grad():
        torch.onnx.export(
            view,
            tuple(example[n].cpu() for n in names),
            str(path),
            input_names=names,
            output_names=list(outputs),
            dynamic_shapes=(tuple({0: batch, 1: seq} for _ in names),),
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    return Path(path)


def quantize_onnx_int8(source: str | Path, target: str | Path) -> Path:
    """ONNX Runtime's dynamic int8 quantization of `source` (int8 weights per channel), after
    the pre-processing it recommends; symbolic shape inference is skipped there, as it cannot
    follow the dynamo exporter's symbolic sequence length. Without VNNI or AMX
    (:func:`int8_full_range`) the weights keep 7 bits (`reduce_range`), as ONNX Runtime advises
    for such CPUs: their 16-bit accumulation of uint8 x int8 products saturates otherwise."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp, _quiet():
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        quantize_dynamic(
            str(prepared),
            str(target),
            weight_type=QuantType.QInt8,
            per_channel=True,
            reduce_range=not int8_full_range(),
        )
    return Path(target)


class OnnxModule(nn.Module):
    """An ONNX Runtime session that runs like the task it was exported from: `forward(batch)`
    takes the task's dict of tensors (other keys are ignored) and returns a dict of CPU tensors
    named as the graph's outputs. A CUDA `device` uses ONNX Runtime's CUDA provider where it is
    installed; `threads` defaults to torch's thread count, so that both run alike."""

    def __init__(
        self, path: str | Path, device: torch.device | None = None, threads: int | None = None
    ) -> None:
        import onnxruntime as ort

        super().__init__()
        if not Path(path).is_file():
            raise ArtifactError(f"ONNX file {path} is missing")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        cuda = device is not None and device.type == "cuda"
        on_gpu = cuda and "CUDAExecutionProvider" in ort.get_available_providers()
        providers = (["CUDAExecutionProvider"] if on_gpu else []) + ["CPUExecutionProvider"]
        self.session = ort.InferenceSession(str(path), options, providers=providers)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def forward(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        feeds = {name: batch[name].detach().cpu().numpy() for name in self.input_names}
        values = self.session.run(self.output_names, feeds)
        return {n: torch.from_numpy(v) for n, v in zip(self.output_names, values, strict=True)}


@torch.inference_mode()
def compare_outputs(
    reference: nn.Module,
    candidate: nn.Module,
    batches: Iterable[Mapping[str, torch.Tensor]],
    key: str = "logits",
) -> dict[str, float]:
    """How far `candidate`'s `key` outputs are from `reference`'s on the same batches:
    `max_abs_logit_diff`, `label_agreement` (share of rows with the same arg-max) and `rows`."""
    diff, agree, rows = 0.0, 0, 0
    for batch in batches:
        ref = reference(batch)[key].float()
        got = candidate(batch)[key].float().to(ref.device)
        diff = max(diff, float((ref - got).abs().max()))
        agree += int((ref.argmax(-1) == got.argmax(-1)).sum())
        rows += len(ref)
    return {"max_abs_logit_diff": diff, "label_agreement": agree / max(rows, 1), "rows": rows}


# --- WiSE-FT interpolation -------------------------------------------------------------------


def interpolate_state_dicts(
    finetuned: Mapping[str, torch.Tensor], base: Mapping[str, torch.Tensor], alpha: float
) -> dict[str, torch.Tensor]:
    """theta = alpha * theta_ft + (1 - alpha) * theta_0 on the float tensors both share; the
    others (missing from the base, another shape, integers) keep their fine-tuned value.

    Raises:
        ArtifactError: when no tensor matches (the base is not the model fine-tuned).
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    matched = {
        k
        for k, v in finetuned.items()
        if v.is_floating_point() and k in base and tuple(base[k].shape) == tuple(v.shape)
    }
    if not matched:
        raise ArtifactError(
            "no tensor of the fine-tuned model matches the base model: the config's `model` is "
            "not the model this artifact was fine-tuned from"
        )
    return {
        k: alpha * v + (1.0 - alpha) * base[k].to(v.device, v.dtype) if k in matched else v
        for k, v in finetuned.items()
    }


@dataclass
class InterpolationSweep:
    """The alphas tried, their validation scores, and the best alpha's weights."""

    alpha: float
    scores: dict[float, float]
    state: dict[str, torch.Tensor] = field(repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "scores": {str(a): s for a, s in self.scores.items()}}


def sweep_interpolation(
    finetuned: Mapping[str, torch.Tensor],
    base: Mapping[str, torch.Tensor],
    score: Callable[[dict[str, torch.Tensor]], float],
    alphas: Iterable[float] = DEFAULT_ALPHAS,
) -> InterpolationSweep:
    """Scores `interpolate_state_dicts` at each alpha with `score` (higher is better; on
    validation data, never test) and keeps the best. A tie goes to the larger alpha: the
    smaller change to the model that was trained and validated."""
    scores: dict[float, float] = {}
    for alpha in sorted(set(alphas)):
        scores[alpha] = float(score(interpolate_state_dicts(finetuned, base, alpha)))
        log.info("interpolation alpha %.2f: %.4f", alpha, scores[alpha])
    if not scores:
        raise ValueError("give at least one alpha")
    best = max(scores, key=lambda a: (scores[a], a))
    return InterpolationSweep(best, scores, interpolate_state_dicts(finetuned, base, best))


# --- the command -----------------------------------------------------------------------------


def check_request(
    vertical: Vertical, artifact: Path, out: Path, method: str, data: Path
) -> dict[str, Any]:
    """The original's manifest, once the request is one the command can run.

    Raises:
        UnsupportedMethodError: the vertical has no hook, or does not support `method`.
        ArtifactError: `artifact` is missing, not the vertical's, or compressed; `out` exists.
        DataError: `data` does not exist.
    """
    if vertical.compress is None:
        hooked = ", ".join(v.name for v in all_verticals() if v.compress is not None)
        raise UnsupportedMethodError(
            f"{vertical.name} cannot be compressed (it has no compress hook); "
            f"verticals that can: {hooked or 'none'}"
        )
    if method not in vertical.compress.methods:
        known = "" if method in METHODS else f" (known methods: {', '.join(METHODS)})"
        raise UnsupportedMethodError(
            f"{vertical.name} does not support --method {method}{known}; it supports: "
            f"{', '.join(vertical.compress.methods)}"
        )
    if not artifact.is_dir():
        raise ArtifactError(f"artifact folder {artifact} does not exist")
    manifest = read_manifest(artifact, vertical=vertical.name)
    done = manifest.get("compression")
    if done and done["method"] not in FLOAT_RESULTS:
        raise ArtifactError(
            f"{artifact} is already compressed ({done['method']}); compress the original "
            f"artifact ({done.get('source', 'the one it came from')}) instead"
        )
    if out.exists():
        raise ArtifactError(
            f"{out} already exists; compress writes a new artifact and replaces nothing: "
            "pick another --out or remove that folder"
        )
    if not data.exists():
        raise DataError(f"data {data} does not exist; pass the labelled table the model used")
    return manifest


def copy_artifact(source: Path, manifest: dict[str, Any], target: Path) -> None:
    """Copies the files the artifact was written with (never a store or log kept beside them)."""
    names = manifest.get("files") or [str(p.relative_to(source)) for p in _files(source)]
    for name in set(names) - {MANIFEST, "README.md"}:
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / name, target / name)


def write_manifest(folder: Path, original: dict[str, Any], section: dict[str, Any]) -> None:
    """The original's manifest with the folder's files, today's versions and `compression`;
    then the model card, with a section on the compression."""
    from shared.model_card import model_card

    manifest = {
        **original,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "versions": library_versions(),
        "files": sorted(
            str(p.relative_to(folder))
            for p in _files(folder)
            if p.name not in (MANIFEST, "README.md")
        ),
        "compression": section,
    }
    save_json(folder / MANIFEST, manifest)
    card = model_card(manifest) + _card_section(section)
    (folder / "README.md").write_text(card, encoding="utf-8")


def _card_section(section: dict[str, Any]) -> str:
    text = (
        f"## Compression\n\n`verticals compress --method {section['method']}` of "
        f"`{section['source']}`; the evaluation above is the original's.\n\n"
    )
    if measured := section.get("measured"):
        table = format_table(measured["rows"], measured["metric"])
        text += f"Measured on {measured['split']}, {measured['threads']} thread(s):\n\n```\n{table}\n```\n"
    return text


def compress_artifact(
    vertical: Vertical,
    artifact: str | Path,
    out: str | Path,
    method: str,
    data: str | Path,
    *,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    device: str = "cpu",
    rounds: int = 3,
    measure: bool = True,
) -> dict[str, Any]:
    """Writes `out`, a new artifact: `artifact` compressed by `method` through the vertical's
    hook. `artifact` is never modified; `out` appears whole or not at all.

    With `measure`, the original and the compressed artifact are measured side by side on the
    validation split of `data` (:func:`measure_artifacts`), and the table joins the manifest.

    Returns:
        The new manifest's `compression` section (method, params, source, measured).
    """
    artifact, out, data = Path(artifact), Path(out), Path(data)
    original = check_request(vertical, artifact, out, method, data)
    validation = vertical.compress.validation(artifact, data) if measure else None
    with atomic_folder(out) as tmp:
        copy_artifact(artifact, original, tmp)
        job = CompressJob(artifact, tmp, method, data, tuple(alphas))
        params = dict(vertical.compress.apply(job))
        original = {**original, **params.pop(MANIFEST_UPDATE, {})}
        section = {"method": method, "params": params, "source": str(artifact.resolve())}
        if original.get("compression"):  # a student (say) compressed again: keep the chain
            section["after"] = {k: v for k, v in original["compression"].items() if k != "measured"}
        write_manifest(tmp, original, section)
        if validation is not None:
            folders = {"original": artifact, method: tmp}
            section["measured"] = measure_artifacts(vertical, folders, validation, device, rounds)
            write_manifest(tmp, original, section)
    return section
