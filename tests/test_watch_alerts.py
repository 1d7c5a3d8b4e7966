"""Standing queries of `vidsearch watch`: label alerts with the open-set rule, calibrated thresholds
(on the tiny model: an event stands out of its background), `--since` times, alert rows' clips."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from vidsearch.cli.errors import message
from vidsearch.errors import InputError
from vidsearch.indexer.alerts import (
    MIN_SPREAD,
    AlertRule,
    Alerts,
    calibrate,
    label_rules,
    match_labels,
)
from vidsearch.labels import OpenSetRule
from vidsearch.store.library import Library
from vidsearch.usecases.when import parse_duration, parse_when

# --- WHEN ------------------------------------------------------------------------------------


def test_parse_when_durations_and_local_or_zoned_dates() -> None:
    now = 1_800_000_000.0
    assert parse_when("10m", now=now) == now - 600
    assert parse_when("2h", now=now) == now - 7200
    assert parse_when(" 1d ", now=now) == now - 86400
    assert parse_when("2026-12-07T08:30Z") == dt.datetime(2026, 12, 7, 8, 30, tzinfo=dt.timezone.utc).timestamp()
    assert parse_when("2026-12-07T09:30+01:00") == parse_when("2026-12-07T08:30Z")
    # no zone: local time, as the user's clock shows it
    assert parse_when("2026-12-07 08:30") == dt.datetime(2026, 12, 7, 8, 30).astimezone().timestamp()
    assert parse_when("2026-12-07") == dt.datetime(2026, 12, 7).astimezone().timestamp()
    for bad in ("soon", "10 minutes", "-5m", "2026-13-01", ""):
        with pytest.raises(InputError) as e:
            parse_when(bad)
        assert message(e.value).startswith(f"--since {bad!r}") and "10m" in message(e.value)
    with pytest.raises(InputError, match="positive duration"):
        parse_when("0m")
    assert [parse_duration(t, argument="retain") for t in ("90", "90s", "30m", "24h", "7d")] == [
        90,
        90,
        1800,
        86400,
        604800,
    ]
    with pytest.raises(InputError) as e:
        parse_duration("soon", argument="retain")
    assert message(e.value) == "--retain 'soon': give a positive duration such as 90s, 30m, 24h or 7d"


# --- calibration -----------------------------------------------------------------------------


def test_calibration_is_robust_to_past_events_and_floors_its_spread() -> None:
    rng = np.random.default_rng(0)
    background = rng.normal(0.20, 0.01, 1000)
    plain = calibrate(background)
    assert 0.235 < plain.threshold < 0.245 and 0.215 < plain.release < 0.225  # median + 4 sd, + 2 sd
    with_events = np.concatenate([background, np.full(30, 0.6)])  # 3% of the windows were events
    assert calibrate(with_events).threshold == pytest.approx(plain.threshold, abs=0.003)
    static = calibrate(np.full(50, 0.3))  # a static scene: the floor, and a release above its scores
    assert static.threshold == pytest.approx(0.3 + 4 * MIN_SPREAD) and static.release == pytest.approx(0.31)
    assert calibrate([0.99] * 10).threshold == 1.0
    with pytest.raises(ValueError):
        calibrate([])


def _unit(*xs: float) -> np.ndarray:
    v = np.array(xs, np.float32)
    return v / np.linalg.norm(v)


def test_a_rule_without_threshold_calibrates_on_the_first_windows_then_fires_once() -> None:
    query = _unit(1, 0, 0)
    told: list[float] = []
    alerts = Alerts("cam", [AlertRule("a red car", query, None)], warmup=5, on_calibrated=lambda _r, t: told.append(t))
    rng = np.random.default_rng(1)
    background = [_unit(0.2 + rng.normal(0, 0.02), 1, 0) for _ in range(8)]
    event = [_unit(1, 0.3, 0)] * 3
    kinds = [e.kind for i, v in enumerate(background + event + background) for e in alerts.observe(i, i + 4, v)]
    assert kinds == ["start", "end"] and len(told) == 1 and alerts.thresholds() == told
    assert float(query @ background[0]) < told[0] < float(query @ event[0])


def test_label_rule_fires_on_its_label_and_never_on_unknown() -> None:
    classes = np.eye(3, dtype=np.float32)  # three classes along the axes
    rule = OpenSetRule("msp", 0.05, 0.6)
    (guitar,) = label_rules(["Playing_Guitar"], ["playing guitar", "dancing", "riding a bike"], classes, rule, "set")
    assert (guitar.query, guitar.kind, guitar.index) == ("label:playing guitar", "label", 0)
    clear, unsure, other = _unit(1, 0.1, 0), _unit(1, 0.98, 0.97), _unit(0.1, 1, 0)
    assert guitar.score(clear) > 0.9 and guitar.score(other) < 0.1
    assert guitar.score(unsure) == 0.0  # its best class, but "unknown": never fires
    alerts = Alerts("cam", [guitar])
    windows = [other, unsure, unsure, clear, clear, unsure, other, other]
    events = [(i, e.kind, e.alert) for i, v in enumerate(windows) for e in alerts.observe(i, i + 4, v)]
    # an "unknown" window counts down like any low score: two in a row end the event
    assert [(i, k) for i, k, _ in events] == [(3, "start"), (6, "end")] and events[1][2].end == 5
    assert events[0][2].query == "label:playing guitar" and events[0][2].kind == "label"


def test_a_label_not_in_the_set_is_one_line_naming_label() -> None:
    assert match_labels(["DANCING", "riding_a_bike"], ["playing guitar", "dancing", "riding a bike"], "s") == [1, 2]
    with pytest.raises(InputError) as e:
        match_labels(["guitar"], ["playing guitar", "dancing"], "ucf101")
    assert message(e.value) == "--label 'guitar' is not a label of ucf101; did you mean 'playing guitar'?"


def test_calibration_separates_an_event_from_its_background_on_the_tiny_model(
    tmp_path: Path, tiny_checkpoint: Path
) -> None:
    """Gray windows are the scene; red ones the event. The threshold calibrated on the stored gray
    windows (the library's background) and the one calibrated on the stream's first windows both
    let every red window through and no gray one."""
    from test_streams import GRAY, RED, write_colours

    from vidsearch.indexer.live import StreamSource
    from vidsearch.indexer.options import IndexOptions
    from vidsearch.indexer.producer import Encoded
    from vidsearch.indexer.sink import LibrarySink
    from vidsearch.media import SegmentPlan, VideoInfo
    from vidsearch.media.jobs import DecodedVideo
    from vidsearch.media.live import DropOldest, LiveOptions, LiveReader, Window
    from vidsearch.models.opener import open_encoder
    from vidsearch.models.spec import EncoderSpec
    from vidsearch.usecases.alert_rules import MIN_BACKGROUND, background_vectors

    encoder = open_encoder(EncoderSpec(str(tiny_checkpoint), device="cpu", precision="fp32"))
    video = write_colours(tmp_path / "v.mp4", [(40, GRAY), (8, RED), (4, GRAY)])
    q: DropOldest[Window] = DropOldest(1000)
    LiveReader(str(video), LiveOptions(window=2, stride=1, short_side=64), q).run()
    windows = list(iter(lambda: q.get(0.01), None))
    xb = np.concatenate([encoder.encode_video(w.frames[None]) for w in windows])
    red = np.array([w.frames[:, 0, 0, 0].min() > 128 for w in windows])
    gray = np.array([w.frames[:, 0, 0, 0].max() < 128 for w in windows])
    # a random-weight model has no semantics: the query is the caption that best tells red from gray
    words = ["a", "two", "red", "big", "bright", "dark", "one", "the"]
    captions = [f"{a} {b}" for a in words for b in ["square", "flag", "light", "fire", "car", "box", "door", "person"]]
    scores = encoder.encode_text(captions) @ xb.T
    gaps = scores[:, red].min(axis=1) - scores[:, gray].max(axis=1)
    text = captions[int(np.argmax(gaps))]
    assert gaps.max() > 4 * MIN_SPREAD + 0.01, "no caption tells the event from the scene for this model"
    query = encoder.encode_text([text])[0]

    source = StreamSource("rtsp://cam/1", "cam")
    lib = Library.open(tmp_path / "lib")
    with lib:
        space = lib.ensure_space(encoder.key, encoder.embed_dim, encoder.spec, {})
        sink = LibrarySink(lib, space, {}, IndexOptions(model=str(tiny_checkpoint)))
        background = [w for w, g in zip(windows, gray, strict=True) if g][:MIN_BACKGROUND]
        for i, w in enumerate(background):
            seg = SegmentPlan("window", w.start, w.end, ())
            info = VideoInfo(source.uri, 8, 4.0, 2.0, 64, 64)
            decoded = DecodedVideo(0, source.uri, info, [seg], np.zeros(0), np.zeros((0, 0)), "pyav", 0)
            sink.add([Encoded(0, source, decoded, xb[gray][i : i + 1])])
        sink.close(True)
        stored = background_vectors(lib, space, source.uri)
        assert len(stored) == MIN_BACKGROUND
        assert len(background_vectors(lib, space, "rtsp://cam/other")) == MIN_BACKGROUND  # the space's vectors
        from_library = calibrate(stored @ query)
    s = xb @ query
    assert s[red].min() > from_library.threshold > from_library.release > s[gray].max()
    alerts = Alerts("cam", [AlertRule(text, query, None)])  # the stream's own first windows
    events = [e for w, v in zip(windows, xb, strict=True) for e in alerts.observe(w.start, w.end, v)]
    (from_stream,) = alerts.thresholds()
    assert from_stream is not None and s[red].min() > from_stream > s[gray].max()
    assert [e.kind for e in events] == ["start", "end"] and events[0].alert.threshold == from_stream


def test_forgetting_alerts_deletes_their_clips_and_nothing_outside_the_library(tmp_path: Path) -> None:
    from vidsearch.usecases.alerts import StoredAlert, clip_path, forget_alerts, recent_alerts, record_end, record_start

    outside = tmp_path / "precious.mp4"
    outside.write_bytes(b"keep")
    with Library.open(tmp_path / "lib") as lib:
        clip = lib.root / "recordings" / "cam" / "clips" / "a.mp4"
        clip.parent.mkdir(parents=True)
        clip.write_bytes(b"x")
        for key, start in (("a", 100.0), ("b", 110.0), ("c", 120.0), ("d", 5000.0)):
            record_start(lib, StoredAlert(key, "cam", "rtsp://x/cam", "q", "text", 0.3, start, 0.4, 0.4, start))
        assert record_end(lib, "a", 105.0, 0.5, 101.0, clip)
        assert record_end(lib, "b", 115.0, 0.5, 111.0, outside)  # stored as given; never deleted
        assert not record_end(lib, "zzz", 1.0, 1.0, 1.0, None)
        assert [a.clip for a in recent_alerts(lib, stream="cam") if a.key == "a"] == ["recordings/cam/clips/a.mp4"]
        assert clip_path(lib, "../../precious.mp4") is None
        # "c" never ended (its watch died) and "d" is recent: only "c" is old and not open
        assert forget_alerts(lib, ["rtsp://x/cam"], 1000.0, open_keys=["d"]) == 1
        assert [a.key for a in recent_alerts(lib)] == ["d"]
    assert not clip.exists() and outside.read_bytes() == b"keep"
