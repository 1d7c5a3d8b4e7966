"""Zero-shot recognition over a library: label every indexed video and window from stored embeddings.

A *label set* (a shipped list such as ``kinetics400`` or a text file, one class a line) is applied
to one embedding space. Its classes are embedded once with prompt ensembling
(:func:`vidsearch.labels.label_embeddings`) and the embeddings are stored with the set, so
labelling never decodes a video and, after the first run, never loads a model either: each
segment's stored vector is compared with the class embeddings (cosine similarity), its top-k
classes are stored (``segment_labels``) with their softmax probabilities, and its open-set
decision (``segment_recognitions``: known score and "unknown", see
:mod:`vidsearch.labels`) is stored too. A segment with a decision row is done, so a
re-run labels only segments that are new (indexed since, or re-encoded: a re-encoded video's old
segments and their labels are deleted by the database's cascades).

A label set is identified by its space and name (the shipped name, or the label file's absolute
path). When its class list, templates, ``top`` or open-set rule change, every segment is labelled
again (still from stored vectors: a matrix product per chunk).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vidsearch.errors import InputError, LibraryError
from vidsearch.labels import (
    DEFAULT_TEMPLATES,
    LABEL_SETS,
    OpenSetRule,
    default_rule,
    label_embeddings,
    label_set_name,
    load_label_set,
    normalize_label,
    override_rule,
)
from vidsearch.metrics import softmax
from vidsearch.models.opener import open_encoder
from vidsearch.models.spec import EncoderSpec
from vidsearch.paths import canonical_path

__all__ = [
    "LabelSetInfo",
    "RecognizeReport",
    "stored_rule",
    "recognize_library",
    "label_new_segments",
    "classify",
    "list_label_sets",
    "videos_with_label",
    "video_labels",
    "DEFAULT_TOP",
]

LOG = logging.getLogger(__name__)

DEFAULT_TOP = 5
_CHUNK = 2048  # segments scored and written per transaction


@dataclass(frozen=True)
class LabelSetInfo:
    """A detached view of a label set row."""

    id: int
    space_id: int
    space_key: str
    name: str
    labels: list[str]
    templates: list[str]
    top: int
    rule: OpenSetRule
    calibration: dict[str, Any] | None

    @property
    def display_name(self) -> str:
        """The shipped name, or the label file's name."""
        return self.name if self.name in LABEL_SETS else Path(self.name).name


@dataclass
class RecognizeReport:
    """What a recognition run did."""

    label_set: str
    space: str
    labelled: int = 0  # segments labelled in this run
    videos: int = 0  # of those, whole-video segments
    unknown: int = 0  # of the labelled whole-video segments, how many were "unknown"
    already: int = 0  # segments that were labelled before and kept
    relabelled: bool = False  # everything was labelled again (changed labels, top or rule)
    model_loaded: bool = False
    rule: dict[str, Any] = field(default_factory=dict)
    calibrated: bool = False
    # where the rule came from: "calibrated", "given" (options), "stored" (an earlier run's), "default"
    rule_source: str = "default"
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return asdict(self)


def _labels_hash(labels: Sequence[str], templates: Sequence[str]) -> str:
    return hashlib.sha256(json.dumps([list(labels), list(templates)]).encode()).hexdigest()


def stored_rule(library: Any, labels: str | Path, space_key: str | None = None) -> OpenSetRule | None:
    """The open-set rule a label set currently uses in a space (None: never applied there)."""
    from vidsearch.store import labels as stored_labels

    space = library.space(space_key)
    with library.session() as s:
        row = stored_labels.get_label_set(s, space.id, label_set_name(labels))
    return OpenSetRule(row.score_kind, row.temperature, row.threshold) if row else None


def _info(row: Any) -> LabelSetInfo:
    return LabelSetInfo(
        id=row.id,
        space_id=row.space_id,
        space_key=row.space_key,
        name=row.name,
        labels=list(row.labels),
        templates=list(row.templates),
        top=row.top,
        rule=OpenSetRule(row.score_kind, row.temperature, row.threshold),
        calibration=row.calibration,
    )


