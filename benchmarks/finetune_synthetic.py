"""Proof that fine-tuning learns and generalises: train a tiny ViCLIP from scratch on a randomised
family of synthetic clips, then measure it on generator settings it never saw, with the normal
`vidsearch index` and `vidsearch bench retrieval` commands.

Steps (every one a normal command or library call a user could run):

1. :func:`vidsearch.testing.synthetic.make_split` writes ``--train`` captioned clips of the training
   setting (``family``: frame size, length, shape, object size, speed, background, noise,
   compression and caption wording drawn per clip), a validation split of it, and one test split
   of 80 clips with distinct captions per setting in ``--settings`` (each its own seed).
2. ``vidsearch finetune --model-config tiny.json ...`` trains from random init with the recipe of
   docs/finetune.md (``FAMILY_CONFIG``/``FAMILY_RECIPE``) on ``--threads`` threads (default 1), keeping
   the best validation epoch; its per-epoch JSON lines give the validation curve.
3. For each setting: ``vidsearch index SPLIT --library LIB --model model.pth`` and
   ``vidsearch bench retrieval ... --save-similarity S.npy``: text->video R@1, and from the saved
   caption x video matrix the direction pair accuracy (for two clips of the same colour and shape
   moving in opposite directions, both must score their own caption above the other's; a model
   blind to frame order gets 0.25).

Prints a calibration of the machine first (fp32 matmul GFLOP/s on the training thread count), then
the training wall and CPU time, the validation curve and a table over the settings. Exit code 0
when every held-out setting reaches R@1 >= 0.6 and pair accuracy >= 0.9 and the training took at
most ``--budget`` CPU-minutes.

    python benchmarks/finetune_synthetic.py --work /tmp/ft-proof
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

from calibration import matmul_gflops

from vidsearch.testing.domains import HELDOUT_SETTINGS, SETTINGS
from vidsearch.testing.synthetic import (
    FAMILY_CONFIG,
    FAMILY_RECIPE,
    GENERATOR_VERSION,
    action_pairs,
    heldout_seed,
    make_split,
)

# The recipe: the tiny config and the flags for the randomised family (vidsearch.testing.synthetic,
# docs/finetune.md): time reversal with the reversal hinge and a larger temporal init.
RECIPE = [*FAMILY_RECIPE, "--cache-frames", "16"]
GOAL_R1, GOAL_PAIRS = 0.6, 0.9


def _run(args: list[str], log: Path, threads: int) -> tuple[float, float, str]:
    """Run `vidsearch ARGS` on ``threads`` threads; return (wall s, CPU s of the child, stdout)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    with open(log, "a") as err:
        proc = subprocess.run(
            [sys.executable, "-m", "vidsearch.cli", *args], stdout=subprocess.PIPE, stderr=err, text=True, env=env
        )
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        sys.exit(f"`vidsearch {' '.join(args[:2])}` failed with exit code {proc.returncode}; see {log}")
    return wall, cpu, proc.stdout


def pair_accuracy(sims_path: Path, annotations: Path) -> tuple[float, int]:
    """Share of direction pairs where both videos rank their own caption above the other's."""
    from vidsearch.bench.retrieval import load_similarity

    sims, rs = load_similarity(sims_path)
    records = json.loads(annotations.read_text())
    if [r["caption"] for r in records] != list(rs.captions):
        raise SystemExit(f"{sims_path}: caption order differs from {annotations}")
    pairs = action_pairs(records)
    ok = 0
    for i, j in pairs:
        vi, vj = rs.caption_video[i], rs.caption_video[j]
        ok += bool(sims[i, vi] > sims[j, vi] and sims[j, vj] > sims[i, vj])
    return ok / max(1, len(pairs)), len(pairs)


