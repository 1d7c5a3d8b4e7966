"""Proof of spatio-temporal localization on synthetic data: frame-mAP of `bench ava --boxes gt`.

    python benchmarks/actors_synthetic.py [--work DIR] [--videos 40] [--model CKPT]

Data: :func:`vidsearch.testing.synthetic_actors.make_actor_dataset` writes videos with two or three
shapes moving in different directions at the same time, each with its ground-truth box track,
as an AVA-format CSV (keyframes every second, class = direction) with a 4-class label map.

Model: a tiny ViCLIP trained from scratch by ``vidsearch finetune`` on the ``default`` synthetic
generator with the recipe of that setting's proof (``DEFAULT_SETTING_CONFIG``/``DEFAULT_SETTING_RECIPE``
of :mod:`vidsearch.testing.synthetic`, the same run as benchmarks/enrich_synthetic.py), unless
``--model`` gives a checkpoint.

Figure: ``vidsearch bench ava --boxes gt`` frame-mAP at IoU 0.5 over the four direction classes,
prompts ensembled over the 20 colour x shape combinations. Every keyframe holds several
directions, so a model that ignores the box is at chance. Target: >= 0.8. Exit code 0 when met.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

TARGET = 0.8


def _vidsearch(args: list[str], log: Path, env: dict[str, str] | None = None) -> str:
    with open(log, "a") as err:
        proc = subprocess.run(
            [sys.executable, "-m", "vidsearch.cli", *args], stdout=subprocess.PIPE, stderr=err, text=True, env=env
        )
    if proc.returncode != 0:
        sys.exit(f"`vidsearch {' '.join(args[:2])}` failed with exit code {proc.returncode}; see {log}")
    return proc.stdout


def train_model(work: Path, args: argparse.Namespace, log: Path) -> Path:
    """The tiny ViCLIP trained with the recommended recipe (reused when already there)."""
    from vidsearch.testing.synthetic import DEFAULT_SETTING_CONFIG, DEFAULT_SETTING_RECIPE, make_dataset

    data = work / "data"
    if not (data / "heldout.json").exists():
        make_dataset(data, train=args.train, heldout=80, seed=args.seed)
    out = work / "model"
    if (out / "model.pth").exists():
        return out / "model.pth"
    cfg = work / "tiny.json"
    cfg.write_text(json.dumps(DEFAULT_SETTING_CONFIG, indent=2))
    cmd = [
        "finetune",
        "--annotations",
        str(data / "train.json"),
        "--videos",
        str(data / "train"),
        "--out",
        str(out),
        "--model-config",
        str(cfg),
        "--seed",
        str(args.seed),
        *DEFAULT_SETTING_RECIPE,
        "--val-videos",
        "80",
        "--cache-frames",
        "16",
        "--device",
        args.device,
        "--resume",
        "--json",
    ]
    print(f"training: vidsearch {' '.join(cmd)}", flush=True)
    t0 = time.perf_counter()
    out = _vidsearch(cmd, log, {**os.environ, "OMP_NUM_THREADS": str(args.threads)})
    summary = json.loads(out.strip().splitlines()[-1])  # JSON lines: the epochs, then the "done" summary
    print(f"trained {len(summary['epochs'])} epochs in {(time.perf_counter() - t0) / 60:.1f} min", flush=True)
    return Path(summary["model"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--work", type=Path, default=Path("/tmp/vidsearch-actors-synthetic"), help="data, model and results"
    )
    ap.add_argument("--model", type=Path, default=None, help="use this checkpoint instead of training one")
    ap.add_argument("--videos", type=int, default=40, help="actor videos to evaluate on")
    ap.add_argument("--train", type=int, default=3000, help="training clips")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads for training")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    from vidsearch.testing.synthetic_actors import make_actor_dataset

    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    log = work / "log.txt"
    model = args.model or train_model(work, args, log)
    ava = work / f"ava-{args.videos}"
    if not (ava / "annotations.csv").exists():
        make_actor_dataset(ava, videos=args.videos, seed=args.seed + 7)
    t0 = time.perf_counter()
    out = _vidsearch(
        [
            "bench",
            "ava",
            "--annotations",
            str(ava / "annotations.csv"),
            "--videos",
            str(ava / "videos"),
            "--labels",
            str(ava / "directions.pbtxt"),
            "--templates",
            str(ava / "templates.txt"),
            "--boxes",
            "gt",
            # the crops frame a shape as the training clips do: ~10 % context, decoded at the video's own size
            "--margin",
            "0.1",
            "--detect-size",
            "160",
            "--model",
            str(model),
            "--device",
            args.device,
            "--out",
            str(work / "ava-results.json"),
            "--json",
        ],
        log,
    )
    m = json.loads(out)["metrics"]
    print(
        f"data: {m['videos']} videos with 2-3 shapes moving in different directions, {m['keyframes']} keyframes, {m['detections']} ground-truth boxes"
    )
    print(f"model: {model}")
    print("per class AP@0.5: " + ", ".join(f"{k} {v:.3f}" for k, v in m["ap"].items() if v is not None))
    print(
        f"bench ava --boxes gt: frame-mAP {m['frame_mAP']:.3f} over {m['classes_with_positives']} direction classes "
        f"({time.perf_counter() - t0:.0f} s; a box-blind model is at chance)"
    )
    ok = m["frame_mAP"] is not None and m["frame_mAP"] >= TARGET
    print(f"result: {'PASS' if ok else 'FAIL'} (target frame-mAP >= {TARGET})")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
