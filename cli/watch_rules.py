"""The standing queries of `vidsearch watch`: its streams (one URL or a TOML file) and their rules.

Text alerts (``--alert``) fire at ``--threshold`` or at a threshold calibrated on the scene's
background; label alerts (``--label``) at their label outweighing the rest of its label set.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vidsearch.errors import InputError

if TYPE_CHECKING:
    from vidsearch.indexer.alerts import Alerts, Rule
    from vidsearch.store.library import Library, SpaceInfo

__all__ = ["StreamSpec", "stream_specs", "check_labels", "stream_alerts"]


@dataclass(frozen=True)
class StreamSpec:
    """One stream of a watch: its URL, its name, its standing queries and their threshold (None: calibrated)."""

    url: str
    name: str
    alerts: tuple[str, ...]
    threshold: float | None
    labels: tuple[str, ...] = ()


def stream_specs(
    source: str, name: str | None, alerts: list[str], threshold: float | None, labels: list[str] | None = None
) -> list[StreamSpec]:
    """The streams SOURCE means: one URL/device/file, or a TOML file of ``[[stream]]`` tables.

    A table has ``url``, and optionally ``name``, ``alerts`` (a list of texts, added to
    ``--alert``), ``labels`` (a list of labels, added to ``--label``) and ``threshold``
    (default ``--threshold``).

    Raises:
        InputError: a config that cannot be read, a bad entry, a name used twice, a bad URL.
    """
    from vidsearch.media.live import check_live_source
    from vidsearch.media.uri import redact_uri

    given = tuple(labels or ())
    if not source.endswith(".toml"):
        return [StreamSpec(check_live_source(source), name or redact_uri(source), tuple(alerts), threshold, given)]
    if sys.version_info < (3, 11):  # tomllib is in the standard library from 3.11
        raise InputError(f"{source}: a streams config needs Python 3.11 or later; or run one watch per library")
    import tomllib

    try:
        with open(source, "rb") as f:
            tables = tomllib.load(f).get("stream", [])
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"{source}: cannot read the streams config: {exc}") from None
    if not isinstance(tables, list) or not tables:
        raise InputError(f"{source}: no streams; write one [[stream]] table with a url per stream")
    specs = []
    for i, table in enumerate(tables, 1):
        url = table.get("url") if isinstance(table, dict) else None
        if not isinstance(url, str):
            raise InputError(f"{source}: stream {i} has no url")
        texts, more = table.get("alerts", []), table.get("labels", [])
        limit = table.get("threshold", threshold)
        for key, value in (("alerts", texts), ("labels", more)):
            if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
                raise InputError(f"{source}: stream {i}: {key} must be a list of texts")
        if limit is not None and (not isinstance(limit, int | float) or not -1 <= limit <= 1):
            raise InputError(f"{source}: stream {i}: threshold must be a number from -1 to 1")
        stream_name = str(table.get("name", redact_uri(url)))  # a name is shown everywhere: no password
        spec = StreamSpec(
            check_live_source(url), stream_name, (*alerts, *texts), None if limit is None else float(limit),
            (*given, *more),
        )  # fmt: skip
        specs.append(spec)
    names = [spec.name for spec in specs]
    if len(set(names)) != len(names):
        raise InputError(f"{source}: two streams share a name; give each a different name")
    return specs


def check_labels(specs: list[StreamSpec], label_set: str) -> None:
    """Check every stream's labels against the label set as shipped (or its file), before a model loads.

    Raises:
        InputError: no such label set, or a label it does not have.
    """
    wanted = [label for spec in specs for label in spec.labels]
    if wanted:
        from vidsearch.indexer.alerts import match_labels
        from vidsearch.labels import load_label_set

        match_labels(wanted, load_label_set(label_set), label_set)


def stream_alerts(
    lib: Library,
    space: SpaceInfo,
    encoder: Any,
    specs: list[StreamSpec],
    label_set: str,
    on_calibrated: Callable[[str, Rule, float], None],
) -> tuple[dict[str, Alerts], list[dict[str, Any]]]:
    """Each stream's :class:`~vidsearch.indexer.alerts.Alerts`, and one line per rule saying its threshold.

    A text rule without a threshold is calibrated now over the library's background windows
    (:func:`vidsearch.usecases.alert_rules.background_vectors`) when it has enough, else later
    over the stream's first windows (``on_calibrated(stream, rule, threshold)`` then).

    Raises:
        InputError: a label the label set (as the space uses it) does not have.
    """
    from vidsearch.indexer.alerts import AlertRule, Alerts, LabelRule, calibrate, label_rules
    from vidsearch.labels import default_rule, label_embeddings
    from vidsearch.usecases.alert_rules import alert_label_set, background_vectors

    labelled: dict[str, LabelRule] = {}
    wanted = sorted({label for spec in specs for label in spec.labels})
    notes: list[dict[str, Any]] = []
    if wanted:
        chosen = alert_label_set(lib, space, label_set)
        classes = label_embeddings(encoder, chosen.labels, chosen.templates)
        rule = chosen.rule or default_rule(encoder.temperature)
        for name, found in zip(wanted, label_rules(wanted, chosen.labels, classes, rule, label_set), strict=True):
            labelled[name] = found
        how = "as `enrich recognize` applied it" if chosen.applied else "as shipped, default open-set rule"
    result: dict[str, Alerts] = {}
    for spec in specs:
        rules: list[Rule] = []
        vectors = encoder.encode_text(list(spec.alerts)) if spec.alerts else []
        background = None
        for text, vector in zip(spec.alerts, vectors, strict=True):
            threshold, release, source = spec.threshold, None, "given"
            if threshold is None:
                background = background_vectors(lib, space, spec.url) if background is None else background
                if len(background):
                    levels = calibrate(background @ vector)
                    threshold, release = levels.threshold, levels.release
                    source = f"calibrated on {len(background)} stored windows"
                else:
                    source = "calibrating on the stream's first windows"
            rules.append(AlertRule(text, vector, threshold, release=release))
            notes.append(_note(spec.name, text, "text", threshold, source))
        for label in spec.labels:
            rules.append(labelled[label])
            notes.append(_note(spec.name, labelled[label].query, "label", labelled[label].threshold, how))
        if rules:
            stream = spec.name
            result[stream] = Alerts(
                stream, rules, on_calibrated=lambda rule, t, stream=stream: on_calibrated(stream, rule, t)
            )
    return result, notes


def _note(stream: str, query: str, kind: str, threshold: float | None, source: str) -> dict[str, Any]:
    return {
        "event": "watch",
        "stream": stream,
        "query": query,
        "kind": kind,
        "threshold": None if threshold is None else round(threshold, 4),
        "threshold_source": source,
    }
