"""Label a library with a trained head (``enrich recognize --head HEAD``), beside the zero-shot label sets.

A head (:mod:`vidsearch.enrich.head`) is applied like a label set and stored as one: its name is
the head file's absolute path (shown as the file name, which is what ``--labels``,
``labels VIDEO``, ``query --label`` and the web page's filter match), its classes are the head's,
its "class embeddings" are the head's class prototypes (the mean training embedding of each
class), it has no prompt templates, and its open-set rule is the head's (score ``evidence`` or
``msp``, threshold chosen on held-out clips at training). Per segment the stored ``score`` of a
class is the head's logit and ``prob`` its probability (``alpha / S`` for an evidential head).

Only segments without a decision are labelled, so a re-run labels only what was indexed since;
a retrained head (other file contents) or a changed ``top`` or threshold relabels everything,
from stored vectors.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import numpy as np

from vidsearch.enrich.head import TrainedHead, check_space, load_head
from vidsearch.enrich.recognize import DEFAULT_TOP, RecognizeReport, label_new_segments
from vidsearch.errors import InputError, LibraryError
from vidsearch.labels import OpenSetRule

__all__ = ["head_space_key", "head_classifier", "recognize_with_head"]


def head_space_key(library: Any, head: TrainedHead, wanted: str | None, path: str | Path) -> str:
    """The space a head labels: ``wanted`` if given (it must be the head's), else the head's own.

    Raises:
        InputError: ``wanted`` is another space, or the library has no space of the head's key.
    """
    if wanted is not None:
        key: str = library.space(wanted).key
        check_space(head, key, path)
        return key
    keys = [sp.key for sp in library.spaces()]
    if head.space_key not in keys:
        raise InputError(
            f"{path} was trained on space {head.space_key}, which this library does not have "
            f"(it has {', '.join(keys) or 'none'}); index the videos with that model or train a head on one of these"
        )
    return head.space_key


def head_classifier(head: TrainedHead, top: int) -> Any:
    """A chunk scorer for :func:`~vidsearch.enrich.recognize.label_new_segments` (top-k by the head's probabilities)."""

    def score(xb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        logits, probs, known = head.predict(xb)
        k = min(top, probs.shape[1])
        idx = np.argsort(-probs, axis=1, kind="stable")[:, :k]
        rows = np.arange(len(probs))[:, None]
        return idx, logits[rows, idx], probs[rows, idx], known, head.rule.unknown(known)

    return score


def recognize_with_head(
    library: Any,
    head_path: str | Path,
    *,
    space_key: str | None = None,
    top: int | None = None,
    threshold: float | None = None,
    relabel: bool = False,
) -> RecognizeReport:
    """Label every not yet labelled segment of the head's space with the head (module docstring).

    Args:
        library: an open library.
        head_path: the head file (``enrich train-head``).
        space_key: the space to label; None: the head's own. Another space than the head's is refused.
        top: classes stored per segment; None: the current ``top`` (5 for a new head).
        threshold: override the head's threshold; None: the threshold this head was last applied
            with (the head's own at first).
        relabel: label every segment again.

    Raises:
        InputError: unreadable head, wrong space, bad ``top``.
        LibraryError: the space's dimension differs from the head's, or another labelling run is in progress.
    """
    from vidsearch.store import labels as stored_labels

    if top is not None and top < 1:
        raise InputError(f"must be at least 1 (got {top})", argument="top")
    t0 = time.perf_counter()
    path = Path(head_path).expanduser().resolve()
    head = load_head(path)
    space = library.space(head_space_key(library, head, space_key, path))
    if space.dim != head.dim:
        raise LibraryError(f"{path} takes {head.dim}-dimensional embeddings but space {space.key} has {space.dim}")
    if threshold is not None:
        head.rule = OpenSetRule(head.rule.kind, head.rule.temperature, threshold)
    name = str(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    report = RecognizeReport(label_set=path.name, space=space.key)
    with library.enrich_lock():
        with library.session() as s:
            row = stored_labels.get_label_set(s, space.id, name)
        top = top if top is not None else row.top if row is not None else DEFAULT_TOP
        stored_rule = OpenSetRule(row.score_kind, row.temperature, row.threshold) if row is not None else None
        if threshold is None and stored_rule is not None and row.labels_hash == digest:
            head.rule = stored_rule  # the same head keeps an earlier --threshold, as label sets keep theirs
        changed = row is None or row.labels_hash != digest or row.top != top or stored_rule != head.rule
        report.relabelled = row is not None and (changed or relabel)
        with library.session() as s:
            set_id = stored_labels.save_label_set(
                s, space.id, name, labels_hash=digest, labels=head.classes, templates=[],
                embeddings=head.tensors["prototypes"], top=top, score_kind=head.rule.kind,
                temperature=head.rule.temperature, threshold=head.rule.threshold,
                calibration={**head.calibration, "head": {"loss": head.config.loss, "training": head.training}},
            )  # fmt: skip
            if report.relabelled:
                stored_labels.clear_labels(s, set_id)
            report.already = stored_labels.count_recognitions(s, set_id)
        label_new_segments(library, space, set_id, head.classes, head_classifier(head, top), report)
    report.rule = head.rule.to_dict()
    report.calibrated = True
    report.seconds = round(time.perf_counter() - t0, 3)
    return report
