"""The score head: a linear map from the class probabilities onto a table's gold `score` scale.

P(positive) - P(negative) is a reading of the classes, not a regression of a gold scale: a
confidently "positive" headline reads +0.95 where annotators scored it +0.3. When the labelled
table has a `score` column (a gold score in [-1, 1], as in FiQA or SemEval-2017 task 5), `train`
fits `score = w . f(p) + b` on the validation rows, with two features of the probabilities
(`FEATURES`), and keeps it only when its cross-validated MSE on those rows beats the raw
reading's. It reads probabilities only, so every artifact kind (int8, ONNX, adapters, tenants)
and the long-text rule (sentence probabilities averaged first) use it unchanged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

FEATURES = ("p_positive_minus_p_negative", "log_odds_positive_negative")
LOG_ODDS_CLIP = 6.0
"""Log-odds beyond +-6 (P about 0.9975) carry no more information; the feature is scaled to [-1, 1]."""
MIN_ROWS = 20
FOLDS = 5
ALPHAS = (0.01, 0.1, 1.0, 10.0)
RAW = "P(positive) - P(negative)"


def features(probs: np.ndarray) -> np.ndarray:
    """(N, 2) features of (N, 3) probabilities in negative, neutral, positive order."""
    probs = np.asarray(probs, dtype=np.float64).reshape(-1, 3)
    eps = 1e-6
    log_odds = np.log(probs[:, 2] + eps) - np.log(probs[:, 0] + eps)
    clipped = np.clip(log_odds, -LOG_ODDS_CLIP, LOG_ODDS_CLIP) / LOG_ODDS_CLIP
    return np.stack([probs[:, 2] - probs[:, 0], clipped], axis=1)


def raw_scores(probs: np.ndarray) -> np.ndarray:
    """The uncalibrated reading P(positive) - P(negative) of (N, 3) probabilities."""
    probs = np.asarray(probs, dtype=np.float64).reshape(-1, 3)
    return probs[:, 2] - probs[:, 0]


@dataclass
class ScoreHead:
    """The fitted map; `predict` clips to [-1, 1], the scale of every stored score."""

    coef: list[float]
    intercept: float
    alpha: float
    fitted_on: str
    rows: int
    cv_mse: float
    raw_mse: float
    features: tuple[str, ...] = FEATURES

    def predict(self, probs: np.ndarray) -> np.ndarray:
        """Calibrated scores of (N, 3) negative/neutral/positive probabilities."""
        value = features(probs) @ np.asarray(self.coef) + self.intercept
        return np.clip(value, -1.0, 1.0)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["features"] = list(self.features)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScoreHead:
        return cls(**{**data, "features": tuple(data.get("features", FEATURES))})


def fit_score_head(
    probs: np.ndarray, gold: np.ndarray, fitted_on: str = "val", seed: int = 0
) -> tuple[ScoreHead | None, dict[str, Any]]:
    """Fits the head on rows with a gold score; returns (head or None, the record for the manifest).

    The ridge penalty is chosen by leave-one-out within each fold (`RidgeCV`); the head is kept
    when its `FOLDS`-fold cross-validated MSE is below the raw reading's MSE on the same rows.
    Fewer than `MIN_ROWS` scored rows fit nothing, and the record says why.
    """
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import KFold, cross_val_predict

    probs = np.asarray(probs, dtype=np.float64).reshape(-1, 3)
    gold = np.asarray(gold, dtype=np.float64)
    known = np.isfinite(gold)
    probs, gold = probs[known], gold[known]
    record: dict[str, Any] = {"fitted_on": fitted_on, "rows": int(len(gold)), "score": RAW}
    if len(gold) < MIN_ROWS:
        record["reason"] = f"{len(gold)} scored {fitted_on} rows, fewer than {MIN_ROWS}"
        return None, record
    x = features(probs)
    folds = KFold(min(FOLDS, len(gold)), shuffle=True, random_state=seed)
    predicted = np.clip(cross_val_predict(RidgeCV(alphas=ALPHAS), x, gold, cv=folds), -1, 1)
    cv_mse = float(np.mean((predicted - gold) ** 2))
    raw_mse = float(np.mean((raw_scores(probs) - gold) ** 2))
    record |= {"cv_mse": round(cv_mse, 6), "raw_mse": round(raw_mse, 6)}
    if cv_mse >= raw_mse:
        record["reason"] = f"cross-validated MSE {cv_mse:.4f} is not below the raw {raw_mse:.4f}"
        return None, record
    model = RidgeCV(alphas=ALPHAS).fit(x, gold)
    head = ScoreHead(
        [float(c) for c in model.coef_],
        float(model.intercept_),
        float(model.alpha_),
        fitted_on,
        int(len(gold)),
        round(cv_mse, 6),
        round(raw_mse, 6),
    )
    return head, record | {"score": "score head (linear in FEATURES) fitted on gold scores"}


def score_metrics(pred: np.ndarray, gold: np.ndarray) -> dict[str, float]:
    """MSE, R^2, Pearson r and sign agreement (on nonzero gold scores) of predicted scores."""
    pred, gold = np.asarray(pred, dtype=np.float64), np.asarray(gold, dtype=np.float64)
    known = np.isfinite(gold)
    pred, gold = pred[known], gold[known]
    if len(gold) < 2:
        return {}
    total = float(np.sum((gold - gold.mean()) ** 2)) or 1.0
    spread = float(np.std(pred) * np.std(gold))
    signed = gold != 0
    return {
        "score_mse": float(np.mean((gold - pred) ** 2)),
        "score_r2": 1.0 - float(np.sum((gold - pred) ** 2)) / total,
        "score_pearson": float(np.mean((pred - pred.mean()) * (gold - gold.mean())) / spread)
        if spread
        else 0.0,
        "score_sign_accuracy": float(np.mean(np.sign(pred[signed]) == np.sign(gold[signed])))
        if signed.any()
        else 0.0,
    }