def classify(
    xb: np.ndarray, class_emb: np.ndarray, rule: OpenSetRule, top: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Top-k classes and open-set decisions of embeddings ``xb`` ``[N, D]``.

    Returns:
        ``(idx, sims, probs, known, unknown)``: ``idx`` int ``[N, k]`` class indices best first
        (ties: lower class index first), their cosine similarities and softmax probabilities
        ``[N, k]``, known scores ``[N]`` and the unknown flags ``[N]``.
    """
    S = np.asarray(xb, np.float32) @ np.asarray(class_emb, np.float32).T  # [N, C] cosine similarities
    k = min(top, S.shape[1])
    idx = np.argsort(-S, axis=1, kind="stable")[:, :k]
    P = softmax(S / rule.temperature, axis=1)
    known = rule.scores(S)
    rows = np.arange(len(S))[:, None]
    return idx, S[rows, idx], P[rows, idx], known, rule.unknown(known)


def recognize_library(
    library: Any,
    labels: str | Path = "kinetics400",
    *,
    space_key: str | None = None,
    top: int | None = None,
    rule: OpenSetRule | None = None,
    calibration: dict[str, Any] | None = None,
    score: str | None = None,
    temperature: float | None = None,
    threshold: float | None = None,
    templates: Sequence[str] | None = None,
    encoder: Any | None = None,
    device: str = "auto",
    relabel: bool = False,
) -> RecognizeReport:
    """Label every not yet labelled segment of a space with a label set (see module docstring).

    Args:
        library: an open :class:`~vidsearch.store.library.Library`.
        labels: a shipped label set name or a label file.
        space_key: the embedding space (None: the most recently indexed one).
        top: classes stored per segment; None: the set's current ``top`` (5 for a new set).
        rule: the open-set rule; None keeps the set's stored rule (the default rule for a new set).
        calibration: JSON-ready account of how ``rule`` was chosen, stored with it.
        score: override the rule's score kind; a kind other than ``msp`` needs a ``threshold``
            (its scale depends on the model) unless the stored rule already uses that kind.
        temperature: override the rule's temperature.
        threshold: override the rule's threshold.
        templates: prompt templates; None: the set's current ones (the defaults for a new set).
        encoder: the space's encoder, if already loaded (only needed for a new or changed set).
        device: device for loading the encoder when needed.
        relabel: label every segment again even if nothing changed.

    Raises:
        InputError: bad label set or ``top``.
        LibraryError: empty library, unknown space, or another labelling run in progress.
    """
    from vidsearch.store import labels as stored_labels

    if top is not None and top < 1:
        raise InputError(f"must be at least 1 (got {top})", argument="top")
    t0 = time.perf_counter()
    space = library.space(space_key)
    classes = load_label_set(labels)
    name = label_set_name(labels)
    report = RecognizeReport(label_set=name if name in LABEL_SETS else Path(name).name, space=space.key)
    with library.enrich_lock():
        with library.session() as s:
            row = stored_labels.get_label_set(s, space.id, name)
        stored = (
            (row.labels_hash, row.embeddings, row.top, OpenSetRule(row.score_kind, row.temperature, row.threshold))
            if row
            else None
        )
        stored_cal = row.calibration if row else None
        stored_templates = row.templates if row else None
        # Unset options keep what the set has, so a plain re-run only labels what is new.
        templates = list(templates) if templates is not None else stored_templates or list(DEFAULT_TEMPLATES)
        top = top if top is not None else stored[2] if stored is not None else DEFAULT_TOP
        digest = _labels_hash(classes, templates)
        if stored is not None and stored[0] == digest:
            class_emb = stored[1]
        else:
            if encoder is None:
                encoder = open_encoder(EncoderSpec.for_space(space, device=device))
                report.model_loaded = True
            class_emb = label_embeddings(encoder, classes, templates)
        if class_emb.shape[1] != space.dim:
            raise LibraryError(
                f"label embeddings have dim {class_emb.shape[1]} but space {space.key} has dim {space.dim}"
            )
        source = "given"  # a rule passed in (calibration), or options given now
        if rule is None:
            source = "stored" if stored is not None else "default"
            rule = stored[3] if stored is not None else default_rule(encoder.temperature)
        if (score, temperature, threshold) != (None, None, None):
            source = "given"
        rule = override_rule(rule, score, temperature, threshold)
        if calibration is None and stored is not None and rule == stored[3] and stored_cal:
            calibration = stored_cal  # the same rule keeps the account of how it was chosen
        changed = stored is None or stored[0] != digest or stored[2] != top or stored[3] != rule
        report.relabelled = stored is not None and (changed or relabel)
        with library.session() as s:
            set_id = stored_labels.save_label_set(
                s,
                space.id,
                name,
                labels_hash=digest,
                labels=classes,
                templates=templates,
                embeddings=class_emb,
                top=top,
                score_kind=rule.kind,
                temperature=rule.temperature,
                threshold=rule.threshold,
                calibration=calibration,
            )
            if report.relabelled:
                stored_labels.clear_labels(s, set_id)
            report.already = stored_labels.count_recognitions(s, set_id)
        label_new_segments(library, space, set_id, classes, lambda xb: classify(xb, class_emb, rule, top), report)
    report.rule = rule.to_dict()
    report.calibrated = calibration is not None
    report.rule_source = "calibrated" if report.calibrated else source
    report.seconds = round(time.perf_counter() - t0, 3)
    LOG.info(
        "labelled %d segments of %s with %s (%d kept)", report.labelled, space.key, report.label_set, report.already
    )
    return report


def label_new_segments(
    library: Any,
    space: Any,
    set_id: int,
    classes: Sequence[str],
    scorer: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
    report: RecognizeReport,
) -> None:
    """Label every segment of ``space`` that has no decision under label set ``set_id`` yet.

    Segments are read and written in chunks; ``scorer`` turns a chunk's vectors ``[N, D]`` into
    ``(idx, scores, probs, known, unknown)`` as :func:`classify` does (a trained head's scorer
    gives its logits as scores). ``report`` counts what was labelled.
    """
    from vidsearch.store import labels as stored_labels
    from vidsearch.store.segments import existing_segment_ids

    last = -1
    while True:
        with library.session() as s:
            batch_ids, kinds, xb = stored_labels.unlabelled_segments(s, space.id, set_id, last, _CHUNK, space.dim)
        if not batch_ids:
            break
        last = batch_ids[-1]
        idx, sims, probs, known, unknown = scorer(xb)
        # A segment deleted by a concurrent index or remove run since it was read must not get
        # labels; the write lock (taken first) keeps the check true until the insert commits.
        with library.write_session() as s:
            alive = existing_segment_ids(s, batch_ids)
            recs, labs = [], []
            for r, (sid, kind) in enumerate(zip(batch_ids, kinds, strict=False)):
                if sid not in alive:
                    continue
                recs.append(
                    {
                        "label_set_id": set_id,
                        "segment_id": sid,
                        "known_score": float(known[r]),
                        "unknown": bool(unknown[r]),
                    }
                )
                for k in range(idx.shape[1]):
                    labs.append(
                        {
                            "label_set_id": set_id,
                            "segment_id": sid,
                            "rank": k + 1,
                            "label": classes[int(idx[r, k])],
                            "score": float(sims[r, k]),
                            "prob": float(probs[r, k]),
                        }
                    )
                if kind == "video":
                    report.videos += 1
                    report.unknown += int(bool(unknown[r]))
            stored_labels.insert_labels(s, recs, labs)
            report.labelled += len(recs)


def list_label_sets(library: Any, space_key: str | None = None) -> list[LabelSetInfo]:
    """The label sets applied to the library (to one space when ``space_key`` is given)."""
    from vidsearch.store import labels as stored_labels

    space_id = library.space(space_key).id if space_key is not None else None
    with library.session() as s:
        return [_info(row) for row in stored_labels.list_label_sets(s, space_id)]


def _pick_sets(library: Any, label_set: str | None, space: Any | None) -> list[LabelSetInfo]:
    sets = list_label_sets(library)
    if space is not None:
        space_id = space.id if hasattr(space, "id") else library.space(str(space)).id
        sets = [ls for ls in sets if ls.space_id == space_id]
    if label_set is not None:
        wanted = label_set_name(label_set)
        sets = [ls for ls in sets if ls.name == wanted or ls.display_name == label_set]
    if not sets:
        what = f"label set {label_set!r}" if label_set else "labels"
        raise InputError(
            f"the library has no {what} yet",
            hint="run the recognition pass first",
            remedy="recognize_first",
            value=label_set or "kinetics400",
        )
    return sets


def videos_with_label(
    library: Any,
    label: str,
    label_set: str | None = None,
    space: Any | None = None,
    *,
    max_rank: int = 1,
    include_unknown: bool = False,
) -> set[int]:
    """Ids of the videos with ``label`` on the whole video or on any window.

    A segment carries a label when the label is among its ``max_rank`` best classes and, unless
    ``include_unknown``, its open-set decision is not "unknown". The label is matched ignoring
    case, ``_`` and spaces (``playing basketball`` = ``PlayingBasketball``).

    Args:
        library: an open library.
        label: the class name.
        label_set: restrict to one label set (name or file); None: any.
        space: restrict to one space (a ``SpaceInfo`` or its key); None: any.
        max_rank: how far down a segment's ranking the label may be.
        include_unknown: also count segments judged "unknown".

    Raises:
        InputError: no labels yet, or the label is in none of the label sets (with suggestions).
    """
    from vidsearch.store import labels as stored_labels

    sets = _pick_sets(library, label_set, space)
    want = normalize_label(label)
    spelled = {ls.id: next((c for c in ls.labels if normalize_label(c) == want), None) for ls in sets}
    matches = {sid: c for sid, c in spelled.items() if c is not None}
    if not matches:
        every = sorted({c for ls in sets for c in ls.labels})
        close = difflib.get_close_matches(label, every, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        names = ", ".join(ls.display_name for ls in sets)
        raise InputError(f"label {label!r} is not a class of {names}{hint}")
    out: set[int] = set()
    with library.session() as s:
        for set_id, spelled_label in matches.items():
            out |= stored_labels.videos_with_label(s, set_id, spelled_label, max_rank, include_unknown)
    return out


def _timeline(windows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Merge consecutive windows with the same verdict (top class, or None for unknown) into spans.

    Spans do not overlap: where windows of two spans overlap, the boundary is the overlap's middle.
    ``score`` is the mean top-class similarity of the span's windows.
    """
    runs: list[dict[str, Any]] = []
    for w in windows:
        verdict = None if w["unknown"] or not w["labels"] else w["labels"][0]["label"]
        score = w["labels"][0]["score"] if w["labels"] else 0.0
        if runs and runs[-1]["label"] == verdict:
            runs[-1]["end"] = w["end"]
            runs[-1]["scores"].append(score)
        else:
            runs.append(
                {"start": w["start"], "end": w["end"], "label": verdict, "unknown": verdict is None, "scores": [score]}
            )
    for a, b in zip(runs, runs[1:], strict=False):
        if b["start"] < a["end"]:
            a["end"] = b["start"] = (b["start"] + a["end"]) / 2.0
    for r in runs:
        scores = r.pop("scores")
        r["windows"] = len(scores)
        r["score"] = round(float(np.mean(scores)), 4)
    return runs


def video_labels(
    library: Any, path: str | Path, label_set: str | None = None, space: Any | None = None
) -> dict[str, Any]:
    """A video's labels under every label set (or one), with the timeline of its windows.

    Returns:
        ``{"path", "video_id", "duration", "label_sets": [{"label_set", "space", "unknown",
        "known_score", "labels": [...], "timeline": [...], "windows": [...]}]}``; ``labels`` are
        the whole video's top classes (``label``, ``score``, ``prob``, ``rank``); ``timeline``
        merges consecutive windows with the same top class (or "unknown") into spans.

    Raises:
        InputError: the video is not in the library or has no labels yet.
    """
    from vidsearch.store import labels as stored_labels
    from vidsearch.store.videos import find_video

    abs_path = canonical_path(path)
    with library.session() as s:
        video = find_video(s, abs_path)
    if video is None:
        raise InputError(f"{abs_path} is not in the library; index it first (vidsearch index FOLDER)")
    sets = _pick_sets(library, label_set, space)
    result: dict[str, Any] = {
        "path": video.path,
        "video_id": int(video.id),
        "duration": video.duration,
        "label_sets": [],
    }
    with library.session() as s:
        for ls in sets:
            segs = stored_labels.video_verdicts(s, video.id, ls.id)
            if not segs:
                continue
            entries = [
                {
                    "kind": g.kind,
                    "start": g.start,
                    "end": g.end,
                    "known_score": round(g.known_score, 4),
                    "unknown": g.unknown,
                    "labels": [
                        {"rank": rank, "label": label, "score": round(score, 4), "prob": round(prob, 4)}
                        for rank, label, score, prob in g.labels
                    ],
                }
                for g in segs
            ]
            whole = next((e for e in entries if e["kind"] == "video"), entries[0])
            windows = [e for e in entries if e["kind"] == "window"]
            result["label_sets"].append(
                {
                    "label_set": ls.display_name,
                    "space": ls.space_key,
                    "rule": ls.rule.to_dict(),
                    "unknown": whole["unknown"],
                    "known_score": whole["known_score"],
                    "labels": whole["labels"],
                    "timeline": _timeline(windows or [whole]),
                    "windows": windows,
                }
            )
    if not result["label_sets"]:
        raise InputError(f"{abs_path} has no labels yet; run `vidsearch enrich recognize`")
    return result
