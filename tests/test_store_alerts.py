"""Alert rows: written at an event's start, completed at its end, read newest first, forgotten with retention."""

from __future__ import annotations

from pathlib import Path

from vidsearch.store.alerts import (
    StoredAlert,
    forget_alerts_before,
    recent_alerts,
    record_alert_end,
    record_alert_start,
)
from vidsearch.store.library import Library


def test_alert_rows_start_end_read_and_forget(tmp_path: Path) -> None:
    with Library.open(tmp_path / "lib") as lib:
        with lib.session() as s:
            record_alert_start(
                s, StoredAlert("cam-1-1", "cam", "rtsp://x/cam", "a truck", "text", 0.2, 100.0, 0.25, 0.25, 100.0)
            )
            record_alert_start(
                s, StoredAlert("cam-1-1", "cam", "rtsp://x/cam", "a truck", "text", 0.2, 100.0, 0.25, 0.25, 100.0)
            )
            record_alert_start(
                s, StoredAlert("door-5-1", "door", "rtsp://x/door", "a dog", "text", 0.2, 200.0, 0.3, 0.3, 200.0)
            )
        with lib.session() as s:
            assert record_alert_end(s, "cam-1-1", 110.0, 0.4, 104.0, "recordings/cam/clips/cam-1-1.mkv")
            assert not record_alert_end(s, "nope", 1.0, 1.0, 1.0, None)
        with lib.session() as s:
            rows = recent_alerts(s)
            assert [r.key for r in rows] == ["door-5-1", "cam-1-1"]
            assert rows[1].end == 110.0 and rows[1].peak == 0.4 and rows[1].clip.endswith(".mkv")
            assert [r.key for r in recent_alerts(s, stream="cam")] == ["cam-1-1"]
            assert [r.key for r in recent_alerts(s, since=150.0)] == ["door-5-1"]
        with lib.session() as s:
            assert forget_alerts_before(s, ["rtsp://x/cam", "rtsp://x/door"], 150.0) == [
                "recordings/cam/clips/cam-1-1.mkv"
            ]
        with lib.session() as s:
            assert [r.key for r in recent_alerts(s)] == ["door-5-1"]  # still open: kept
