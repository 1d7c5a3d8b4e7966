"""What a watch's standing queries need from the library: label sets and the scene's background.

A label alert uses the label set as ``vidsearch enrich recognize`` applied it to the space (its
classes, prompt templates and open-set rule, calibrated or not), so a live label means what the
library's stored labels mean; a set never applied there is read as shipped, with the default rule.

A text alert without a threshold calibrates one over the query's scores on background windows
(:func:`vidsearch.indexer.alerts.calibrated_threshold`): the stream's own stored windows when the
library has enough of them, else the space's stored vectors; with fewer than
:data:`MIN_BACKGROUND` there, the stream's first windows are its background.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vidsearch.enrich.recognize import list_label_sets
from vidsearch.labels import DEFAULT_TEMPLATES, OpenSetRule, label_set_name, load_label_set
from vidsearch.store import videos as stored_videos
from vidsearch.store.library import Library, SpaceInfo

__all__ = ["AlertLabelSet", "MIN_BACKGROUND", "alert_label_set", "background_vectors"]

# Fewer background windows than this say too little of a scene to set a threshold from.
MIN_BACKGROUND = 30
# The most stored vectors read for a background (the newest of the stream, or the space's first).
MAX_BACKGROUND = 20_000


@dataclass(frozen=True)
class AlertLabelSet:
    """A label set as label alerts use it: classes, prompt templates, open-set rule (None: the default)."""

    name: str
    labels: list[str]
    templates: list[str]
    rule: OpenSetRule | None
    applied: bool  # as `enrich recognize` applied it to the space (else as shipped)


def alert_label_set(library: Library, space: SpaceInfo, name: str) -> AlertLabelSet:
    """The label set ``name`` (shipped name or label file) as the space uses it.

    Raises:
        InputError: no such label set (neither applied nor a shipped name or a file).
    """
    wanted = label_set_name(name)
    for info in list_label_sets(library, space.key):
        if info.name in (name, wanted):
            return AlertLabelSet(info.name, list(info.labels), list(info.templates), info.rule, True)
    return AlertLabelSet(wanted, load_label_set(name), list(DEFAULT_TEMPLATES), None, False)


def background_vectors(library: Library, space: SpaceInfo, uri: str) -> np.ndarray:
    """Stored unit vectors ``[N, D]`` of the scene a stream's alerts are calibrated on.

    The stream's own stored windows (the newest :data:`MAX_BACKGROUND`) when there are at least
    :data:`MIN_BACKGROUND`; else the space's stored vectors; ``[0, D]`` when those are too few too.
    """
    with library.session() as s:
        video = stored_videos.find_video(s, uri)
    if video is not None:
        windows = library.window_vectors(space.id, [video.id]).get(video.id)
        if windows is not None and len(windows[1]) >= MIN_BACKGROUND:
            return np.asarray(windows[1][-MAX_BACKGROUND:], np.float32)
    parts, count = [], 0
    for _, xb in library.iter_vectors(space.id):
        parts.append(xb)
        count += len(xb)
        if count >= MAX_BACKGROUND:
            break
    if count < MIN_BACKGROUND:
        return np.zeros((0, space.dim), np.float32)
    return np.concatenate(parts)[:MAX_BACKGROUND].astype(np.float32)
