"""Temperature scaling (Guo et al., 2017), shared by every vertical that calibrates scores."""

from __future__ import annotations

import numpy as np


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Softmax of `logits / temperature` over the last axis; -inf entries get probability 0."""
    z = np.asarray(logits, dtype=np.float64) / max(temperature, 1e-6)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def fit_temperature(
    logits: np.ndarray,
    targets: np.ndarray,
    init: float = 1.0,
    bounds: tuple[float, float] = (1e-3, 1e3),
    max_iter: int = 200,
) -> float:
    """The temperature T minimising the NLL of `softmax(logits / T)` on held-out rows.

    Fitted as log T by L-BFGS, so T stays positive; returns `init` when there are no rows.

    Args:
        logits: (N, C) uncalibrated scores; -inf marks padding.
        targets: (N,) the correct column of each row.
        init: Starting temperature (and the answer without data).
        bounds: The result is clipped to this range.
        max_iter: L-BFGS iterations.
    """
    import torch

    if len(targets) == 0:
        return init
    x = torch.as_tensor(np.nan_to_num(logits, neginf=-1e4), dtype=torch.float64)
    y = torch.as_tensor(np.asarray(targets), dtype=torch.long)
    log_t = torch.tensor([np.log(init)], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(x / log_t.exp(), y)
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return float(np.clip(log_t.exp().item(), *bounds))
