"""Open-set scores, temperature fitting, threshold choice and AUROC on constructed data."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vidsearch.enrich.openset import calibrate, choose_threshold, fit_temperature, fpr_at_tpr
from vidsearch.errors import InputError
from vidsearch.labels import DEFAULT_MSP_THRESHOLD, OpenSetRule, known_scores
from vidsearch.metrics import auroc, softmax


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def constructed(seed: int = 0, per_class: int = 20, classes: int = 5, dim: int = 32):
    """Known videos near their class embedding; unknown videos near none of them."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.normal(size=(dim, dim)))[0]
    class_emb = basis[:classes]  # orthonormal class embeddings
    labels = np.repeat(np.arange(classes), per_class)
    known = _unit(0.6 * class_emb[labels] + 0.1 * rng.normal(size=(len(labels), dim)))
    # unknown: in the orthogonal complement of the classes, plus a little noise
    unknown = _unit(basis[classes + rng.integers(0, dim - classes, size=40)] + 0.05 * rng.normal(size=(40, dim)))
    return class_emb, known, labels, unknown


def test_scores_by_hand() -> None:
    sims = np.array([[0.30, 0.10, 0.10], [0.20, 0.20, 0.20]])
    t = 0.1
    p = np.exp(sims[0] / t) / np.exp(sims[0] / t).sum()
    assert known_scores(sims, "msp", t)[0] == pytest.approx(p.max())
    assert known_scores(sims, "msp", t)[1] == pytest.approx(1 / 3)
    assert known_scores(sims, "maxcos")[0] == pytest.approx(0.30)
    assert known_scores(sims, "energy", t)[1] == pytest.approx(t * math.log(3 * math.exp(2.0)))
    assert np.allclose(softmax(np.array([[1000.0, 1000.0]])), 0.5)  # stable at large logits
    with pytest.raises(InputError, match="msp, energy, maxcos"):
        known_scores(sims, "entropy")


def test_separable_sets_give_auroc_one() -> None:
    class_emb, known, labels, unknown = constructed()
    Sk, Su = known @ class_emb.T, unknown @ class_emb.T
    for kind in ("msp", "energy", "maxcos"):
        assert auroc(known_scores(Sk, kind, 0.05), known_scores(Su, kind, 0.05)) == 1.0
    # swapped roles: every "known" below every "unknown"
    assert auroc(np.array([0.1, 0.2]), np.array([0.3, 0.4])) == 0.0


def test_auroc_counts_ties_half_and_matches_pairs() -> None:
    assert auroc(np.array([0.5]), np.array([0.5])) == 0.5
    rng = np.random.default_rng(1)
    k = rng.integers(0, 5, size=30).astype(float)  # many ties
    u = rng.integers(0, 5, size=25).astype(float)
    pairs = np.mean([(a > b) + 0.5 * (a == b) for a in k for b in u])
    assert auroc(k, u) == pytest.approx(pairs)


def test_fit_temperature_recovers_the_generating_temperature() -> None:
    rng = np.random.default_rng(2)
    sims = rng.uniform(-0.2, 0.4, size=(4000, 6))
    t_true = 0.05
    p = softmax(sims / t_true, axis=1)
    labels = np.array([rng.choice(6, p=row) for row in p])  # classes drawn from softmax(S / T)
    assert fit_temperature(sims, labels) == pytest.approx(t_true, rel=0.1)


def test_known_quantile_threshold_is_the_documented_one() -> None:
    known = np.arange(1, 21, dtype=float) / 20  # 0.05 ... 1.0, 20 values
    th = choose_threshold(known, keep=0.95)
    # floor((1 - 0.95) * 20) = 1 -> the second smallest score, keeping 19 of 20
    assert th.method == "known-quantile" and th.value == pytest.approx(0.10) and th.tpr == pytest.approx(0.95)
    assert choose_threshold(known, keep=1.0).value == pytest.approx(0.05)
    assert fpr_at_tpr(known, np.array([0.07, 0.2, 0.5]), 0.95) == pytest.approx(2 / 3)
    with pytest.raises(InputError, match="^keep must be in"):
        choose_threshold(known, keep=0.0)


def test_youden_threshold_by_hand() -> None:
    known = np.array([0.9, 0.8, 0.7, 0.4])
    unknown = np.array([0.5, 0.3, 0.2])
    th = choose_threshold(known, unknown)
    # candidates ascending 0.2 .. 0.9: J is best (0.75 - 0) at 0.7 -> midway to 0.5
    assert th.method == "youden" and th.value == pytest.approx(0.6)
    assert (th.tpr, th.fpr) == (pytest.approx(0.75), pytest.approx(0.0))


def test_calibrate_on_constructed_embeddings() -> None:
    class_emb, known, labels, unknown = constructed(seed=3)
    Sk, Su = known @ class_emb.T, unknown @ class_emb.T
    rule, report = calibrate(Sk, labels, Su, kind="msp", fallback_temperature=0.02)
    # every known video is right by a wide margin: the NLL fit runs into its bound -> fallback
    assert report["temperature_method"].startswith("fallback") and rule.temperature == 0.02
    assert report["auroc"] == 1.0 and report["threshold_method"] == "youden"
    assert report["tpr"] == 1.0 and report["fpr"] == 0.0
    assert not rule.unknown(rule.scores(Sk)).any() and rule.unknown(rule.scores(Su)).all()
    # known-only calibration on overlapping classes: a real NLL fit, and the documented quantile
    rng = np.random.default_rng(4)
    Sn = Sk + rng.normal(0, 0.3, size=Sk.shape)
    rule2, report2 = calibrate(Sn, labels, None, keep=0.9)
    assert report2["temperature_method"] == "nll" and rule2.temperature == pytest.approx(fit_temperature(Sn, labels))
    assert 1e-3 < rule2.temperature < 1.0
    ks = np.sort(known_scores(Sn, "msp", rule2.temperature))
    assert rule2.threshold == pytest.approx(ks[int(math.floor(0.1 * len(ks)))])
    assert report2["threshold_method"] == "known-quantile" and report2["tpr"] >= 0.9


def test_rule_defaults_and_validation() -> None:
    assert OpenSetRule().threshold == DEFAULT_MSP_THRESHOLD == 0.5
    with pytest.raises(InputError, match="temperature"):
        OpenSetRule("msp", 0.0, 0.5)
    with pytest.raises(InputError, match="threshold"):
        OpenSetRule("msp", 0.01, float("nan"))
