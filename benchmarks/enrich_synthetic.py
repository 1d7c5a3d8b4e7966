"""Proof of the enrichment passes on synthetic videos, with a tiny ViCLIP trained on them.

    python benchmarks/enrich_synthetic.py [--work DIR] [--train 3000] [--model CKPT]

Data: :mod:`vidsearch.testing.synthetic` clips (a coloured shape moving left/right/up/down over a
texture; caption "a red circle moving left"): a training split, a held-out split and a
calibration split (80 clips each, distinct captions, other seeds), and sequence videos of three
different actions one after another.

Model: a tiny ViCLIP trained from scratch on the training split by ``vidsearch finetune`` with the
recipe of the ``default`` generator's proof (``DEFAULT_SETTING_CONFIG``/``DEFAULT_SETTING_RECIPE`` of
:mod:`vidsearch.testing.synthetic`), unless ``--model`` gives a checkpoint.

Figures (each through the code path users run, not a re-implementation):

1. motion recognition: the held-out clips are indexed into a library and labelled by
   ``enrich recognize`` (:func:`recognize_library`, from the stored embeddings) with the label
   set ``left/right/up/down``, prompts ensembled over the 20 colour x shape combinations;
   top-1 accuracy of the stored top label. Target > 80%.
2. unknown detection: label set = 4 colours (``--unknown-colour``, default white, is left out),
   prompts ensembled over shape x direction. Temperature and threshold are calibrated on the
   calibration split (:func:`calibrate_label_set`: NLL temperature, Youden threshold), which also
   relabels the library; AUROC of the stored known scores of held-out clips (known colours vs
   the left-out colour), and the share of each kept at the calibrated threshold. Target AUROC > 0.8.
3. localization: ``bench localization`` (:func:`run_localization`) over sequence videos of three
   different actions, querying the caption of one of them; R@1 at IoU 0.5. Target >= 80%.

Everything is cached under ``--work``: a second run reuses data, model and embeddings.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

# figure -> (comparison, target) from the issue: recognition and AUROC above, R@1 at least
TARGETS = {"motion_top1": (">", 80.0), "unknown_auroc": (">", 80.0), "localization_r1_iou05": (">=", 80.0)}


def passes(name: str, value: float) -> bool | None:
    """Whether a figure meets its target (None: no target)."""
    if name not in TARGETS:
        return None
    op, target = TARGETS[name]
    return value > target if op == ">" else value >= target


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--work", type=Path, default=Path("/tmp/vidsearch-enrich-synthetic"), help="data, model, library and caches"
    )
    p.add_argument("--model", type=Path, default=None, help="use this checkpoint instead of training one")
    p.add_argument("--train", type=int, default=3000, help="training clips")
    p.add_argument("--sequences", type=int, default=50, help="sequence videos for localization")
    p.add_argument("--window", type=float, default=None, help="localization window (s); default: automatic")
    p.add_argument("--unknown-colour", default="white", help="colour left out of the open-set label set")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--device", default="cpu")
    return p.parse_args()


def make_data(work: Path, n_train: int, seed: int) -> dict[str, Path]:
    import shutil

    from vidsearch.testing.synthetic import GENERATOR_VERSION, make_dataset, make_split

    data = work / "data"
    done = data / "DONE"
    stamp = f"generator {GENERATOR_VERSION} train {n_train} seed {seed}\n"
    if not done.exists() or done.read_text() != stamp:  # other settings, or an older generator's clips
        shutil.rmtree(data, ignore_errors=True)
        make_dataset(data, train=n_train, heldout=80, seed=seed)
        make_split(data, "calib", 80, seed=seed + 2_000_003, distinct=True)
        done.write_text(stamp)
    return {"root": data, "train": data / "train.json", "heldout": data / "heldout.json", "calib": data / "calib.json"}


def train_model(work: Path, data: dict[str, Path], args: argparse.Namespace) -> Path:
    """Train the recommended tiny ViCLIP with `vidsearch finetune` (the recipe of docs/finetune.md)."""
    import os
    import subprocess

    from vidsearch.testing.synthetic import DEFAULT_SETTING_CONFIG, DEFAULT_SETTING_RECIPE

    out = work / "model"
    final = out / "model.pth"
    if final.exists():
        print(f"model: reusing {final}")
        return final
    cfg_path = work / "tiny.json"
    cfg_path.write_text(json.dumps(DEFAULT_SETTING_CONFIG))
    cmd = [
        "finetune",
        "--annotations",
        str(data["train"]),
        "--videos",
        str(data["root"]),
        "--out",
        str(out),
        "--model-config",
        str(cfg_path),
        *DEFAULT_SETTING_RECIPE,
        "--val-annotations",
        str(data["heldout"]),
        "--seed",
        str(args.seed),
        "--device",
        args.device,
        "--resume",
    ]
    print(f"training a tiny ViCLIP on {args.train} clips: vidsearch {' '.join(cmd)}", flush=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "vidsearch.cli", *cmd], env=env)
    if proc.returncode != 0:
        sys.exit(f"vidsearch finetune failed with exit code {proc.returncode}")
    print(f"trained in {time.perf_counter() - t0:.0f} s", flush=True)
    return final


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def recognition_figures(work: Path, data: dict[str, Path], ckpt: Path, args: argparse.Namespace) -> dict[str, float]:
    from vidsearch.bench.openset import calibrate_label_set
    from vidsearch.bench.recognition import read_recognition_annotations
    from vidsearch.enrich.recognize import recognize_library
    from vidsearch.indexer.pipeline import IndexOptions, index_folder
    from vidsearch.metrics import auroc
    from vidsearch.store.labels import top_video_labels
    from vidsearch.store.library import Library
    from vidsearch.testing.synthetic import COLOURS, DIRECTIONS, SHAPES

    held = json.loads(data["heldout"].read_text())
    truth = {
        str((data["root"] / "heldout" / r["video"]).absolute()): r["caption"].split() for r in held
    }  # a colour shape moving dir
    known_colours = [c for c in COLOURS if c != args.unknown_colour]
    motions = write_lines(work / "motions.txt", list(DIRECTIONS))
    colours = write_lines(work / "colours.txt", known_colours)
    motion_templates = [f"a {c} {s} moving {{}}" for c in COLOURS for s in SHAPES]
    colour_templates = [f"a {{}} {s} moving {d}" for s in SHAPES for d in DIRECTIONS]

    with Library.open(work / "lib") as library:
        index_folder(library, data["root"] / "heldout", IndexOptions(model=str(ckpt), device=args.device, workers=1))

        def stored(label_file: Path) -> dict[str, tuple[str, float, bool]]:
            """path -> (top label, known score, unknown) of each whole-video segment."""
            with library.session() as s:
                return top_video_labels(s, str(label_file.resolve()))

        # 1. motion, 4 classes
        rep = recognize_library(library, motions, top=1, templates=motion_templates, device=args.device)
        got = stored(motions)
        motion_top1 = 100.0 * np.mean([got[p][0] == words[-1] for p, words in truth.items()])
        print(f"motion recognition: labelled {rep.labelled} clips from stored embeddings ({rep.seconds:.1f} s)")

        # 2. open set: calibrate on the calibration split, evaluate on the held-out one
        calib = json.loads(data["calib"].read_text())
        known_csv = write_lines(
            work / "calib_known.csv",
            ["video,label"]
            + [
                f"{r['video']},{r['caption'].split()[1]}"
                for r in calib
                if r["caption"].split()[1] != args.unknown_colour
            ],
        )
        unknown = [r["video"] for r in calib if r["caption"].split()[1] == args.unknown_colour]
        rec = read_recognition_annotations(known_csv, known_colours)
        rule, cal, _ = calibrate_label_set(
            library, colours, rec, data["root"] / "calib", unknown, data["root"] / "calib",
            device=args.device, bench_library=str(work / "bench"), templates=colour_templates, top=1,
        )  # fmt: skip
        got = stored(colours)
        is_unknown = {p: words[1] == args.unknown_colour for p, words in truth.items()}
        ks = np.array([got[p][1] for p in truth if not is_unknown[p]])
        us = np.array([got[p][1] for p in truth if is_unknown[p]])
        colour_top1 = 100.0 * np.mean([got[p][0] == words[1] for p, words in truth.items() if not is_unknown[p]])
        kept_known = 100.0 * np.mean([not got[p][2] for p in truth if not is_unknown[p]])
        kept_unknown = 100.0 * np.mean([not got[p][2] for p in truth if is_unknown[p]])
    print(
        f"open set: calibrated on {cal['known_videos']} known + {cal['unknown_videos']} unknown clips: "
        f"T={rule.temperature:.4f} ({cal['temperature_method']}), threshold {rule.threshold:.4f} ({cal['threshold_method']})"
    )
    return {
        "motion_top1": motion_top1,
        "colour_closed_top1": colour_top1,
        "unknown_auroc": 100.0 * auroc(ks, us),
        "known_kept": kept_known,
        "unknown_kept": kept_unknown,
        "held_out_known": float(len(ks)),
        "held_out_unknown": float(len(us)),
    }


def localization_figures(work: Path, ckpt: Path, args: argparse.Namespace) -> dict[str, float]:
    from vidsearch.bench.common import BenchOptions
    from vidsearch.bench.localization import read_localization_annotations, run_localization
    from vidsearch.enrich.localize import LocalizeConfig
    from vidsearch.testing.synthetic import all_actions, make_sequence_video

    seq = work / "sequences"
    seq.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([args.seed, 0x10C])
    actions = all_actions()
    lines = []
    for i in range(args.sequences):
        picked = [actions[j] for j in rng.choice(len(actions), size=3, replace=False)]
        path = seq / f"seq_{i:03d}.mp4"
        # seeds far from the training split's (seed, clip index) streams: no shared backgrounds
        spans = make_sequence_video(path, picked, seed=7_000_003 + 1000 * args.seed + i)
        q = int(rng.integers(0, 3))
        lines.append(f"{path.stem} {spans[q].start:.3f} {spans[q].end:.3f}##{spans[q].caption}")
    ann = write_lines(work / "sequences.txt", lines)
    run = run_localization(
        read_localization_annotations(ann), seq,
        BenchOptions(model=str(ckpt), device=args.device, library=str(work / "bench")),
        LocalizeConfig(window=args.window),
        annotations=str(ann),
    )  # fmt: skip
    m = run.results["metrics"]
    return {
        "localization_r1_iou03": m["R@1,IoU=0.3"],
        "localization_r1_iou05": m["R@1,IoU=0.5"],
        "localization_r1_iou07": m["R@1,IoU=0.7"],
        "localization_miou": m["mIoU"],
        "sequences": float(run.results["counts"]["queries"]),
    }


def main() -> int:
    args = parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    import torch

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    args.work.mkdir(parents=True, exist_ok=True)
    data = make_data(args.work, args.train, args.seed)
    ckpt = args.model or train_model(args.work, data, args)
    figures = recognition_figures(args.work, data, ckpt, args)
    figures.update(localization_figures(args.work, ckpt, args))
    print()
    print(f"{'figure':34s} {'value':>8s}  target")
    for name, value in figures.items():
        ok = passes(name, value)
        mark = "" if ok is None else f"{TARGETS[name][0]} {TARGETS[name][1]:.0f}  {'PASS' if ok else 'FAIL'}"
        print(f"{name:34s} {value:8.1f}  {mark}")
    print(f"\nmodel {ckpt}; {time.perf_counter() - t0:.0f} s")
    (args.work / "figures.json").write_text(json.dumps(figures, indent=2))
    return 0 if all(passes(k, figures[k]) for k in TARGETS) else 1


if __name__ == "__main__":
    sys.exit(main())
