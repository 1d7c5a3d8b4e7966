"""Alerts: standing text queries scored on every window of a stream, one alert per event.

A rule fires when a window's cosine similarity to its query reaches ``threshold`` (the scale of
``vidsearch query``'s scores) and stays open while windows score at least ``threshold - margin``
(hysteresis: a score hovering at the threshold is one event, not a flicker of them). It ends
after ``quiet`` windows in a row below that; its peak is the best window meanwhile. A gap in the
stream neither ends nor restarts an open alert: a camera that drops out during an event and
comes back still shows one event.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

__all__ = ["Alert", "AlertEvent", "AlertRule", "Alerts"]


@dataclass(frozen=True)
class AlertRule:
    """A standing query: its text, its unit text vector ``[D]`` and its threshold."""

    query: str
    vector: np.ndarray
    threshold: float
    kind: str = "text"

    def score(self, vector: np.ndarray) -> float:
        """A window's score (``vector`` unit ``[D]``): its cosine similarity to the query."""
        return float(np.dot(self.vector, vector))


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
    open: Alert | None = None
    below: int = 0


@dataclass
class Alerts:
    """The alert rules of one stream and their state.

    Args:
        stream: the stream's name (in every alert).
        rules: the standing queries.
        margin: how far below the threshold a score may fall before an open alert counts down.
        quiet: windows in a row below ``threshold - margin`` that end an alert.
    """

    stream: str
    rules: list[AlertRule]
    margin: float = 0.02
    quiet: int = 2
    _states: list[_RuleState] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        self._states = [_RuleState() for _ in self.rules]

    def observe(self, start: float, end: float, vector: np.ndarray) -> list[AlertEvent]:
        """Score one window (``vector`` unit ``[D]``) against every rule; the alerts it starts or ends."""
        events: list[AlertEvent] = []
        for rule, state in zip(self.rules, self._states, strict=True):
            score = rule.score(vector)
            alert = state.open
            if alert is None:
                if score >= rule.threshold:
                    alert = Alert(
                        f"{self.stream}-{int(start)}-{next(self._ids)}",
                        self.stream,
                        rule.query,
                        start,
                        score,
                        score,
                        start,
                        kind=rule.kind,
                        threshold=rule.threshold,
                    )
                    state.open, state.below = alert, 0
                    events.append(AlertEvent("start", alert))
                continue
            if score > alert.peak:
                alert.peak, alert.peak_time = score, start
            if score >= rule.threshold - self.margin:
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
