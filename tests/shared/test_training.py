"""The shared loop: resume is exact, early stopping and freezing work, logs are written."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from shared.config import TrainerConfig
from shared.errors import VerticalsError
from shared.training import MetricsEvaluator, fit
from shared.training.optim import param_groups


class Task(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.backbone = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.2))
        self.head = nn.Linear(16, 2)

    def forward(self, batch):
        logits = self.head(self.backbone(batch["x"]))
        return {"loss": nn.functional.cross_entropy(logits, batch["y"]), "logits": logits}


def make_data(n=64):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 4, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    return [(x[i], y[i]) for i in range(n)]


def collate(rows):
    return {"x": torch.stack([r[0] for r in rows]), "y": torch.stack([r[1] for r in rows])}


def cfg(**kw):
    base = dict(epochs=3, batch_size=8, lr=1e-2, progress=False, device="cpu", warmup_ratio=0.2)
    return TrainerConfig(**{**base, **kw})


def test_resume_continues_exactly_where_a_killed_run_stopped(tmp_path):
    data = make_data()
    reference = Task()
    fit(reference, data, collate, cfg(), tmp_path / "full")

    killed = Task()
    calls = {"n": 0}

    class CrashInSecondEpoch:
        def on_epoch_end(self, _state):
            calls["n"] += 1
            if calls["n"] == 2:  # the process dies after epoch 2's steps, before its checkpoint
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(killed, data, collate, cfg(), tmp_path / "killed", callbacks=[CrashInSecondEpoch()])
    assert (
        json.loads((tmp_path / "killed" / "history.jsonl").read_text().splitlines()[0])["epoch"]
        == 1
    )

    resumed = Task()
    result = fit(resumed, data, collate, cfg(resume=True), tmp_path / "killed")
    assert [row["epoch"] for row in result.history] == [1, 2, 3]
    logged = (tmp_path / "killed" / "history.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in logged] == [1, 2, 3]

    fit(Task(), data, collate, cfg(epochs=2), tmp_path / "killed")  # a fresh run in the same folder
    logged = (tmp_path / "killed" / "history.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in logged] == [1, 2]  # no stale epochs kept
    for (name, a), b in zip(
        reference.state_dict().items(), resumed.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name


def test_early_stopping_restores_the_best_epoch(tmp_path):
    scores = iter([0.9, 0.5, 0.4, 0.3, 0.2])
    task = Task()
    result = fit(
        task,
        make_data(),
        collate,
        cfg(epochs=5, early_stopping_patience=2),
        tmp_path,
        evaluator=MetricsEvaluator(lambda _t: {"acc": next(scores)}, "acc"),
    )
    assert result.stopped_early and len(result.history) == 3
    assert result.best == 0.9 and result.best_epoch == 1
    assert (result.monitor, result.monitor_mode) == ("val_acc", "max")
    best = torch.load(tmp_path / "best.pt", weights_only=True)
    assert all(torch.equal(best[k], v) for k, v in task.state_dict().items())


def test_frozen_backbone_is_untouched_and_head_learns(tmp_path):
    task = Task()
    before = {k: v.clone() for k, v in task.state_dict().items()}
    fit(task, make_data(), collate, cfg(epochs=1, freeze_backbone_epochs=1), tmp_path)
    assert torch.equal(before["backbone.0.weight"], task.state_dict()["backbone.0.weight"])
    assert not torch.equal(before["head.weight"], task.state_dict()["head.weight"])


def test_backbone_gets_its_own_learning_rate_and_no_decay_on_biases():
    groups = param_groups(Task(), cfg(lr=1e-3, backbone_lr=1e-5, weight_decay=0.1))
    lrs = {(g["lr"], g["weight_decay"]) for g in groups}
    assert lrs == {(1e-5, 0.1), (1e-5, 0.0), (1e-3, 0.1), (1e-3, 0.0)}


def test_accumulation_max_steps_and_logs(tmp_path):
    result = fit(Task(), make_data(64), collate, cfg(epochs=2, grad_accum=4), tmp_path / "acc")
    assert result.steps == 2 * 2  # 8 batches per epoch / 4 accumulated
    limited = fit(Task(), make_data(64), collate, cfg(epochs=5, max_steps=3), tmp_path / "max")
    assert limited.steps == 3
    assert (tmp_path / "acc" / "training_curve.png").stat().st_size > 1000
    rows = [
        json.loads(line) for line in (tmp_path / "acc" / "history.jsonl").read_text().splitlines()
    ]
    assert {"train_loss", "samples_per_s", "lr"} <= set(rows[0])


def test_training_actually_learns(tmp_path):
    task = Task()
    data = make_data(128)
    fit(task, data, collate, cfg(epochs=8), tmp_path)
    task.eval()
    batch = collate(data)
    accuracy = (task(batch)["logits"].argmax(1) == batch["y"]).float().mean()
    assert accuracy > 0.9


def test_same_seed_same_weights(tmp_path):
    a, b = Task(), Task()
    fit(a, make_data(), collate, cfg(epochs=1, seed=3), tmp_path / "a")
    fit(b, make_data(), collate, cfg(epochs=1, seed=3), tmp_path / "b")
    assert all(
        torch.equal(x, y)
        for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )


def test_tensorboard_logging(tmp_path):
    pytest.importorskip("tensorboard")
    fit(Task(), make_data(16), collate, cfg(epochs=1, tensorboard=True), tmp_path)
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))


class BNTask(Task):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU())


def test_frozen_backbone_keeps_its_batchnorm_statistics(tmp_path):
    task = BNTask()
    before = task.backbone[1].running_mean.clone()
    fit(
        task,
        make_data(),
        collate,
        cfg(epochs=2, freeze_backbone_epochs=1),
        tmp_path / "a",
    )
    frozen_only = BNTask()
    fit(frozen_only, make_data(), collate, cfg(epochs=1, freeze_backbone_epochs=1), tmp_path / "b")
    assert torch.equal(frozen_only.backbone[1].running_mean, before)  # untouched while frozen
    assert not torch.equal(task.backbone[1].running_mean, before)  # updated once unfrozen


def test_custom_sampler_decides_what_each_epoch_sees(tmp_path):
    from torch.utils.data import WeightedRandomSampler

    data = make_data(64)
    weights = [1.0 if int(y) == 1 else 0.0 for _, y in data]  # only positives are ever drawn
    seen = []

    def spy(rows):
        seen.extend(int(r[1]) for r in rows)
        return collate(rows)

    sampler = WeightedRandomSampler(weights, num_samples=32, generator=torch.Generator())
    fit(Task(), data, spy, cfg(epochs=1), tmp_path, sampler=sampler)
    assert len(seen) == 32 and set(seen) == {1}


def _fixed_scores(*values):
    it = iter(values)
    return lambda _task: {"loss": 1.0, "acc": next(it)}


def test_the_evaluators_primary_metric_and_direction_pick_the_best_epoch(tmp_path):
    # accuracy peaks in epoch 2; a loop that ignored the evaluator would keep epoch 1 or 3
    evaluator = MetricsEvaluator(_fixed_scores(0.5, 0.9, 0.7), "acc", greater_is_better=True)
    result = fit(Task(), make_data(), collate, cfg(), tmp_path / "max", evaluator=evaluator)
    assert result.best_epoch == 2 and result.monitor == "val_acc" and result.monitor_mode == "max"
    lower = MetricsEvaluator(_fixed_scores(0.5, 0.9, 0.7), "acc", greater_is_better=False)
    result = fit(Task(), make_data(), collate, cfg(), tmp_path / "min", evaluator=lower)
    assert result.best_epoch == 1 and result.monitor_mode == "min"


def test_config_monitor_overrides_the_primary_metric(tmp_path):
    evaluator = MetricsEvaluator(lambda _t: {"acc": 0.5, "f1": 0.1}, "acc")
    result = fit(
        Task(),
        make_data(),
        collate,
        cfg(monitor="f1", monitor_mode="max"),
        tmp_path,
        evaluator=evaluator,
    )
    assert result.monitor == "val_f1"
    with pytest.raises(VerticalsError, match="monitor_mode"):  # a direction cannot be guessed
        fit(Task(), make_data(), collate, cfg(monitor="f1"), tmp_path / "b", evaluator=evaluator)


def test_a_missing_monitored_metric_is_an_error_not_the_training_loss(tmp_path):
    evaluator = MetricsEvaluator(lambda _t: {"accuracy": 0.5}, "intent_accuracy")
    with pytest.raises(VerticalsError, match="'val_intent_accuracy' is not among"):
        fit(Task(), make_data(), collate, cfg(epochs=1), tmp_path / "a", evaluator=evaluator)
    with pytest.raises(VerticalsError, match="no evaluator"):
        fit(Task(), make_data(), collate, cfg(epochs=1, monitor="accuracy"), tmp_path / "b")


def test_without_an_evaluator_the_lowest_training_loss_is_kept(tmp_path):
    result = fit(Task(), make_data(), collate, cfg(epochs=4, lr=0.05), tmp_path)
    losses = [row["train_loss"] for row in result.history]
    assert (result.monitor, result.monitor_mode) == ("train_loss", "min")
    assert result.best == min(losses) and result.best_epoch == losses.index(min(losses)) + 1


def test_hooks_run_in_order_around_evaluation_and_after_the_best_weights(tmp_path):
    events = []
    task = Task()

    class Recorder:
        def on_train_start(self, state):
            events.append(("start", state.epoch))

        def on_epoch_end(self, state):
            events.append(("epoch_end", state.epoch))

        def on_train_end(self, state):
            # the best epoch's weights are back in place when this runs
            best = torch.load(tmp_path / "best.pt", weights_only=True)
            same = all(torch.equal(best[k], v) for k, v in state.task.state_dict().items())
            events.append(("train_end", same))

    def evaluate(_task):
        events.append(("evaluate", len(events)))
        return {"acc": [0.9, 0.1, 0.2][sum(e[0] == "evaluate" for e in events) - 1]}

    fit(
        task,
        make_data(),
        collate,
        cfg(),
        tmp_path,
        evaluator=MetricsEvaluator(evaluate, "acc"),
        callbacks=[Recorder()],
    )
    names = [e[0] for e in events]
    assert names == ["start"] + ["epoch_end", "evaluate"] * 3 + ["train_end"]
    assert events[-1] == ("train_end", True)


def test_no_evaluator_and_max_mode_is_refused_not_the_highest_loss_kept(tmp_path):
    with pytest.raises(VerticalsError, match="highest training loss"):
        fit(Task(), make_data(), collate, cfg(epochs=1, monitor_mode="max"), tmp_path)
    with pytest.raises(VerticalsError, match="monitor_mode=min"):
        fit(
            Task(),
            make_data(),
            collate,
            cfg(epochs=1, monitor="train_loss", monitor_mode="max"),
            tmp_path / "b",
            evaluator=MetricsEvaluator(lambda _t: {"acc": 1.0}, "acc"),
        )


def test_resume_refuses_a_checkpoint_that_monitored_another_metric(tmp_path):
    evaluator = MetricsEvaluator(_fixed_scores(0.9, 0.1), "acc")
    fit(Task(), make_data(), collate, cfg(epochs=1), tmp_path, evaluator=evaluator)
    with pytest.raises(VerticalsError, match="kept epochs by val_acc"):
        fit(Task(), make_data(), collate, cfg(epochs=2, resume=True), tmp_path)  # no evaluator
    resumed = fit(
        Task(), make_data(), collate, cfg(epochs=2, resume=True), tmp_path, evaluator=evaluator
    )
    assert [r["epoch"] for r in resumed.history] == [1, 2] and resumed.best_epoch == 1
