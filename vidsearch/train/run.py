"""One fine-tuning job end to end: annotations -> model -> frame caches -> :class:`Trainer`.

``vidsearch finetune`` is a thin call to :func:`run_finetune`; scripts can call it directly.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vidsearch.errors import InputError
from vidsearch.fileio import atomic_write_text
from vidsearch.models import EncoderSpec, open_encoder
from vidsearch.train.data import Clip, FrameCache, build_frame_cache, cache_key, split_heldout
from vidsearch.train.loop import (
    BEST_NAME,
    FINAL_NAME,
    LAST_NAME,
    STATE_FILE,
    EpochResult,
    StepInfo,
    TrainConfig,
    Trainer,
)
from vidsearch.train.lrfind import LrFindResult, lr_range_test

__all__ = ["FinetuneJob", "read_clips", "build_model", "run_finetune"]

LOG = logging.getLogger(__name__)

# Settings a resumed run must share with the saved one: anything else would change its course.
_RESUME_FIELDS = (
    "epochs",
    "lr",
    "batch_size",
    "num_frames",
    "seed",
    "warmup",
    "min_lr_ratio",
    "weight_decay",
    "freeze_text",
    "reverse_pairs",
    "temporal_lr_scale",
    "reverse_margin",
    "text_margin",
    "precision",
)


@dataclass
class FinetuneJob:
    """Where the data, the starting model and the outputs are (the hyper-parameters are a :class:`TrainConfig`)."""

    annotations: Path  # caption file, any format of vidsearch.bench.datasets
    videos: Path  # folder holding the videos
    out: Path  # output folder
    dataset: str = "json"  # annotation format name
    model: str | None = None  # preset or checkpoint to start from (None: random init from model_config)
    model_config: Path | None = None  # ViCLIPConfig JSON
    checkpoint: Path | None = None  # weights for a preset
    val_videos: int = 100  # videos held out for validation (ignored with val_annotations)
    val_annotations: Path | None = None  # separate validation captions (videos under `videos`)
    cache_frames: int = 16  # frames cached per training video
    cache_bytes: int = 8 * 2**30  # refuse larger frame caches
    workers: int = 1  # decoding processes
    antialias: bool = False  # antialias the frame resize (off: as the published ViCLIP models saw frames)
    device: str = "auto"
    resume: bool = False
    lr_find_steps: int = 0  # >0: run a learning-rate range test of this many steps and train at its pick
    temporal_init_std: float | None = None  # random init: std of the temporal embedding (None: width ** -0.5)


def read_clips(dataset: str, annotations: Path, videos: Path) -> tuple[list[Clip], list[str]]:
    """Read annotations with the ``bench`` readers and find each video file.

    Returns:
        ``(clips, missing)``: one clip per (video, caption) whose file exists (with the entry's
        ``group`` where the annotations give one), and the names of videos that were not found.
    """
    from vidsearch.bench.datasets import read_annotations, resolve_videos

    rs = read_annotations(dataset, annotations)
    paths = resolve_videos(rs.videos, videos)
    missing = [name for name, p in zip(rs.videos, paths, strict=False) if p is None]
    groups = rs.groups or [None] * len(rs.captions)
    clips = [
        Clip(paths[v], cap, g)
        for cap, v, g in zip(rs.captions, rs.caption_video, groups, strict=False)
        if paths[v] is not None
    ]
    return clips, missing


def build_model(job: FinetuneJob, num_frames: int | None, seed: int) -> torch.nn.Module:
    """The model to train: a loaded checkpoint, or a random init of ``--model-config``.

    When ``num_frames`` differs from the model's, the model is rebuilt for that many frames
    (temporal embedding resized as the official loader does), so the saved config tells
    ``index`` how many frames to sample.

    A random init draws ``temporal_positional_embedding`` like the spatial one (normal,
    std ``width ** -0.5``, or ``job.temporal_init_std``) instead of the official zeros. Zeros suit the official recipe, which
    inflates an image CLIP and must start from its image behaviour; from scratch they leave the
    model exactly blind to frame order (joint attention over tokens that differ only by spatial
    position is permutation-invariant over frames) until training breaks that symmetry.
    """
    from vidsearch.models.viclip import ViCLIP, ViCLIPConfig
    from vidsearch.models.weights import fit_state_dict

    if job.model is not None:
        # fp32 weights on the CPU: training moves the network and picks its own autocast
        enc: Any = open_encoder(
            EncoderSpec(
                job.model,
                checkpoint=job.checkpoint,
                config=job.model_config,
                device="cpu",
                precision="fp32",
                backend="torch",
            )
        )
        model = enc.model
    else:
        assert job.model_config is not None
        torch.manual_seed(seed)
        model = ViCLIP(ViCLIPConfig.from_json(job.model_config))
        vis = model.vision_encoder
        with torch.no_grad():
            std = job.temporal_init_std if job.temporal_init_std is not None else vis.width**-0.5
            vis.temporal_positional_embedding.normal_(std=std)
    if num_frames and num_frames != model.config.num_frames:
        cfg = dataclasses.replace(model.config, num_frames=num_frames)
        resized = ViCLIP(cfg)
        resized.load_state_dict(fit_state_dict(model.state_dict(), resized, source="model"), strict=True)
        model = resized
    return model


def _caches(
    job: FinetuneJob,
    train: list[Clip],
    val: list[Clip],
    cfg: TrainConfig,
    resolution: int,
    on_cache: Callable[[int, int], None] | None,
) -> tuple[FrameCache, FrameCache | None]:
    """Frame caches under ``out/cache``: training clips at ``cache_frames``, validation at exactly
    the frames ``index`` samples (``num_frames`` middle frames)."""
    cache_dir = job.out / "cache"
    tv = list(dict.fromkeys(c.video for c in train))
    vv = list(dict.fromkeys(c.video for c in val))
    total = len(tv) + len(vv)

    def prog(offset: int) -> Callable[[int, int], None] | None:
        return None if on_cache is None else (lambda d, _t: on_cache(offset + d, total))

    key = cache_key(tv, job.cache_frames, resolution, job.antialias)
    tcache = build_frame_cache(
        tv,
        cache_dir / f"train-{key}.npy",
        cache_frames=job.cache_frames,
        resolution=resolution,
        max_bytes=job.cache_bytes,
        workers=job.workers,
        antialias=job.antialias,
        progress=prog(0),
    )
    vcache = None
    if vv:
        key = cache_key(vv, cfg.num_frames, resolution, job.antialias)
        vcache = build_frame_cache(
            vv,
            cache_dir / f"val-{key}.npy",
            cache_frames=cfg.num_frames,
            resolution=resolution,
            max_bytes=job.cache_bytes,
            workers=job.workers,
            antialias=job.antialias,
            progress=prog(len(tv)),
        )
    return tcache, vcache


def _check_resume(job: FinetuneJob, cfg: TrainConfig) -> None:
    state_path = job.out / STATE_FILE
    if not state_path.exists():
        if job.resume:
            LOG.info("nothing to resume in %s: starting a new run", job.out)
        return
    if not job.resume:
        raise InputError(
            f"{job.out} already holds a training run; pass --resume to continue it or choose another --out"
        )
    saved = torch.load(state_path, map_location="cpu", weights_only=False)["train_config"]
    now = dataclasses.asdict(cfg)
    # a field the saved run predates had its default value then
    defaults = dataclasses.asdict(TrainConfig())
    diff = [
        f"{k} {saved.get(k, defaults[k])!r} (saved) vs {now[k]!r}"
        for k in _RESUME_FIELDS
        if saved.get(k, defaults[k]) != now[k]
    ]
    if diff:
        raise InputError(f"--resume continues the run in {job.out} with its settings; these differ: {'; '.join(diff)}")


def run_finetune(
    job: FinetuneJob,
    config: TrainConfig,
    *,
    on_cache: Callable[[int, int], None] | None = None,
    on_step: Callable[[StepInfo], None] | None = None,
    on_epoch: Callable[[EpochResult], None] | None = None,
    on_lr_find: Callable[[LrFindResult], None] | None = None,
) -> dict[str, Any]:
    """Read, cache, train and save; return a JSON-ready summary.

    ``config.num_frames == 0`` means the model's own frame count.

    With ``job.lr_find_steps`` a learning-rate range test (:func:`~vidsearch.train.lrfind.lr_range_test`)
    runs first and the training uses its pick as ``config.lr`` (reported to ``on_lr_find``).

    Returns:
        ``{"model": path of model.pth, "last": last.pth, "best": best.pth or None, "selected":
        "best"/"last", "best_epoch", "stopped_early", "epochs": [...], "lr_find": {...} or None,
        "train_clips", "val_clips", "missing_videos", "seconds", "cpu_seconds", "config": {...}}``.

    Raises:
        InputError: unreadable annotations, no usable clips, an existing run without ``resume``,
            ``resume`` with different settings, or ``lr_find_steps`` on a run that has started.
    """
    from vidsearch.models.precision import resolve_device

    t0, c0 = time.perf_counter(), time.process_time()
    clips, missing = read_clips(job.dataset, job.annotations, job.videos)
    if not clips:
        raise InputError(f"none of the {len(missing)} videos of {job.annotations} was found under {job.videos}")
    if missing:
        LOG.warning("%d videos of %s are not under %s and are left out", len(missing), job.annotations, job.videos)
    if job.val_annotations is not None:
        train, (val, vmissing) = clips, read_clips(job.dataset, job.val_annotations, job.videos)
        if not val:
            raise InputError(
                f"none of the {len(vmissing)} videos of --val-annotations {job.val_annotations} "
                f"was found under --videos {job.videos}; put the validation videos there too"
            )
        missing += vmissing
    else:
        train, val = split_heldout(clips, job.val_videos, config.seed)
    if not train:
        raise InputError(f"no training clips left after holding out {job.val_videos} videos; lower --val-videos")

    model = build_model(job, config.num_frames or None, config.seed)
    config = dataclasses.replace(config, num_frames=model.config.num_frames)
    if job.lr_find_steps and (job.out / STATE_FILE).exists():
        raise InputError(
            f"--lr-find cannot change the rate of the run already in {job.out}; "
            "resume it without --lr-find (its rate is in finetune.json) or choose another --out"
        )
    _check_resume(job, config)
    job.out.mkdir(parents=True, exist_ok=True)
    tcache, vcache = _caches(job, train, val, config, model.config.input_resolution, on_cache)
    trainer = Trainer(model, config, train, tcache, val, vcache, out_dir=job.out, device=resolve_device(job.device))
    found = None
    if job.lr_find_steps:
        found = lr_range_test(trainer, steps=job.lr_find_steps)
        config.lr = found.picked  # the trainer's config: the schedule reads it at every step
        if on_lr_find is not None:
            on_lr_find(found)
    if job.resume:
        trainer.resume()
    history = trainer.fit(on_step=on_step, on_epoch=on_epoch)
    summary = {
        "model": str(job.out / FINAL_NAME),
        "last": str(job.out / LAST_NAME),
        "best": str(job.out / BEST_NAME) if trainer.selected == "best" else None,
        "selected": trainer.selected,
        "best_epoch": trainer.best_epoch or None,
        "stopped_early": trainer.epoch if trainer.stopped_early else None,
        "lr_find": dataclasses.asdict(found) if found is not None else None,
        "epochs": [dataclasses.asdict(h) for h in history],
        "train_clips": len(train),
        "val_clips": len(val),
        "missing_videos": len(missing),
        "seconds": time.perf_counter() - t0,
        "cpu_seconds": time.process_time() - c0,
        "config": dataclasses.asdict(config),
        "model_config": model.config.to_dict(),
    }
    atomic_write_text(job.out / "finetune.json", json.dumps(summary, indent=2, default=str))
    return summary
