"""Every kind of live source `vidsearch watch` takes, read for real on loopback: a live HLS
playlist and an MP4 over HTTP (Python's http.server), MPEG-TS over UDP, SRT where PyAV's FFmpeg
has it, and a capture device that does not exist. The streams are encoded by FFmpeg (through
PyAV, ``tests/stream_sender.py``) in real time; a few seconds each."""

from __future__ import annotations

import functools
import json
import os
import queue
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vidsearch.media.live import DropOldest, LiveOptions, LiveReader, Window
from vidsearch.media.live_source import StreamClock, ffmpeg_options
from vidsearch.store.library import Library

TESTS = Path(__file__).resolve().parent
SENDER = TESTS / "stream_sender.py"
WINDOW_ARGS = ["--window", "2", "--stride", "1", "--json", "--open-timeout", "60"]


# --- units: per-protocol options and the stream clock ----------------------------------------


def test_each_protocol_gets_its_own_timeout_options_in_its_units() -> None:
    assert ffmpeg_options("rtsp://cam/1", 5, 2) == {"rtsp_transport": "tcp", "timeout": "2000000"}
    assert ffmpeg_options("https://cdn/live.m3u8", 5, 2) == {"rw_timeout": "2000000", "reconnect": "0"}
    # RTMP's "timeout" would make the client a server waiting for a publisher
    assert ffmpeg_options("rtmp://host/app/key", 5, 2) == {"rw_timeout": "2000000"}
    assert ffmpeg_options("udp://@:1234", 5, 2) == {"timeout": "2000000", "overrun_nonfatal": "1"}
    assert ffmpeg_options("srt://host:9000", 5, 2) == {"timeout": "2000000", "connect_timeout": "5000"}
    assert ffmpeg_options("/dev/video0", 5, 2) == ffmpeg_options("/tmp/a.mp4", 5, 2) == {}


def test_stream_clock_spreads_a_burst_and_never_runs_ahead() -> None:
    live = StreamClock(live=True)
    # an HLS player's start: 3 s of backlog arrives at once, then 1 s segments as they are made
    backlog = [live.stamp(m / 10, 100.0 + m * 1e-4) for m in range(30)]
    assert all(b <= 100.0 + m * 1e-4 for m, b in enumerate(backlog))  # never ahead of arrival
    segment = [live.stamp(3.0 + m / 10, 101.05) for m in range(10)]  # one burst, 1 s later
    assert np.allclose(np.diff(segment), 0.1) and segment[-1] <= 101.05
    # the encoder restarted: media time jumps back; stamps go on from the clock, in order
    after = live.stamp(0.0, 102.05)
    assert after == pytest.approx(102.05) and after >= segment[-1]
    # a file keeps its media spacing, even when read faster than real time
    file = StreamClock(live=False)
    assert [file.stamp(m / 10, 50.0) for m in range(3)] == pytest.approx([50.0, 50.1, 50.2])


# --- helpers ------------------------------------------------------------------------------------


def watch_cmd(source: str, lib: Path, ckpt: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "vidsearch.cli", "watch", source, "--library", str(lib), "--model", str(ckpt), *extra]


