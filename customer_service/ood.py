"""Calibrated confidence, the in-scope score and the handoff threshold (out-of-scope detection).

Confidence is a softmax probability whose temperature is fitted on validation questions
(temperature scaling, Guo et al. 2017): how sure the bot is of *which* answer. Whether a question
is in scope at all is a second score: a logistic regression over the logit of that confidence and
the cosine similarity of the question to its nearest KB entry, fitted on in-scope against
out-of-scope validation questions (a question unlike anything the KB holds is the strongest sign of
an off-topic one). Without out-of-scope validation questions the in-scope score is the confidence.

The threshold below which the bot hands off is then picked on validation data: the lowest one that
reaches `target_oos_recall` on the out-of-scope validation questions with `oos_recall_confidence`
(a one-sided Clopper-Pearson lower bound, so the target holds, approximately, on new questions
like the validation ones and not only on those few), read off out-of-fold in-scope scores
(`out_of_fold_in_scope`: weights fitted on the same questions would rank them too cleanly). Without
out-of-scope questions it is the one that hands off `fallback_handoff_rate` of in-scope
validation questions.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import numpy as np

log = logging.getLogger(__name__)


@dataclass
class Calibration:
    """Everything the bot needs to turn scores into a decision; stored in the artifact."""

    intent_temperature: float = 1.0
    retrieval_temperature: float = 0.05
    threshold: float = 0.0
    bm25_weight: float = 0.0
    threshold_source: str = "none"
    # (w_confidence_logit, w_similarity, bias); the default makes the in-scope score the confidence.
    in_scope_weights: tuple[float, float, float] = (1.0, 0.0, 0.0)
    # Weight of the intent head against the retrieved neighbours' intent vote (1: the head alone)
    # and the temperature of their product (see `scoring.intent_probs`).
    head_weight: float = 1.0
    fused_temperature: float = 1.0

    def as_dict(self) -> dict[str, float | str]:
        return asdict(self)


def choose_threshold(
    in_scope_conf: np.ndarray,
    oos_conf: np.ndarray,
    target_oos_recall: float,
    fallback_handoff_rate: float,
    recall_confidence: float = 0.0,
) -> tuple[float, str]:
    """Picks the handoff threshold on validation confidences.

    With out-of-scope validation questions, the threshold is the lowest that hands off `k` of
    their `n`, where `k` is the smallest count whose one-sided Clopper-Pearson lower bound at
    `recall_confidence` reaches `target_oos_recall`. A few dozen validation questions pin recall
    down loosely: hitting the target exactly on them misses it on new questions about half the
    time, and the bound buys the margin that the sample size calls for. The bound assumes new
    out-of-scope questions are exchangeable with the validation ones, and the in-scope score was
    fitted on those, so it is approximate. With too few questions for the bound (fewer than 11
    at 0.8 and 90%), all of them are handed off, a warning is logged and the source says so.
    `recall_confidence=0` hits the target on validation exactly.

    Returns:
        `(threshold, source)`; source says how it was chosen, for the model card.
    """
    in_scope_conf = np.asarray(in_scope_conf, dtype=np.float64)
    oos_conf = np.sort(np.asarray(oos_conf, dtype=np.float64))
    if n := len(oos_conf):
        k = _handoffs_needed(n, target_oos_recall, recall_confidence)
        source = f"oos_recall>={target_oos_recall} on {n} val questions"
        if recall_confidence > 0 and _lower_bound(k, n, recall_confidence) < target_oos_recall:
            log.warning(
                "%d out-of-scope validation questions are too few to bound recall >= %s at %.0f%% "
                "confidence; handing off all of them",
                n,
                target_oos_recall,
                100 * recall_confidence,
            )
            source += f" (too few for the {recall_confidence:.0%} bound: all {n} handed off)"
        elif recall_confidence > 0:
            source += f" (lower bound at {recall_confidence:.0%} confidence: {k} of {n} handed off)"
        return min(float(oos_conf[k - 1]) + 1e-6, 1.0), source
    if len(in_scope_conf) and fallback_handoff_rate > 0:
        threshold = float(np.quantile(in_scope_conf, fallback_handoff_rate, method="lower"))
        return (
            threshold,
            f"handoff rate {fallback_handoff_rate} of {len(in_scope_conf)} in-scope val questions",
        )
    return 0.0, "none (no validation data)"


def _handoffs_needed(n: int, target: float, confidence: float) -> int:
    """Out-of-scope validation questions (of `n`) to hand off so that recall >= `target`.

    With `confidence` > 0, enough that the Clopper-Pearson lower bound reaches the target; all `n`
    when even that falls short (too few questions for the bound, which then says less).
    """
    k = max(1, int(np.ceil(target * n - 1e-9)))
    if confidence <= 0:
        return k
    while k < n and _lower_bound(k, n, confidence) < target:
        k += 1
    return k


def _lower_bound(k: int, n: int, confidence: float) -> float:
    """One-sided Clopper-Pearson lower bound of a proportion with `k` successes in `n`."""
    from scipy.stats import beta

    return float(beta.ppf(1.0 - confidence, k, n - k + 1))


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-6, 1 - 1e-6)
    return np.log(p) - np.log1p(-p)


def in_scope_probability(
    confidence: np.ndarray | float,
    similarity: np.ndarray | float,
    weights: tuple[float, float, float] | list[float],
) -> np.ndarray:
    """`sigmoid(w0 * logit(confidence) + w1 * similarity + b)`, elementwise."""
    w_conf, w_sim, bias = weights
    z = w_conf * _logit(confidence) + w_sim * np.asarray(similarity, dtype=np.float64) + bias
    return 1.0 / (1.0 + np.exp(-z))


def fit_in_scope_weights(
    in_conf: np.ndarray, in_sim: np.ndarray, oos_conf: np.ndarray, oos_sim: np.ndarray
) -> tuple[float, float, float]:
    """Logistic regression of in-scope (1) vs out-of-scope (0) validation questions.

    Classes are weighted to balance; features are standardised for the fit and the scaling is
    folded back into the returned weights, so the runtime needs only `in_scope_probability`.
    """
    from sklearn.linear_model import LogisticRegression

    x = np.stack(
        [
            np.r_[_logit(in_conf), _logit(oos_conf)],
            np.r_[np.asarray(in_sim, dtype=np.float64), np.asarray(oos_sim, dtype=np.float64)],
        ],
        axis=1,
    )
    y = np.r_[np.ones(len(in_conf)), np.zeros(len(oos_conf))]
    mean, std = x.mean(0), x.std(0) + 1e-9
    model = LogisticRegression(class_weight="balanced").fit((x - mean) / std, y)
    w = model.coef_[0] / std
    bias = float(model.intercept_[0] - (w * mean).sum())
    return float(w[0]), float(w[1]), bias


def out_of_fold_in_scope(
    in_conf: np.ndarray,
    in_sim: np.ndarray,
    oos_conf: np.ndarray,
    oos_sim: np.ndarray,
    folds: int = 5,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """In-scope scores of the validation questions, each from weights fitted without its fold.

    The handoff threshold is read off these scores: the weights fitted on all validation
    questions rank those same questions more cleanly than new ones, and a threshold picked on
    in-sample scores hands off fewer new out-of-scope questions than it promises (cross-fitting).
    With fewer than `folds` questions of either kind the in-sample scores are returned.
    """
    from sklearn.model_selection import StratifiedKFold

    conf = np.r_[np.asarray(in_conf, dtype=np.float64), np.asarray(oos_conf, dtype=np.float64)]
    sim = np.r_[np.asarray(in_sim, dtype=np.float64), np.asarray(oos_sim, dtype=np.float64)]
    y = np.r_[np.ones(len(in_conf), dtype=int), np.zeros(len(oos_conf), dtype=int)]
    if min(len(in_conf), len(oos_conf)) < folds:
        weights = fit_in_scope_weights(in_conf, in_sim, oos_conf, oos_sim)
        scores = in_scope_probability(conf, sim, weights)
        return scores[y == 1], scores[y == 0]
    scores = np.zeros(len(y))
    for train, held in StratifiedKFold(folds, shuffle=True, random_state=seed).split(conf, y):
        inside, outside = train[y[train] == 1], train[y[train] == 0]
        weights = fit_in_scope_weights(conf[inside], sim[inside], conf[outside], sim[outside])
        scores[held] = in_scope_probability(conf[held], sim[held], weights)
    return scores[y == 1], scores[y == 0]
