"""Label sets, prompt templates, prompt-ensembled label embeddings and the open-set rule.

**Label sets** ship as package data (``vidsearch/data/labels/<name>.txt``): one class name a line
in the dataset's official class-index order (line N is class N-1). Names come in each dataset's
own spelling (``air drumming``, ``ApplyEyeMakeup``, ``brush_hair``); :func:`label_text` turns
them into plain words before they go into the prompt templates. A label set is identified by
its shipped name, or a label file by its absolute path (:func:`label_set_name`).

**Prompt ensembling**, as in CLIP's zero-shot evaluation: every class name is put into each
template, the text embeddings (already L2-normalized) are averaged per class, and the mean is
L2-normalized again. The templates describe a video of someone doing the action, since the
label sets are human actions.

**The open-set rule** (:class:`OpenSetRule`) decides "is this one of the label set's classes?".
Every segment gets a *known score* from its cosine similarities ``S`` (``[N, C]``) to the ``C``
class embeddings, higher meaning "more like a known class":

* ``msp`` (default): the maximum softmax probability ``max_c softmax(S / T)_c``. It is in
  ``[1/C, 1]`` and compares the best class with all others, so a video equally close to
  several classes (what an unseen action tends to be) scores low.
* ``energy``: the negative free energy ``T * logsumexp(S / T)`` (Liu et al., 2020), a soft
  maximum of the similarities; its scale depends on the model, so it needs a calibrated threshold.
* ``maxcos``: the best cosine similarity itself (no temperature).

A segment is "unknown" when its known score is below the rule's threshold. The default rule
(:func:`default_rule`, the one place it is written) is MSP at the model's own contrastive
temperature (0.01, CLIP's logit scale 100, when the model has none) with threshold 0.5, the
"majority rule": the best class must be more probable than all other classes together. It needs
no data but is not tuned to a model or label set; :mod:`vidsearch.enrich.openset` calibrates
temperature and threshold on labelled videos.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from vidsearch.errors import InputError
from vidsearch.metrics import logsumexp, softmax

__all__ = [
    "LABEL_SETS",
    "DEFAULT_TEMPLATES",
    "SCORE_KINDS",
    "HEAD_SCORE_KINDS",
    "DEFAULT_TEMPERATURE",
    "DEFAULT_MSP_THRESHOLD",
    "TextEncoder",
    "load_label_set",
    "label_set_name",
    "label_text",
    "normalize_label",
    "read_templates",
    "label_embeddings",
    "OpenSetRule",
    "check_score_kind",
    "known_scores",
    "default_rule",
    "override_rule",
]

LOG = logging.getLogger(__name__)

SCORE_KINDS: tuple[str, ...] = ("msp", "energy", "maxcos")
# Known scores of a trained head (vidsearch.enrich.head): computed from its outputs, not from
# cosine similarities, so a rule may carry them but known_scores() cannot compute them.
HEAD_SCORE_KINDS: tuple[str, ...] = ("evidence",)
DEFAULT_TEMPERATURE = 0.01  # CLIP's logit scale of 100, when a model carries no temperature
DEFAULT_MSP_THRESHOLD = 0.5  # majority rule: the best class outweighs all others together

LABEL_SETS: tuple[str, ...] = ("kinetics400", "kinetics600", "kinetics700", "ucf101", "hmdb51")

# `{}` is the class name in plain words (see label_text). Kept short: each template costs one
# text-encoder pass per class (700 classes x 8 templates for Kinetics-700).
DEFAULT_TEMPLATES: tuple[str, ...] = (
    "a video of a person {}.",
    "a video of {}.",
    "a video of a person doing {}.",
    "a clip of a person {}.",
    "a person {}.",
    "a photo of a person {}.",
    "an example of a person {}.",
    "a demonstration of {}.",
)


class TextEncoder(Protocol):
    """What :func:`label_embeddings` needs from an encoder."""

    def encode_text(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalized float32 ``[B, D]``."""


