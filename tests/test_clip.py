"""Keep the moment: `cut_clip`, `vidsearch clip` and a stream's moments (the API: test_clip_serve.py).

The sources are generated videos whose frames carry their frame number (tests/videogen.py), with
a keyframe every 2 s and an AAC track, so a clip's first frame can be read back and compared with
the frame at the span start.
"""

from __future__ import annotations

import math
from pathlib import Path

import av
import pytest
import videogen
from hypothesis import example, given, settings
from hypothesis import strategies as st
from test_cli_hardening import one_line_error, run_main

from vidsearch.errors import InputError, MediaError
from vidsearch.media.clip import cut_clip, keyframe_span
from vidsearch.store.library import Library

FPS = 25
GOP = 50  # a keyframe every 2 s
SIZE = (128, 96)
BITS = 12


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("clip-src")
    return videogen.write_video(
        folder / "counter.mp4", seconds=8, fps=FPS, size=SIZE, gop=GOP, audio=True, bits=BITS, pattern="moving_square"
    )


def _video_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as f:
        return [bytes(p) for p in f.demux(video=0) if p.size]


def _decoded(path: Path) -> tuple[list[int], list[float], float | None]:
    """Frame numbers, frame times and the audio track's duration (None: no audio) of a clip."""
    with av.open(str(path)) as f:
        audio = f.streams.audio[0] if f.streams.audio else None
        frames = list(f.decode(video=0))
        numbers = [videogen.frame_number(fr.to_ndarray(format="rgb24"), BITS) for fr in frames]
        times = [float(fr.time) for fr in frames]
        seconds = float(audio.duration * audio.time_base) if audio is not None and audio.duration else None
    return numbers, times, seconds


def test_a_span_on_a_keyframe_is_stream_copied(source: Path, tmp_path: Path) -> None:
    clip = cut_clip(source, 2.0, 4.0, tmp_path / "copy.mp4")
    assert clip.copied and clip.start == pytest.approx(2.0) and clip.audio
    packets = _video_packets(clip.path)
    # the very bytes of the source's frames 50..99: nothing was decoded or encoded
    assert packets == _video_packets(source)[2 * FPS : 4 * FPS]
    numbers, times, audio = _decoded(clip.path)
    assert numbers[0] == 2 * FPS and times[0] == pytest.approx(0.0)
    assert abs(len(numbers) - 2 * FPS) <= 2
    assert audio is not None and abs(audio - 2.0) < 0.1


@pytest.mark.parametrize("start", [2.52, 3.3, 5.0])
def test_a_span_mid_gop_is_re_encoded_from_its_first_frame(source: Path, tmp_path: Path, start: float) -> None:
    end = start + 1.6
    clip = cut_clip(source, start, end, tmp_path / "cut.mp4")
    assert not clip.copied and clip.codec == "h264" and clip.audio
    numbers, times, audio = _decoded(clip.path)
    # the frame at the span start, not the previous keyframe (a jump back) nor a smear
    assert abs(numbers[0] - round(start * FPS)) <= 1, numbers[:5]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))  # every frame, in order
    assert times[0] == pytest.approx(0.0)
    assert abs(len(numbers) - round((end - start) * FPS)) <= 2
    assert audio is not None and abs(audio - (end - start)) < 0.1
    with av.open(str(clip.path)) as f:
        assert f.streams.video[0].codec_context.name == "h264"


def test_a_clip_is_fast_start_mp4(source: Path, tmp_path: Path) -> None:
    clip = cut_clip(source, 1.0, 2.0, tmp_path / "fast.mp4")
    head = clip.path.read_bytes()[:4096]
    assert head[4:8] == b"ftyp" and 0 <= head.find(b"moov") < head.find(b"mdat") or b"mdat" not in head


def test_a_span_past_the_end_is_clamped(source: Path, tmp_path: Path) -> None:
    clip = cut_clip(source, 7.0, 30.0, tmp_path / "tail.mp4")
    assert clip.end == pytest.approx(8.0)
    numbers, _, _ = _decoded(clip.path)
    assert abs(numbers[0] - 7 * FPS) <= 1 and numbers[-1] == 8 * FPS - 1


