"""Live streams: the reader's windows and queue, alerts' hysteresis, stream rows that accumulate,
`vidsearch watch`'s bad inputs, and (slow) a real RTSP server on loopback: the alert fires once
within window + stride + 1 s of the event, and a server killed mid-event and restarted costs a
gap, not a second alert."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from vidsearch.cli.errors import message
from vidsearch.errors import InputError
from vidsearch.indexer.alerts import AlertRule, Alerts
from vidsearch.indexer.live import StreamSource
from vidsearch.indexer.options import IndexOptions
from vidsearch.indexer.producer import Encoded
from vidsearch.indexer.sink import LibrarySink
from vidsearch.media import SegmentPlan, VideoInfo
from vidsearch.media.jobs import DecodedVideo
from vidsearch.media.live import DropOldest, LiveOptions, LiveReader, Window, WindowCutter, check_live_source
from vidsearch.store.library import Library

TESTS = Path(__file__).resolve().parent
GRAY, RED = (40, 40, 40), (220, 30, 30)


# --- units ---------------------------------------------------------------------------------


def test_check_live_source_refuses_what_cannot_be_a_stream(tmp_path: Path) -> None:
    for bad, words in [
        ("ftp://cam/1", "unsupported scheme 'ftp'"),
        ("rtsp:///nohost", "no host"),
        ("/dev/video99", "no such capture device"),
        (str(tmp_path / "none.mp4"), "no such file"),
    ]:
        with pytest.raises(InputError, match=words):
            check_live_source(bad)
    (tmp_path / "a.mp4").write_bytes(b"x")
    for good in ("rtsp://127.0.0.1:8554/cam", "udp://@:1234", "https://x/live.m3u8", str(tmp_path / "a.mp4")):
        assert check_live_source(good) == good


def test_window_cutter_cuts_num_frames_over_window_every_stride() -> None:
    cutter = WindowCutter(window=4.0, stride=2.0, num_frames=8)
    t0 = 1_800_000_000.0
    windows: list[Window] = []
    for i in range(80):  # 10 s at 8 fps; frame i holds the value i
        windows += cutter.push(t0 + i / 8, np.full((2, 2, 3), i, np.uint8))
    assert [(w.start - t0, w.end - t0) for w in windows] == [(0, 4), (2, 6), (4, 8)]
    # the frames nearest the midpoints of 8 half-second parts: 0.25 s, 0.75 s, ...
    assert windows[1].frames[:, 0, 0, 0].tolist() == [18, 22, 26, 30, 34, 38, 42, 46]
    cutter.reset()  # after a gap the next window starts afresh, never spanning it
    assert cutter.push(t0 + 20, np.zeros((2, 2, 3), np.uint8)) == []
    assert cutter.push(t0 + 23.9, np.zeros((2, 2, 3), np.uint8)) == []
    assert len(cutter.push(t0 + 24.0, np.zeros((2, 2, 3), np.uint8))) == 1


def test_drop_oldest_queue_never_blocks_and_counts_drops() -> None:
    q: DropOldest[int] = DropOldest(3)
    for i in range(10):
        q.put(i)
    assert q.dropped == 7 and len(q) == 3
    assert [q.get(0.01) for _ in range(4)] == [7, 8, 9, None]


def _rule(threshold: float = 0.5) -> AlertRule:
    return AlertRule("a red square", np.array([1.0, 0.0], np.float32), threshold)


def _vec(score: float) -> np.ndarray:
    return np.array([score, np.sqrt(1 - score**2)], np.float32)


def test_alerts_fire_once_per_event_with_hysteresis() -> None:
    alerts = Alerts("cam", [_rule()], margin=0.05, quiet=2)
    scores = [0.1, 0.2, 0.55, 0.48, 0.52, 0.47, 0.7, 0.3, 0.2, 0.1, 0.6, 0.2, 0.2]
    events = [(i, e.kind, e.alert) for i, s in enumerate(scores) for e in alerts.observe(float(i), i + 4.0, _vec(s))]
    kinds = [(i, k) for i, k, _ in events]
    # 0.48 and 0.47 hover just under the threshold: the same event; two quiet windows end it
    assert kinds == [(2, "start"), (8, "end"), (10, "start"), (12, "end")]
    first = events[1][2]
    assert (first.start, first.end, first.id) == (2.0, 7.0, "cam-2-1")
    assert first.peak == pytest.approx(0.7) and first.peak_time == 6.0
    assert events[2][2].id == "cam-10-2"


def test_alerts_close_ends_an_open_alert() -> None:
    alerts = Alerts("cam", [_rule()])
    assert [e.kind for e in alerts.observe(0.0, 4.0, _vec(0.9))] == ["start"]
    (end,) = alerts.close(now=9.0)
    assert end.kind == "end" and end.alert.end == 9.0
    assert alerts.close(now=10.0) == []


def test_a_streams_windows_accumulate_in_the_library(tmp_path: Path) -> None:
    """A file's new rows replace its old ones; a stream's (clock "wall") add to them."""
    source = StreamSource("rtsp://cam/1", "door")
    t0 = 1_800_000_000.0

    def window(i: int) -> Encoded:
        seg = SegmentPlan("window", t0 + 2 * i, t0 + 2 * i + 4, [])
        video = DecodedVideo(
            0, source.uri, VideoInfo(source.uri, 8, 2.0, 4.0, 8, 8), [seg], np.zeros(0), np.zeros((0, 0)), "pyav", 0
        )
        vec = np.eye(4, dtype=np.float32)[i % 4 : i % 4 + 1]
        return Encoded(0, source, video, vec)

    with Library.open(tmp_path / "lib") as library, library.writer_lock():
        space = library.ensure_space("fake@0", 4, {}, {})
        sink = LibrarySink(library, space, {}, IndexOptions())
        for i in range(4):
            sink.add([window(i)])
        # retention: windows that ended (t0 + 4, + 6) before the cut-off leave SQLite and FAISS
        assert sink.writer.forget_before(source.uri, t0 + 7) == 2
        assert sink.writer.forget_before("rtsp://cam/unknown", t0 + 7) == 0
        sink.add([window(4)])
        sink.close(True)
        ids, _ = library.load_vectors(space.id)
        infos = library.segment_infos(ids)
        assert sorted(i.start - t0 for i in infos.values()) == [4, 6, 8]
        assert library.vector_index(space).ntotal == 3


def _decoded_colours(path: Path) -> list[int]:
    import av

    with av.open(str(path)) as c:
        return [int(f.to_ndarray(format="rgb24")[0, 0, 0] > 128) for f in c.decode(video=0)]


def _frame_times(path: Path) -> list[float]:
    import av

    with av.open(str(path)) as c:
        return [round(float(f.time), 3) for f in c.decode(video=0)]


def test_recording_rolls_segments_on_keyframes_and_cuts_clips(tmp_path: Path) -> None:
    """A file read as a stream is remuxed into 2 s segments; a clip starts on a keyframe and decodes."""
    from vidsearch.media.recorder import cut_clip, prune, segment_start, segments_in

    video = write_colours(tmp_path / "in.mp4", [(4, GRAY), (3, RED), (5, GRAY)])  # a keyframe every 1 s
    folder = tmp_path / "rec"
    q: DropOldest[Window] = DropOldest(100)
    reader = LiveReader(str(video), LiveOptions(short_side=32, record_to=folder, segment_seconds=2.0), q)
    reader.run()
    segments = segments_in(folder)
    starts = [segment_start(p) for p in segments]
    assert len(segments) == 6 and np.allclose(np.diff(starts), 2.0, atol=0.01)
    assert sum(len(_decoded_colours(p)) for p in segments) == 120  # every frame recorded once
    t0 = starts[0]
    for name in ("clip.mkv", "clip.mp4"):
        clip = cut_clip(folder, t0 + 3.5, t0 + 7.5, tmp_path / name)
        assert clip is not None
        colours = _decoded_colours(clip)
        # from the keyframe at 3 s (before the 3.5 s asked for) to 7.5 s: 1 s gray, 3 s red, 0.5 s gray
        assert colours[:40] == [0] * 10 + [1] * 30 and set(colours[40:]) == {0} and 5 <= len(colours[40:]) <= 6
    data = (tmp_path / "clip.mp4").read_bytes()
    assert 0 < data.find(b"moov") < data.find(b"mdat")  # +faststart: the index first, a browser plays at once
    assert _frame_times(tmp_path / "clip.mp4")[:2] == [0.0, 0.1]  # from its first frame, 10 fps
    assert cut_clip(folder, t0 + 100, t0 + 110, tmp_path / "none.mp4") is None
    assert not list(tmp_path.glob(".*.part"))
    gone = prune(folder, older_than=t0 + 4.5)  # the segments that ended by then
    assert [p.name for p in gone] == [p.name for p in segments[:2]] and len(segments_in(folder)) == 4


class _Receiver:
    """A webhook receiver on loopback: answers 500 to the first ``failures`` POSTs, or hangs ``hang`` s."""

    def __init__(self, failures: int = 0, hang: float = 0.0) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        receiver = self
        self.bodies: list[dict] = []
        self.attempts = 0

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 -- the http.server API
                receiver.attempts += 1
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if hang:
                    time.sleep(hang)
                ok = receiver.attempts > failures
                if ok:
                    receiver.bodies.append(body)
                self.send_response(200 if ok else 500)
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_webhook_retries_a_failing_receiver_and_never_blocks() -> None:
    from vidsearch.indexer.webhook import Webhook

    failing = _Receiver(failures=2)
    hook = Webhook(failing.url, timeout=2, retries=3, backoff=0.05)
    hook.send({"id": "cam-1", "event": "alert"})
    hook.close(wait=5)
    failing.close()
    assert failing.bodies == [{"id": "cam-1", "event": "alert"}] and failing.attempts == 3
    assert (hook.delivered, hook.failed) == (1, 0)

    hanging = _Receiver(hang=3.0)
    hook = Webhook(hanging.url, timeout=0.3, retries=1, backoff=0.05, max_pending=2)
    t = time.monotonic()
    for i in range(5):
        hook.send({"id": f"cam-{i}"})
    assert time.monotonic() - t < 0.1  # sending only queues
    hook.close(wait=2)
    hanging.close()
    assert hook.delivered == 0 and hook.dropped >= 2


def test_webhook_url_is_checked() -> None:
    from vidsearch.indexer.webhook import check_webhook_url

    with pytest.raises(InputError, match="http:// or https://") as e:
        check_webhook_url("ftp://x/y")
    assert e.value.argument == "on_alert" and "--on-alert" in message(e.value)  # the CLI names its flag
    assert check_webhook_url("https://hooks.example/a") == "https://hooks.example/a"


# --- the CLI, bad inputs ---------------------------------------------------------------------


def watch_cmd(source: str, lib: Path, ckpt: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "vidsearch.cli", "watch", source, "--library", str(lib), "--model", str(ckpt), *extra]


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ("ftp://127.0.0.1/cam", "unsupported scheme"),
        ("/dev/video99", "no such capture device"),
        ("rtsp://127.0.0.1:9/cam", "cannot read the stream"),  # nothing listens on the discard port
    ],
)
def test_watch_bad_source_is_one_line_and_exit_2(
    source: str, words: str, tmp_path: Path, tiny_checkpoint: Path
) -> None:
    proc = subprocess.run(
        watch_cmd(source, tmp_path / "lib", tiny_checkpoint, "--open-timeout", "3"),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0] and "Traceback" not in proc.stderr


def test_watch_a_server_that_never_sends_times_out(tmp_path: Path, tiny_checkpoint: Path) -> None:
    """A server that accepts the connection and then says nothing: a timeout and one line, no hang."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    held: list[socket.socket] = []
    accepting = threading.Thread(target=lambda: held.append(listener.accept()[0]), daemon=True)
    accepting.start()
    port = listener.getsockname()[1]
    t = time.monotonic()
    try:
        proc = subprocess.run(
            watch_cmd(f"rtsp://127.0.0.1:{port}/cam", tmp_path / "lib", tiny_checkpoint, "--open-timeout", "2", "--read-timeout", "2"),
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    finally:
        for conn in held:
            conn.close()
        listener.close()
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot read the stream" in lines[0], proc.stderr
    assert time.monotonic() - t < 100  # model load included: a shared, busy machine takes tens of seconds


def test_watch_a_file_in_real_time_stores_windows_and_retains(tmp_path: Path, tiny_checkpoint: Path) -> None:
    """A file played as a stream: windows stored with wall-clock times, the summary on stderr, exit 0."""
    video = write_colours(tmp_path / "cam.mp4", [(5, GRAY)])
    lib = tmp_path / "lib"
    t = time.time()
    args = ["--realtime", "--window", "2", "--stride", "1", "--retain", "1h", "--name", "porch"]
    proc = subprocess.run(
        watch_cmd(str(video), lib, tiny_checkpoint, *args), capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "porch: ended; 3 windows stored, 0 dropped" in proc.stderr
    with Library.open(lib) as library:
        (space,) = library.spaces()
        ids, _ = library.load_vectors(space.id)
        starts = sorted(i.start for i in library.segment_infos(ids).values())
    assert len(starts) == 3 and t < starts[0] < time.time() and np.allclose(np.diff(starts), 1.0, atol=0.05)
    assert (lib / "recordings" / "porch").is_dir()
    bad = subprocess.run(
        watch_cmd(str(video), lib, tiny_checkpoint, "--retain", "soon"), capture_output=True, text=True
    )
    assert bad.returncode == 2 and "--retain 'soon'" in bad.stderr


def test_watch_several_streams_from_a_toml_config(tmp_path: Path, tiny_checkpoint: Path) -> None:
    """One watch, two streams (one library writer); a stream that cannot be read is reported, the other goes on."""
    a = write_colours(tmp_path / "a.mp4", [(4, GRAY)])
    b = write_colours(tmp_path / "b.mp4", [(4, RED)])
    config = tmp_path / "streams.toml"
    config.write_text(
        f'[[stream]]\nname = "front"\nurl = "{a}"\nalerts = ["a red car"]\n\n'
        f'[[stream]]\nname = "back"\nurl = "{b}"\nthreshold = 0.9\nlabels = ["Red_Light"]\n\n'
        '[[stream]]\nname = "gone"\nurl = "rtsp://127.0.0.1:9/cam"\n'
    )
    lib = tmp_path / "lib"
    label_file = tmp_path / "colours.txt"
    label_file.write_text("red light\ngray wall\nblue sky\n")
    args = ["--realtime", "--window", "2", "--stride", "1", "--json", "--open-timeout", "3", "--no-record"]
    args += ["--labels", str(label_file)]
    proc = subprocess.run(
        watch_cmd(str(config), lib, tiny_checkpoint, *args), capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    ends = {line["stream"]: line for line in lines if line["event"] == "end"}
    rules = {(line["stream"], line["query"]): line for line in lines if line["event"] == "watch"}
    # each rule's threshold is said at start: "front" calibrates on its first windows (an empty library)
    assert rules["front", "a red car"]["threshold"] is None and rules["back", "label:red light"]["threshold"] == 0.5
    assert rules["back", "label:red light"]["kind"] == "label" and len(rules) == 2
    assert ends["front"]["encoded"] == ends["back"]["encoded"] == 2
    assert ends["gone"]["encoded"] == 0 and "Connection refused" in ends["gone"]["error"]
    assert any(
        line.get("message", "").startswith("cannot read the stream") for line in lines if line["stream"] == "gone"
    )
    with Library.open(lib) as library:
        (space,) = library.spaces()
        ids, _ = library.load_vectors(space.id)
        assert sorted({i.path for i in library.segment_infos(ids).values()}) == sorted([str(a), str(b)])
    for bad, words in [
        ('[[stream]]\nname = "x"\n', "stream 1 has no url"),
        (f'[[stream]]\nurl = "{a}"\n[[stream]]\nurl = "{b}"\nname = "{a}"\n', "share a name"),
        ("[[stream]\n", "cannot read the streams config"),
    ]:
        config.write_text(bad)
        proc = subprocess.run(watch_cmd(str(config), lib, tiny_checkpoint), capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2 and words in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


# --- a real RTSP server --------------------------------------------------------------------------


def _has_gst_rtsp_server() -> bool:
    probe = "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"
    return shutil.which("/usr/bin/python3") is not None and (
        subprocess.run(["/usr/bin/python3", "-c", probe], capture_output=True).returncode == 0
    )


needs_rtsp = pytest.mark.skipif(
    not _has_gst_rtsp_server(),
    reason="needs Debian's GStreamer RTSP server (see README, contributing: apt-get install gir1.2-gst-rtsp-server-1.0 ...)",
)


def write_colours(path: Path, spans: list[tuple[float, tuple[int, int, int]]], fps: int = 10) -> Path:
    """An H.264 MP4 of solid colours (``(seconds, rgb)`` each), a keyframe every second."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        stream.options = {"g": str(fps), "keyint_min": str(fps), "sc_threshold": "0", "bframes": "0"}
        i = 0
        for seconds, colour in spans:
            for _ in range(int(seconds * fps)):
                frame = av.VideoFrame.from_ndarray(np.full((120, 160, 3), colour, np.uint8), format="rgb24")
                frame.pts, i = i, i + 1
                for packet in stream.encode(frame):
                    out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


@dataclass
class RtspServer:
    port: int
    proc: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/cam"

    def start(self, video: Path) -> None:
        self.proc = subprocess.Popen(
            ["/usr/bin/python3", str(TESTS / "rtsp_server.py"), str(self.port), str(video)],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "ready"

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture()
def rtsp_server() -> Iterator[RtspServer]:
    server = RtspServer(_free_port())
    yield server
    server.kill()


@dataclass
class Watch:
    """A `vidsearch watch --json` child whose lines are read as they come, with their arrival times."""

    proc: subprocess.Popen[str]
    lines: list[tuple[float, dict]] = field(default_factory=list)

    def __post_init__(self) -> None:
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append((time.time(), json.loads(line)))

    def wait_for(self, event: str, timeout: float) -> tuple[float, dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for arrived, line in self.lines:
                if line["event"] == event or line.get("message", "").endswith(event):
                    return arrived, line
            time.sleep(0.05)
        raise AssertionError(f"no {event!r} line in {timeout} s: {[line for _, line in self.lines]}")

    def events(self, kind: str) -> list[dict]:
        return [line for _, line in self.lines if line["event"] == kind]


def calibrated_alert(ckpt: Path, video: Path) -> tuple[str, float]:
    """The random-weight model has no semantics: pick the caption that best separates the event's
    windows from the background's, through the reader's own frame path, and a threshold between."""
    from vidsearch.models.opener import open_encoder
    from vidsearch.models.spec import EncoderSpec

    encoder = open_encoder(EncoderSpec(str(ckpt), device="cpu", precision="fp32"))
    q: DropOldest[Window] = DropOldest(1000)
    reader = LiveReader(str(video), LiveOptions(short_side=max(encoder.resolution, 64)), q)
    reader.run()  # a file, as fast as it decodes, in this thread
    windows = [w for w in iter(lambda: q.get(0.01), None)]
    red = np.array([w.frames[:, 0, 0, 0].min() > 128 for w in windows])
    gray = np.array([w.frames[:, 0, 0, 0].max() < 128 for w in windows])
    vectors = np.concatenate([encoder.encode_video(w.frames[None]) for w in windows])
    words = ["a", "two", "red", "big", "bright", "dark", "one", "the"]
    things = ["square", "flag", "light", "fire", "car", "box", "door", "person"]
    captions = [f"{a} {b}" for a in words for b in things]
    scores = encoder.encode_text(captions) @ vectors.T  # [captions, windows]
    gaps = scores[:, red].min(axis=1) - scores[:, gray].max(axis=1)
    best = int(np.argmax(gaps))
    assert gaps[best] > 0.04, "no caption separates the event for this model"
    return captions[best], float(scores[best, red].min() + scores[best, gray].max()) / 2


EVENT_AT, WINDOW, STRIDE = 8.0, 4.0, 2.0


def _alerts_json(lib: Path, *extra: str) -> list[dict]:
    proc = subprocess.run(
        [sys.executable, "-m", "vidsearch.cli", "alerts", "--library", str(lib), "--json", *extra],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return list(json.loads(proc.stdout))


@pytest.mark.slow
def test_watch_stores_an_alert_row_with_its_mp4_clip_and_retention_forgets_old_ones(
    tmp_path: Path, tiny_checkpoint: Path
) -> None:
    """A file played live: one row per event (start, end, peak, an MP4 clip relative to the library),
    `vidsearch alerts` lists it; `--retain` deletes the stream's old rows and their clips, not others'."""
    from vidsearch.store.alerts import StoredAlert, record_alert_end, record_alert_start

    video = write_colours(tmp_path / "event.mp4", [(4, GRAY), (6, RED), (6, GRAY)])
    caption, threshold = calibrated_alert(tiny_checkpoint, video)
    lib = tmp_path / "lib"
    old_clip = lib / "recordings" / "cam" / "clips" / "cam-old-1.mp4"
    old_clip.parent.mkdir(parents=True)
    old_clip.write_bytes(b"old")
    t = time.time()
    with Library.open(lib) as library, library.session() as s:
        for key, uri, start in [("cam-old-1", str(video), t - 3 * 3600), ("cam-old-2", str(video), t - 2 * 3600)]:
            record_alert_start(s, StoredAlert(key, "cam", uri, "x", "text", 0.2, start, 0.3, 0.3, start))
        record_alert_end(s, "cam-old-1", t - 3 * 3600 + 5, 0.4, t - 3 * 3600, "recordings/cam/clips/cam-old-1.mp4")
        # another stream's old alert: not this watch's to forget
        record_alert_start(
            s, StoredAlert("yard-old-1", "yard", "rtsp://x/yard", "x", "text", 0.2, t - 3 * 3600, 0.3, 0.3, 0)
        )
    args = ["--realtime", "--name", "cam", "--alert", caption, "--threshold", f"{threshold:.4f}", "--json"]
    args += ["--window", str(WINDOW), "--stride", str(STRIDE), "--retain", "1h"]
    proc = subprocess.run(
        watch_cmd(str(video), lib, tiny_checkpoint, *args), capture_output=True, text=True, timeout=180
    )
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    (start,) = [line for line in lines if line["event"] == "alert"]
    (end,) = [line for line in lines if line["event"] == "alert_end"]
    assert start["kind"] == "text" and Path(end["clip"]).suffix == ".mp4"
    assert not old_clip.exists()
    rows = _alerts_json(lib)
    assert [r["id"] for r in rows] == [start["id"], "yard-old-1"]  # the stream's old rows are gone
    row = rows[0]
    assert (row["stream"], row["query"], row["kind"], row["uri"]) == ("cam", caption, "text", str(video))
    assert row["start_ts"] == pytest.approx(start["start_ts"]) and row["end_ts"] == pytest.approx(end["end_ts"])
    assert row["threshold"] == pytest.approx(threshold, abs=1e-4) and row["peak"] == pytest.approx(
        end["peak"], abs=1e-4
    )
    assert row["clip_in_library"] == f"recordings/cam/clips/{start['id']}.mp4"
    assert Path(row["clip"]) == Path(end["clip"]).resolve() and sum(_decoded_colours(Path(row["clip"]))) >= 50
    assert [r["id"] for r in _alerts_json(lib, "--stream", "yard")] == ["yard-old-1"]
    assert [r["id"] for r in _alerts_json(lib, "--since", "10m")] == [start["id"]]
    table = subprocess.run(
        [sys.executable, "-m", "vidsearch.cli", "alerts", "--library", str(lib)], capture_output=True, text=True
    )
    assert table.returncode == 0 and caption in table.stdout and "cam" in table.stdout


@pytest.mark.slow
@needs_rtsp
def test_alert_fires_once_within_the_latency_goal_and_the_moment_is_queryable(
    rtsp_server: RtspServer, tmp_path: Path, tiny_checkpoint: Path
) -> None:
    video = write_colours(tmp_path / "event.mp4", [(EVENT_AT, GRAY), (6, RED), (8, GRAY)])
    caption, threshold = calibrated_alert(tiny_checkpoint, video)
    rtsp_server.start(video)
    lib = tmp_path / "lib"
    args = ["--name", "door", "--alert", caption, "--threshold", f"{threshold:.4f}", "--json"]
    args += ["--window", str(WINDOW), "--stride", str(STRIDE), "--duration", "20", "--read-timeout", "3"]
    watch = Watch(
        subprocess.Popen(watch_cmd(rtsp_server.url, lib, tiny_checkpoint, *args), stdout=subprocess.PIPE, text=True)
    )
    connected, _ = watch.wait_for("connected", 90)
    alerted, alert = watch.wait_for("alert", 60)
    assert watch.proc.wait(timeout=90) == 0
    # the first frame arrives at `connected`; the event starts EVENT_AT s of stream later
    latency = alerted - (connected + EVENT_AT)
    print(f"event-to-alert latency {latency:.2f} s")
    assert -0.5 < latency <= WINDOW + STRIDE + 1, latency
    assert len(watch.events("alert")) == 1 and alert["stream"] == "door" and alert["query"] == caption
    (end,) = watch.events("alert_end")
    assert end["id"] == alert["id"] and end["end_ts"] > alert["start_ts"]
    colours = _decoded_colours(Path(end["clip"]))  # pre-roll, the event, post-roll
    assert colours[0] == 0 and 50 <= sum(colours) <= 60 and colours[-1] == 0, colours
    (summary,) = watch.events("end")
    assert summary["encoded"] >= 5 and summary["gaps"] == []
    found = subprocess.run(
        [sys.executable, "-m", "vidsearch.cli", "query", caption, "--library", str(lib), "--model", str(tiny_checkpoint), "--json"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    hits = json.loads(found.stdout)
    assert hits[0]["path"] == rtsp_server.url and alert["start_ts"] <= hits[0]["start"] <= end["end_ts"]
    assert hits[0]["stream"] == "door" and hits[0]["source"] == rtsp_server.url  # a stream's hit: its name
    assert hits[0]["start_utc"].endswith("+00:00")
    (row,) = _alerts_json(lib)  # one row for the one event, completed with its clip
    assert (row["id"], row["stream"], row["uri"]) == (alert["id"], "door", rtsp_server.url)
    assert row["end_ts"] == pytest.approx(end["end_ts"]) and row["clip_in_library"].endswith(".mp4")


@pytest.mark.slow
@needs_rtsp
def test_server_restart_mid_event_is_a_gap_not_a_second_alert(
    rtsp_server: RtspServer, tmp_path: Path, tiny_checkpoint: Path
) -> None:
    video = write_colours(tmp_path / "event.mp4", [(EVENT_AT, GRAY), (30, RED)])
    still_red = write_colours(tmp_path / "red.mp4", [(10, RED), (30, GRAY)])  # after the restart
    caption, threshold = calibrated_alert(tiny_checkpoint, write_colours(tmp_path / "cal.mp4", [(8, GRAY), (8, RED)]))
    rtsp_server.start(video)
    args = ["--name", "yard", "--alert", caption, "--threshold", f"{threshold:.4f}", "--json"]
    args += ["--window", str(WINDOW), "--stride", str(STRIDE), "--read-timeout", "2", "--open-timeout", "5"]
    watch = Watch(
        subprocess.Popen(
            watch_cmd(rtsp_server.url, tmp_path / "lib", tiny_checkpoint, *args), stdout=subprocess.PIPE, text=True
        )
    )
    watch.wait_for("alert", 120)
    rtsp_server.kill()  # the camera drops out during the event
    watch.wait_for("reconnecting", 30)
    rtsp_server.start(still_red)
    watch.wait_for("reconnected", 60)
    watch.wait_for("alert_end", 60)  # the red part after the restart, then gray: the one event ends
    watch.proc.send_signal(signal.SIGTERM)
    assert watch.proc.wait(timeout=60) == 0
    assert len(watch.events("alert")) == 1
    (summary,) = watch.events("end")
    assert summary["how"] == "stopped" and len(summary["gaps"]) == 1
    # SIGTERM closed the segment being written: it plays to its end
    from vidsearch.media.recorder import segments_in

    last = segments_in(tmp_path / "lib" / "recordings" / "yard")[-1]
    assert len(_decoded_colours(last)) > 0
    gap = summary["gaps"][0]
    assert gap["end"] is not None and gap["end"] > gap["start"]
