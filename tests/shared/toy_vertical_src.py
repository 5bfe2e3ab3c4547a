"""A complete, tiny vertical used by the registry and contract tests.

It lives in one folder, is registered by one entry-point line, and uses only the public core: the
same shape a new vertical takes. Its task separates 2-D points with a small MLP.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field
from torch import nn

from shared.artifacts import load_weights, read_manifest, save_weights, write_artifact
from shared.config import StrictModel, TrainerConfig
from shared.data import Column, TableSchema, fingerprint, load_table, split_indices
from shared.engine import InferenceEngine
from shared.registry import Vertical
from shared.reports import EvaluationReport
from shared.serving import get_runtime
from shared.settings import ServeSettings
from shared.training import MetricsEvaluator, fit

SCHEMA = TableSchema("points", (Column("x", "float"), Column("y", "float"), Column("label", "str")))


class ToyTrainerConfig(TrainerConfig):
    epochs: int = 2
    batch_size: int = 8
    lr: float = 1e-2
    progress: bool = False


class ToyConfig(StrictModel):
    hidden: int = 8
    trainer: ToyTrainerConfig = ToyTrainerConfig()


class ToyTask(nn.Module):
    def __init__(self, hidden: int, n_labels: int) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(2, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, n_labels)

    def forward(self, batch):
        logits = self.head(self.backbone(batch["x"]))
        out = {"logits": logits}
        if "y" in batch:
            out["loss"] = nn.functional.cross_entropy(logits, batch["y"])
        return out


def collate(rows):
    return {
        "x": torch.tensor([r[0] for r in rows], dtype=torch.float32),
        "y": torch.tensor([r[1] for r in rows]),
    }


def train(cfg: ToyConfig, data: Path, out: Path) -> Path:
    df = load_table(data, SCHEMA)
    labels = sorted(df["label"].unique())
    ids = df["label"].map({name: i for i, name in enumerate(labels)}).to_numpy()
    tr, va, _ = split_indices(len(df), labels=ids, seed=cfg.trainer.seed)
    xy = df[["x", "y"]].to_numpy(dtype=np.float32)
    torch.manual_seed(cfg.trainer.seed)  # the initial weights, like the data order, follow the seed
    task = ToyTask(cfg.hidden, len(labels))

    def evaluate(model):
        logits = model({"x": torch.from_numpy(xy[va])})["logits"]
        return {"accuracy": float((logits.argmax(1).numpy() == ids[va]).mean())}

    fit(
        task,
        [(xy[i].tolist(), int(ids[i])) for i in tr],
        collate,
        cfg.trainer,
        out / "run",
        evaluator=MetricsEvaluator(evaluate, "accuracy"),
    )
    metrics = evaluate(task.eval())
    with write_artifact(
        out / "artifact",
        vertical="toy",
        model_name="mlp",
        config=cfg.model_dump(),
        metrics=metrics,
        label_map=labels,
        data_fingerprint=fingerprint(data),
    ) as tmp:
        save_weights(tmp / "model.safetensors", task.state_dict())
    return out / "artifact"


class ToyRuntime:
    def __init__(self, artifact: Path, settings: ServeSettings) -> None:
        self.manifest = read_manifest(artifact, vertical="toy")
        self.labels = self.manifest["label_map"]
        self.model = ToyTask(self.manifest["config"]["hidden"], len(self.labels))
        self.model.load_state_dict(load_weights(artifact / "model.safetensors"))
        self.model.eval()
        self.engine = InferenceEngine.from_settings(
            self._batch, settings, warmup_items=[{"x": 0.0, "y": 0.0}]
        )

    def _batch(self, rows):
        x = torch.tensor([[float(r["x"]), float(r["y"])] for r in rows])
        probs = self.model({"x": x})["logits"].softmax(-1)
        return [
            {"label": self.labels[int(p.argmax())], "confidence": float(p.max())} for p in probs
        ]

    def predict(self, rows):
        return self.engine.run(rows)

    def info(self):
        return {"model": self.manifest["model_name"], "metrics": self.manifest["metrics"]}


class PointRequest(BaseModel):
    x: float
    y: float = Field(ge=-100, le=100)


def build_router() -> APIRouter:
    router = APIRouter()

    @router.post("/predict")
    async def predict(req: PointRequest, runtime=Depends(get_runtime)):
        return await runtime.engine.submit(req.model_dump())

    return router


def example_data(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 2))
    df = pd.DataFrame({"x": x[:, 0], "y": x[:, 1], "label": np.where(x[:, 0] > 0, "right", "left")})
    df.to_csv(folder / "points.csv", index=False)
    return folder / "points.csv"


def evaluate(runtime: ToyRuntime, data: Path) -> EvaluationReport:
    df = load_table(data, SCHEMA)
    results = runtime.predict(df[["x", "y"]].to_dict(orient="records"))
    index = {name: i for i, name in enumerate(runtime.labels)}
    y_true = [index[name] for name in df["label"]]
    y_pred = [index[r["label"]] for r in results]
    errors = [
        {
            "input": f"({x:.2f}, {y:.2f})",
            "expected": t,
            "predicted": r["label"],
            "confidence": r["confidence"],
        }
        for x, y, t, r in zip(df["x"], df["y"], df["label"], results, strict=True)
        if r["label"] != t
    ]
    return EvaluationReport(
        metrics={"accuracy": float(np.mean(np.equal(y_true, y_pred))), "n_points": len(df)},
        descriptions={"accuracy": "points whose side is right / all points"},
        labels=runtime.labels,
        y_true=y_true,
        y_pred=y_pred,
        errors=errors,
        primary="accuracy",
    )


def demo(workdir: Path) -> dict:
    artifact = train(ToyConfig(), example_data(workdir / "data"), workdir)
    return read_manifest(artifact)["metrics"]


VERTICAL = Vertical(
    name="toy",
    summary="Separates 2-D points (a test fixture).",
    config_cls=ToyConfig,
    train=train,
    load=ToyRuntime,
    build_router=build_router,
    demo=demo,
    example_data=example_data,
    example_inputs=lambda data: [{"x": 1.5, "y": 0.0}, {"x": -1.5, "y": 0.0}],
    smoke_overrides={"trainer": {"max_steps": 2}},
    smoke_request=lambda client, data: client.post("/v1/toy/predict", json={"x": 1.0, "y": 0.5}),
    evaluate=evaluate,
    schemas={"points": SCHEMA},
)
