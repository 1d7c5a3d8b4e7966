"""vidsearch.media.pool: the worker pool decodes, and contains crashes, hangs and leaks."""

from __future__ import annotations

import multiprocessing
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import default_sigint
from faults import FAULT_ENV, FaultPlan
from videogen import frame_numbers, make_bad_corpus, write_video

from vidsearch.media import SamplingConfig, middle_indices
from vidsearch.media.jobs import DecodedVideo, DecodeFailure, DecodeJob, decode_job
from vidsearch.media.pool import DecodePool

RES = 32
BITS = 12


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("pool")
    paths = {
        "short": write_video(root / "short.mp4", num_frames=20),
        "three": write_video(root / "three.mp4", num_frames=3),
        "long": write_video(root / "long.mp4", num_frames=200, fps=10, gop=30),  # 20 s: windows
        "webm": write_video(root / "clip.webm", num_frames=24, codec="libvpx"),
        "unicode": write_video(root / "ünï cödé 视频 name.mp4", num_frames=16),
    }
    for i in range(6):
        paths[f"n{i}"] = write_video(root / f"n{i}.mp4", num_frames=10 + i)
    return {k: str(v) for k, v in paths.items()}


def _jobs(paths, **kw):
    return [DecodeJob(i, p, 8, RES, **kw) for i, p in enumerate(paths)]


def _check_decoded(r: DecodedVideo) -> None:
    """Every segment's frames are exactly the frames its plan asked for."""
    assert r.frames.dtype == np.uint8 and r.frames.shape[1:] == (RES, RES, 3)
    numbers = frame_numbers(r.frames, BITS)
    clips = r.clips()
    assert clips.shape == (len(r.segments), 8, RES, RES, 3)
    for seg, rows in zip(r.segments, r.clip_index, strict=False):
        assert [numbers[i] for i in rows] == list(seg.frame_indices)


@pytest.fixture(autouse=True)
def faults_only_by_parameter(monkeypatch):
    # the pool must not read the environment: a stray spec there would crash every test below
    monkeypatch.setenv(FAULT_ENV, "crash:.mp4,crash:.webm")


def test_decode_job_in_process(videos):
    r = decode_job(DecodeJob(7, videos["long"], 8, RES))
    assert isinstance(r, DecodedVideo) and r.job_id == 7 and r.reader == "pyav"  # H.264: PyAV leads
    assert [s.kind for s in r.segments] == ["video"] + ["window"] * 4  # 0,4,8,12 s
    assert r.segments[-1].end == pytest.approx(20.0)
    _check_decoded(r)
    f = decode_job(DecodeJob(8, videos["long"] + ".missing", 8, RES))
    assert isinstance(f, DecodeFailure) and "not found" in f.reason and "\n" not in f.reason


def test_pool_decodes_everything_once(videos):
    paths = [videos[k] for k in ("short", "three", "long", "webm", "unicode")]
    with DecodePool(workers=2) as pool:
        results = list(pool.run(_jobs(paths)))
    assert sorted(r.job_id for r in results) == list(range(len(paths)))
    by_id = {r.job_id: r for r in results}
    for i, p in enumerate(paths):
        r = by_id[i]
        assert isinstance(r, DecodedVideo), r
        assert r.path == p
        _check_decoded(r)
    assert by_id[1].segments[0].frame_indices == tuple(middle_indices(3, 8))
    assert by_id[3].reader == "pyav"  # webm


def test_crash_and_abort_are_contained(videos):
    paths = [videos[f"n{i}"] for i in range(6)]
    faults = FaultPlan({"n1.mp4": "crash", "n3.mp4": "abort"})
    with DecodePool(workers=2, retry_with_pyav=False, before_decode=faults) as pool:
        results = {r.job_id: r for r in pool.run(_jobs(paths))}
        assert pool.started_workers >= 3  # replacements (the last crash may need none)
    assert len(results) == 6
    assert results[1] == DecodeFailure(1, paths[1], "decoder crashed (signal 11)")
    assert results[3] == DecodeFailure(3, paths[3], "decoder crashed (signal 6)")
    for i in (0, 2, 4, 5):
        assert isinstance(results[i], DecodedVideo)
        _check_decoded(results[i])


def test_decord_crash_is_retried_with_pyav(videos):
    faults = FaultPlan({"short.mp4": "decordcrash", "n0.mp4": "crash"})
    with DecodePool(workers=1, before_decode=faults) as pool:
        results = {r.job_id: r for r in pool.run(_jobs([videos["short"], videos["n0"], videos["n1"]]))}
    assert isinstance(results[0], DecodedVideo) and results[0].reader == "pyav"
    _check_decoded(results[0])
    assert results[1].reason == "decoder crashed (signal 11); PyAV retry: decoder crashed (signal 11)"
    assert isinstance(results[2], DecodedVideo)


def test_hang_is_killed_after_the_timeout(videos):
    paths = [videos[f"n{i}"] for i in range(5)]
    t0 = time.monotonic()
    with DecodePool(
        workers=2,
        timeout=2.0,
        timeout_per_second=0.0,
        retry_with_pyav=False,
        before_decode=FaultPlan({"n2.mp4": "hang"}),
    ) as pool:
        results = {r.job_id: r for r in pool.run(_jobs(paths))}
    elapsed = time.monotonic() - t0
    assert results[2] == DecodeFailure(2, paths[2], "timed out after 2 s")
    assert all(isinstance(results[i], DecodedVideo) for i in (0, 1, 3, 4))
    assert elapsed < 15
    assert not multiprocessing.active_children()


