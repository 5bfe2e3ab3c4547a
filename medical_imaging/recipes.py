"""The imaging recipes (a linear probe or a fine-tune), `auto`'s choice, and the input format.

- `frozen`: a linear probe. The pretrained backbone stays as loaded; a logistic regression on
  its pooled features (`shared.recipes.fit_logistic_head`) becomes the head.
- `finetune`: head, then backbone, through the shared loop (`training._fit`).
- `auto`: both, scored by validation AUC (macro one-vs-rest for several classes), or by k-fold
  CV on the training images when validation is small and training has at most
  `MAX_CV_IMAGES`; the choice and its scores go into the manifest under `recipe`.

`resolve_input` fills `in_chans: auto` and `image_size: auto` from the images themselves.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from shared.calibration import softmax
from shared.devices import seed_everything
from shared.evaluation import roc_auc
from shared.recipes import RecipeChoice, choose_recipe, fit_chosen, fit_logistic_head
from shared.training import TrainResult

from .config import MedicalImagingConfig
from .datasets import ImageSource
from .io import read_image_file
from .metrics import predict_logits
from .model import ImagingTask

log = logging.getLogger(__name__)

CANDIDATES: tuple[str, ...] = ("frozen", "finetune")
"""The recipes `auto` weighs, cheapest first (a tie goes to the linear probe)."""
MAX_CV_IMAGES = 2000
"""Above this many training images `auto` scores on validation even when it is small."""
INPUT_SAMPLE = 64
"""Images looked at to infer the channels and the resolution."""
MIN_SIZE, MAX_SIZE, STRIDE = 64, 224, 32
"""`image_size: auto` bounds: the backbone's stride, and its native (ImageNet) resolution."""

Fit = Callable[[str, dict[str, torch.Tensor], dict[str, torch.Tensor], Path], TrainResult | None]


@dataclass
class InputChoice:
    """The model input inferred from the data (manifest key `input`)."""

    in_chans: int
    image_size: int
    median_side: int
    gray_share: float
    sampled: int

    def as_dict(self) -> dict[str, float | int | str]:
        return {
            "in_chans": self.in_chans,
            "image_size": self.image_size,
            "median_side": self.median_side,
            "gray_share": round(self.gray_share, 3),
            "sampled": self.sampled,
            "rule": (
                f"in_chans 1 when every sampled image is gray (the RGB stem folded), else 3; "
                f"image_size: the median short side rounded up to {STRIDE}, within "
                f"[{MIN_SIZE}, {MAX_SIZE}]"
            ),
        }


