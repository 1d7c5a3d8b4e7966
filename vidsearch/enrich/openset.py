"""Open-set recognition: a score for "is this one of the label set's classes?", its calibration, AUROC.

A zero-shot classifier always names some class; a video of an action outside the label set must
be marked "unknown" instead. Every segment gets a *known score* from its cosine similarities
``S`` (``[N, C]``) to the ``C`` class embeddings, higher meaning "more like a known class":

* ``msp`` (default): the maximum softmax probability ``max_c softmax(S / T)_c``. It is in
  ``[1/C, 1]`` and compares the best class with all others, so a video equally close to
  several classes (what an unseen action tends to be) scores low.
* ``energy``: the negative free energy ``T * logsumexp(S / T)`` (Liu et al., 2020), a soft
  maximum of the similarities; its scale depends on the model, so it needs a calibrated threshold.
* ``maxcos``: the best cosine similarity itself (no temperature).

**Temperature.** ``T`` defaults to the model's own contrastive temperature (ViCLIP's learned
``temp``, open_clip's ``1 / logit_scale``), i.e. the sharpness the model was trained with; 0.01
(CLIP's logit scale 100) when the model has none. Calibration refits it on labelled videos of
known classes by minimizing the negative log-likelihood of their true class (temperature scaling,
Guo et al., 2017): the NLL is convex in ``1/T``, so a golden-section search on ``log T`` over
[1e-3, 1] finds the optimum. When every known video is classified right with a margin (a small
or easy calibration set) the NLL keeps falling as ``T -> 0`` and the fit ends at the bound,
where softmax probabilities saturate to exactly 1 and tie; the model's temperature is kept then.

**Threshold.** A segment is "unknown" when its known score is below the threshold.

* Default, without calibration (``msp`` only): 0.5, the "majority rule": the best class must be
  more probable than all other classes together. It needs no data, but is not tuned to a model or
  label set; calibrate for real use.
* Calibrated with known videos only (:func:`choose_threshold` without ``unknown``): the
  threshold keeping a fraction ``keep`` (default 0.95) of the known videos, i.e. the
  ``floor((1 - keep) * n)``-th smallest known score (0-based), the usual 95%-TPR operating point.
* Calibrated with known and unknown videos: the threshold maximizing Youden's J = TPR - FPR
  (TPR: known kept, FPR: unknown kept); among equal J the lowest such score, and the threshold is
  put midway between it and the next lower score so both sets' scores decide the same way.

AUROC (:func:`auroc`) is the probability that a random known video scores above a random
unknown one, ties counting one half: the threshold-free open-set figure of the literature.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from vidsearch.errors import InputError

__all__ = [
    "SCORE_KINDS",
    "DEFAULT_TEMPERATURE",
    "DEFAULT_MSP_THRESHOLD",
    "DEFAULT_KEEP",
    "OpenSetRule",
    "Threshold",
    "softmax",
    "known_scores",
    "fit_temperature",
    "choose_threshold",
    "auroc",
    "fpr_at_tpr",
    "model_temperature",
    "calibrate",
]

LOG = logging.getLogger(__name__)

SCORE_KINDS: tuple[str, ...] = ("msp", "energy", "maxcos")
DEFAULT_TEMPERATURE = 0.01  # CLIP's logit scale of 100, when a model carries no temperature
DEFAULT_MSP_THRESHOLD = 0.5  # majority rule: the best class outweighs all others together
DEFAULT_KEEP = 0.95  # known videos kept by a known-only calibration (95% TPR)
_T_BOUNDS = (1e-3, 1.0)


def _check_kind(kind: str) -> None:
    if kind not in SCORE_KINDS:
        raise InputError(f"unknown open-set score {kind!r}; choose one of {', '.join(SCORE_KINDS)}")


@dataclass(frozen=True)
class OpenSetRule:
    """How known scores are computed and where "unknown" begins.

    Attributes:
        kind: ``msp``, ``energy`` or ``maxcos`` (module docstring).
        temperature: softmax temperature over cosine similarities (``msp``, ``energy``).
        threshold: known score below this -> unknown.
    """

    kind: str = "msp"
    temperature: float = DEFAULT_TEMPERATURE
    threshold: float = DEFAULT_MSP_THRESHOLD

    def __post_init__(self) -> None:
        _check_kind(self.kind)
        if not (self.temperature > 0 and math.isfinite(self.temperature)):
            raise InputError(f"--temperature must be a positive number (got {self.temperature})")
        if not math.isfinite(self.threshold):
            raise InputError(f"--threshold must be a finite number (got {self.threshold})")

    def scores(self, sims: np.ndarray) -> np.ndarray:
        """Known scores ``[N]`` of cosine similarities ``[N, C]``."""
        return known_scores(sims, self.kind, self.temperature)

    def unknown(self, scores: np.ndarray) -> np.ndarray:
        """Boolean ``[N]``: which known scores fall below the threshold."""
        return np.asarray(scores) < self.threshold

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return asdict(self)


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


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax along ``axis`` (float64)."""
    x = np.asarray(logits, dtype=np.float64)
    x = x - x.max(axis=axis, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=axis, keepdims=True)


