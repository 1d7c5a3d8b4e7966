"""vidsearch.media: sampling plans, probing and one-pass frame reading on generated videos."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from videogen import frame_numbers, make_bad_corpus, write_video

from vidsearch.errors import MediaError
from vidsearch.media import (
    SamplingConfig,
    SegmentPlan,
    VideoInfo,
    keyframe_indices,
    middle_indices,
    plan_segments,
    probe,
    read_frames,
    snap_to_keyframes,
)

RES = 32  # small output frames keep the tests fast; the bit strip survives the resize
BITS = 12  # frame_number bits of 64-pixel-wide generated videos


# ---------------------------------------------------------------------------- sampling


@pytest.mark.parametrize(
    "vlen, n, start, expected",
    [
        # linspace(0, 100, 9).astype(int) = 0 12 25 37 50 62 75 87 100; midpoints (lo + hi - 1) // 2
        (100, 8, 0, [5, 18, 30, 43, 55, 68, 80, 93]),
        (8, 8, 0, [0, 1, 2, 3, 4, 5, 6, 7]),
        (3, 8, 0, [0, 1, 2, 2, 2, 2, 2, 2]),  # shorter than num_frames: pad with the last index
        (1, 8, 0, [0] * 8),
        (16, 8, 100, [100, 102, 104, 106, 108, 110, 112, 114]),  # a window starting at frame 100
        (10, 4, 0, [0, 3, 5, 8]),  # edges 0 2 5 7 10: (0+1)//2, (2+4)//2, (5+6)//2, (7+9)//2
        (240, 8, 0, [14, 44, 74, 104, 134, 164, 194, 224]),
    ],
)
def test_middle_indices_hand_computed(vlen, n, start, expected):
    assert middle_indices(vlen, n, start=start) == expected


def test_middle_indices_each_index_is_in_its_interval():
    for vlen in range(1, 70):
        for n in (1, 4, 8, 16):
            idx = middle_indices(vlen, n)
            assert len(idx) == n
            assert idx == sorted(idx) and 0 <= idx[0] and idx[-1] < vlen
            m = min(n, vlen)
            edges = np.linspace(0, vlen, m + 1).astype(int)
            for i, lo, hi in zip(idx, edges[:-1], edges[1:], strict=False):
                assert lo <= i < hi


@pytest.mark.parametrize("vlen, n", [(0, 8), (5, 0), (-1, 8)])
def test_middle_indices_rejects_empty(vlen, n):
    with pytest.raises(ValueError):
        middle_indices(vlen, n)


def _info(seconds: float, fps: float = 10.0) -> VideoInfo:
    return VideoInfo("x.mp4", int(round(seconds * fps)), fps, seconds, 64, 48)


def test_short_videos_get_only_the_whole_video_segment():
    for seconds in (0.1, 5.0, 12.0):  # 12 s is not *longer* than min_video_for_windows
        plans = plan_segments(_info(seconds), 8)
        assert plans == [SegmentPlan("video", 0.0, seconds, tuple(middle_indices(int(seconds * 10), 8)))]


def test_windows_cover_the_tail_and_every_short_moment():
    info = _info(30.0)  # 300 frames at 10 fps: 80-frame windows every 40 frames
    plans = plan_segments(info, 8)
    assert plans[0].kind == "video" and plans[0].frame_indices == tuple(middle_indices(300, 8))
    windows = plans[1:]
    assert [w.kind for w in windows] == ["window"] * 7
    assert [w.start for w in windows] == [0.0, 4.0, 8.0, 12.0, 16.0, 20.0, 22.0]  # last aligned to the end
    assert all(w.end - w.start == pytest.approx(8.0) for w in windows)
    assert windows[-1].end == pytest.approx(30.0)
    assert windows[2].frame_indices == tuple(middle_indices(80, 8, start=80))
    for w in windows:
        lo, hi = round(w.start * 10), round(w.end * 10)
        assert all(lo <= i < hi for i in w.frame_indices)
    # any 4 s moment lies entirely inside some window
    for a in np.arange(0.0, 26.0 + 1e-9, 0.1):
        assert any(w.start <= a + 1e-9 and a + 4.0 <= w.end + 1e-9 for w in windows), a


def test_windows_follow_the_config_and_exact_fit_has_no_duplicate():
    cfg = SamplingConfig(window=5.0, stride=5.0, min_video_for_windows=0.0)
    plans = plan_segments(
        _info(20.0), 4, window=cfg.window, stride=cfg.stride, min_video_for_windows=cfg.min_video_for_windows
    )
    assert [(p.start, p.end) for p in plans[1:]] == [(0.0, 5.0), (5.0, 10.0), (10.0, 15.0), (15.0, 20.0)]


def test_no_windows_without_a_frame_rate():
    info = VideoInfo("x.mp4", 300, 0.0, 0.0, 64, 48)
    assert [p.kind for p in plan_segments(info, 8)] == ["video"]


def test_snap_to_keyframes_picks_the_nearest():
    keys = [0, 10, 20, 30, 40, 50]
    assert snap_to_keyframes([3, 5, 7, 26, 44, 59, 0], keys) == [0, 0, 10, 30, 40, 50, 0]  # 5: tie -> earlier


# ---------------------------------------------------------------------------- reading


@pytest.fixture(scope="module")
def gop_video(tmp_path_factory):
    """60 frames, H.264, keyframe every 10 frames (B-frames off in ultrafast)."""
    return str(write_video(tmp_path_factory.mktemp("gop") / "gop10.mp4", num_frames=60, gop=10))


@pytest.mark.parametrize("reader", ["decord", "pyav", "auto"])
def test_read_frames_returns_the_requested_frames_in_the_requested_order(gop_video, reader):
    indices = [44, 3, 17, 3, 59, 0, 25, 44, 11]
    frames, used = read_frames(gop_video, indices, RES, reader=reader)
    assert used == ("pyav" if reader == "auto" else reader)  # auto: PyAV leads on H.264 (faster)
    assert frames.dtype == np.uint8 and frames.shape == (len(indices), RES, RES, 3)
    assert frame_numbers(frames, BITS) == indices  # order and repeats as asked
    # a repeated index is decoded once: its rows are the same frame, bit for bit
    np.testing.assert_array_equal(frames[1], frames[3])
    sorted_frames, _ = read_frames(gop_video, sorted(set(indices)), RES, reader=reader)
    np.testing.assert_array_equal(frames, sorted_frames[np.searchsorted(sorted(set(indices)), indices)])


def test_decord_and_pyav_agree(gop_video):
    idx = list(range(0, 60, 3))
    a, _ = read_frames(gop_video, idx, RES, reader="decord")
    b, _ = read_frames(gop_video, idx, RES, reader="pyav")
    assert frame_numbers(a, BITS) == frame_numbers(b, BITS) == idx
    # same FFmpeg colour conversion and the same resize: at most rounding differences
    assert np.abs(a.astype(int) - b.astype(int)).mean() < 1.0


def test_frames_are_resized_with_the_official_resize(gop_video):
    import av

    from vidsearch.media.resize import resize_frames

    with av.open(gop_video) as c:
        full = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    got, _ = read_frames(gop_video, [7, 30], 24, reader="pyav")
    np.testing.assert_array_equal(got, resize_frames(np.stack([full[7], full[30]]), 24))


def test_keyframes_and_fast_mode(gop_video):
    assert keyframe_indices(gop_video) == [0, 10, 20, 30, 40, 50]
    indices = [3, 7, 26, 44, 59]
    for reader in ("decord", "pyav"):
        frames, used = read_frames(gop_video, indices, RES, reader=reader, fast=True)
        assert used == reader
        assert frames.shape[0] == len(indices)  # one row per requested index, as in exact mode
        assert frame_numbers(frames, BITS) == [0, 10, 30, 40, 50], reader
        # out of order and repeated: still the nearest keyframe of each index, as asked
        frames, _ = read_frames(gop_video, [59, 3, 44, 3], RES, reader=reader, fast=True)
        assert frame_numbers(frames, BITS) == [50, 0, 40, 0], reader


def test_fast_mode_equals_exact_mode_on_keyframes(gop_video):
    fast, _ = read_frames(gop_video, [1, 21, 39], RES, reader="pyav", fast=True)
    exact, _ = read_frames(gop_video, [0, 20, 40], RES, reader="pyav")
    np.testing.assert_array_equal(fast, exact)


def test_all_windows_of_a_long_video_in_one_read(tmp_path):
    path = str(write_video(tmp_path / "long.mp4", num_frames=300, fps=10, gop=25))  # 30 s
    info = probe(path)
    assert (info.num_frames, info.fps, info.duration) == (300, 10.0, pytest.approx(30.0))
    plans = plan_segments(info, 8)
    every = [i for p in plans for i in p.frame_indices]  # windows overlap: repeats
    assert len(set(every)) < len(every)
    for reader in ("decord", "pyav"):
        frames, _ = read_frames(path, every, RES, reader=reader)
        assert frame_numbers(frames, BITS) == every
        clips = frames.reshape(len(plans), 8, RES, RES, 3)
        for p, clip in zip(plans, clips, strict=False):
            assert frame_numbers(clip, BITS) == list(p.frame_indices)


def test_indices_past_the_end_are_clamped_to_the_last_frame(tmp_path):
    path = str(write_video(tmp_path / "short.mp4", num_frames=20))
    frames, used = read_frames(path, [5, 19, 25, 1000], RES, reader="auto")
    assert used == "pyav"  # decord refuses indices past its count; PyAV clamps
    assert frame_numbers(frames, BITS) == [5, 19, 19, 19]
    with pytest.raises(MediaError):
        read_frames(path, [1000], RES, reader="decord")


def test_bad_arguments(gop_video):
    with pytest.raises(ValueError, match="reader"):
        read_frames(gop_video, [0], RES, reader="opencv")
    with pytest.raises(ValueError, match="empty"):
        read_frames(gop_video, [], RES)
    with pytest.raises(ValueError):
        read_frames(gop_video, [-1, 3], RES)
    with pytest.raises(ValueError, match="reader"):
        probe(gop_video, reader="cv2")


@pytest.mark.parametrize("codec, ext", [("mpeg4", "avi"), ("mjpeg", "avi"), ("libvpx", "webm"), ("libx264", "mkv")])
def test_other_codecs_and_containers(tmp_path, codec, ext):
    path = str(write_video(tmp_path / f"v.{ext}", num_frames=24, codec=codec))
    info = probe(path)
    assert (info.num_frames, info.width, info.height) == (24, 64, 48)
    idx = middle_indices(info.num_frames, 8)
    frames, used = read_frames(path, idx, RES)
    # VP8 skips decord (dmlc/decord#91); H.264 and MJPEG: PyAV measured faster, so it leads
    assert used == ("decord" if codec == "mpeg4" else "pyav")
    assert frame_numbers(frames, BITS) == idx


def test_variable_frame_rate_is_read_with_pyav(tmp_path):
    path = str(write_video(tmp_path / "vfr.mp4", num_frames=30, vfr=True))
    info = probe(path)
    assert info.num_frames == 30
    frames, used = read_frames(path, [0, 4, 13, 29], RES)
    assert used == "pyav"
    assert frame_numbers(frames, BITS) == [0, 4, 13, 29]


@pytest.mark.parametrize("degrees", [90, -90, 180])
def test_rotation_metadata_is_applied_like_decord(tmp_path, degrees):
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    src = write_video(tmp_path / "src.mp4", num_frames=10, size=(128, 64))
    dst = tmp_path / f"rot{degrees}.mp4"
    done = subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-v",
            "error",
            "-y",
            "-display_rotation",
            str(degrees),
            "-i",
            str(src),
            "-c",
            "copy",
            str(dst),
        ],
        capture_output=True,
    )
    if done.returncode != 0:
        pytest.skip(f"this ffmpeg cannot set display rotation: {done.stderr.decode()[-200:]}")
    a, b = probe(dst, reader="decord"), probe(dst, reader="pyav")
    expected = (128, 64) if degrees == 180 else (64, 128)
    assert (a.width, a.height) == (b.width, b.height) == expected
    fa, _ = read_frames(dst, [0, 5], 48, reader="decord")
    fb, _ = read_frames(dst, [0, 5], 48, reader="pyav")
    assert np.abs(fa.astype(int) - fb.astype(int)).mean() < 1.0
    assert np.abs(fa.astype(int) - np.rot90(fa, 1, axes=(1, 2)).astype(int)).mean() > 5  # not symmetric


# ---------------------------------------------------------------------------- bad input


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    return root, make_bad_corpus(root)


CORPUS_NAMES = [
    "empty.mp4",
    "text.mp4",
    "truncated.mp4",
    "truncated_tail.mkv",
    "locked.mp4",
    "dir.mp4",
    "dangling.mp4",
    "one_frame.mp4",
    "three_frames.mp4",
    "odd_17x33.avi",
    "odd_17x33_mjpeg.avi",
    "portrait.mp4",
    "uhd_4k.mp4",
    "vfr.mp4",
    "vp8.webm",
    "with_audio.mp4",
    "unicode dir/vidéo 名前 with spaces.mp4",
    "audio_only.m4a",
    "audio_only.mp4",
    "loop/self",
    "loop/inside.mp4",
]


def test_corpus_names_are_all_covered(corpus):
    assert sorted(corpus[1]) == sorted(CORPUS_NAMES)


@pytest.mark.parametrize("name", CORPUS_NAMES)
def test_bad_corpus_decodes_correctly_or_fails_in_one_line(corpus, name):
    root, expected = corpus
    exp = expected[name]
    path = str(root / name)
    try:
        info = probe(path)
        idx = middle_indices(info.num_frames, 8)
        frames, _ = read_frames(path, idx, RES)
    except MediaError as exc:
        msg = str(exc)
        assert exp["ok"] is not True, f"{name} should decode, got: {msg}"
        assert "\n" not in msg and path in msg and len(msg) < len(path) + 160
        assert exp["reason"] in msg.lower()
        assert exc.path == Path(path)  # the file is a field, for front ends to show their way
        return
    assert exp["ok"] is not False, f"{name} should fail, decoded {info}"
    assert frames.shape == (len(idx), RES, RES, 3)
    if exp["ok"]:
        assert (info.num_frames, info.width, info.height) == (exp["num_frames"], exp["width"], exp["height"])
        assert frame_numbers(frames, exp["bits"]) == idx


def test_unicode_path_via_pathlike(corpus):
    root, _ = corpus
    p = root / "unicode dir" / "vidéo 名前 with spaces.mp4"
    frames, _ = read_frames(p, [0, 11], RES)
    assert frame_numbers(frames, BITS) == [0, 11]


def test_unreadable_file_when_permissions_apply(tmp_path):
    path = write_video(tmp_path / "locked.mp4", num_frames=3)
    path.chmod(0)
    try:
        with open(path, "rb"):
            pytest.skip("running as root: chmod 000 does not block reading (corpus covers dir/symlink cases)")
    except PermissionError:
        pass
    with pytest.raises(MediaError, match="permission denied"):
        probe(path)
    path.chmod(0o644)


def test_vanished_file(tmp_path):
    path = write_video(tmp_path / "gone.mp4", num_frames=3)
    info = probe(path)
    path.unlink()
    with pytest.raises(MediaError, match="not found"):
        read_frames(path, middle_indices(info.num_frames, 8), RES)


def test_decord_garbage_frames_fall_back_to_pyav(corpus):
    # decord returns [H, W, 4] frames for this 48-pixel-wide stream; auto must not pass them on
    root, _ = corpus
    path = str(root / "portrait.mp4")
    with pytest.raises(MediaError, match="decord returned a frame of shape"):
        read_frames(path, [0], RES, reader="decord")
    frames, used = read_frames(path, [0, 19], RES)
    assert used == "pyav" and frame_numbers(frames, BITS) == [0, 19]


def test_auto_falls_back_to_decord_where_pyav_leads(gop_video, monkeypatch):
    """H.264: PyAV leads, and a file PyAV cannot read is read by decord, frames unchanged."""
    from vidsearch.media import readers
    from vidsearch.media.info import media_error

    assert "h264" in readers.PYAV_FASTER
    idx = [3, 17, 44]
    want, _ = read_frames(gop_video, idx, RES, reader="decord")

    def broken(path, *args, **kwargs):
        raise media_error(path, "cannot be decoded: injected")

    monkeypatch.setattr(readers, "read_pyav", broken)
    got, used = read_frames(gop_video, idx, RES)
    assert used == "decord" and np.array_equal(got, want)
    with pytest.raises(MediaError, match="injected"):
        read_frames(gop_video, idx, RES, reader="pyav")


def test_decode_threads_setting_keeps_frames(gop_video):
    from vidsearch.media.threads import decode_threads, set_decode_threads

    idx = [0, 9, 10, 33, 59]
    before = decode_threads()
    try:
        out = {}
        for n in (1, 0, 2):
            set_decode_threads(n)
            out[n] = [read_frames(gop_video, idx, RES, reader=r)[0] for r in ("decord", "pyav")]
        for n in (0, 2):  # threaded decoding returns the very same frames
            assert all(np.array_equal(a, b) for a, b in zip(out[1], out[n], strict=False))
        with pytest.raises(ValueError):
            set_decode_threads(-1)
    finally:
        set_decode_threads(before)