def test_python_errors_fail_the_file_and_keep_the_worker(videos):
    with DecodePool(workers=1, before_decode=FaultPlan({"n0.mp4": "raise"})) as pool:
        results = {r.job_id: r for r in pool.run(_jobs([videos["n0"], videos["n1"]]))}
        assert pool.started_workers == 1
    assert results[0].reason.startswith("decoder error: RuntimeError: injected fault")
    assert isinstance(results[1], DecodedVideo)


def test_workers_are_recycled(videos):
    paths = [videos[f"n{i}"] for i in range(6)]
    with DecodePool(workers=1, max_files_per_worker=2) as pool:
        results = list(pool.run(_jobs(paths)))
        assert pool.started_workers == 3
        # a second run reuses the pool
        more = list(pool.run(_jobs(paths[:2])))
    assert all(isinstance(r, DecodedVideo) for r in results + more)
    assert len(results) == 6 and len(more) == 2


def test_results_in_flight_are_bounded(videos):
    pulled = 0

    def jobs():
        nonlocal pulled
        for i in range(10):
            pulled += 1
            yield DecodeJob(i, videos[f"n{i % 6}"], 8, RES)

    yielded = 0
    with DecodePool(workers=2, prefetch=3) as pool:
        for _ in pool.run(jobs()):
            yielded += 1
            time.sleep(0.15)  # a slow consumer (the encoder): workers must not run ahead
            assert pulled - yielded <= 3
    assert yielded == 10


def test_stopping_early_kills_busy_workers_promptly(videos):
    pool = DecodePool(workers=2, timeout=60, before_decode=FaultPlan({"n5.mp4": "hang"}))
    gen = pool.run(_jobs([videos["n5"], videos["n0"], videos["n1"]]))
    first = next(gen)
    assert isinstance(first, DecodedVideo)
    t0 = time.monotonic()
    gen.close()
    pool.close()
    assert time.monotonic() - t0 < 5
    assert not multiprocessing.active_children()
    with pytest.raises(RuntimeError, match="closed"):
        list(pool.run([]))


def test_bad_corpus_through_the_pool(tmp_path):
    expected = make_bad_corpus(tmp_path)
    names = sorted(expected)
    with DecodePool(workers=2) as pool:
        results = {r.job_id: r for r in pool.run(_jobs([str(tmp_path / n) for n in names]))}
    assert len(results) == len(names)
    for i, name in enumerate(names):
        r, exp = results[i], expected[name]
        if isinstance(r, DecodeFailure):
            assert exp["ok"] is not True, (name, r.reason)
            assert "\n" not in r.reason and len(r.reason) <= 160
            assert exp["reason"] in r.reason.lower(), (name, r.reason)
        else:
            assert exp["ok"] is not False, name
            if exp["ok"]:
                assert r.info.num_frames == exp["num_frames"]
                numbers = frame_numbers(r.frames, exp["bits"])
                assert numbers == sorted(set(r.segments[0].frame_indices)), name


def test_fast_mode_through_the_pool(videos):
    with DecodePool(workers=1) as pool:
        (r,) = list(pool.run([DecodeJob(0, videos["long"], 8, RES, sampling=SamplingConfig(), fast=True)]))
    assert isinstance(r, DecodedVideo)
    keys = set(range(0, 200, 30))
    for rows in r.clip_index:
        assert set(frame_numbers(r.frames[rows], BITS)) <= keys


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is as good as gone
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "sigkill"])
def test_stopping_the_parent_leaves_no_worker_behind(videos, tmp_path, sig):
    # one worker hangs in "native" code for good; Ctrl-C must stop the pool promptly, and a
    # SIGKILLed parent (the crash-safety scenario) must not leave the hung worker running
    script = tmp_path / "run_pool.py"
    script.write_text(
        textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})
        from faults import FaultPlan
        from vidsearch.media.jobs import DecodeJob
        from vidsearch.media.pool import DecodePool
        if __name__ == "__main__":
            with DecodePool(workers=2, timeout=600, before_decode=FaultPlan({{"n4.mp4": "hang"}})) as pool:
                jobs = [DecodeJob(0, {videos["n0"]!r}, 8, 32), DecodeJob(1, {videos["n4"]!r}, 8, 32)]
                for r in pool.run(jobs):
                    pids = [w.proc.pid for w in pool._pool]
                    print("PIDS", *pids, flush=True)
    """)
    )
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=str(Path(__file__).parents[1]),
        preexec_fn=default_sigint,
    )
    line = proc.stdout.readline()
    assert line.startswith("PIDS"), line
    pids = [int(p) for p in line.split()[1:]]
    time.sleep(0.5)
    proc.send_signal(sig)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("the pool did not stop")
    assert proc.returncode != 0
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in pids if _alive(p)], "decoding workers outlived their parent"


def test_fault_plans_parse_and_reject_bad_specs():
    assert FaultPlan.parse("crash:bad_one, hang:/videos/a:b.mp4,") == FaultPlan(
        {"bad_one": "crash", "/videos/a:b.mp4": "hang"}
    )
    assert not FaultPlan.parse("") and not FaultPlan()
    assert FaultPlan.from_env({FAULT_ENV: "exit:x"}) == FaultPlan({"x": "exit"})
    assert FaultPlan.from_env({}) == FaultPlan()
    with pytest.raises(ValueError, match="unknown fault"):
        FaultPlan({"x": "explode"})
    with pytest.raises(ValueError, match="kind"):
        FaultPlan.parse("crash")


def test_decode_job_in_process_obeys_its_fault_plan(videos):
    r = decode_job(DecodeJob(3, videos["n0"], 8, RES), before_decode=FaultPlan({"n0.mp4": "raise"}))
    assert isinstance(r, DecodeFailure) and r.reason.startswith("decoder error: RuntimeError: injected fault")
    assert isinstance(
        decode_job(DecodeJob(4, videos["n1"], 8, RES), before_decode=FaultPlan({"n0.mp4": "raise"})), DecodedVideo
    )
