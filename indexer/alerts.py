"""Alerts: standing queries scored on every window of a stream, one alert per event.

A text rule scores a window by its cosine similarity to the query (the scale of ``vidsearch
query``'s scores); a label rule (:class:`LabelRule`) by the probability of its label among its
label set's classes, 0 for a window the set's open-set rule calls "unknown". A rule fires when a
window's score reaches ``threshold`` and stays open while windows score at least ``threshold - margin``
(hysteresis: a score hovering at the threshold is one event, not a flicker of them). It ends
after ``quiet`` windows in a row below that; its peak is the best window meanwhile. A gap in the
stream neither ends nor restarts an open alert: a camera that drops out during an event and
comes back still shows one event.

A text rule without a threshold calibrates one (:func:`calibrate`) from its scores on
the stream's first ``warmup`` windows, the scene's background, and fires only after that.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np

from vidsearch.errors import InputError
from vidsearch.labels import OpenSetRule, label_text, normalize_label
from vidsearch.metrics import softmax

__all__ = [
    "Alert",
    "AlertEvent",
    "AlertRule",
    "Alerts",
    "LabelRule",
    "Rule",
    "Calibration",
    "calibrate",
    "label_rules",
    "match_labels",
    "match_labels",
    "BACKGROUND_Z",
    "MIN_SPREAD",
]

# A calibrated threshold is this many robust standard deviations above the background's median
# score: a normal background crosses it about once in 30,000 windows (about once in 17 hours at a
# window every 2 s), while an event the query describes stands out by far more.
BACKGROUND_Z = 4.0
# The least spread assumed of the background's scores: a static scene's barely vary, and without
# a floor the threshold would sit within the encoder's own jitter (compression, lighting).
MIN_SPREAD = 0.005
# A label alert fires when its label outweighs all the set's other classes together.
LABEL_THRESHOLD = 0.5


@dataclass(frozen=True)
class Calibration:
    """Where a calibrated rule fires, and where an open alert of it counts down to its end."""

    threshold: float
    release: float


def calibrate(scores: Sequence[float] | np.ndarray, z: float = BACKGROUND_Z) -> Calibration:
    """Levels from background scores: fire at ``median + z * sd``, release below ``median + z/2 * sd``.

    ``sd`` is ``max(1.4826 * MAD, MIN_SPREAD)``: the median and the median absolute deviation
    (scaled to a normal's standard deviation) are robust, so a few windows of past events among
    the background barely move them, unlike a mean and standard deviation. The release level sits
    halfway between the background and the threshold: an event ends once the scene is back near
    its usual scores, even when those do not vary at all. Capped at 1 (no cosine is higher).

    Raises:
        ValueError: no scores.
    """
    x = np.asarray(scores, dtype=np.float64)
    if x.size == 0:
        raise ValueError("no background scores to calibrate a threshold from")
    median = float(np.median(x))
    spread = max(1.4826 * float(np.median(np.abs(x - median))), MIN_SPREAD)
    return Calibration(min(median + z * spread, 1.0), min(median + z / 2 * spread, 1.0))


class Rule(Protocol):
    """A standing query: what it is called, how it scores a window, where it fires."""

    @property
    def query(self) -> str:
        """Its text (``label:NAME`` for a label)."""

    @property
    def kind(self) -> str:
        """``text`` or ``label``."""

    @property
    def threshold(self) -> float | None:
        """The score at which it fires; None: calibrated from the stream's first windows."""

    @property
    def release(self) -> float | None:
        """The score below which an open alert counts down (None: ``threshold`` less the margin)."""

    def score(self, vector: np.ndarray) -> float:
        """A window's score (``vector`` unit ``[D]``)."""


@dataclass(frozen=True)
class AlertRule:
    """A standing text query: its text, its unit text vector ``[D]`` and its threshold (None: calibrated)."""

    query: str
    vector: np.ndarray
    threshold: float | None
    kind: str = "text"
    release: float | None = None

    def score(self, vector: np.ndarray) -> float:
        """A window's score (``vector`` unit ``[D]``): its cosine similarity to the query."""
        return float(np.dot(self.vector, vector))


@dataclass(frozen=True)
class LabelRule:
    """A standing label: one class of a label set, scored with the set's open-set rule.

    Attributes:
        label: the class as the label set spells it.
        index: its row in ``classes``.
        classes: the set's unit class embeddings ``[C, D]`` (:func:`vidsearch.labels.label_embeddings`).
        rule: the set's open-set rule (a window it calls "unknown" scores 0).
    """

    label: str
    index: int
    classes: np.ndarray
    rule: OpenSetRule
    threshold: float = LABEL_THRESHOLD
    kind: str = "label"
    release: float | None = None

    @property
    def query(self) -> str:
        """``label:NAME``."""
        return f"label:{self.label}"

    def score(self, vector: np.ndarray) -> float:
        """The label's softmax probability among the classes; 0 when the window is "unknown"."""
        sims = (self.classes @ np.asarray(vector, np.float32))[None].astype(np.float64)  # [1, C]
        if bool(self.rule.unknown(self.rule.scores(sims))[0]):
            return 0.0
        return float(softmax(sims / self.rule.temperature, axis=1)[0, self.index])


def match_labels(wanted: Sequence[str], labels: Sequence[str], set_name: str) -> list[int]:
    """The class index of each wanted label, matched ignoring case, ``_`` and spacing.

    Raises:
        InputError: a label the set does not have (argument ``label``).
    """
    index = {normalize_label(label): i for i, label in enumerate(labels)}
    found = []
    for name in wanted:
        i = index.get(normalize_label(name))
        if i is None:
            close = [label for label in labels if label_text(name) in label_text(label)][:3]
            hint = f"did you mean {', '.join(repr(c) for c in close)}?" if close else "choose one of its labels"
            raise InputError(f"{name!r} is not a label of {set_name}", argument="label", hint=hint)
        found.append(i)
    return found


def label_rules(
    wanted: Sequence[str], labels: Sequence[str], classes: np.ndarray, rule: OpenSetRule, set_name: str
) -> list[LabelRule]:
    """One :class:`LabelRule` per wanted label (see :func:`match_labels`).

    Raises:
        InputError: a label the set does not have (argument ``label``).
    """
    return [LabelRule(labels[i], i, classes, rule) for i in match_labels(wanted, labels, set_name)]


@dataclass
class Alert:
    """One event of one rule on one stream (times in UTC seconds; ``end`` None while it lasts)."""

    id: str
    stream: str
    query: str
    start: float
    score: float
    peak: float
    peak_time: float
    end: float | None = None
    clip: str | None = None
    kind: str = "text"  # the rule's: "text", or "label" for a label of a label set
    threshold: float = 0.0


@dataclass(frozen=True)
class AlertEvent:
    """An alert starting (a line as soon as it is detected) or ending."""

    kind: Literal["start", "end"]
    alert: Alert


@dataclass
class _RuleState:
    threshold: float | None  # None: still calibrating from the background
    release: float | None
    open: Alert | None = None
    below: int = 0
    background: list[float] = field(default_factory=list)


@dataclass
class Alerts:
    """The alert rules of one stream and their state.

    Args:
        stream: the stream's name (in every alert).
        rules: the standing queries.
        margin: how far below the threshold a score may fall before an open alert counts down.
        quiet: windows in a row below ``threshold - margin`` that end an alert.
        warmup: windows whose scores calibrate a rule without a threshold.
        on_calibrated: told ``(rule, threshold)`` when a rule's threshold is calibrated.
    """

    stream: str
    rules: Sequence[Rule]
    margin: float = 0.02
    quiet: int = 2
    warmup: int = 15
    on_calibrated: Callable[[Rule, float], None] | None = None
    _states: list[_RuleState] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        self._states = [_RuleState(rule.threshold, rule.release) for rule in self.rules]

    def thresholds(self) -> list[float | None]:
        """Each rule's threshold now (None: still calibrating)."""
        return [state.threshold for state in self._states]

    def observe(self, start: float, end: float, vector: np.ndarray) -> list[AlertEvent]:
        """Score one window (``vector`` unit ``[D]``) against every rule; the alerts it starts or ends."""
        events: list[AlertEvent] = []
        for rule, state in zip(self.rules, self._states, strict=True):
            score = rule.score(vector)
            if state.threshold is None:
                state.background.append(score)
                if len(state.background) >= self.warmup:
                    levels = calibrate(state.background)
                    state.threshold, state.release = levels.threshold, levels.release
                    if self.on_calibrated is not None:
                        self.on_calibrated(rule, state.threshold)
                continue
            threshold = state.threshold
            alert = state.open
            if alert is None:
                if score >= threshold:
                    alert = Alert(
                        f"{self.stream}-{int(start)}-{next(self._ids)}",
                        self.stream,
                        rule.query,
                        start,
                        score,
                        score,
                        start,
                        kind=rule.kind,
                        threshold=threshold,
                    )
                    state.open, state.below = alert, 0
                    events.append(AlertEvent("start", alert))
                continue
            if score > alert.peak:
                alert.peak, alert.peak_time = score, start
            if score >= (state.release if state.release is not None else threshold - self.margin):
                state.below = 0
                alert.end = None
                continue
            state.below += 1
            if state.below == 1:
                alert.end = start  # where the event left the frame, if it does not come back
            if state.below >= self.quiet:
                state.open = None
                events.append(AlertEvent("end", alert))
        return events

    def open_ids(self) -> list[str]:
        """The ids of the alerts still going on."""
        return [state.open.id for state in self._states if state.open is not None]

    def close(self, now: float) -> list[AlertEvent]:
        """End every open alert (the watch stops)."""
        events = []
        for state in self._states:
            if state.open is not None:
                alert, state.open = state.open, None
                alert.end = alert.end if alert.end is not None else now
                events.append(AlertEvent("end", alert))
        return events