def _logsumexp(x: np.ndarray, axis: int = -1) -> np.ndarray:
    m = x.max(axis=axis, keepdims=True)
    return (m + np.log(np.exp(x - m).sum(axis=axis, keepdims=True))).squeeze(axis)


def known_scores(sims: np.ndarray, kind: str = "msp", temperature: float = DEFAULT_TEMPERATURE) -> np.ndarray:
    """The known score of each row of cosine similarities ``sims`` ``[N, C]`` (higher = known).

    Raises:
        InputError: unknown ``kind``.
    """
    _check_kind(kind)
    s = np.asarray(sims, dtype=np.float64)
    if s.ndim != 2 or s.shape[1] == 0:
        raise ValueError(f"expected similarities [N, C] with C >= 1, got shape {s.shape}")
    if kind == "maxcos":
        return s.max(axis=1)
    z = s / temperature
    if kind == "energy":
        return temperature * _logsumexp(z, axis=1)
    return softmax(z, axis=1).max(axis=1)


def _nll(sims: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    z = sims / temperature
    return float(np.mean(_logsumexp(z, axis=1) - z[np.arange(len(labels)), labels]))


def fit_temperature(sims: np.ndarray, labels: Sequence[int] | np.ndarray, bounds: tuple[float, float] = _T_BOUNDS) -> float:
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
            raise InputError(f"--keep must be in (0, 1] (got {keep})")
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


def auroc(known: np.ndarray, unknown: np.ndarray) -> float:
    """P(known score > unknown score) + P(tie) / 2 (the Mann-Whitney U statistic, normalized).

    Raises:
        InputError: either set is empty.
    """
    k = np.asarray(known, dtype=np.float64).ravel()
    u = np.asarray(unknown, dtype=np.float64).ravel()
    if k.size == 0 or u.size == 0:
        raise InputError("AUROC needs at least one known and one unknown video")
    u_sorted = np.sort(u)
    below = np.searchsorted(u_sorted, k, side="left")  # unknown strictly below each known
    ties = np.searchsorted(u_sorted, k, side="right") - below
    return float((below.sum() + 0.5 * ties.sum()) / (k.size * u.size))


def fpr_at_tpr(known: np.ndarray, unknown: np.ndarray, tpr: float = DEFAULT_KEEP) -> float:
    """Fraction of unknown videos kept at the threshold keeping ``tpr`` of the known ones."""
    t = choose_threshold(known, None, keep=tpr).value
    return float(np.mean(np.asarray(unknown) >= t))


def model_temperature(encoder: Any) -> float | None:
    """The contrastive temperature an encoder's model was trained with, if it has one."""
    model = getattr(encoder, "model", None)
    if model is None:
        return None
    try:
        temp = getattr(model, "temp", None)  # ViCLIP: logits = sim / temp
        if temp is not None:
            value = float(temp.detach().float().cpu()) if hasattr(temp, "detach") else float(temp)
            return value if value > 0 and math.isfinite(value) else None
        scale = getattr(model, "logit_scale", None)  # open_clip: logits = exp(logit_scale) * sim
        if scale is not None:
            value = math.exp(float(scale.detach().float().cpu()))
            return 1.0 / value if value > 0 and math.isfinite(value) else None
    except (TypeError, ValueError, RuntimeError):
        return None
    return None


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
    _check_kind(kind)
    method = "given"
    if temperature is not None:
        t = float(temperature)
    else:
        t, method = fit_temperature(known_sims, known_labels), "nll"
        if t <= _T_BOUNDS[0] * 1.01:
            # Every known video is classified right with a margin: the NLL keeps falling as T -> 0
            # and the softmax saturates to exactly 1.0, which would tie every score. Not a fit.
            LOG.warning("temperature fit ran into its lower bound (the known videos are separable); using %g", fallback_temperature)
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
