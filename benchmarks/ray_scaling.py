"""Ray scaling: the same corpus through a local run, Ray with 1 worker per stage, and Ray with 2.

The Ray runs use ``ray.cluster_utils.Cluster`` with two 1-CPU raylets on this machine as
stand-ins for two machines (a head with no CPUs, so nothing runs there); the second joins after the
Ray-1 run, so Ray-1 has one machine (with both present Ray spreads its two actors over both). A stand-in machine is
one core: each raylet and every worker it starts are pinned to a core of their own
(``sched_setaffinity``, inherited by the workers) and run one thread, and the local run is pinned
to one core the same way; otherwise both "machines" would share all the cores and Ray-1 alone
would already use the whole computer (``--no-pin`` measures that). Each decode and encode
actor reserves half a CPU, so "Ray-1" (1 decode + 1 encode actor) fills its one raylet and
"Ray-2" (2 + 2) fills both. A random-weight ViCLIP of a middle size (112 px, 4 layers)
keeps encoding a real share of the work. Per run it prints:

    wall      clips / wall time of the whole index call (start-up included)
    steady    clips/s between the commit of the first tenth of the videos and the last commit:
              actor start-up, model loading and the preflight are over, and results that reach
              the driver in bursts (an encode call returns several videos) are not counted early

and the time to the first committed video (the start-up); for the Ray runs, the CPU seconds of
the driver and of the Ray head meanwhile (on a real cluster they run on the head machine; here
they take time from the two stand-in cores; sampled during the run, so actors that Ray Data stops
at the end still count), those of each stand-in's raylet and workers, and each core's busy share
from /proc/stat (a stand-in core below 100 % waited). Then the speedups Ray-2 / Ray-1 (goal >=
1.6x) and Ray-1 / local (goal >= 0.9) on both rates, and the machine's fp32 matmul GFLOP/s (to
read the numbers against). The start-up is a fixed cost of a run (Ray-1 ~20 s on a one-core
stand-in, a local run ~5 s), so the wall ratios depend on the corpus size; the steady ones do
not. Before the runs it measures this host's parallel ceiling: the throughput of two pinned
1-thread matmul processes at once over one alone (below 2 when the two "cores" are hyper-threads
of one, or share memory bandwidth with other guests); Ray-2 / Ray-1 cannot beat it here. On a GPU
machine it adds Ray-1 with 1 GPU per encoder against Ray-2 with 0.5 GPU each.

Usage: python benchmarks/ray_scaling.py [--videos 384] [--seconds 20]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import videogen  # noqa: E402
from calibration import matmul_gflops  # noqa: E402

from vidsearch.cluster.options import RayOptions  # noqa: E402
from vidsearch.cluster.ray_runner import index_folder_ray  # noqa: E402
from vidsearch.indexer.options import IndexOptions  # noqa: E402
from vidsearch.indexer.pipeline import index_folder  # noqa: E402
from vidsearch.models.viclip import ViCLIP, ViCLIPConfig  # noqa: E402
from vidsearch.models.weights import save_checkpoint  # noqa: E402
from vidsearch.store.library import Library  # noqa: E402

MODEL = dict(
    input_resolution=112,
    patch_size=16,
    vision_width=192,
    vision_layers=4,
    vision_heads=3,
    embed_dim=128,
    num_frames=8,
    text_width=128,
    text_layers=2,
    text_heads=2,
)


class Clock:
    """A progress sink that notes when each video finished."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def start(self, total: int) -> None:
        """Nothing to draw."""

    def advance(self, path: str, ok: bool) -> None:
        """One video committed (or failed)."""
        self.times.append(time.perf_counter())