def load_label_set(name_or_path: str | Path) -> list[str]:
    """Class names of a shipped label set (by name) or of a text file (one name a line).

    Blank lines are skipped; the order of the other lines is the class index.

    Raises:
        InputError: unknown name and no such file, an empty list, or a duplicated name.
    """
    key = str(name_or_path)
    if key in LABEL_SETS:
        text = files("vidsearch.data").joinpath("labels", f"{key}.txt").read_text(encoding="utf-8")
        source = key
    else:
        path = Path(key).expanduser()
        if not path.is_file():
            raise InputError(
                f"unknown label set {key!r}: not a file; choose one of {', '.join(LABEL_SETS)} or a text file with one label a line"
            )
        try:
            text = path.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError:
            raise InputError(f"label file {path} is not UTF-8 text") from None
        source = str(path)
    labels = [line.strip() for line in text.splitlines() if line.strip()]
    if not labels:
        raise InputError(f"label set {source} is empty")
    seen: dict[str, int] = {}
    for i, label in enumerate(labels):
        norm = normalize_label(label)
        if norm in seen:
            raise InputError(f"label set {source} lists {label!r} twice (lines {seen[norm] + 1} and {i + 1})")
        seen[norm] = i
    return labels


def label_text(label: str) -> str:
    """A class name as plain lower-case words: ``ApplyEyeMakeup`` -> ``apply eye makeup``, ``brush_hair`` -> ``brush hair``."""
    text = label.replace("_", " ")
    # split CamelCase (UCF-101 names); leave all-caps runs such as "TV" together
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", text)
    return re.sub(r"\s+", " ", text).strip().lower()


def normalize_label(label: str) -> str:
    """The form used to match annotation labels to a label set (case, ``_`` and spacing ignored)."""
    return label_text(label).replace(" ", "")


def label_embeddings(
    encoder: TextEncoder,
    labels: Sequence[str],
    templates: Sequence[str] = DEFAULT_TEMPLATES,
    batch_size: int = 256,
) -> np.ndarray:
    """Prompt-ensembled text embedding of each class.

    Args:
        encoder: anything with ``encode_text(list[str]) -> [B, D]`` L2-normalized.
        labels: class names (any spelling: they go through :func:`label_text`).
        templates: format strings with one ``{}``.
        batch_size: captions per ``encode_text`` call.

    Returns:
        float32 ``[len(labels), D]``, rows L2-normalized: per class, the renormalized mean of its
        templates' embeddings.
    """
    if not templates:
        raise ValueError("need at least one prompt template")
    for t in templates:
        if t.count("{}") != 1:
            raise ValueError(f"prompt template {t!r} must contain exactly one '{{}}'")
    texts = [t.format(label_text(label)) for label in labels for t in templates]
    chunks = [encoder.encode_text(texts[i : i + batch_size]) for i in range(0, len(texts), batch_size)]
    if not chunks:
        raise ValueError("no labels to embed")
    emb = np.concatenate(chunks).astype(np.float32).reshape(len(labels), len(templates), -1)
    mean = emb.mean(axis=1)
    norms = np.linalg.norm(mean, axis=1, keepdims=True)
    # a zero mean (templates cancelling exactly) cannot be normalized; leave it zero
    return (mean / np.where(norms > 0, norms, 1.0)).astype(np.float32)


def label_set_name(name_or_path: str | Path) -> str:
    """How a label set is identified: a shipped name as is, a file by its absolute path."""
    key = str(name_or_path)
    if key in LABEL_SETS:
        return key
    return str(Path(key).expanduser().resolve())


def read_templates(path: str | Path | None) -> list[str]:
    """Prompt templates from a file, one a line with exactly one ``{}``; None: the default ones.

    Raises:
        InputError: unreadable file, no templates, or a line without exactly one ``{}``.
    """
    if path is None:
        return list(DEFAULT_TEMPLATES)
    p = Path(path).expanduser()
    try:
        lines = [
            ln.strip()
            for ln in p.read_text(encoding="utf-8-sig").splitlines()
            if ln.strip() and not ln.lstrip().startswith("#")
        ]
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read templates file {p}: {getattr(exc, 'strerror', None) or exc}") from None
    if not lines:
        raise InputError(f"templates file {p} has no templates")
    for i, line in enumerate(lines, 1):
        if line.count("{}") != 1:
            raise InputError(
                f"templates file {p}: template {i} ({line!r}) must contain '{{}}' exactly once, where the class name goes"
            )
    return lines


