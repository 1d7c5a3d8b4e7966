"""`vidsearch finetune`: train or fine-tune ViCLIP on captioned videos (see docs/finetune.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from vidsearch.cli.common import JsonOption, console, err_console, print_json
from vidsearch.cli.app import app


@app.command("finetune")
def finetune_command(
    annotations: Path = typer.Option(..., "--annotations", help="Captions of the training videos (any format `bench retrieval` reads).", show_default=False),
    videos: Path = typer.Option(..., "--videos", help="Folder with the videos (searched recursively).", show_default=False),
    out: Path = typer.Option(..., "--out", help="Output folder: epoch-NNN.pth checkpoints, model.pth (+ .json configs), train_state.pt, frame cache.", show_default=False),
    dataset: str = typer.Option("json", "--dataset", help="Annotation format: msrvtt, vatex, msvd, didemo, activitynet or json."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Start from a preset (viclip-b16, viclip-l14) or a checkpoint path."),
    model_config: Optional[Path] = typer.Option(None, "--model-config", help="ViCLIPConfig JSON: with --model, the checkpoint's config; alone, train this architecture from random init."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="Weights for a preset --model (else VIDSEARCH_CHECKPOINT or the Hugging Face cache)."),
    epochs: int = typer.Option(10, "--epochs", help="Passes over the training clips."),
    lr: float = typer.Option(1e-5, "--lr", help="Peak learning rate (1e-5 to fine-tune a published model; about 1e-3 from scratch)."),
    batch_size: int = typer.Option(32, "--batch-size", help="Clips per step (also the contrastive negatives)."),
    frames: Optional[int] = typer.Option(None, "--frames", help="Frames per clip (default: the model's num_frames)."),
    freeze_text: bool = typer.Option(False, "--freeze-text", help="Keep the text tower fixed."),
    seed: int = typer.Option(0, "--seed", help="Seeds the validation split, batches, augmentation and random init."),
    resume: bool = typer.Option(False, "--resume", help="Continue after the last complete epoch in --out."),
    weight_decay: float = typer.Option(0.05, "--weight-decay", help="AdamW weight decay of weight matrices."),
    warmup: float = typer.Option(0.05, "--warmup", help="Share of all steps spent warming the learning rate up from 0."),
    min_lr_ratio: float = typer.Option(0.01, "--min-lr-ratio", help="The cosine schedule ends at lr x this."),
    grad_clip: float = typer.Option(1.0, "--grad-clip", help="Clip the global gradient norm to this (0: off)."),
    temp: Optional[float] = typer.Option(None, "--temp", help="Reset the learnable temperature to this (default: keep the model's; 0.07 suits training from scratch)."),
    masking: float = typer.Option(0.0, "--masking", help="Share of video patch tokens dropped per clip while training (ViCLIP's speed-up)."),
    jitter: bool = typer.Option(True, "--jitter/--no-jitter", help="Random frame within each temporal segment."),
    crop_scale: float = typer.Option(1.0, "--crop-scale", help="Random crop: smallest window side as a share of the frame (1: off)."),
    crop_shift: float = typer.Option(0.0, "--crop-shift", help="Random crop: largest window-centre shift as a share of the frame."),
    hard_negatives: int = typer.Option(0, "--hard-negatives", help="Build batches from groups of this many similar captions (hard negatives; 0: random distinct captions)."),
    reverse_pairs: str = typer.Option("", "--reverse-pairs", help="Word pairs like 'left=right,up=down': clips naming one also train played backwards with the words swapped (temporal order signal)."),
    temporal_lr_scale: float = typer.Option(1.0, "--temporal-lr-scale", help="Multiply the learning rate of the temporal position embedding by this."),
    val_videos: int = typer.Option(100, "--val-videos", help="Videos held out of training for validation each epoch (0: none)."),
    val_annotations: Optional[Path] = typer.Option(None, "--val-annotations", help="Validate on these annotations (videos under --videos) instead of a held-out split."),
    cache_frames: int = typer.Option(16, "--cache-frames", help="Frames decoded and cached per video (temporal jitter picks among them)."),
    cache_gb: float = typer.Option(8.0, "--cache-gb", help="Refuse a frame cache larger than this many GiB."),
    workers: int = typer.Option(1, "--workers", help="Decoding processes for the frame cache."),
    grad_checkpointing: bool = typer.Option(False, "--grad-checkpointing", help="Recompute activations in backward: less memory, slower."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N (mixed precision on CUDA)."),
    json_out: bool = JsonOption,
) -> None:
    """Train ViCLIP on captioned videos with a contrastive loss; write a checkpoint `index`, `query` and `bench` load."""
    from vidsearch.errors import InputError
    from vidsearch.train.loop import TrainConfig
    from vidsearch.train.run import FinetuneJob, run_finetune

    if model is None and model_config is None:
        raise InputError("pass --model (a preset or checkpoint to fine-tune) or --model-config (a config to train from scratch)")
    for name, value in (("--epochs", epochs), ("--batch-size", batch_size), ("--cache-frames", cache_frames), ("--workers", workers)):
        if value < 1:
            raise InputError(f"{name} must be at least 1, got {value}")
    if lr <= 0:
        raise InputError(f"--lr must be positive, got {lr}")
    if not 0 < crop_scale <= 1:
        raise InputError(f"--crop-scale must be in (0, 1], got {crop_scale}")
    if temporal_lr_scale <= 0:
        raise InputError(f"--temporal-lr-scale must be positive, got {temporal_lr_scale}")
    if not 0 <= masking < 1:
        raise InputError(f"--masking must be in [0, 1), got {masking}")
    from vidsearch.train.data import parse_reverse_pairs

    pairs = parse_reverse_pairs(reverse_pairs)
    config = TrainConfig(
        epochs=epochs, lr=lr, min_lr_ratio=min_lr_ratio, warmup=warmup, weight_decay=weight_decay,
        batch_size=batch_size, num_frames=frames or 0, grad_clip=grad_clip, freeze_text=freeze_text, seed=seed,
        temp_init=temp, masking_prob=masking, jitter=jitter, hard_negatives=hard_negatives, crop_scale=crop_scale, crop_shift=crop_shift,
        grad_checkpointing=grad_checkpointing, reverse_pairs=pairs,
        temporal_lr_scale=temporal_lr_scale,
    )
    job = FinetuneJob(
        annotations=annotations, videos=videos, out=out, dataset=dataset, model=model,
        model_config=model_config, checkpoint=checkpoint, val_videos=val_videos, val_annotations=val_annotations,
        cache_frames=cache_frames, cache_bytes=int(cache_gb * 2**30), workers=workers, device=device, resume=resume,
    )
    show = not json_out and err_console.is_terminal
    with _Progress(enabled=show) as progress:
        result = run_finetune(job, config, on_cache=progress.cache, on_step=progress.step, on_epoch=progress.epoch)
    if json_out:
        print_json(result)
        return
    for e in result["epochs"]:
        console.print(_epoch_line(e), highlight=False)
    console.print(f"[bold]wrote[/] {result['model']} (config {Path(result['model']).with_suffix('.json')})")


def _epoch_line(e: dict) -> str:
    t2v = e.get("val", {}).get("t2v", {})
    val = f" val t2v R@1 {t2v['R@1']:.1f} R@5 {t2v['R@5']:.1f} MdR {t2v['MdR']:.1f}" if t2v else ""
    return f"epoch {e['epoch']}: loss {e['loss']:.4f}{val} ({e['seconds']:.0f} s, {e['cpu_seconds']:.0f} s CPU)"


class _Progress:
    """A rich progress display: the frame-cache build, then steps with loss and clips/s."""

    def __init__(self, enabled: bool) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self._p = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=err_console, disable=not enabled,
        )
        self._cache = None
        self._train = None

    def __enter__(self) -> "_Progress":
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
        import dataclasses

        self._p.console.print(_epoch_line(dataclasses.asdict(e)), highlight=False)


__all__ = ["finetune_command"]