@pytest.mark.parametrize(
    "start, end, error, says",
    [
        (3.0, 3.0, InputError, "empty or reversed"),
        (4.0, 2.0, InputError, "empty or reversed"),
        (float("nan"), 2.0, InputError, "empty or reversed"),
        (9.0, 12.0, InputError, "past the end"),
    ],
)
def test_bad_spans_are_typed_errors(source: Path, tmp_path: Path, start, end, error, says) -> None:
    with pytest.raises(error, match=says) as info:
        cut_clip(source, start, end, tmp_path / "bad.mp4")
    assert "--" not in str(info.value)  # the library never names a flag
    assert not list(tmp_path.iterdir())  # nothing written, no temporary left


def test_unreadable_files_are_media_errors(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video" * 100)
    with pytest.raises(MediaError, match="junk.mp4"):
        cut_clip(junk, 0.0, 1.0, tmp_path / "out.mp4")
    with pytest.raises(MediaError, match="not found"):
        cut_clip(tmp_path / "missing.mp4", 0.0, 1.0, tmp_path / "out.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.mp4"]


def test_keyframe_span_keeps_the_references_of_b_frames() -> None:
    # decode order of a GOP with B-frames: I0 P3 B1 B2 P6 B4 B5 | I7
    order = [(0, True), (3, False), (1, False), (2, False), (6, False), (4, False), (5, False), (7, True)]
    packets = [(float(t), f"f{t}", key) for t, key in order]
    # from the keyframe before 1; B5 is shown before the end and needs P6, which is kept
    assert [p for _, p in keyframe_span(packets, 1.0, 5.5)] == ["f0", "f3", "f1", "f2", "f6", "f4", "f5"]
    # nothing shown at or after 4 is needed by a frame before it: P6 and its B-frames go
    assert [p for _, p in keyframe_span(packets, 0.0, 4.0)] == ["f0", "f3", "f1", "f2"]


# ------------------------------------------------------------------------------------ CLI


def test_cli_writes_a_clip_and_never_overwrites(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "moment.mp4"
    code, stdout, err = run_main("clip", str(source), "--start", "0:00:02.5", "--end", "3.5", "-o", str(out), "--json")
    assert code == 0, err
    assert '"copied": false' in stdout and out.is_file()
    before = out.read_bytes()
    code, _, err = run_main("clip", str(source), "--start", "1", "--end", "2", "-o", str(out))
    one_line_error(code, err, "--force")
    assert out.read_bytes() == before
    code, _, err = run_main("clip", str(source), "--start", "2", "--end", "4", "-o", str(out), "--force")
    assert code == 0, err
    assert _video_packets(out) == _video_packets(source)[2 * FPS : 4 * FPS]


@pytest.mark.parametrize(
    "args, says",
    [
        (["--start", "abc", "--end", "2"], "--start 'abc'"),
        (["--start", "1:75", "--end", "2"], "--start"),
        (["--start", "3", "--end", "2"], "--end 2 is not after --start 3"),
        (["--start", "20", "--end", "30"], "--start is past the end of counter.mp4"),
    ],
)
def test_cli_bad_times_are_one_line(source: Path, tmp_path: Path, args: list[str], says: str) -> None:
    code, _, err = run_main("clip", str(source), *args, "-o", str(tmp_path / "x.mp4"))
    one_line_error(code, err, says)
    assert not (tmp_path / "x.mp4").exists()


def test_cli_bad_inputs_are_one_line(source: Path, tmp_path: Path) -> None:
    code, _, err = run_main("clip", str(tmp_path / "nope.mp4"), "-s", "1", "-e", "2", "-o", str(tmp_path / "x.mp4"))
    one_line_error(code, err, "nope.mp4: file not found")
    code, _, err = run_main("clip", str(source), "-s", "1", "-e", "2", "-o", str(tmp_path / "x.avi"))
    one_line_error(code, err, "name it .mp4")
    code, _, err = run_main("clip", str(source), "-s", "1", "-e", "2", "-o", str(source / "under-a-file.mp4"))
    one_line_error(code, err, "--out")
    assert "cannot be written" in err
    code, _, err = run_main("clip", "42", "-s", "1", "-e", "2", "-o", str(tmp_path / "y.mp4"), "-l", str(tmp_path))
    one_line_error(code, err, "library")


# ------------------------------------------------------------------------------- streams


def test_a_stream_moment_is_cut_from_its_recording(tmp_path: Path) -> None:
    """A stream's moment (UTC seconds) comes from the watch's recording, from the frame at its start."""
    from vidsearch.media.live import DropOldest, LiveOptions, LiveReader
    from vidsearch.media.recorder import RECORDINGS_DIR, recordings_folder, segment_start, segments_in
    from vidsearch.store.catalog import VideoRecord
    from vidsearch.usecases.clips import clip_name, cut_moment
    from vidsearch.usecases.videos import NotFound

    uri = "rtsp://admin:secret@cam.local/live"
    source = videogen.write_video(tmp_path / "cam.mp4", seconds=5, fps=10, size=SIZE, gop=10, bits=BITS)
    with Library.open(tmp_path / "lib") as lib:
        stream = VideoRecord(id=7, path=uri, size=-1, mtime_ns=0, fingerprint="", status="indexed")
        with pytest.raises(NotFound, match="not recorded") as info:
            cut_moment(lib, stream, 1.0, 2.0, tmp_path / "none.mp4")
        assert "secret" not in str(info.value)  # a stream's password is never shown
        folder = recordings_folder(lib.root / RECORDINGS_DIR, uri)
        LiveReader(
            str(source), LiveOptions(short_side=32, record_to=folder, segment_seconds=2.0), DropOldest(100)
        ).run()
        t0 = segment_start(segments_in(folder)[0])  # the wall time of the file's first frame
        clip = cut_moment(lib, stream, t0 + 1.35, t0 + 3.05, tmp_path / "moment.mp4")
        numbers, times, _ = _decoded(clip.path)
        # the recording's names are arrival times: a busy machine may shift them by a frame
        assert abs(numbers[0] - 13) <= 2 and times[0] == pytest.approx(0.0)
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers))) and abs(len(numbers) - 17) <= 2
        assert clip.start == pytest.approx(t0 + 1.35, abs=0.15)
        name = clip_name(stream, clip.start, clip.end)
        assert name.startswith("cam.local_live_") and name.endswith("s.mp4") and "secret" not in name
        with pytest.raises(NotFound, match="no longer holds"):
            cut_moment(lib, stream, t0 - 100, t0 - 90, tmp_path / "gone.mp4")


