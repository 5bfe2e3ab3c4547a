"""Many sites on one base: tenants' adapters on the timm backbone beside the served artifact's.

With `VERTICALS_TENANTS_DIR` set, the served artifact must be an adapter artifact
(`adapter.method=lora`): its base model, in memory once, carries its own adapter and those of
the tenants. Each tenant is one adapter artifact folder in that directory, named by the tenant
(`tenants/st-marys/`, trained with `adapter.method=lora` on the same base); `/predict` and
`/explain` pick it with the header `X-Tenant: st-marys`, and a request without the header is
answered by the served artifact. A tenant is a whole classifier of its own: its labels, head,
temperature, operating threshold, image size and test-time augmentation.

What the core's `shared.tenants.TenantPool` does for every vertical holds here: tenants are read
on demand and reloaded when their folder changes, without a restart; at most
`VERTICALS_TENANT_CACHE_SIZE` stay loaded (least recently used evicted first); a missing one is a
404 naming it, one whose adapter is not for this base a 409.

Batching: the engine's batch may hold several tenants' images. The adapter of an imaging tenant
includes its norm layers (their statistics follow its images; see `medical_imaging.lora`), and
peft mixes adapters within one forward only for Linear, convolution and embedding layers, so
each tenant's rows of a batch run as one forward with its adapter active.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from shared.adapters import load_heads
from shared.artifacts import load_json
from shared.tenants import TenantPool as SharedTenantPool

from .config import MedicalImagingConfig
from .labels import decision_rule
from .lora import ADAPTER_DIR, HEADS_FILE, MANIFEST_KEY
from .model import ImagingTask


@dataclass(frozen=True)
class Classifier:
    """One classifier a service answers with: the served artifact's, or a tenant's.

    Attributes:
        name: The tenant; None for the served artifact.
        adapter: peft's name of its adapter in the shared base; None for a plain (merged) model.
        task: Its network (for a tenant: the shared backbone, its own head).
        cfg: Its config (image size, channels, test-time augmentation).
        labels: Its labels, in the head's order.
        calibration: Its `calibration.json` (temperature, threshold, margin).
        rule: How its label is chosen (`decision_rule` of its manifest).
    """

    name: str | None
    adapter: str | None
    task: ImagingTask
    cfg: MedicalImagingConfig
    labels: list[str]
    calibration: dict[str, Any]
    rule: dict[str, Any]

    def decide(self, probs: np.ndarray) -> dict[str, Any]:
        """Label by the stored threshold (binary) or argmax; low confidence near the decision."""
        margin = float(self.calibration["low_confidence_margin"])
        positive, threshold = self.calibration["positive_index"], self.calibration["threshold"]
        if positive is None:
            threshold = None  # multi-class: argmax, whatever calibration.json holds
        if threshold is not None:
            score = float(probs[positive])
            index = positive if score >= threshold else 1 - positive
            low = abs(score - threshold) < margin
        else:
            index = int(probs.argmax())
            ranked = np.sort(probs)
            low = float(ranked[-1] - ranked[-2]) < 2 * margin
        return {
            "label": self.labels[index],
            "probabilities": {name: float(p) for name, p in zip(self.labels, probs, strict=True)},
            "threshold": threshold,
            "decision_rule": "threshold" if threshold is not None else "argmax",
            "calibrated": True,
            "low_confidence": bool(low),
        }


def classifier(
    artifact: Path,
    manifest: dict[str, Any],
    task: ImagingTask,
    *,
    name: str | None = None,
    adapter: str | None = None,
) -> Classifier:
    """The `Classifier` of the artifact in `artifact` (its manifest read), networked by `task`."""
    cfg = MedicalImagingConfig.model_validate(manifest["config"])
    labels = list(manifest["label_map"])
    calibration = load_json(artifact / "calibration.json")
    rule = manifest.get("decision_rule") or decision_rule(labels, calibration)
    return Classifier(name, adapter, task, cfg, labels, calibration, rule)


def on_body(body: nn.Module, head: nn.Module | None, n_classes: int, in_chans: int) -> ImagingTask:
    """An `ImagingTask` whose backbone is `body` (shared, not copied) and whose head is `head`
    (a fresh one of `n_classes` for None), in eval mode."""
    task = ImagingTask(body, n_classes, in_chans)
    if head is not None:
        task.head = head
    return task.eval()


class TenantPool(SharedTenantPool[Classifier]):
    """The tenants of one service (`shared.tenants.TenantPool`): their adapters on the backbone
    of the served adapter artifact (a `PeftModel`, whose own adapter is pinned), each with its
    own head and calibration.

    Args:
        model: The served artifact's `PeftModel` backbone.
        main: The served artifact's `Classifier` (its task's backbone is `model`'s timm model).
        section: Its manifest's `adapter` section (the base model's name and hash).
        folder: One adapter artifact folder per tenant.
        capacity: Most tenant adapters loaded at once.
    """

    vertical = "medical_imaging"
    adapter_dir = ADAPTER_DIR
    adapter_key = MANIFEST_KEY

    def __init__(
        self,
        model: Any,
        main: Classifier,
        section: dict[str, Any],
        folder: Path,
        capacity: int,
    ) -> None:
        super().__init__(model, section, folder, capacity)
        self.model, self.main = model, main

    def resolve(self, name: str | None) -> Classifier:
        """Tenant `name` (loaded from its folder unless cached and unchanged), or the served
        artifact for None.

        Raises:
            InputError: 404 (no such tenant), 422 (bad name), 409 (its adapter does not fit).
        """
        return self.main if name is None else self.get(name)

    def load(self, name: str, path: Path, manifest: dict[str, Any]) -> Classifier:
        cfg = MedicalImagingConfig.model_validate(manifest["config"])
        if cfg.in_chans != self.main.cfg.in_chans:
            raise ValueError(
                f"its images have {cfg.in_chans} channel(s), this base takes "
                f"{self.main.cfg.in_chans}"
            )
        labels = list(manifest["label_map"])
        task = on_body(self.main.task.backbone, None, len(labels), cfg.in_chans)
        load_heads({"head": task.head}, path / HEADS_FILE, f"the {len(labels)} labels")
        task.head.to(self.main.task.mean.device).eval()
        return classifier(path, manifest, task, name=name, adapter=self.cache.adapter_name(name))

    def activate(self, served: Classifier) -> None:
        """Makes `served`'s adapter the one the shared backbone runs (hold `cache.lock`)."""
        if self.model.active_adapter != served.adapter:
            # frozen (`inference_mode`): nothing here trains, and Grad-CAM's gradient comes
            # through its input; the model stays in eval mode (the cache loads adapters so)
            self.model.set_adapter(served.adapter, inference_mode=True)

    def logits(self, names: list[str | None], run) -> list[Any]:
        """`run(classifier, indices)` for each tenant's rows of `names` (None: the served
        artifact), each under the lock with its adapter active; results in `names`' order.

        A batch naming more tenants than the cache holds runs in parts of at most `capacity`
        tenants, so that no part evicts an adapter it uses.
        """
        results: list[Any] = [None] * len(names)
        for part in self.parts(names):
            groups: dict[str | None, list[int]] = {}
            for i in part:
                groups.setdefault(names[i], []).append(i)
            with self.cache.lock:  # no eviction, no other adapter while a group runs
                for name, rows in groups.items():
                    served = self.resolve(name)
                    self.activate(served)
                    for i, result in zip(rows, run(served, rows), strict=True):
                        results[i] = result
        return results


def peft_body(model: Any) -> nn.Module:
    """The timm model inside a `PeftModel` (its adapted layers follow the active adapter)."""
    return model.get_base_model()
