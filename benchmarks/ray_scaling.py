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
    warm      clips / (wall - time to the first committed video): actor start-up, model
              loading and the preflight excluded (results reach the driver in bursts, so a
              rate between first and last result would overstate Ray)

and, for the Ray runs, the CPU seconds the driver and the Ray head used meanwhile (on a real
cluster they run on the head machine; here they take time from the two stand-in cores) and those
of each stand-in's raylet and workers (a stand-in far below 100 % of its core is waiting). Then the
speedups Ray-2 / Ray-1 (goal >= 1.6x) and Ray-1 / local (goal >= 0.9) on both rates, and the
machine's fp32 matmul GFLOP/s (to read the numbers against). Before the runs it measures this
host's parallel ceiling: the throughput of two pinned 1-thread matmul processes at once over one
alone (below 2 when the two "cores" are hyper-threads of one, or share memory bandwidth with
other guests); Ray-2 / Ray-1 cannot beat it here. On a GPU machine it adds
Ray-1 with 1 GPU per encoder against Ray-2 with 0.5 GPU each.

Usage: python benchmarks/ray_scaling.py [--videos 48] [--seconds 20]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
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

MODEL = dict(input_resolution=112, patch_size=16, vision_width=192, vision_layers=4, vision_heads=3,
             embed_dim=128, num_frames=8, text_width=128, text_layers=2, text_heads=2)


class Clock:
    """A progress sink that notes when each video finished."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def start(self, total: int) -> None:
        """Nothing to draw."""

    def advance(self, path: str, ok: bool) -> None:
        """One video committed (or failed)."""
        self.times.append(time.perf_counter())


def measure(name: str, run, lib: Path, watch=None) -> dict:
    """Index ``lib`` with ``run`` and print one row.

    ``watch()`` names groups of pids (the driver and the Ray head; each stand-in's raylet and its
    workers) whose CPU seconds during the run are printed too. It is asked again at the end, so
    processes started meanwhile count from zero; ones that exited before the end are missed.
    """
    clock = Clock()
    before = {pid: _cpu_seconds(pid) for pids in (watch() if watch else {}).values() for pid in pids}
    t0 = time.perf_counter()
    with Library.open(lib, create=True) as library:
        report = run(library, clock)
    wall = time.perf_counter() - t0
    cpu = {group: sum(_cpu_seconds(pid) - before.get(pid, 0.0) for pid in pids) for group, pids in (watch() if watch else {}).items()}
    clips = report.segments
    first = clock.times[0] - t0 if clock.times else float("nan")
    warm = clips / (wall - first)
    row = {"name": name, "clips": clips, "wall": wall, "wall_rate": clips / wall, "warm": warm, "stages": report.stage_seconds, "cpu": cpu}
    busy = {k: round(v, 1) for k, v in report.stage_seconds.items()}
    used = "".join(f"; {group} {sec:.1f} CPU-s ({100 * sec / wall:.0f}% of a core)" for group, sec in cpu.items())
    print(f"{name:8s} {clips} clips in {wall:6.1f}s (first after {first:5.1f}s): wall {row['wall_rate']:6.2f} clips/s, "
          f"warm {warm:6.2f} clips/s  stages {busy}{used}", flush=True)
    return row


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


def _children(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (from /proc; Ray's workers are the raylet's children)."""
    parent: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parent[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        out += kids
        todo += kids
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
    ap.add_argument("--videos", type=int, default=48)
    ap.add_argument("--seconds", type=float, default=20.0, help="per video (over 12 s: 8 s windows every 4 s)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--videos-per-batch", type=int, default=2, help="decoded videos an encode actor takes per call (RayOptions.videos_per_batch)")
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

    print(f"# {os.cpu_count()} cpus, load avg {os.getloadavg()[0]:.1f}, fp32 matmul {matmul_gflops():.0f} GFLOP/s, ray {ray.__version__}, "
          f"{'each stand-in machine pinned to one core' if pin else 'not pinned: every process may use every core'}", flush=True)
    ceiling = parallel_ceiling(cores[:2]) if pin else None
    if ceiling is not None:
        print(f"# two pinned 1-thread matmul processes run at {ceiling:.2f}x the throughput of one: the ceiling of "
              f"ray-2 / ray-1 on this host before any Ray overhead", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder = tmp / "videos"
        for i in range(args.videos):
            videogen.write_video(folder / f"v{i:03d}.mp4", seconds=args.seconds, fps=15, size=(320, 240), gop=30,
                                 pattern="moving_square" if i % 2 else "noise", color=(40 + 10 * i, 120, 200))
        torch.manual_seed(0)
        ckpt = save_checkpoint(ViCLIP(ViCLIPConfig(**MODEL)), tmp / "model.pth", ViCLIPConfig(**MODEL))
        opts = IndexOptions(model=str(ckpt), device="cpu", workers=1, batch_size=args.batch_size)
        if pin:  # one core, one thread, its decode worker too (it inherits the pin)
            threads = torch.get_num_threads()
            os.sched_setaffinity(0, {cores[0]})
            torch.set_num_threads(1)
        rows = [measure("local", lambda lib, clock: index_folder(lib, folder, opts, progress=clock), tmp / "lib-local")]
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
                ro = RayOptions(address=cluster.address, decode_workers=workers, encode_workers=workers,
                                decode_cpus=0.5, encode_cpus=0.5, gpus_per_encoder=gpus, videos_per_batch=args.videos_per_batch)
                return lambda lib, clock: index_folder_ray(lib, folder, opts, ro, progress=clock)

            def watch() -> dict[str, list[int]]:
                head = [i.process.pid for procs in cluster.head_node.all_processes.values() for i in procs]
                groups = {"driver+head": [os.getpid(), *head, *(c for h in head for c in _children(h))]}
                for i, raylet in enumerate(raylets):
                    groups[f"stand-in {i} raylet"] = [raylet]
                    groups[f"stand-in {i} workers"] = _children(raylet)
                return groups

            rows.append(measure("ray-1", ray_run(1, 0.0), tmp / "lib-ray1", watch))
            add_stand_in()
            rows.append(measure("ray-2", ray_run(2, 0.0), tmp / "lib-ray2", watch))
            if torch.cuda.is_available():
                rows.append(measure("ray-1gpu", ray_run(1, 1.0), tmp / "lib-gpu1"))
                rows.append(measure("ray-2x.5", ray_run(2, 0.5), tmp / "lib-gpu2"))
        finally:
            ray.shutdown()
            cluster.shutdown()
    local, r1, r2 = rows[:3]
    s21, s1l = r2["wall_rate"] / r1["wall_rate"], r1["wall_rate"] / local["wall_rate"]
    print(f"\nspeedup ray-2 / ray-1: {s21:.2f}x wall, {r2['warm'] / r1['warm']:.2f}x warm  goal >= 1.6 -> {'MET' if s21 >= 1.6 else 'not met'}")
    print(f"ray-1 / local:         {s1l:.2f} wall, {r1['warm'] / local['warm']:.2f} warm   goal >= 0.9 -> {'MET' if s1l >= 0.9 else 'not met'}")
    if len(rows) == 5:
        print(f"0.5 GPU x2 / 1 GPU x1: {rows[4]['wall_rate'] / rows[3]['wall_rate']:.2f}x wall")
    print(f"# load avg at the end {os.getloadavg()[0]:.1f} (a shared machine: other jobs take cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
