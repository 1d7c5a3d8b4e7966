"""A learning-rate range test (Smith, "Cyclical Learning Rates for Training Neural Networks", 2017).

:func:`lr_range_test` trains a few steps with a learning rate rising geometrically from
``start`` to ``end``, records the loss of each step, and picks a rate: a tenth of the rate
where the smoothed loss was lowest (past the minimum the steps are already too large; a tenth
of it is the usual safe choice and sits on the steepest part of the descent). The model,
optimizer and random state are restored afterwards, so the run that follows starts exactly
where it would have without the test.
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass, field

import numpy as np
import torch

from vidsearch.train.loop import Trainer

__all__ = ["LrFindResult", "lr_range_test"]

LOG = logging.getLogger(__name__)


@dataclass
class LrFindResult:
    """The rates tried, their losses and the pick."""

    lrs: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)  # raw loss of each step
    smoothed: list[float] = field(default_factory=list)  # bias-corrected exponential moving average
    picked: float = 0.0
    best_lr: float = 0.0  # the rate at the lowest smoothed loss
    diverged_at: float | None = None  # the rate where the loss blew up (the test stopped there)


def lr_range_test(
    trainer: Trainer,
    *,
    start: float = 1e-6,
    end: float = 1e-1,
    steps: int = 60,
    smoothing: float = 0.8,
    divergence: float = 4.0,
) -> LrFindResult:
    """Run the range test on ``trainer``'s model and data; leave them as they were.

    Args:
        trainer: a trainer that has not started (or is between epochs).
        start, end: the first and last learning rate (geometric steps between them).
        steps: optimizer steps (batches repeat when an epoch has fewer).
        smoothing: weight of the past in the moving average of the loss.
        divergence: stop when the smoothed loss exceeds this multiple of its minimum.

    Returns:
        The rates, losses and picked rate (a tenth of the rate at the lowest smoothed loss,
        never below ``start``).

    Raises:
        ValueError: ``steps < 2`` or ``not 0 < start < end``.
    """
    if steps < 2 or not 0 < start < end:
        raise ValueError(f"lr range test needs steps >= 2 and 0 < start < end, got {steps}, {start}, {end}")
    model_state = copy.deepcopy(trainer.model.state_dict())
    optim_state = copy.deepcopy(trainer.optimizer.state_dict())
    scaler_state = trainer.scaler.state_dict() if trainer.scaler is not None else None
    torch_state = torch.random.get_rng_state()
    batches, rng, gen = trainer.epoch_batches(0)  # epoch 0: a stream no real epoch uses
    trainer.model.train()
    out = LrFindResult()
    avg, lowest = 0.0, math.inf
    try:
        for k in range(steps):
            lr = start * (end / start) ** (k / (steps - 1))
            loss, _ = trainer.train_step(batches[k % len(batches)], rng, gen, lr)
            if not math.isfinite(loss):
                out.diverged_at = lr
                break
            avg = smoothing * avg + (1 - smoothing) * loss
            smooth = avg / (1 - smoothing ** (k + 1))
            out.lrs.append(lr)
            out.losses.append(loss)
            out.smoothed.append(smooth)
            lowest = min(lowest, smooth)
            if k > 2 and smooth > divergence * lowest:
                out.diverged_at = lr
                break
    finally:
        trainer.model.load_state_dict(model_state)
        trainer.optimizer.load_state_dict(optim_state)
        torch.random.set_rng_state(torch_state)
        if scaler_state is not None:
            trainer.scaler.load_state_dict(scaler_state)
    if not out.lrs:
        raise FloatingPointError(f"the loss was not finite even at lr {start:g}; check the data and the model")
    out.best_lr = out.lrs[int(np.argmin(out.smoothed))]
    out.picked = max(start, out.best_lr / 10)
    LOG.info("lr range test: lowest loss at %.2e, picked %.2e", out.best_lr, out.picked)
    return out
