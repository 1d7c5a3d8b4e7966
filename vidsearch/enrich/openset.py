"""Open-set calibration: fit a label set's temperature and "unknown" threshold on labelled videos.

The rule itself (known scores ``msp``/``energy``/``maxcos``, the threshold, the default rule) is
:mod:`vidsearch.labels`; AUROC is :func:`vidsearch.metrics.auroc`.

**Temperature.** ``T`` defaults to the model's own contrastive temperature (ViCLIP's learned
``temp``, open_clip's ``1 / logit_scale``), i.e. the sharpness the model was trained with; 0.01
(CLIP's logit scale 100) when the model has none. Calibration refits it on labelled videos of
known classes by minimizing the negative log-likelihood of their true class (temperature scaling,
Guo et al., 2017): the NLL is convex in ``1/T``, so a golden-section search on ``log T`` over
[1e-3, 1] finds the optimum. When every known video is classified right with a margin (a small
or easy calibration set) the NLL keeps falling as ``T -> 0`` and the fit ends at the bound,
where softmax probabilities saturate to exactly 1 and tie; the model's temperature is kept then.

**Threshold.** A segment is "unknown" when its known score is below the threshold.

* Default, without calibration (``msp`` only): 0.5, the "majority rule" (:func:`vidsearch.labels.default_rule`).
* Calibrated with known videos only (:func:`choose_threshold` without ``unknown``): the
  threshold keeping a fraction ``keep`` (default 0.95) of the known videos, i.e. the
  ``floor((1 - keep) * n)``-th smallest known score (0-based), the usual 95%-TPR operating point.
* Calibrated with known and unknown videos: the threshold maximizing Youden's J = TPR - FPR
  (TPR: known kept, FPR: unknown kept); among equal J the lowest such score, and the threshold is
  put midway between it and the next lower score so both sets' scores decide the same way.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vidsearch.errors import InputError
from vidsearch.labels import DEFAULT_TEMPERATURE, OpenSetRule, check_score_kind, known_scores
from vidsearch.metrics import auroc, logsumexp

__all__ = [
    "DEFAULT_KEEP",
    "Threshold",
    "fit_temperature",
    "choose_threshold",
    "fpr_at_tpr",
    "calibrate",
]

LOG = logging.getLogger(__name__)

DEFAULT_KEEP = 0.95  # known videos kept by a known-only calibration (95% TPR)
_T_BOUNDS = (1e-3, 1.0)


@dataclass(frozen=True)
class Threshold:
    """A chosen threshold and how it does on the data it was chosen on.

    Attributes:
        value: the threshold (known iff score >= value).
        method: ``"known-quantile"`` or ``"youden"``.
        tpr: fraction of known scores kept.
        fpr: fraction of unknown scores kept (None without unknown data).
    """

    value: float
    method: str
    tpr: float
    fpr: float | None


def _nll(sims: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    z = sims / temperature
    return float(np.mean(logsumexp(z, axis=1) - z[np.arange(len(labels)), labels]))


def fit_temperature(
    sims: np.ndarray, labels: Sequence[int] | np.ndarray, bounds: tuple[float, float] = _T_BOUNDS
) -> float:
    """Temperature minimizing the mean NLL of the true classes (temperature scaling).

    Args:
        sims: cosine similarities ``[N, C]`` of labelled videos of known classes.
        labels: true class index of each row.
        bounds: search range of ``T``.

    Raises:
        InputError: no samples, or labels out of range.
    """
    s = np.asarray(sims, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    if s.ndim != 2 or len(s) == 0 or len(y) != len(s):
        raise InputError("temperature calibration needs at least one labelled video of a known class")
    if y.min() < 0 or y.max() >= s.shape[1]:
        raise InputError(f"class indices must be in 0-{s.shape[1] - 1}")
    # NLL is convex in 1/T, hence unimodal in log T: golden-section search on log T.
    lo, hi = math.log(bounds[0]), math.log(bounds[1])
    g = (math.sqrt(5.0) - 1.0) / 2.0
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = _nll(s, y, math.exp(a)), _nll(s, y, math.exp(b))
    for _ in range(80):
        if fa <= fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = _nll(s, y, math.exp(a))
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = _nll(s, y, math.exp(b))
    t = math.exp((lo + hi) / 2.0)
    LOG.info("fitted temperature %.5f (NLL %.4f on %d videos)", t, _nll(s, y, t), len(y))
    return t


def choose_threshold(known: np.ndarray, unknown: np.ndarray | None = None, keep: float = DEFAULT_KEEP) -> Threshold:
    """Pick the known-score threshold on data (rules in the module docstring).

    Args:
        known: known scores of videos of known classes.
        unknown: known scores of videos of unknown classes, if any.
        keep: fraction of known videos to keep when there are no unknown videos.

    Raises:
        InputError: no known scores, or ``keep`` outside (0, 1].
    """
    k = np.sort(np.asarray(known, dtype=np.float64))
    if k.size == 0:
        raise InputError("threshold calibration needs at least one video of a known class")
    if unknown is None or len(unknown) == 0:
        if not 0.0 < keep <= 1.0:
            raise InputError(f"must be in (0, 1] (got {keep})", argument="keep")
        value = float(k[int(math.floor((1.0 - keep) * k.size + 1e-9))])
        return Threshold(value, "known-quantile", float(np.mean(k >= value)), None)
    u = np.asarray(unknown, dtype=np.float64)
    cands = np.unique(np.concatenate([k, u]))  # ascending
    # fraction of each set at or above each candidate: known iff score >= threshold
    tpr = 1.0 - np.searchsorted(k, cands, side="left") / k.size
    fpr = 1.0 - np.searchsorted(np.sort(u), cands, side="left") / u.size
    i = int(np.argmax(tpr - fpr))  # first maximum = lowest threshold among ties
    value = float(cands[i]) if i == 0 else float((cands[i] + cands[i - 1]) / 2.0)
    return Threshold(value, "youden", float(tpr[i]), float(fpr[i]))


def fpr_at_tpr(known: np.ndarray, unknown: np.ndarray, tpr: float = DEFAULT_KEEP) -> float:
    """Fraction of unknown videos kept at the threshold keeping ``tpr`` of the known ones."""
    t = choose_threshold(known, None, keep=tpr).value
    return float(np.mean(np.asarray(unknown) >= t))


def calibrate(
    known_sims: np.ndarray,
    known_labels: np.ndarray,
    unknown_sims: np.ndarray | None = None,
    *,
    kind: str = "msp",
    keep: float = DEFAULT_KEEP,
    temperature: float | None = None,
    fallback_temperature: float = DEFAULT_TEMPERATURE,
) -> tuple[OpenSetRule, dict[str, Any]]:
    """Fit the temperature (unless given) and the threshold of an open-set rule on data.

    Args:
        known_sims: cosine similarities ``[N, C]`` of videos of known classes.
        known_labels: their true classes.
        unknown_sims: ``[M, C]`` similarities of videos of no known class (optional).
        kind: the open-set score.
        keep: known fraction to keep when there is no unknown data.
        temperature: use this temperature instead of fitting one.
        fallback_temperature: used when the fit runs into the lower bound (see module docstring).

    Returns:
        ``(rule, report)``: the calibrated rule and a JSON-ready account of the calibration.
    """
    check_score_kind(kind)
    method = "given"
    if temperature is not None:
        t = float(temperature)
    else:
        t, method = fit_temperature(known_sims, known_labels), "nll"
        if t <= _T_BOUNDS[0] * 1.01:
            # Every known video is classified right with a margin: the NLL keeps falling as T -> 0
            # and the softmax saturates to exactly 1.0, which would tie every score. Not a fit.
            LOG.warning(
                "temperature fit ran into its lower bound (the known videos are separable); using %g",
                fallback_temperature,
            )
            t, method = float(fallback_temperature), "fallback (nll fit at its lower bound)"
    ks = known_scores(known_sims, kind, t)
    us = known_scores(unknown_sims, kind, t) if unknown_sims is not None and len(unknown_sims) else None
    th = choose_threshold(ks, us, keep)
    rule = OpenSetRule(kind, t, th.value)
    report: dict[str, Any] = {
        "score": kind,
        "temperature": t,
        "temperature_method": method,
        "threshold": th.value,
        "threshold_method": th.method,
        "keep": keep if th.method == "known-quantile" else None,
        "known_videos": int(len(ks)),
        "unknown_videos": int(len(us)) if us is not None else 0,
        "tpr": th.tpr,
        "fpr": th.fpr,
        "auroc": auroc(ks, us) if us is not None else None,
    }
    return rule, report
