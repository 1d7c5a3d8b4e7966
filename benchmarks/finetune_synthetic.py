"""Proof that fine-tuning learns: train a tiny ViCLIP from scratch on synthetic clips, then
measure it with the normal `vidsearch index` and `vidsearch bench retrieval` commands.

Steps (every one a normal command or library call a user could run):

1. :func:`vidsearch.train.synthetic.make_dataset` writes ``--train`` captioned training clips
   and a held-out split of 80 clips with 80 distinct captions (another seed: unseen clips).
2. ``vidsearch finetune --model-config tiny.json ...`` trains from random init (the recipe of
   docs/finetune.md).
3. ``vidsearch index HELDOUT --library LIB --model model.pth`` indexes the held-out clips.
4. ``vidsearch bench retrieval --dataset json ... --model model.pth --library LIB
   --save-similarity S.npy`` reports text->video R@1; the saved caption x video matrix gives the
   direction pair accuracy: for captions that differ only in direction (left/right, up/down),
   both videos must score their own caption above the other one (a model blind to frame
   order gets 0.25).

Prints the figures, the training wall and CPU time, and the load average (other processes
on the machine slow the wall time down; CPU time is the steadier measure). Exit code 0 when
R@1 >= 0.5, pair accuracy >= 0.8 and the training wall time is within ``--budget`` minutes.

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

from vidsearch.train.synthetic import TINY_CONFIG, TINY_RECIPE, make_dataset

# The recipe: the recommended tiny config and flags (vidsearch.train.synthetic, docs/finetune.md),
# validated each epoch on 80 clips held out of the training split.
RECIPE = [*TINY_RECIPE, "--val-videos", "80", "--cache-frames", "16"]


def _run(args: list[str], log: Path) -> tuple[float, float, str]:
    """Run `vidsearch ARGS`; return (wall s, CPU s of the child, stdout). Stderr goes to ``log``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    with open(log, "a") as err:
        proc = subprocess.run([sys.executable, "-m", "vidsearch.cli", *args], stdout=subprocess.PIPE, stderr=err, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        sys.exit(f"`vidsearch {' '.join(args[:2])}` failed with exit code {proc.returncode}; see {log}")
    return wall, cpu, proc.stdout


def pair_accuracy(sims_path: Path) -> tuple[float, int]:
    """Share of direction pairs where both videos rank their own caption above the other's."""
    from vidsearch.bench.retrieval import load_similarity
    from vidsearch.train.synthetic import direction_pairs

    sims, rs = load_similarity(sims_path)
    pairs = direction_pairs(rs.captions)
    ok = 0
    for i, j in pairs:
        vi, vj = rs.caption_video[i], rs.caption_video[j]
        ok += bool(sims[i, vi] > sims[j, vi] and sims[j, vj] > sims[i, vj])
    return ok / max(1, len(pairs)), len(pairs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/vidsearch-finetune-proof"), help="Working folder (data, run, library).")
    ap.add_argument("--train", type=int, default=3000, help="Training clips.")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--budget", type=float, default=15.0, help="Training wall-time budget in minutes.")
    ap.add_argument("--fresh", action="store_true", help="Delete the previous run and library first (keeps the data).")
    ap.add_argument("extra", nargs="*", help="Extra `vidsearch finetune` flags after --, overriding the recipe.")
    args = ap.parse_args()

    work = args.work
    data, run, lib = work / "data", work / "run", work / "library"
    log = work / "log.txt"
    work.mkdir(parents=True, exist_ok=True)
    if args.fresh:
        shutil.rmtree(run, ignore_errors=True)
        shutil.rmtree(lib, ignore_errors=True)
    t0 = time.perf_counter()
    if not (data / "heldout.json").exists():
        make_dataset(data, train=args.train, heldout=80, seed=args.seed)
    gen_s = time.perf_counter() - t0
    cfg = work / "tiny.json"
    cfg.write_text(json.dumps(TINY_CONFIG, indent=2))

    load0 = os.getloadavg()
    ft = ["finetune", "--annotations", str(data / "train.json"), "--videos", str(data / "train"), "--out", str(run),
          "--model-config", str(cfg), "--seed", str(args.seed), *RECIPE, *args.extra, "--resume", "--json"]
    train_wall, train_cpu, out = _run(ft, log)
    load1 = os.getloadavg()
    summary = json.loads(out)
    model = summary["model"]

    _run(["index", str(data / "heldout"), "--library", str(lib), "--model", model, "--json"], log)
    sims = work / "heldout-sims.npy"
    _, _, out = _run(["bench", "retrieval", "--dataset", "json", "--annotations", str(data / "heldout.json"),
                      "--videos", str(data / "heldout"), "--model", model, "--library", str(lib),
                      "--save-similarity", str(sims), "--json"], log)
    metrics = json.loads(out)["metrics"]
    r1 = metrics["t2v"]["R@1"] / 100.0
    pacc, npairs = pair_accuracy(sims)

    epochs = summary["epochs"]
    print(f"data: {args.train} training clips + 80 held-out clips with distinct captions ({gen_s:.0f} s to generate)")
    print(f"model: {json.dumps(TINY_CONFIG)}")
    print(f"recipe: vidsearch finetune {' '.join(RECIPE + args.extra)}")
    print(f"training: {len(epochs)} epochs, {train_wall / 60:.1f} min wall, {train_cpu / 60:.1f} min CPU "
          f"(load average {load0[0]:.1f} before, {load1[0]:.1f} after, on {os.cpu_count()} cores)")
    if epochs and epochs[-1].get("val"):
        v = epochs[-1]["val"]["t2v"]
        print(f"validation (training-time split, {v['count']} captions): t2v R@1 {v['R@1']:.1f}%")
    print(f"bench retrieval on held-out: t2v R@1 {r1:.3f}  R@5 {metrics['t2v']['R@5'] / 100:.3f}  "
          f"v2t R@1 {metrics['v2t']['R@1'] / 100:.3f}  ({metrics['t2v']['count']} captions)")
    print(f"direction pair accuracy: {pacc:.3f} over {npairs} pairs (frame-order-blind: 0.25)")
    ok = r1 >= 0.5 and pacc >= 0.8
    print(f"result: {'PASS' if ok else 'FAIL'} (needs R@1 >= 0.5 and pair accuracy >= 0.8); "
          f"training wall time {'within' if train_wall <= args.budget * 60 else 'OVER'} the {args.budget:.0f} min budget")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
