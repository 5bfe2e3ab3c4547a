"""Knowledge distillation: a teacher task wraps a student for the shared loop.

`DistillationTask(student, teacher)` is a task like any other (`forward(batch)` returns a dict
with `loss`), so `shared.training.fit` trains the student with the loop's optimizer, schedule,
checkpoints and early stopping. Its loss (Hinton et al. 2015) is

    alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T)) + (1 - alpha) * CE(student)
    + hidden_weight * MSE(student hidden, teacher hidden)

where `CE` is the student task's own loss on labelled batches (its class weights included); a
batch without labels (unlabelled in-domain data, soft labels only) gets the KL term alone. Both
tasks return `logits` from `forward(batch)`, and `hidden` where the MSE term is wanted.

`shrink_transformer` builds a student with fewer layers from a transformers encoder, its layers
initialised from evenly spaced teacher layers (as DistilBERT takes every other one).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn


class DistillationTask(nn.Module):
    """Student + frozen teacher; `forward(batch)` returns the distillation loss and the
    student's logits.

    Args:
        student: Task whose `forward(batch)` gives `logits` (and `loss` when the batch has labels).
        teacher: Task with the same `forward`; kept in eval mode without gradients.
        temperature: Softening of both distributions (T).
        alpha: Weight of the KL term; 1 - alpha weighs the student's own loss.
        hidden_weight: Weight of the MSE between `hidden` outputs (0: not used).
    """

    def __init__(
        self,
        student: nn.Module,
        teacher: nn.Module,
        *,
        temperature: float = 2.0,
        alpha: float = 0.5,
        hidden_weight: float = 0.0,
    ) -> None:
        super().__init__()
        if temperature <= 0 or not 0.0 <= alpha <= 1.0:
            raise ValueError(
                f"need temperature > 0 and 0 <= alpha <= 1, got {temperature}, {alpha}"
            )
        self.student = student
        self.teacher = teacher.eval().requires_grad_(False)
        self.temperature, self.alpha, self.hidden_weight = temperature, alpha, hidden_weight
        self.backbone = getattr(student, "backbone", None)  # the loop's backbone settings

    def train(self, mode: bool = True) -> DistillationTask:
        super().train(mode)
        self.teacher.eval()  # no dropout in the targets
        return self

    def logits(self, *args, **kwargs) -> torch.Tensor:
        """The student's own `logits(...)`, for evaluators written for the student task."""
        return self.student.logits(*args, **kwargs)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = self.student(batch)
        with torch.no_grad():
            target = self.teacher(batch)
        t = self.temperature
        kl = nn.functional.kl_div(
            nn.functional.log_softmax(out["logits"].float() / t, dim=-1),
            nn.functional.log_softmax(target["logits"].float() / t, dim=-1),
            log_target=True,
            reduction="batchmean",
        ) * (t * t)
        loss = self.alpha * kl if "loss" in out else kl
        if "loss" in out and self.alpha < 1.0:
            loss = loss + (1.0 - self.alpha) * out["loss"]
        if self.hidden_weight and "hidden" in out and "hidden" in target:
            mse = nn.functional.mse_loss(out["hidden"].float(), target["hidden"].float())
            loss = loss + self.hidden_weight * mse
        return {"loss": loss, "logits": out["logits"], "kl": kl.detach()}


def spaced_layers(n_teacher: int, n_student: int) -> list[int]:
    """Teacher layer indices for `n_student` layers, evenly spaced, first and last included."""
    if not 1 <= n_student <= n_teacher:
        raise ValueError(f"a student needs 1..{n_teacher} layers, got {n_student}")
    if n_student == 1:
        return [n_teacher - 1]
    step = (n_teacher - 1) / (n_student - 1)
    return [round(i * step) for i in range(n_student)]


def shrink_transformer(body: nn.Module, n_layers: int, keep: Sequence[int] | None = None):
    """A copy of a transformers encoder (BERT, MPNet, ...) with `n_layers` of its layers.

    Embeddings (and the pooler) are copied whole; layer i of the student is teacher layer
    `keep[i]` (default `spaced_layers`). The config's `num_hidden_layers` is updated, so the
    student saves and loads as an ordinary model of its class.
    """
    layers = _layer_list(body)
    keep = list(keep) if keep is not None else spaced_layers(len(layers), n_layers)
    student = copy.deepcopy(body)
    _set_layer_list(student, nn.ModuleList(copy.deepcopy(layers[i]) for i in keep))
    student.config.num_hidden_layers = len(keep)
    return student


def _layer_list(body: nn.Module) -> nn.ModuleList:
    encoder = getattr(body, "encoder", None)
    layers = getattr(encoder, "layer", None)
    if not isinstance(layers, nn.ModuleList):
        raise ValueError(f"{type(body).__name__} has no encoder.layer list to shrink")
    return layers


def _set_layer_list(body: nn.Module, layers: nn.ModuleList) -> None:
    body.encoder.layer = layers
