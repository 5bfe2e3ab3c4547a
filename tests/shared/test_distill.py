"""Distillation in the core: the loss, unlabelled batches, the loop, and layer-shrunk students."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from shared.config import TrainerConfig
from shared.distill import DistillationTask, shrink_transformer, spaced_layers
from shared.training import fit


class Classifier(nn.Module):
    """A tiny task: logits always, the cross-entropy when the batch has labels."""

    def __init__(self, hidden: int, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.backbone = nn.Sequential(nn.Linear(4, hidden), nn.Tanh())
        self.head = nn.Linear(hidden, 3)

    def forward(self, batch):
        logits = self.head(self.backbone(batch["x"]))
        out = {"logits": logits}
        if "labels" in batch:
            out["loss"] = nn.functional.cross_entropy(logits, batch["labels"])
        return out


def _kl(student, teacher, x) -> float:
    with torch.no_grad():
        s, t = student({"x": x})["logits"], teacher({"x": x})["logits"]
    kl = nn.functional.kl_div(
        s.log_softmax(-1), t.log_softmax(-1), log_target=True, reduction="batchmean"
    )
    return float(kl)


def test_the_loss_is_kl_on_soft_targets_plus_the_students_own_loss():
    student, teacher = Classifier(8, 0), Classifier(16, 1)
    x, y = torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    task = DistillationTask(student, teacher, temperature=2.0, alpha=0.25)
    out = task({"x": x, "labels": y})
    s, t = student({"x": x})["logits"] / 2, teacher({"x": x})["logits"] / 2
    kl = nn.functional.kl_div(
        s.log_softmax(-1), t.log_softmax(-1), log_target=True, reduction="batchmean"
    )
    ce = nn.functional.cross_entropy(student({"x": x})["logits"], y)
    torch.testing.assert_close(out["loss"], 0.25 * 4 * kl + 0.75 * ce)
    unlabelled = task({"x": x})  # soft labels alone
    torch.testing.assert_close(unlabelled["loss"], 4 * kl)
    assert DistillationTask(teacher, teacher)({"x": x})["kl"].abs() < 1e-6  # itself: no gap


def test_the_loop_moves_the_student_to_the_teacher_and_leaves_the_teacher(tmp_path):
    student, teacher = Classifier(8, 0), Classifier(16, 1)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    data = [{"x": torch.randn(4)} for _ in range(256)]  # unlabelled in-domain inputs

    def collate(rows):
        return {"x": torch.stack([r["x"] for r in rows])}

    probe = torch.randn(128, 4)
    gap = _kl(student, teacher, probe)
    cfg = TrainerConfig(epochs=5, lr=1e-2, batch_size=32, progress=False, tensorboard=False)
    fit(DistillationTask(student, teacher, temperature=1.0), data, collate, cfg, tmp_path)
    assert _kl(student, teacher, probe) < 0.3 * gap
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())


def test_spaced_layers_keep_the_first_and_last():
    assert spaced_layers(6, 3) == [0, 2, 5] and spaced_layers(12, 6) == [0, 2, 4, 7, 9, 11]
    assert spaced_layers(4, 1) == [3] and spaced_layers(2, 2) == [0, 1]
    with pytest.raises(ValueError, match="1..6 layers"):
        spaced_layers(6, 7)


def test_a_shrunk_transformer_copies_the_chosen_layers_and_round_trips(tmp_path):
    from transformers import AutoModel

    from shared.models import load_model

    _, body = load_model("random:bert-tiny", "text-backbone")
    student = shrink_transformer(body, 1)
    assert student.config.num_hidden_layers == 1 and len(student.encoder.layer) == 1
    kept = body.encoder.layer[1].state_dict()  # spaced_layers(2, 1) == [1]
    assert all(torch.equal(kept[k], v) for k, v in student.encoder.layer[0].state_dict().items())
    assert len(body.encoder.layer) == 2  # the teacher is untouched
    student.save_pretrained(tmp_path)
    again = AutoModel.from_pretrained(tmp_path)
    ids = torch.tensor([[1, 5, 7, 2]])
    with torch.no_grad():
        torch.testing.assert_close(
            again(input_ids=ids).last_hidden_state, student(input_ids=ids).last_hidden_state
        )