def run_watch(
    source: str, lib: Path, ckpt: Path, *extra: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """`vidsearch watch --json` to its end: the process and its end-of-stream summary line."""
    proc = subprocess.run(watch_cmd(source, lib, ckpt, *extra), capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    (summary,) = [line for line in lines if line["event"] == "end"]
    return proc, summary


def stored(lib: Path) -> list[tuple[str, float]]:
    """The (path, start) of every window stored in the library, by start."""
    with Library.open(lib) as library:
        (space,) = library.spaces()
        ids, _ = library.load_vectors(space.id)
        return sorted(((i.path, i.start) for i in library.segment_infos(ids.tolist()).values()), key=lambda r: r[1])


def assert_live_windows(rows: list[tuple[str, float]], url: str, since: float, count: int) -> None:
    """At least ``count`` windows of ``url``, one a second of wall-clock time, within the watch."""
    assert len(rows) >= count, rows
    assert {path for path, _ in rows} == {url}
    starts = np.array([start for _, start in rows])
    assert np.allclose(np.diff(starts), 1.0, atol=0.01), starts  # no window twice, none squeezed
    assert since - 5 < starts[0] and starts[-1] < time.time()


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture()
def http_dir(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A folder served over HTTP on loopback: (folder, base URL)."""
    folder = tmp_path / "www"
    folder.mkdir()

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def start_sender(kind: str, target: str, seconds: float) -> subprocess.Popen[str]:
    """``tests/stream_sender.py`` sending ``seconds`` of live stream; returns once it sent its first frame."""
    proc = subprocess.Popen(
        [sys.executable, str(SENDER), kind, target, "--seconds", f"{seconds:g}"], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and "started" in json.loads(proc.stdout.readline())
    return proc


def stop(proc: subprocess.Popen[str]) -> None:
    proc.kill()
    proc.wait()


def wait_for_file(path: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.1)


# --- HTTP: a live HLS playlist, and an MP4 -------------------------------------------------------


@pytest.mark.slow
def test_watch_reads_a_live_hls_playlist(http_dir: tuple[Path, str], tmp_path: Path, tiny_checkpoint: Path) -> None:
    folder, base = http_dir
    sender = start_sender("hls", str(folder / "index.m3u8"), seconds=300)
    try:
        wait_for_file(folder / "index.m3u8")  # the first 1 s segment is out
        url, since = f"{base}/index.m3u8", time.time()
        _, summary = run_watch(
            url, tmp_path / "lib", tiny_checkpoint, *WINDOW_ARGS, "--duration", "10", "--name", "hls"
        )
    finally:
        stop(sender)
    assert summary["gaps"] == [] and summary["dropped"] == 0 and summary["encoded"] >= 4
    assert_live_windows(stored(tmp_path / "lib"), url, since, summary["encoded"])
    assert list((tmp_path / "lib" / "recordings" / "hls").glob("*Z.mkv"))


def test_a_finished_hls_playlist_ends_the_reader_without_reading_it_twice(http_dir: tuple[Path, str]) -> None:
    """A live playlist closed with ENDLIST is a broadcast that ended: no reconnect loop replaying its tail."""
    folder, base = http_dir
    sender = start_sender("hls", str(folder / "index.m3u8"), seconds=4)
    wait_for_file(folder / "index.m3u8")
    q: DropOldest[Window] = DropOldest(1000)
    reader = LiveReader(f"{base}/index.m3u8", LiveOptions(window=1, stride=1, short_side=32, open_timeout=30), q)
    reader.start()
    reader.join(timeout=90)
    assert sender.wait(timeout=60) == 0
    assert not reader.is_alive() and reader.state.ended and reader.state.error is None
    assert 0 < reader.state.frames <= 40  # 4 s at 10 fps, each frame once


@pytest.mark.slow
def test_watch_reads_an_mp4_over_http_once_and_ends(
    http_dir: tuple[Path, str], tmp_path: Path, tiny_checkpoint: Path
) -> None:
    """Progressive HTTP: a file with an end, read once with its media timing, then the watch ends."""
    import videogen

    folder, base = http_dir
    videogen.write_video(folder / "clip.mp4", seconds=6, fps=10, size=(160, 120), gop=10)
    url = f"{base}/clip.mp4"
    _, summary = run_watch(url, tmp_path / "lib", tiny_checkpoint, *WINDOW_ARGS)
    assert summary["how"] == "ended" and summary["gaps"] == [] and summary["encoded"] == 4
    rows = stored(tmp_path / "lib")
    assert len(rows) == 4 and np.allclose(np.diff([start for _, start in rows]), 1.0, atol=0.01)


# --- UDP MPEG-TS ------------------------------------------------------------------------------


@pytest.mark.slow
def test_watch_reads_mpegts_over_udp(tmp_path: Path, tiny_checkpoint: Path) -> None:
    url = f"udp://127.0.0.1:{free_port(socket.SOCK_DGRAM)}"
    sender = start_sender("udp", url, seconds=300)  # datagrams before the watch listens are lost, as live
    try:
        since = time.time()
        _, summary = run_watch(
            url, tmp_path / "lib", tiny_checkpoint, *WINDOW_ARGS, "--duration", "12", "--name", "udp"
        )
    finally:
        stop(sender)
    assert summary["gaps"] == [] and summary["encoded"] >= 3
    assert_live_windows(stored(tmp_path / "lib"), url, since, summary["encoded"])


# --- SRT --------------------------------------------------------------------------------------


@functools.cache
def pyav_has_srt() -> bool:
    """Whether PyAV's FFmpeg was built with libsrt (the wheels on PyPI are not, at 18.x)."""
    import av

    try:
        av.open(f"srt://127.0.0.1:{free_port(socket.SOCK_DGRAM)}?mode=caller", timeout=(0.5, 0.5))
    except av.error.ProtocolNotFoundError:
        return False
    except Exception:  # the protocol exists; nothing answered
        return True
    return True


def ffmpeg_cli_has_srt() -> bool:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        return False
    protocols = subprocess.run([ffmpeg, "-hide_banner", "-protocols"], capture_output=True, text=True).stdout
    return "srt" in protocols.split()


@pytest.mark.skipif(pyav_has_srt(), reason="PyAV's FFmpeg reads srt:// here; test_watch_reads_srt covers it")
def test_watch_srt_without_ffmpeg_support_is_one_line_and_exit_2(tmp_path: Path, tiny_checkpoint: Path) -> None:
    url = f"srt://127.0.0.1:{free_port(socket.SOCK_DGRAM)}"
    proc = subprocess.run(
        watch_cmd(url, tmp_path / "lib", tiny_checkpoint, "--open-timeout", "5"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert "has no support for srt://" in line and "relay the stream" in line and "Traceback" not in proc.stderr


@pytest.mark.slow
@pytest.mark.skipif(
    not pyav_has_srt() or not ffmpeg_cli_has_srt(),
    reason="SRT needs PyAV built with libsrt (PyPI's PyAV wheels are built without it) and an ffmpeg CLI with it",
)
def test_watch_reads_srt(tmp_path: Path, tiny_checkpoint: Path) -> None:
    port = free_port(socket.SOCK_DGRAM)
    sender = subprocess.Popen(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-re", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10",
         "-t", "300", "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "10",
         "-f", "mpegts", f"srt://127.0.0.1:{port}?mode=listener"],
    )  # fmt: skip
    url = f"srt://127.0.0.1:{port}?mode=caller"
    try:
        since = time.time()
        _, summary = run_watch(url, tmp_path / "lib", tiny_checkpoint, *WINDOW_ARGS, "--duration", "12")
    finally:
        sender.kill()
        sender.wait()
    assert summary["encoded"] >= 3
    assert_live_windows(stored(tmp_path / "lib"), url, since, summary["encoded"])


# --- a capture device -------------------------------------------------------------------------


def test_watch_a_capture_device_that_does_not_exist_is_one_line_and_exit_2(
    tmp_path: Path, tiny_checkpoint: Path
) -> None:
    if os.path.exists("/dev/video9"):
        pytest.skip("this machine has a /dev/video9")
    proc = subprocess.run(
        watch_cmd("/dev/video9", tmp_path / "lib", tiny_checkpoint), capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert "/dev/video9: no such capture device" in line and not (tmp_path / "lib").exists()


# --- stalled connections ----------------------------------------------------------------------


def test_abandoned_stalled_connections_are_bounded_and_return(tmp_path: Path) -> None:
    """Connections stuck in FFmpeg (a server that accepts and says nothing) are counted; past the
    bound the reader waits instead of opening more; each closes and leaves when FFmpeg returns."""
    from vidsearch.media import live

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    threading.Thread(
        target=lambda: [held.append(listener.accept()[0]) for _ in range(live.MAX_ABANDONED)], daemon=True
    ).start()
    url = f"rtsp://127.0.0.1:{listener.getsockname()[1]}/cam"
    statuses: list[str] = []
    options = LiveOptions(open_timeout=60, read_timeout=60)  # FFmpeg would wait a minute
    reader = LiveReader(url, options, DropOldest(4), statuses.append)
    pumps = [live._Pump(url, options, queue.Queue(maxsize=1)) for _ in range(live.MAX_ABANDONED)]
    for pump in pumps:
        pump.start()
        pump.stop.set()  # what the watchdog does: told to stop, never waited on
        reader._abandoned.append(pump)
    try:
        assert not reader._room_for_a_connection() and not reader._room_for_a_connection()
        assert reader.state.abandoned == live.MAX_ABANDONED
        assert len([s for s in statuses if "stalled connections" in s]) == 1  # said once, not per try
    finally:
        deadline = time.monotonic() + 30
        while len(held) < live.MAX_ABANDONED and time.monotonic() < deadline:
            time.sleep(0.05)
        for conn in held:
            conn.close()  # the server hangs up: each FFmpeg call returns
        listener.close()
    deadline = time.monotonic() + 60
    while not (reader._room_for_a_connection() and reader.state.abandoned == 0):  # every one returned
        assert time.monotonic() < deadline, f"{reader.state.abandoned} abandoned connections never returned"
        time.sleep(0.1)
    assert not any(p.is_alive() for p in pumps)