def make_data(data: Path, train: int, seed: int, setting: str, tests: list[str]) -> dict[str, Path]:
    """Write (or reuse) the training, validation and per-setting test splits; return their annotations."""
    splits = {"train": data / "train.json", "val": data / "val.json"}
    splits.update({t: data / f"test-{t}.json" for t in tests})
    stamp = data / "DONE.json"
    want = {"train": train, "seed": seed, "setting": setting, "generator": GENERATOR_VERSION}
    done = json.loads(stamp.read_text()) if stamp.exists() else {}
    if {k: done.get(k) for k in want} != want:
        shutil.rmtree(data, ignore_errors=True)
        done = dict(want, tests=[])
    if not splits["train"].exists():
        make_split(data, "train", train, seed=seed, setting=setting)
        make_split(data, "val", 80, seed=heldout_seed(seed), setting=setting, distinct=True)
    for t in tests:
        if t not in done["tests"]:
            # each test split its own seed stream: no clip repeats a training or validation clip
            k = 1 + list(SETTINGS).index(t)
            make_split(data, f"test-{t}", 80, seed=heldout_seed(seed, k), setting=t, distinct=True)
            done["tests"].append(t)
    stamp.write_text(json.dumps(done))
    return splits


def evaluate(model: str, split: Path, work: Path, log: Path, threads: int) -> dict[str, float]:
    """Index one test split and run `bench retrieval` on it; the figures of one table row."""
    name = split.stem
    lib, sims = work / f"library-{name}", work / f"{name}-sims.npy"
    shutil.rmtree(lib, ignore_errors=True)
    videos = split.with_suffix("")
    _run(["index", str(videos), "--library", str(lib), "--model", model, "--json"], log, threads)
    _, _, out = _run(
        [
            "bench",
            "retrieval",
            "--dataset",
            "json",
            "--annotations",
            str(split),
            "--videos",
            str(videos),
            "--model",
            model,
            "--library",
            str(lib),
            "--save-similarity",
            str(sims),
            "--json",
        ],
        log,
        threads,
    )
    m = json.loads(out)["metrics"]
    pacc, npairs = pair_accuracy(sims, split)
    return {
        "r1": m["t2v"]["R@1"] / 100,
        "r5": m["t2v"]["R@5"] / 100,
        "v2t_r1": m["v2t"]["R@1"] / 100,
        "pairs": pacc,
        "npairs": npairs,
        "count": m["t2v"]["count"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--work",
        type=Path,
        default=Path("/tmp/vidsearch-finetune-proof"),
        help="Working folder (data, run, libraries).",
    )
    ap.add_argument("--train", type=int, default=3000, help="Training clips.")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--setting", default="family", choices=list(SETTINGS), help="Generator setting of the training data."
    )
    ap.add_argument(
        "--settings",
        default=",".join(HELDOUT_SETTINGS),
        help=f"Held-out generator settings to test on (comma-separated; of {', '.join(SETTINGS)}).",
    )
    ap.add_argument("--threads", type=int, default=1, help="Torch threads for training and evaluation.")
    ap.add_argument("--budget", type=float, default=15.0, help="Training budget in CPU-minutes.")
    ap.add_argument("--fresh", action="store_true", help="Delete the previous run first (keeps the data).")
    ap.add_argument("extra", nargs="*", help="Extra `vidsearch finetune` flags after --, overriding the recipe.")
    args = ap.parse_args()
    held = [s for s in args.settings.split(",") if s]
    unknown = [s for s in held if s not in SETTINGS]
    if unknown:
        ap.error(f"unknown setting(s) {', '.join(unknown)}; choose from {', '.join(SETTINGS)}")
    tests = [args.setting, *[s for s in held if s != args.setting]]  # the training setting's own test split first

    work = args.work
    data, run, log = work / "data", work / "run", work / "log.txt"
    work.mkdir(parents=True, exist_ok=True)
    if args.fresh:
        shutil.rmtree(run, ignore_errors=True)
    gflops = matmul_gflops(args.threads, seconds=2.0)
    print(
        f"calibration: fp32 matmul {gflops:.1f} GFLOP/s on {args.threads} thread(s) "
        f"({os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f})",
        flush=True,
    )
    t0 = time.perf_counter()
    splits = make_data(data, args.train, args.seed, args.setting, tests)
    print(
        f"data: {args.train} {args.setting} training clips, 80 validation clips, 80 test clips per setting "
        f"({time.perf_counter() - t0:.0f} s to generate)",
        flush=True,
    )
    cfg = work / "tiny.json"
    cfg.write_text(json.dumps(FAMILY_CONFIG, indent=2))

    load0 = os.getloadavg()
    ft = [
        "finetune",
        "--annotations",
        str(splits["train"]),
        "--videos",
        str(data),
        "--out",
        str(run),
        "--model-config",
        str(cfg),
        "--seed",
        str(args.seed),
        "--val-annotations",
        str(splits["val"]),
        *RECIPE,
        *args.extra,
        "--resume",
        "--json",
    ]
    train_wall, train_cpu, out = _run(ft, log, args.threads)
    load1 = os.getloadavg()
    gflops_after = matmul_gflops(args.threads, seconds=2.0)
    lines = [json.loads(x) for x in out.splitlines() if x.strip()]
    summary = lines[-1]
    epochs = summary["epochs"]
    # a resumed run: the epochs an earlier invocation trained count towards the budget too
    ran_now = {x["epoch"] for x in lines if x.get("event") == "epoch"}
    earlier_cpu = sum(e["cpu_seconds"] for e in epochs if e["epoch"] not in ran_now)
    train_cpu += earlier_cpu

    print(f"model: {json.dumps(FAMILY_CONFIG)}")
    print(f"recipe: vidsearch finetune {' '.join(RECIPE + args.extra)}")
    print(
        f"training: {len(summary['epochs'])} epochs, {train_wall / 60:.1f} min wall, {train_cpu / 60:.1f} CPU-min on "
        f"{args.threads} thread(s) (load average {load0[0]:.1f} before, {load1[0]:.1f} after)"
        + (
            f"; includes {earlier_cpu / 60:.1f} CPU-min of {len(epochs) - len(ran_now)} epochs trained by an earlier "
            f"invocation (resumed)"
            if earlier_cpu
            else ""
        )
    )
    print(
        f"calibration after training: {gflops_after:.1f} GFLOP/s; the training CPU time is "
        f"{train_cpu * gflops / 1e3:.0f}-{train_cpu * gflops_after / 1e3:.0f} TFLOP of matmul at the calibrated rates"
    )
    print(
        "validation curve (epoch: t2v R@1 on the validation split):",
        " ".join(f"{e['epoch']}:{e['val']['t2v']['R@1']:.0f}" for e in epochs if e.get("val")),
    )
    print(
        f"selected: the {summary['selected']} epoch {summary['best_epoch'] or len(summary['epochs'])}"
        + (f", stopped early after epoch {summary['stopped_early']}" if summary["stopped_early"] else "")
    )

    rows = {t: evaluate(summary["model"], splits[t], work, log, args.threads) for t in tests}
    print()
    print("| setting | differs from training | t2v R@1 | R@5 | v2t R@1 | pair accuracy | goal |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    met = []
    for t, r in rows.items():
        heldout = t != args.setting
        ok = r["r1"] >= GOAL_R1 and r["pairs"] >= GOAL_PAIRS
        if heldout:
            met.append(ok)
        print(
            f"| `{t}` | {'yes' if heldout else 'no (unseen clips)'} | {r['r1']:.3f} | {r['r5']:.3f} | {r['v2t_r1']:.3f} "
            f"| {r['pairs']:.3f} ({r['npairs']} pairs) | {('met' if ok else 'not met') if heldout else '-'} |"
        )
    in_budget = train_cpu <= args.budget * 60
    print()
    print(
        f"result: {'PASS' if all(met) and met and in_budget else 'FAIL'}: goal (R@1 >= {GOAL_R1}, pairs >= {GOAL_PAIRS}) met "
        f"on {sum(met)} of {len(met)} held-out settings; training {train_cpu / 60:.1f} CPU-min "
        f"{'within' if in_budget else 'OVER'} the {args.budget:.0f} CPU-min budget"
    )
    sys.exit(0 if all(met) and met and in_budget else 1)


if __name__ == "__main__":
    main()
