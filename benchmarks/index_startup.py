"""The fixed start-up tax of `vidsearch index`, measured from a cold shell (issue 16, part 3).

Runs the real command line in fresh processes and prints wall time, CPU time (user + sys of
the command and the children it waited for) and whether torch was imported
(``python -X importtime``), against the goals:

* empty folder: < 1 s, no torch;
* offline machine with nothing cached (``viclip-b16``, empty Hugging Face cache): the one-line
  error within 3 s;
* no-op re-run over 10,000 unchanged files: < 2 s, no torch, no decode workers. The library is
  filled through the real index runner and commit stage with a stand-in decode and encode
  stage (the 10,000 files are not videos: nothing decodes them, neither then nor in the re-run);
* 4 short H.264 clips (3.5 s, 112 px) indexed with the tiny model, end to end: < 10 s for the
  first (the whole run's time is printed, an upper bound of the first file's).

On a shared machine wall time includes other jobs' load; the CPU time and the load average
printed with it say how much. Usage: python benchmarks/index_startup.py [--files 10000]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def run_cli(args: list[str], env: dict[str, str]) -> tuple[float, float, bool, int, str]:
    """(wall s, CPU s, torch imported, exit code, last stderr/stdout line) of one command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "vidsearch.cli", *args], env=env, capture_output=True, text=True
    )
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    torch = any(re.search(r"\|\s+torch$", line.rstrip()) for line in proc.stderr.splitlines())
    said = [
        ln for ln in (proc.stdout + "\n" + proc.stderr).splitlines() if ln.strip() and not ln.startswith("import time:")
    ]
    return wall, cpu, torch, proc.returncode, " ".join(said[-2:])[:160]


class _StandInDecoder:
    """Decode stage that reads nothing: one 1-frame 'video' per job (fills a library fast)."""

    def __enter__(self) -> _StandInDecoder:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def run(self, jobs):
        from vidsearch.media import SegmentPlan, VideoInfo
        from vidsearch.media.jobs import DecodedVideo

        for job in jobs:
            info = VideoInfo(job.path, 8, 8.0, 1.0, 64, 64)
            seg = SegmentPlan("video", 0.0, 1.0, tuple(range(job.num_frames)))
            frames = np.zeros((1, job.resolution, job.resolution, 3), np.uint8)
            yield DecodedVideo(
                job.job_id, job.path, info, [seg], frames, np.zeros((1, job.num_frames), np.int64), "pyav", 0.0
            )


class _StandInEncoder:
    """The tiny model's space key and shape, random unit vectors instead of the model."""

    antialias = False

    def __init__(self, key: str, dim: int, spec: dict) -> None:
        self.key, self.embed_dim, self.spec = key, dim, spec
        self.num_frames, self.resolution = 8, 64
        self.rng = np.random.default_rng(0)

    def encode_video(self, clips: np.ndarray) -> np.ndarray:
        x = self.rng.standard_normal((len(clips), self.embed_dim)).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)


def fill_library(lib: Path, folder: Path, ckpt: Path, n: int) -> float:
    """Write ``n`` small files and index them through the real runner with stand-in stages."""
    from vidsearch.indexer.pipeline import IndexOptions, Stages, index_folder
    from vidsearch.models import model_key
    from vidsearch.store.library import Library

    rng = np.random.default_rng(1)
    for i in range(n):
        d = folder / f"d{i // 100:03d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"clip{i:05d}.mp4").write_bytes(rng.bytes(2048))
    enc = _StandInEncoder(model_key(str(ckpt)), 32, {"model": str(ckpt), "checkpoint": str(ckpt), "config": None})
    t0 = time.perf_counter()
    with Library.open(lib, create=True) as library:
        report = index_folder(
            library,
            folder,
            IndexOptions(model=str(ckpt), batch_size=256),
            encoder=enc,
            stages=Stages(decode=lambda options: _StandInDecoder()),
        )
    assert report.added == n, report
    return time.perf_counter() - t0


@contextmanager
def _goal(name: str, limit: float):
    out: dict = {}
    yield out
    wall, cpu, torch, code, said = out["r"]
    met = "met" if wall < limit else "NOT met"
    print(
        f"{name:<34} {wall:6.2f} s wall  {cpu:6.2f} s CPU  torch {'imported' if torch else 'not imported'}  "
        f"exit {code}  goal < {limit:g} s: {met}"
    )
    print(f"{'':<34} says: {said}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=10_000, help="files of the no-op re-run")
    args = ap.parse_args()
    from conftest import make_tiny_checkpoint

    from vidsearch.testing.synthetic import make_split

    print(f"load average before: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(prefix="vidsearch-startup-") as tmp:
        tmp = Path(tmp)
        env = {
            **os.environ,
            "VIDSEARCH_CACHE_DIR": str(tmp / "cache"),
            "HF_HOME": str(tmp / "hf"),
            "PYTHONPATH": str(ROOT),
        }
        env.pop("VIDSEARCH_CHECKPOINT", None)
        os.environ.update({k: env[k] for k in ("VIDSEARCH_CACHE_DIR", "HF_HOME")})
        ckpt = make_tiny_checkpoint(tmp / "tiny.pth")
        (tmp / "empty").mkdir()

        with _goal("empty folder", 1.0) as g:
            g["r"] = run_cli(["index", str(tmp / "empty"), "--library", str(tmp / "lib-empty")], env)
        with _goal("offline, nothing cached (b16)", 3.0) as g:
            make_split(tmp / "four", "train", 4, seed=0, size=112, num_frames=28, fps=8)
            g["r"] = run_cli(["index", str(tmp / "four" / "train"), "--library", str(tmp / "lib-off")], env)

        fill = fill_library(tmp / "lib-big", tmp / "big", ckpt, args.files)
        print(f"(filled a library with {args.files} files through the runner in {fill:.1f} s)")
        with _goal(f"no-op re-run, {args.files} unchanged", 2.0) as g:
            g["r"] = run_cli(["index", str(tmp / "big"), "--library", str(tmp / "lib-big"), "--model", str(ckpt)], env)

        with _goal("4 short clips, tiny model (all 4)", 10.0) as g:
            g["r"] = run_cli(
                ["index", str(tmp / "four" / "train"), "--library", str(tmp / "lib-four"), "--model", str(ckpt)], env
            )
    print(f"load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
