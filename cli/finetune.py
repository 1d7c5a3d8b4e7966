"""`vidsearch finetune`: train or fine-tune ViCLIP on captioned videos (see docs/finetune.md)."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import typer

from vidsearch.cli.app import app
from vidsearch.cli.checks import check_number
from vidsearch.cli.common import JsonOption, TrainPrecisionOption, console, err_console
from vidsearch.cli.format import shown
from vidsearch.errors import InputError
from vidsearch.models.registry import precision_before_load


@app.command("finetune")
def finetune_command(
    annotations: Path = typer.Option(
        ...,
        "--annotations",
        help="Captions of the training videos (any format `bench retrieval` reads).",
        show_default=False,
    ),
    videos: Path = typer.Option(
        ..., "--videos", help="Folder with the videos (searched recursively).", show_default=False
    ),
    out: Path = typer.Option(
        ...,
        "--out",
        help="Output folder: epoch-NNN.pth checkpoints, model.pth (+ .json configs), train_state.pt, frame cache.",
        show_default=False,
    ),
    dataset: str = typer.Option(
        "json", "--dataset", help="Annotation format: msrvtt, vatex, msvd, didemo, activitynet or json."
    ),
    model: str | None = typer.Option(
        None, "--model", "-m", help="Start from a preset (viclip-b16, viclip-l14) or a checkpoint path."
    ),
    model_config: Path | None = typer.Option(
        None,
        "--model-config",
        help="ViCLIPConfig JSON: with --model, the checkpoint's config; alone, train this architecture from random init.",
    ),
    checkpoint: Path | None = typer.Option(
        None, "--checkpoint", help="Weights for a preset --model (else VIDSEARCH_CHECKPOINT or the Hugging Face cache)."
    ),
    epochs: int = typer.Option(10, "--epochs", help="Passes over the training clips."),
    lr: float = typer.Option(
        1e-5, "--lr", help="Peak learning rate (1e-5 to fine-tune a published model; about 1e-3 from scratch)."
    ),
    batch_size: int = typer.Option(32, "--batch-size", help="Clips per step (also the contrastive negatives)."),
    frames: int | None = typer.Option(None, "--frames", help="Frames per clip (default: the model's num_frames)."),
    freeze_text: bool = typer.Option(False, "--freeze-text", help="Keep the text tower fixed."),
    seed: int = typer.Option(0, "--seed", help="Seeds the validation split, batches, augmentation and random init."),
    resume: bool = typer.Option(False, "--resume", help="Continue after the last complete epoch in --out."),
    weight_decay: float = typer.Option(0.05, "--weight-decay", help="AdamW weight decay of weight matrices."),
    warmup: float = typer.Option(
        0.05, "--warmup", help="Share of all steps spent warming the learning rate up from 0."
    ),
    min_lr_ratio: float = typer.Option(0.01, "--min-lr-ratio", help="The cosine schedule ends at lr x this."),
    grad_clip: float = typer.Option(1.0, "--grad-clip", help="Clip the global gradient norm to this (0: off)."),
    temp: float | None = typer.Option(
        None,
        "--temp",
        help="Reset the learnable temperature to this (default: keep the model's; 0.07 suits training from scratch).",
    ),
    masking: float = typer.Option(
        0.0, "--masking", help="Share of video patch tokens dropped per clip while training (ViCLIP's speed-up)."
    ),
    masking_motion: float = typer.Option(
        0.0,
        "--masking-motion",
        help="With --masking: share of the kept tokens chosen by motion (the patches that change most over the clip) instead of at random, so small moving objects are not masked away (e.g. 0.5).",
    ),
    jitter: bool = typer.Option(True, "--jitter/--no-jitter", help="Random frame within each temporal segment."),
    crop_scale: float = typer.Option(
        1.0, "--crop-scale", help="Random crop: smallest window side as a share of the frame (1: off)."
    ),
    crop_shift: float = typer.Option(
        0.0, "--crop-shift", help="Random crop: largest window-centre shift as a share of the frame."
    ),
    hard_negatives: int = typer.Option(
        0,
        "--hard-negatives",
        help="Build batches from groups of this many similar captions (hard negatives; 0: random distinct captions).",
    ),
    reverse_pairs: str = typer.Option(
        "",
        "--reverse-pairs",
        help="Word pairs like 'left=right,up=down': clips naming one also train played backwards with the words swapped (temporal order signal).",
    ),
    reverse_margin: float | None = typer.Option(
        None,
        "--reverse-margin",
        help="With --reverse-pairs: also push each clip and its time reversal apart until their embeddings' cosine is below this (e.g. 0.8; breaks the frame-order-blind start).",
    ),
    text_margin: float | None = typer.Option(
        None,
        "--text-margin",
        help="Keep each caption's most similar caption of another group in the batch below this cosine (e.g. 0.7), so captions of different events cannot merge while the video tower cannot yet tell them apart. Use with groups or distinct events; paraphrases without a group would be pushed apart.",
    ),
    temporal_init_std: float | None = typer.Option(
        None,
        "--temporal-init-std",
        help="With --model-config alone (random init): std of the temporal position embedding (default: width^-0.5, like the spatial one; larger makes frames more distinct at the start).",
    ),
    temporal_lr_scale: float = typer.Option(
        1.0, "--temporal-lr-scale", help="Multiply the learning rate of the temporal position embedding by this."
    ),
    val_videos: int = typer.Option(
        100, "--val-videos", help="Videos held out of training for validation each epoch (0: none)."
    ),
    val_annotations: Path | None = typer.Option(
        None,
        "--val-annotations",
        help="Validate on these annotations (videos under --videos) instead of a held-out split.",
    ),
    cache_frames: int = typer.Option(
        16, "--cache-frames", help="Frames decoded and cached per video (temporal jitter picks among them)."
    ),
    cache_gb: float = typer.Option(8.0, "--cache-gb", help="Refuse a frame cache larger than this many GiB."),
    workers: int = typer.Option(1, "--workers", help="Decoding processes for the frame cache."),
    select_best: bool = typer.Option(
        True,
        "--select-best/--no-select-best",
        help="model.pth = the epoch with the best validation metric (best.pth; the last is last.pth); needs a validation split.",
    ),
    select_metric: str = typer.Option(
        "t2v/R@1",
        "--select-metric",
        help="Validation metric for --select-best and --patience: t2v/R@1, t2v/R@5, t2v/R@10, v2t/R@1, ... (ties: sum of all recalls).",
    ),
    patience: int = typer.Option(
        0, "--patience", help="Stop after this many epochs without a better validation metric (0: run all --epochs)."
    ),
    lr_find: bool = typer.Option(
        False,
        "--lr-find",
        help="First run a short learning-rate range test, print it and train at the rate it picks (instead of --lr).",
    ),
    lr_find_steps: int = typer.Option(
        60, "--lr-find-steps", help="Steps of the --lr-find range test (rates 1e-6 to 1e-1)."
    ),
    antialias: bool = typer.Option(
        False,
        "--antialias",
        help="Antialias the frame resize (newer torchvision; off: as the published ViCLIP models saw frames).",
    ),
    grad_checkpointing: bool = typer.Option(
        False, "--grad-checkpointing", help="Recompute activations in backward: less memory, slower."
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N (mixed precision on CUDA)."),
    precision: str = TrainPrecisionOption,
    json_out: bool = JsonOption,
) -> None:
    """Train ViCLIP on captioned videos with a contrastive loss; write a checkpoint `index`, `query` and `bench` load."""
    from vidsearch.train.loop import TrainConfig
    from vidsearch.train.run import FinetuneJob, run_finetune

    if model is None and model_config is None:
        raise InputError(
            "pass --model (a preset or checkpoint to fine-tune) or --model-config (a config to train from scratch)"
        )

    for name, value in (
        ("--epochs", epochs),
        ("--batch-size", batch_size),
        ("--cache-frames", cache_frames),
        ("--workers", workers),
        ("--frames", frames),
    ):
        check_number(name, value, low=1)
    for name, value in (
        ("--lr", lr),
        ("--temporal-lr-scale", temporal_lr_scale),
        ("--cache-gb", cache_gb),
        ("--temp", temp),
        ("--temporal-init-std", temporal_init_std),
    ):
        check_number(name, value, low=0, above=True)
    for name, value in (
        ("--weight-decay", weight_decay),
        ("--grad-clip", grad_clip),
        ("--hard-negatives", hard_negatives),
        ("--val-videos", val_videos),
    ):
        check_number(name, value, low=0)
    for name, value in (("--warmup", warmup), ("--min-lr-ratio", min_lr_ratio), ("--crop-shift", crop_shift)):
        check_number(name, value, low=0, high=1)
    check_number("--crop-scale", crop_scale, low=0, high=1, above=True)
    check_number("--masking", masking, low=0, high=1)
    if masking == 1:
        raise InputError(f"--masking must be in [0, 1), got {masking}")
    check_number("--masking-motion", masking_motion, low=0, high=1)
    if masking_motion and not masking:
        raise InputError("--masking-motion chooses which tokens --masking keeps: add --masking P (e.g. 0.5)")
    from vidsearch.train.loop import SELECT_METRICS

    if select_metric not in SELECT_METRICS:
        raise InputError(f"--select-metric {select_metric!r} is not one of {', '.join(SELECT_METRICS)}")
    if patience < 0 or (lr_find and lr_find_steps < 2):
        raise InputError(f"--patience must be >= 0 and --lr-find-steps >= 2, got {patience} and {lr_find_steps}")
    if patience and val_videos == 0 and val_annotations is None:
        raise InputError("--patience needs a validation split: pass --val-videos N or --val-annotations FILE")
    if precision == "int8":
        raise InputError(
            "--precision int8 is for encoding, not training: train at fp32 (or bf16/fp16 on a GPU), then index with --precision int8"
        )

    precision_before_load(precision, device)  # one the device lacks fails here, before the frame cache is built
    from vidsearch.train.data import parse_reverse_pairs

    pairs = parse_reverse_pairs(reverse_pairs)
    if reverse_margin is not None and (not pairs or not -1.0 <= reverse_margin < 1.0):
        raise InputError(
            f"--reverse-margin needs --reverse-pairs and a cosine in [-1, 1), got {reverse_margin}"
            + ("" if pairs else " without --reverse-pairs")
        )
    if text_margin is not None and not -1.0 <= text_margin < 1.0:
        raise InputError(f"--text-margin must be a cosine in [-1, 1), got {text_margin}")
    config = TrainConfig(
        epochs=epochs,
        lr=lr,
        min_lr_ratio=min_lr_ratio,
        warmup=warmup,
        weight_decay=weight_decay,
        batch_size=batch_size,
        num_frames=frames or 0,
        grad_clip=grad_clip,
        freeze_text=freeze_text,
        seed=seed,
        temp_init=temp,
        masking_prob=masking,
        masking_motion=masking_motion,
        jitter=jitter,
        hard_negatives=hard_negatives,
        crop_scale=crop_scale,
        crop_shift=crop_shift,
        grad_checkpointing=grad_checkpointing,
        reverse_pairs=pairs,
        reverse_margin=reverse_margin,
        text_margin=text_margin,
        temporal_lr_scale=temporal_lr_scale,
        select_best=select_best,
        select_metric=select_metric,
        patience=patience,
        precision=precision,
    )
    job = FinetuneJob(
        annotations=annotations,
        videos=videos,
        out=out,
        dataset=dataset,
        model=model,
        model_config=model_config,
        checkpoint=checkpoint,
        val_videos=val_videos,
        val_annotations=val_annotations,
        cache_frames=cache_frames,
        cache_bytes=int(cache_gb * 2**30),
        workers=workers,
        antialias=antialias,
        device=device,
        resume=resume,
        lr_find_steps=lr_find_steps if lr_find else 0,
        temporal_init_std=temporal_init_std,
    )
    show = not json_out and err_console.is_terminal
    with _Progress(enabled=show, json_lines=json_out) as progress:
        result = run_finetune(
            job,
            config,
            on_cache=progress.cache,
            on_step=progress.step,
            on_epoch=progress.epoch,
            on_lr_find=progress.lr_find,
        )
    if json_out:  # JSON lines: the epochs (printed as they ended), then this summary
        _json_line({"event": "done", **result})
        return
    for e in result["epochs"]:
        console.print(_epoch_line(e), highlight=False)
    sel = f"; selected the {result['selected']} epoch" + (f" ({result['best_epoch']})" if result["best_epoch"] else "")
    stop = f"; stopped early after epoch {result['stopped_early']}" if result["stopped_early"] else ""
    console.print(
        f"[bold]wrote[/] {shown(result['model'])} (config {shown(Path(result['model']).with_suffix('.json'))}){sel}{stop}",
        highlight=False,
    )


def _json_line(data: dict) -> None:
    """One compact JSON object per line on stdout, flushed (a pipe reader sees it at once)."""

    sys.stdout.write(json.dumps(data, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def _lr_find_lines(found) -> list[str]:
    """The range test as a short table: every few rates with their smoothed loss, then the pick."""
    step = max(1, len(found.lrs) // 12)
    rows = [
        f"  lr {lr:.2e}  loss {loss:.4f}" for lr, loss in list(zip(found.lrs, found.smoothed, strict=False))[::step]
    ]
    end = f"; diverged at {found.diverged_at:.2e}" if found.diverged_at else ""
    return ["lr range test:", *rows, f"lowest loss at lr {found.best_lr:.2e}{end}; training at lr {found.picked:.2e}"]


def _epoch_line(e: dict) -> str:
    t2v = e.get("val", {}).get("t2v", {})
    val = f" val t2v R@1 {t2v['R@1']:.1f} R@5 {t2v['R@5']:.1f} MdR {t2v['MdR']:.1f}" if t2v else ""
    best = " *best*" if e.get("best") else ""
    return f"epoch {e['epoch']}: loss {e['loss']:.4f}{val}{best} ({e['seconds']:.0f} s, {e['cpu_seconds']:.0f} s CPU)"


class _Progress:
    """A rich progress display: the frame-cache build, then steps with loss and clips/s."""

    def __init__(self, enabled: bool, json_lines: bool = False) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._p = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=err_console,
            disable=not enabled,
        )
        self._cache = None
        self._train = None
        self._enabled, self._json = enabled, json_lines

    def __enter__(self) -> _Progress:
        self._p.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._p.__exit__(*exc)

    def cache(self, done: int, total: int) -> None:
        if self._cache is None:
            self._cache = self._p.add_task("decoding", total=total, info="")
        self._p.update(self._cache, completed=done)

    def step(self, s) -> None:
        if self._train is None:
            self._train = self._p.add_task("training", total=s.total_steps, info="", completed=s.global_step - 1)
        info = f"epoch {s.epoch} loss {s.loss:.3f} lr {s.lr:.2e} temp {s.temp:.3f} {s.clips_per_s:.1f} clips/s"
        self._p.update(self._train, completed=s.global_step, info=info)

    def epoch(self, e) -> None:

        if self._json:
            _json_line({"event": "epoch", **dataclasses.asdict(e)})
        elif self._enabled:
            self._p.console.print(_epoch_line(dataclasses.asdict(e)), highlight=False)

    def lr_find(self, found) -> None:

        if self._json:
            _json_line({"event": "lr_find", **dataclasses.asdict(found)})
            return
        for line in _lr_find_lines(found):
            console.print(line, highlight=False)


__all__ = ["finetune_command"]
