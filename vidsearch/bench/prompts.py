"""Action label sets and prompt-ensembled label embeddings for zero-shot recognition.

Label sets ship as package data (``vidsearch/data/labels/<name>.txt``): one class name a line in
the dataset's official class-index order (line N is class N-1). Names come in each dataset's own
spelling (``air drumming``, ``ApplyEyeMakeup``, ``brush_hair``); :func:`label_text` turns them
into plain words before they go into the prompt templates.

Prompt ensembling, as in CLIP's zero-shot evaluation: every class name is put into each
template, the text embeddings (already L2-normalized) are averaged per class, and the mean is
L2-normalized again. The templates describe a video of someone doing the action, since the
label sets are human actions.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path
from typing import Protocol

import numpy as np

from vidsearch.errors import InputError

__all__ = [
    "LABEL_SETS",
    "DEFAULT_TEMPLATES",
    "load_label_set",
    "label_text",
    "label_embeddings",
    "normalize_label",
]

LOG = logging.getLogger(__name__)

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