@given(text=st.one_of(st.text(max_size=16), st.floats(allow_nan=True, allow_infinity=True).map(repr)))
@example(text="1:99")
@example(text="99999999999999999999:00:00")
@example(text="9" * 400)
@example(text="9" * 400 + ":00:00")
@settings(deadline=None, max_examples=200)
def test_cli_times_parse_or_say_why(text: str) -> None:
    from vidsearch.cli.clip import parse_time

    try:
        seconds = parse_time(text, "--start")
    except InputError as exc:
        assert "--start" in str(exc) and "\n" not in str(exc)
    else:
        assert math.isfinite(seconds) and seconds >= 0


@pytest.mark.parametrize("start", [2.0, 2.52])
def test_a_phones_rotation_is_kept(source: Path, tmp_path: Path, start: float) -> None:
    import subprocess

    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    rotated = tmp_path / "portrait.mp4"
    args = ["-v", "error", "-y", "-display_rotation", "90", "-i", str(source), "-c", "copy", str(rotated)]
    done = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), *args], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"this ffmpeg cannot set display rotation: {done.stderr.decode()[-200:]}")
    clip = cut_clip(rotated, start, start + 1.0, tmp_path / "clip.mp4")
    assert clip.copied is (start == 2.0)
    with av.open(str(clip.path)) as f:
        assert next(f.decode(video=0)).rotation == 90  # copied or re-encoded, it still plays upright