class CpuWatch:
    """CPU seconds of named pid groups and of each core, over one run.

    ``groups()`` names groups of pids (the driver and the Ray head; each stand-in's raylet and its
    workers). A thread asks it every ``every`` seconds and keeps each pid's latest CPU time, so
    workers that exit before the end (Ray Data stops its actors when the dataset is done) still
    count up to their last sample; a process started meanwhile counts from zero. The cores'
    busy share comes from /proc/stat: on a pinned stand-in core it says whether that machine
    waited, whoever ran there.
    """

    def __init__(self, groups=None, every: float = 0.25) -> None:
        self.groups, self.every = groups, every
        self.start: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.members: dict[str, set[int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _sample(self, first: bool = False) -> None:
        for group, pids in (self.groups() if self.groups else {}).items():
            for pid in pids:
                sec = _cpu_seconds(pid)
                if first:
                    self.start[pid] = sec
                if sec > 0:
                    self.last[pid] = sec
                self.members.setdefault(group, set()).add(pid)

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            self._sample()

    def __enter__(self) -> CpuWatch:
        self._sample(first=True)
        self.cores0 = _core_times()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        self.cores1 = _core_times()

    def cpu(self) -> dict[str, float]:
        """CPU seconds per group during the run."""
        return {
            g: sum(self.last.get(p, 0.0) - self.start.get(p, 0.0) for p in pids) for g, pids in self.members.items()
        }

    def core_busy(self) -> dict[int, float]:
        """Busy share (0-1) of each core during the run."""
        out = {}
        for core, (busy1, total1) in self.cores1.items():
            busy0, total0 = self.cores0.get(core, (0, 0))
            out[core] = (busy1 - busy0) / max(1, total1 - total0)
        return out


def _core_times() -> dict[int, tuple[int, int]]:
    """(busy, total) jiffies of each core from /proc/stat (idle and iowait count as not busy)."""
    out = {}
    try:
        with open("/proc/stat") as f:
            for line in f:
                name, *vals = line.split()
                if name.startswith("cpu") and name[3:].isdigit():
                    v = [int(x) for x in vals]
                    out[int(name[3:])] = (sum(v) - v[3] - v[4], sum(v))
    except OSError:
        pass
    return out


def measure(name: str, run, lib: Path, groups=None, cores: list[int] | None = None) -> dict:
    """Index ``lib`` with ``run`` and print one row, with the CPU use of ``groups`` (see
    :class:`CpuWatch`) and the busy share of ``cores``."""
    clock = Clock()
    t0 = time.perf_counter()
    with CpuWatch(groups) as watch, Library.open(lib, create=True) as library:
        report = run(library, clock)
    wall = time.perf_counter() - t0
    cpu, busy_cores = watch.cpu(), watch.core_busy()
    clips = report.segments
    first = clock.times[0] - t0 if clock.times else float("nan")
    steady = _steady_rate(clock.times, clips)
    row = {
        "name": name,
        "clips": clips,
        "wall": wall,
        "wall_rate": clips / wall,
        "steady": steady,
        "stages": report.stage_seconds,
        "cpu": cpu,
    }
    busy = {k: round(v, 1) for k, v in report.stage_seconds.items()}
    used = "".join(f"; {group} {sec:.1f} CPU-s ({100 * sec / wall:.0f}% of a core)" for group, sec in cpu.items())
    used += "".join(f"; core {c} {100 * busy_cores.get(c, 0.0):.0f}% busy" for c in cores or [])
    print(
        f"{name:8s} {clips} clips in {wall:6.1f}s (first after {first:5.1f}s): wall {row['wall_rate']:6.2f} clips/s, "
        f"steady {steady:6.2f} clips/s  stages {busy}{used}",
        flush=True,
    )
    return row


def _steady_rate(times: list[float], clips: int) -> float:
    """Clips/s between the commit of the first tenth of the videos and the last commit.

    Start-up (actors, model loading, the preflight) is over by then, and results that reach the
    driver in bursts (an encode call returns several videos at once) are not counted before
    their time, as a rate from the very first commit would. Assumes videos of equal length.
    """
    n = len(times)
    k = max(1, n // 10)
    if n <= k or times[-1] <= times[k - 1]:
        return float("nan")
    return clips * (n - k) / n / (times[-1] - times[k - 1])


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process so far (its own threads, not its children); 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
    except (OSError, ValueError, IndexError):
        return 0.0


def _spin(core: int, seconds: float, out) -> None:
    """Child of :func:`parallel_ceiling`: one thread of fp32 matmul pinned to ``core``."""
    import torch

    os.sched_setaffinity(0, {core})
    torch.set_num_threads(1)
    out.put(matmul_gflops(1, n=512, seconds=seconds))


def parallel_ceiling(cores: list[int], seconds: float = 3.0) -> float:
    """Aggregate 1-thread matmul throughput of one process per core in ``cores`` (all at once), over
    one such process alone: the most two pinned stand-in machines can gain over one on this host
    (below 2 when the "cores" are hyper-threads or share a host's memory bandwidth with other guests)."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")

    def run(use: list[int]) -> float:
        q = ctx.Queue()
        procs = [ctx.Process(target=_spin, args=(c, seconds, q)) for c in use]
        for p in procs:
            p.start()
        rates = [q.get() for _ in procs]
        for p in procs:
            p.join()
        return sum(rates)

    return run(cores) / run(cores[:1])


def _parents() -> dict[int, int]:
    """Parent pid of every live process (one pass over /proc)."""
    parent: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parent[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    return parent


def _children(pid: int, parents: dict[int, int] | None = None) -> list[int]:
    """Every live descendant of ``pid`` (Ray's workers are the raylet's children), from
    ``parents`` (:func:`_parents`) when given: the CPU watch reads /proc once per sample, as a
    pass per group cost the driver's process a fifth of a core and inflated its CPU figure."""
    kids: dict[int, list[int]] = {}
    for child, parent in (parents if parents is not None else _parents()).items():
        kids.setdefault(parent, []).append(child)
    out, todo = [], [pid]
    while todo:
        found = kids.get(todo.pop(), [])
        out += found
        todo += found
    return out


def pin_tree(pid: int, core: int) -> None:
    """Pin ``pid`` and its descendants to ``core``; processes it starts later inherit the pin."""
    for p in (pid, *_children(pid)):
        try:
            os.sched_setaffinity(p, {core})
        except OSError:  # exited meanwhile
            pass


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=384, help="videos in the corpus (5 clips each at 20 s)")
    ap.add_argument("--seconds", type=float, default=20.0, help="per video (over 12 s: 8 s windows every 4 s)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument(
        "--videos-per-batch",
        type=int,
        default=2,
        help="decoded videos an encode actor takes per call (RayOptions.videos_per_batch)",
    )
    ap.add_argument("--no-pin", dest="pin", action="store_false", help="let every process use every core")
    args = ap.parse_args()
    pin = args.pin and hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) >= 2
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if pin:
        os.environ["OMP_NUM_THREADS"] = "1"  # inherited by the raylets' workers: one thread per core
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray
    import torch
    from ray.cluster_utils import Cluster

    print(
        f"# {os.cpu_count()} cpus, load avg {os.getloadavg()[0]:.1f}, fp32 matmul {matmul_gflops():.0f} GFLOP/s, ray {ray.__version__}, "
        f"{'each stand-in machine pinned to one core' if pin else 'not pinned: every process may use every core'}",
        flush=True,
    )
    ceiling = parallel_ceiling(cores[:2]) if pin else None
    if ceiling is not None:
        print(
            f"# two pinned 1-thread matmul processes run at {ceiling:.2f}x the throughput of one: the ceiling of "
            f"ray-2 / ray-1 on this host before any Ray overhead",
            flush=True,
        )
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder = tmp / "videos"
        for i in range(args.videos):
            videogen.write_video(
                folder / f"v{i:03d}.mp4",
                seconds=args.seconds,
                fps=15,
                size=(320, 240),
                gop=30,
                pattern="moving_square" if i % 2 else "noise",
                color=(40 + 10 * i, 120, 200),
            )
        torch.manual_seed(0)
        ckpt = save_checkpoint(ViCLIP(ViCLIPConfig(**MODEL)), tmp / "model.pth", ViCLIPConfig(**MODEL))
        opts = IndexOptions(model=str(ckpt), device="cpu", workers=1, batch_size=args.batch_size)
        if pin:  # one core, one thread, its decode worker too (it inherits the pin)
            threads = torch.get_num_threads()
            os.sched_setaffinity(0, {cores[0]})
            torch.set_num_threads(1)
        rows = [
            measure(
                "local",
                lambda lib, clock: index_folder(lib, folder, opts, progress=clock),
                tmp / "lib-local",
                cores=cores[:2],
            )
        ]
        if pin:
            os.sched_setaffinity(0, set(cores))
            torch.set_num_threads(threads)

        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
        raylets: list[int] = []

        def add_stand_in() -> None:
            """One more 1-CPU raylet, pinned to the next core."""
            node = cluster.add_node(num_cpus=1)
            raylets.append(node.all_processes["raylet"][0].process.pid)
            if pin:
                pin_tree(raylets[-1], cores[len(raylets) - 1])
            cluster.wait_for_nodes()

        # Ray-1 runs while the cluster has one stand-in machine: with two, Ray's scheduler spreads the
        # decode and the encode actor (half a CPU each) over both, and "Ray-1" would use two machines.
        add_stand_in()
        ray.init(address=cluster.address, log_to_driver=False)
        try:

            def ray_run(workers: int, gpus: float | None = None):
                ro = RayOptions(
                    address=cluster.address,
                    decode_workers=workers,
                    encode_workers=workers,
                    decode_cpus=0.5,
                    encode_cpus=0.5,
                    gpus_per_encoder=gpus,
                    videos_per_batch=args.videos_per_batch,
                )
                return lambda lib, clock: index_folder_ray(lib, folder, opts, ro, progress=clock)

            def watch() -> dict[str, list[int]]:
                tree = _parents()
                head = [i.process.pid for procs in cluster.head_node.all_processes.values() for i in procs]
                groups = {"driver": [os.getpid()], "head": [*head, *(c for h in head for c in _children(h, tree))]}
                for i, raylet in enumerate(raylets):
                    groups[f"stand-in {i} raylet"] = [raylet]
                    groups[f"stand-in {i} workers"] = _children(raylet, tree)
                return groups

            rows.append(measure("ray-1", ray_run(1, 0.0), tmp / "lib-ray1", watch, cores[:2]))
            add_stand_in()
            rows.append(measure("ray-2", ray_run(2, 0.0), tmp / "lib-ray2", watch, cores[:2]))
            if torch.cuda.is_available():
                rows.append(measure("ray-1gpu", ray_run(1, 1.0), tmp / "lib-gpu1"))
                rows.append(measure("ray-2x.5", ray_run(2, 0.5), tmp / "lib-gpu2"))
        finally:
            ray.shutdown()
            cluster.shutdown()
    local, r1, r2 = rows[:3]
    s21, s1l = r2["wall_rate"] / r1["wall_rate"], r1["wall_rate"] / local["wall_rate"]
    q21, q1l = r2["steady"] / r1["steady"], r1["steady"] / local["steady"]

    def verdict(wall: float, steady: float, goal: float) -> str:
        return " and ".join(
            f"{'MET' if v >= goal else 'not met'} on the {k} rate" for k, v in (("wall", wall), ("steady", steady))
        )

    print(f"\nspeedup ray-2 / ray-1: {s21:.2f}x wall, {q21:.2f}x steady  goal >= 1.6: {verdict(s21, q21, 1.6)}")
    print(f"ray-1 / local:         {s1l:.2f} wall, {q1l:.2f} steady   goal >= 0.9: {verdict(s1l, q1l, 0.9)}")
    if len(rows) == 5:
        print(f"0.5 GPU x2 / 1 GPU x1: {rows[4]['wall_rate'] / rows[3]['wall_rate']:.2f}x wall")
    print(f"# load avg at the end {os.getloadavg()[0]:.1f} (a shared machine: other jobs take cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