def _sample_images(source: ImageSource, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    picked = rng.choice(len(source), size=min(INPUT_SAMPLE, len(source)), replace=False)
    if source.arrays is not None:
        return [source.arrays[i] for i in picked]
    return [read_image_file(source.paths[i]) for i in picked]


def _is_gray(image: np.ndarray) -> bool:
    if image.ndim == 2 or image.shape[-1] == 1:
        return True
    rgb = image[..., :3].astype(np.float32)
    return bool(np.abs(rgb - rgb.mean(-1, keepdims=True)).max() <= 1e-3 * max(1.0, rgb.max()))


def resolve_input(
    cfg: MedicalImagingConfig, source: ImageSource
) -> tuple[MedicalImagingConfig, InputChoice | None]:
    """`cfg` with `in_chans` and `image_size` set from the images where they are `auto`.

    The returned config holds numbers only, so the artifact's config is what the runtime uses;
    the inference (None when both were set) is logged, and goes into the manifest as `input`.
    """
    if cfg.in_chans != "auto" and cfg.image_size != "auto":
        return cfg, None
    images = _sample_images(source, cfg.trainer.seed)
    sides = [min(im.shape[0], im.shape[1]) for im in images]
    gray = float(np.mean([_is_gray(im) for im in images]))
    median = int(np.median(sides))
    size = int(min(MAX_SIZE, max(MIN_SIZE, -(-median // STRIDE) * STRIDE)))
    choice = InputChoice(
        in_chans=(1 if gray == 1.0 else 3) if cfg.in_chans == "auto" else int(cfg.in_chans),
        image_size=size if cfg.image_size == "auto" else int(cfg.image_size),
        median_side=median,
        gray_share=gray,
        sampled=len(images),
    )
    log.info(
        "input: %d channel(s) at %d px (median side %d px, %.0f%% gray, %d images sampled)",
        choice.in_chans, choice.image_size, median, 100 * gray, len(images),
    )  # fmt: skip
    resolved = cfg.model_copy(update={"in_chans": choice.in_chans, "image_size": choice.image_size})
    return resolved, choice


@torch.inference_mode()
def pooled_features(task: ImagingTask, pixels: torch.Tensor, batch_size: int = 128) -> np.ndarray:
    """(N, F) pooled backbone features of `pixels` in eval mode (what the head sees)."""
    was_training = task.training
    task.eval()
    device = task.mean.device
    out = []
    for start in range(0, len(pixels), batch_size):
        batch = pixels[start : start + batch_size].to(device, task.mean.dtype)
        out.append(task.backbone((batch - task.mean) / task.std).float().cpu().numpy())
    task.train(was_training)
    return np.concatenate(out)


def fit_linear_probe(task: ImagingTask, features: np.ndarray, labels: np.ndarray, seed: int):
    """Sets the head to a logistic regression on the frozen backbone's features."""
    linear = task.head[-1]
    weight, bias = fit_logistic_head(features, labels, linear.out_features, seed)
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(weight))
        linear.bias.copy_(torch.from_numpy(bias))


def auc_or_accuracy(logits: np.ndarray, labels: np.ndarray, n_classes: int) -> float:
    """AUC (macro one-vs-rest), or accuracy when a class is missing from `labels`."""
    auc = roc_auc(labels, softmax(logits, 1.0)) if n_classes >= 2 else None
    return float(auc) if auc is not None else float((logits.argmax(1) == labels).mean())


def _inner_split(
    idx: np.ndarray, y: np.ndarray, cfg: MedicalImagingConfig
) -> tuple[np.ndarray, np.ndarray]:
    """`idx` split stratified into (fit, early-stopping) positions, `cfg.val_fraction` held out."""
    from sklearn.model_selection import train_test_split

    labels = y[idx]
    stratify = labels if np.bincount(labels).min(initial=2) >= 2 else None
    fit_idx, stop_idx = train_test_split(
        idx, test_size=cfg.val_fraction, random_state=cfg.trainer.seed, stratify=stratify
    )
    return np.asarray(fit_idx), np.asarray(stop_idx)


def fit_by_recipe(
    cfg: MedicalImagingConfig,
    build: Callable[[], ImagingTask],
    finetune: Fit,
    pixels: dict[str, torch.Tensor],
    labels: dict[str, torch.Tensor],
    n_classes: int,
    run_dir: Path,
) -> tuple[tuple[ImagingTask, TrainResult | None], RecipeChoice]:
    """`cfg.recipe`'s model, or `auto`'s choice, and the record (`shared.recipes.fit_chosen`).

    Args:
        build: A fresh task (pretrained backbone, new head).
        finetune: `finetune(task, pixels, labels, run_dir)`, the shared loop (validation in
            `pixels["val"]` picks the best epoch).
    """

    def fit_one(recipe: str, px, ys, folder: Path) -> tuple[ImagingTask, TrainResult | None]:
        task = build()
        if recipe == "frozen":
            feats = pooled_features(task, px["train"].float())
            fit_linear_probe(task, feats, ys["train"].numpy(), cfg.trainer.seed)
            return task.eval(), None
        return task, finetune(task, px, ys, folder)

    n_train, n_val = len(labels["train"]), len(labels.get("val", ()))

    def choose() -> tuple[RecipeChoice, tuple[ImagingTask, TrainResult | None] | None]:
        pool_x = torch.cat([pixels["train"], pixels["val"]]) if n_val else pixels["train"]
        pool_y = torch.cat([labels["train"], labels["val"]]) if n_val else labels["train"]
        y = pool_y.numpy()
        fitted: dict[str, tuple[ImagingTask, TrainResult | None]] = {}
        base: dict[str, np.ndarray] = {}

        def score_frozen(fit_idx: np.ndarray, eval_idx: np.ndarray) -> float:
            if "x" not in base:  # the frozen backbone is the same on every fold: one pass
                base["task"] = build()
                base["x"] = pooled_features(base["task"], pool_x.float())
            task, x = base["task"], base["x"]
            fit_linear_probe(task, x[fit_idx], y[fit_idx], cfg.trainer.seed)
            if int(eval_idx.min()) >= n_train and len(fit_idx) == n_train:
                fitted["frozen"] = (task.eval(), None)
            logits = x[eval_idx] @ task.head[-1].weight.detach().numpy().T
            return auc_or_accuracy(
                logits + task.head[-1].bias.detach().numpy(), y[eval_idx], n_classes
            )

        def score_finetune(fit_idx: np.ndarray, eval_idx: np.ndarray) -> float:
            on_val = int(eval_idx.min()) >= n_train
            # On a CV fold the best epoch is picked on a slice of the fold's own training
            # images, never on the images it is scored on.
            fit_idx, stop_idx = (fit_idx, eval_idx) if on_val else _inner_split(fit_idx, y, cfg)
            px = {"train": pool_x[fit_idx], "val": pool_x[stop_idx]}
            ys = {"train": pool_y[fit_idx], "val": pool_y[stop_idx]}
            seed_everything(cfg.trainer.seed)
            with tempfile.TemporaryDirectory() as scratch:  # CV folds keep no run logs
                task, result = fit_one("finetune", px, ys, run_dir if on_val else Path(scratch))
            if on_val:
                fitted["finetune"] = (task, result)
            return auc_or_accuracy(predict_logits(task, pool_x[eval_idx]), y[eval_idx], n_classes)

        choice = choose_recipe(
            {"frozen": score_frozen, "finetune": score_finetune},
            y,
            np.arange(n_train),
            np.arange(n_train, n_train + n_val),
            n_classes=n_classes,
            folds=cfg.recipe_folds,
            seed=cfg.trainer.seed,
            max_cv_rows=MAX_CV_IMAGES,
            metric="auc",
        )
        return choice, fitted.get(choice.recipe)

    return fit_chosen(
        cfg.recipe,
        lambda recipe: fit_one(recipe, pixels, labels, run_dir),
        choose,
        train_rows=n_train,
        val_rows=n_val,
        seed=cfg.trainer.seed,
    )
