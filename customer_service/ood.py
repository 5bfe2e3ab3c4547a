"""Calibrated confidence and the handoff threshold (out-of-scope detection).

Confidence is a softmax probability whose temperature is fitted on validation questions
(temperature scaling, Guo et al. 2017). The threshold below which the bot hands off is then picked
on validation data: the lowest one that hands off at least `target_oos_recall` of the
out-of-scope validation questions, or, without any, the one that hands off
`fallback_handoff_rate` of in-scope validation questions.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass
class Calibration:
    """Everything the bot needs to turn scores into a decision; stored in the artifact."""

    intent_temperature: float = 1.0
    retrieval_temperature: float = 0.05
    threshold: float = 0.0
    bm25_weight: float = 0.0
    threshold_source: str = "none"

    def as_dict(self) -> dict[str, float | str]:
        return asdict(self)


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of `logits / temperature`; -inf entries get probability 0."""
    z = np.asarray(logits, dtype=np.float64) / max(temperature, 1e-6)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def fit_temperature(logits: np.ndarray, targets: np.ndarray, init: float = 1.0) -> float:
    """The temperature minimising the validation NLL of `softmax(logits / T)`.

    Args:
        logits: (N, C) scores; -inf marks padding.
        targets: (N,) the correct column of each row.
    """
    import torch

    if len(targets) == 0:
        return init
    x = torch.as_tensor(np.nan_to_num(logits, neginf=-1e4), dtype=torch.float64)
    y = torch.as_tensor(targets, dtype=torch.long)
    log_t = torch.tensor([np.log(init)], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=100)

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(x / log_t.exp(), y)
        loss.backward()
        return loss

    opt.step(closure)
    return float(np.clip(log_t.exp().item(), 1e-3, 1e3))


def choose_threshold(
    in_scope_conf: np.ndarray,
    oos_conf: np.ndarray,
    target_oos_recall: float,
    fallback_handoff_rate: float,
) -> tuple[float, str]:
    """Picks the handoff threshold on validation confidences.

    Returns:
        `(threshold, source)`; source says how it was chosen, for the model card.
    """
    in_scope_conf = np.asarray(in_scope_conf, dtype=np.float64)
    oos_conf = np.asarray(oos_conf, dtype=np.float64)
    if len(oos_conf):
        # The smallest threshold with recall >= target: just above the target quantile of OOS confidences.
        threshold = float(np.quantile(oos_conf, target_oos_recall, method="higher")) + 1e-6
        return min(
            threshold, 1.0
        ), f"oos_recall>={target_oos_recall} on {len(oos_conf)} val questions"
    if len(in_scope_conf) and fallback_handoff_rate > 0:
        threshold = float(np.quantile(in_scope_conf, fallback_handoff_rate, method="lower"))
        return (
            threshold,
            f"handoff rate {fallback_handoff_rate} of {len(in_scope_conf)} in-scope val questions",
        )
    return 0.0, "none (no validation data)"
