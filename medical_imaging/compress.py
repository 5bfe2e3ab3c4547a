"""Making a trained classifier smaller and faster beside the device: functions applied to a model.

- `int8_static`: post-training static quantization (FX graph mode, x86/fbgemm kernels) of every
  convolution and linear layer, calibrated on a few hundred validation images. The dynamic
  "same" padding convolutions of TF-ported EfficientNets cannot be traced and stay in float.
- `int8_dynamic`: dynamic quantization of the linear head only (cheap, tiny effect on a CNN).
- `bf16`: weights and activations in bfloat16 (half the size; fast only on CPUs with AVX512-BF16/AMX).

Each returns a module `pixels (B, C, H, W) in [0, 1] -> logits (B, n_classes)`.
"""

from __future__ import annotations

import copy
import io
import statistics
import time
import warnings

import torch
from torch import nn

from medical_imaging.model import ImagingTask, LogitsView


class CastView(nn.Module):
    """Runs a module in `dtype` and hands back float32 logits."""

    def __init__(self, module: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.module, self.dtype = module.to(dtype), dtype

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.module(pixels.to(self.dtype)).float()


def float_model(task: ImagingTask) -> nn.Module:
    """The unmodified fp32 classifier on CPU (the baseline)."""
    return LogitsView(copy.deepcopy(task).cpu()).eval()


def quantize_int8_static(
    task: ImagingTask, calibration: torch.Tensor, backend: str = "x86"
) -> nn.Module:
    """Static int8 quantization, calibrated on `calibration` pixels (N, C, H, W); never test data."""
    from timm.layers import Conv2dSame
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.fx.custom_config import PrepareCustomConfig
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    torch.backends.quantized.engine = backend
    view = float_model(task)
    custom = PrepareCustomConfig().set_non_traceable_module_classes([Conv2dSame])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao deprecation notices
        prepared = prepare_fx(
            view,
            get_default_qconfig_mapping(backend),
            (calibration[:2].float(),),
            prepare_custom_config=custom,
        )
        with torch.inference_mode():
            for start in range(0, len(calibration), 64):
                prepared(calibration[start : start + 64].float())
        return convert_fx(prepared).eval()


def quantize_int8_dynamic(task: ImagingTask) -> nn.Module:
    """Dynamic int8 quantization of the linear layers (the head)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(
            float_model(task), {nn.Linear}, dtype=torch.qint8
        ).eval()


def to_bf16(task: ImagingTask) -> nn.Module:
    """The classifier in bfloat16."""
    return CastView(float_model(task), torch.bfloat16).eval()


COMPRESSORS = {
    "int8_static": quantize_int8_static,
    "int8_dynamic": quantize_int8_dynamic,
    "bf16": to_bf16,
}


def model_size_mb(module: nn.Module) -> float:
    """Serialized size of the weights (packed int8 weights included), in MB. Measurement only."""
    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    return len(buffer.getvalue()) / 1e6


def latency_ms(module: nn.Module, pixels: torch.Tensor, repeats: int = 30) -> float:
    """Median milliseconds of one forward pass on `pixels` (after two warm-up passes)."""
    times = []
    with torch.inference_mode():
        for i in range(repeats + 2):
            started = time.perf_counter()
            module(pixels)
            if i >= 2:
                times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def logits_of(module: nn.Module, pixels: torch.Tensor, batch_size: int = 128) -> torch.Tensor:
    """(N, n_classes) float logits of `module` over `pixels`, in batches."""
    with torch.inference_mode():
        return torch.cat(
            [
                module(pixels[s : s + batch_size].float()).float()
                for s in range(0, len(pixels), batch_size)
            ]
        )