# --------------------------------------------------------------------------------------------
# the open-set rule


def check_score_kind(kind: str) -> None:
    """Raise InputError naming the choices unless ``kind`` is an open-set score kind."""
    if kind not in SCORE_KINDS:
        raise InputError(f"unknown open-set score {kind!r}; choose one of {', '.join(SCORE_KINDS)}")


@dataclass(frozen=True)
class OpenSetRule:
    """How known scores are computed and where "unknown" begins.

    Attributes:
        kind: ``msp``, ``energy`` or ``maxcos`` (module docstring); a trained head's rule may
            also be ``evidence`` (``1 - K / S``, :mod:`vidsearch.enrich.head`).
        temperature: softmax temperature over cosine similarities (``msp``, ``energy``).
        threshold: known score below this -> unknown.
    """

    kind: str = "msp"
    temperature: float = DEFAULT_TEMPERATURE
    threshold: float = DEFAULT_MSP_THRESHOLD

    def __post_init__(self) -> None:
        if self.kind not in HEAD_SCORE_KINDS:
            check_score_kind(self.kind)
        if not (self.temperature > 0 and math.isfinite(self.temperature)):
            raise InputError(f"must be a positive number (got {self.temperature})", argument="temperature")
        if not math.isfinite(self.threshold):
            raise InputError(f"must be a finite number (got {self.threshold})", argument="threshold")

    def scores(self, sims: np.ndarray) -> np.ndarray:
        """Known scores ``[N]`` of cosine similarities ``[N, C]``."""
        return known_scores(sims, self.kind, self.temperature)

    def unknown(self, scores: np.ndarray) -> np.ndarray:
        """Boolean ``[N]``: which known scores fall below the threshold."""
        return np.asarray(scores) < self.threshold

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return asdict(self)


def known_scores(sims: np.ndarray, kind: str = "msp", temperature: float = DEFAULT_TEMPERATURE) -> np.ndarray:
    """The known score of each row of cosine similarities ``sims`` ``[N, C]`` (higher = known).

    Raises:
        InputError: unknown ``kind``.
    """
    check_score_kind(kind)
    s = np.asarray(sims, dtype=np.float64)
    if s.ndim != 2 or s.shape[1] == 0:
        raise ValueError(f"expected similarities [N, C] with C >= 1, got shape {s.shape}")
    if kind == "maxcos":
        return s.max(axis=1)
    z = s / temperature
    if kind == "energy":
        return temperature * logsumexp(z, axis=1)
    return softmax(z, axis=1).max(axis=1)


def default_rule(temperature: float | None = None) -> OpenSetRule:
    """The uncalibrated rule: MSP at the model's temperature (None: 0.01), threshold 0.5.

    Args:
        temperature: the model's contrastive temperature (``Encoder.temperature``), if it has one.
    """
    return OpenSetRule("msp", temperature or DEFAULT_TEMPERATURE, DEFAULT_MSP_THRESHOLD)


def override_rule(
    rule: OpenSetRule, score: str | None = None, temperature: float | None = None, threshold: float | None = None
) -> OpenSetRule:
    """``rule`` with the user's explicit settings (None: keep ``rule``'s) applied.

    A new score kind keeps the threshold only when it is ``msp`` (the default threshold); the
    other kinds' scales depend on the model, so they need an explicit threshold.

    Raises:
        InputError: a score kind other than ``msp`` (and other than ``rule``'s) without ``threshold``.
    """
    kind = score or rule.kind
    check_score_kind(kind)  # a typo lists the kinds instead of asking for --threshold
    if threshold is None:
        if kind == rule.kind:
            threshold = rule.threshold
        elif kind == "msp":
            threshold = DEFAULT_MSP_THRESHOLD
        else:
            raise InputError(
                f"{kind} needs a threshold (its scale depends on the model)",
                argument="score",
                hint="give one, or calibrate the score on labelled clips",
                remedy="calibrate_score",
                value=kind,
            )
    return OpenSetRule(kind, temperature if temperature is not None else rule.temperature, threshold)
