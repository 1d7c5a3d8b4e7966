"""The training loop: contrastive loss, AdamW with warmup + cosine, validation, checkpoints.

The loss is ViCLIP's video-text contrastive loss: cosine similarities divided by the learnable
temperature ``model.temp`` (the official parameter: logits are ``sim / temp``, and ``temp`` is
clamped to at least ``temp_min`` after each step), cross-entropy in both directions. Clips of
the batch that share a caption are all counted as positives of each other (the official loss
does the same with its ``idx``), so duplicates are never pushed apart.

Each epoch ends with a validation pass over held-out videos scored with
:func:`vidsearch.metrics.retrieval_metrics` (the code ``bench`` uses), a checkpoint in the
official layout (``epoch-NNN.pth`` + ``epoch-NNN.json``), and a training-state file
(``train_state.pt``: optimizer, epoch, history) written atomically after it; ``resume`` continues
after the last complete epoch. Randomness is reseeded from ``(seed, epoch)`` at every epoch
start, so a resumed run draws the same batches, jitter and crops as an uninterrupted one.

With ``reverse_pairs`` (e.g. ``(("left", "right"), ("up", "down"))``) every batch also holds,
for each of its clips whose caption names a word of a pair, the same sampled and cropped frames
in reverse order with the words swapped (:func:`vidsearch.train.data.swap_words`): a step then
encodes up to twice ``batch_size`` clips. A reversed clip's caption may equal the caption of
another clip of the batch; both get the same caption id, so the loss counts them as positives
of each other, never as negatives.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vidsearch.errors import InputError
from vidsearch.train.data import (
    Clip,
    FrameCache,
    neighbour_batches,
    random_crop,
    segment_indices,
    swap_words,
    unique_caption_batches,
)

__all__ = [
    "TrainConfig",
    "StepInfo",
    "EpochResult",
    "contrastive_loss",
    "lr_at",
    "build_optimizer",
    "Trainer",
]

LOG = logging.getLogger(__name__)

STATE_FILE = "train_state.pt"
FINAL_NAME = "model.pth"


@dataclass
class TrainConfig:
    """Hyper-parameters of one training run (saved with the state for ``resume``)."""

    epochs: int = 10  # passes over the training clips
    lr: float = 1e-4  # peak learning rate (after warmup)
    min_lr_ratio: float = 0.01  # cosine decays to lr * min_lr_ratio
    warmup: float = 0.05  # warmup share of all steps (linear from 0)
    weight_decay: float = 0.05  # AdamW decay of matrices (not of norms, biases, embeddings, temp)
    batch_size: int = 32  # clips per step
    num_frames: int = 8  # frames per clip fed to the model
    grad_clip: float = 1.0  # max global grad norm (0: off)
    freeze_text: bool = False  # keep the text tower fixed
    seed: int = 0  # seeds splits, batches, jitter, crops, token masking
    temp_init: float | None = None  # reset model.temp to this (None: keep the checkpoint's)
    temp_min: float = 0.01  # official lower clamp of temp (logit scale at most 100)
    masking_prob: float = 0.0  # share of video tokens dropped per clip (official training trick)
    jitter: bool = True  # random frame inside each temporal segment
    hard_negatives: int = 0  # >1: batches of groups of this many similar captions (0: random distinct captions)
    crop_scale: float = 1.0  # smallest random crop side (1: no spatial augmentation)
    crop_shift: float = 0.0  # largest crop-centre shift, fraction of the side
    grad_checkpointing: bool = False  # recompute activations in backward (less memory)
    amp: bool = True  # mixed precision on CUDA (bf16 if supported, else fp16); ignored on CPU
    keep: int = 2  # epoch checkpoints kept on disk (older ones are deleted)
    reverse_pairs: tuple[tuple[str, str], ...] = ()  # add time-reversed clips with these words swapped
    temporal_lr_scale: float = 1.0  # learning-rate multiplier of temporal_positional_embedding


@dataclass
class StepInfo:
    """What the progress display shows after each optimizer step."""

    epoch: int
    step: int  # within the epoch, 1-based
    steps: int  # steps in this epoch
    global_step: int
    total_steps: int
    loss: float
    lr: float
    temp: float
    clips_per_s: float


@dataclass
class EpochResult:
    """Summary of one epoch."""

    epoch: int
    loss: float  # mean training loss
    val: dict[str, dict[str, float]] = field(default_factory=dict)  # retrieval_metrics of the held-out split
    seconds: float = 0.0  # wall time
    cpu_seconds: float = 0.0  # process CPU time (all threads)
    checkpoint: str = ""


def contrastive_loss(
    video: torch.Tensor, text: torch.Tensor, temp: torch.Tensor, caption_ids: torch.Tensor | None = None
) -> torch.Tensor:
    """Symmetric InfoNCE of raw embeddings ``[B, D]`` with ViCLIP's temperature semantics.

    Args:
        video: video embeddings (normalized here).
        text: text embeddings, row ``i`` the caption of video ``i``.
        temp: the temperature; logits are ``cos / temp``.
        caption_ids: ``[B]`` ids; rows with equal ids are all positives of each other.

    Returns:
        Scalar loss: mean of video->text and text->video cross-entropies.
    """
    v = F.normalize(video.float(), dim=-1)
    t = F.normalize(text.float(), dim=-1)
    logits = v @ t.t() / temp.float()  # [B, B], row = video
    if caption_ids is None:
        target = torch.arange(v.shape[0], device=v.device)
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))
    pos = (caption_ids[:, None] == caption_ids[None, :]).float()
    target = pos / pos.sum(dim=1, keepdim=True)  # symmetric mask: the same for both directions
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))


def lr_at(step: int, total: int, base: float, warmup: float, min_ratio: float) -> float:
    """Learning rate at ``step`` (0-based) of ``total``: linear warmup, then cosine decay."""
    warm = max(1, int(round(warmup * total))) if warmup > 0 else 0
    if step < warm:
        return base * (step + 1) / warm
    progress = min(1.0, (step - warm) / max(1, total - warm))
    return base * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def build_optimizer(model: torch.nn.Module, lr: float, weight_decay: float,
                    temporal_lr_scale: float = 1.0) -> torch.optim.AdamW:
    """AdamW with decay on weight matrices only.

    Norm weights, biases, embeddings (class, positional, token) and the temperature are not
    decayed: shrinking them has no regularising meaning and hurts (CLIP's practice). With
    ``temporal_lr_scale != 1`` the vision tower's ``temporal_positional_embedding`` gets a third
    group whose ``lr_scale`` multiplies the scheduled learning rate: frame order is learned
    only through that small tensor, so it may need bigger steps than the rest.
    """
    decay, no_decay, temporal = [], [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if temporal_lr_scale != 1.0 and name.endswith("temporal_positional_embedding"):
            temporal.append(p)
        elif p.ndim < 2 or "embedding" in name or name == "temp":
            no_decay.append(p)
        else:
            decay.append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if temporal:
        groups.append({"params": temporal, "weight_decay": 0.0, "lr_scale": temporal_lr_scale,
                       "lr": lr * temporal_lr_scale})
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.98), eps=1e-6)


def _autocast(device: torch.device, enabled: bool) -> tuple[Any, torch.amp.GradScaler | None]:
    """Mixed precision only on CUDA: bf16 when the GPU supports it, else fp16 with a grad scaler."""
    if not enabled or device.type != "cuda":
        return torch.autocast(device.type, enabled=False), None
    if torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16), None
    return torch.autocast("cuda", dtype=torch.float16), torch.amp.GradScaler("cuda")


class Trainer:
    """Trains a ViCLIP model on cached clips; see the module docstring for the recipe."""

    def __init__(
        self,
        model: torch.nn.Module,
        config: TrainConfig,
        train: Sequence[Clip],
        train_cache: FrameCache,
        val: Sequence[Clip] = (),
        val_cache: FrameCache | None = None,
        *,
        out_dir: str | os.PathLike[str] | None = None,
        device: torch.device | str = "cpu",
        tokenize: Callable[[Sequence[str]], torch.Tensor] | None = None,
        save: Callable[[torch.nn.Module, Path], None] | None = None,
    ) -> None:
        """Set up the model, optimizer and tokenized captions (nothing is trained yet).

        Args:
            model: a ViCLIP (``encode_video``, ``encode_text``, ``temp``, ``config``).
            config: the hyper-parameters.
            train, train_cache: training clips and the cache holding their videos' frames.
            val, val_cache: held-out clips (may be empty) and their cache.
            out_dir: where checkpoints and the state go (None: keep nothing on disk).
            device: torch device.
            tokenize: captions -> token ids; defaults to the ViCLIP tokenizer at the model's context.
            save: ``save(model, path)`` writing an official-layout checkpoint + config JSON;
                defaults to :func:`vidsearch.models.weights.save_checkpoint`.
        """
        if not train:
            raise InputError("no training clips: the annotations list no video that was found")
        self.model, self.cfg = model, config
        self.device = torch.device(device)
        self.train, self.train_cache = list(train), train_cache
        self.val, self.val_cache = list(val), val_cache
        self.out_dir = Path(out_dir) if out_dir is not None else None
        if tokenize is None:
            from vidsearch.models.tokenizer import tokenize as _tok

            ctx = model.config.context_length
            tokenize = lambda texts: _tok(list(texts), context_length=ctx)  # noqa: E731
        self._save = save
        # The caption of each training clip played backwards (None: it names no reversible word).
        reversed_caps = [swap_words(c.caption, config.reverse_pairs) for c in self.train]
        # Tokenize every distinct caption once: BPE in Python is slow next to a tiny model.
        self.captions = sorted({c.caption for c in self.train} | {c.caption for c in self.val}
                               | {c for c in reversed_caps if c is not None})
        self.caption_id = {c: i for i, c in enumerate(self.captions)}
        self.tokens = tokenize(self.captions)
        self.train_rows = np.array([train_cache.index[c.video] for c in self.train])
        self.train_cids = np.array([self.caption_id[c.caption] for c in self.train])
        self.train_rev_cids = np.array([-1 if c is None else self.caption_id[c] for c in reversed_caps])
        self.steps_per_epoch = math.ceil(len(self.train) / config.batch_size)
        self.total_steps = self.steps_per_epoch * config.epochs

        model.to(self.device)
        if config.temp_init is not None:
            with torch.no_grad():
                model.temp.fill_(config.temp_init)
        if config.freeze_text:
            for p in model.text_encoder.parameters():
                p.requires_grad_(False)
        if config.grad_checkpointing:
            model.set_grad_checkpointing(True)
        self.optimizer = build_optimizer(model, config.lr, config.weight_decay, config.temporal_lr_scale)
        self.autocast, self.scaler = _autocast(self.device, config.amp)
        self.epoch = 0  # completed epochs
        self.history: list[EpochResult] = []

    # ----------------------------------------------------------------- batches
    def _batch(self, idx: Sequence[int], rng: np.random.Generator, gen: torch.Generator) -> tuple[torch.Tensor, ...]:
        """Frames ``[B, T, C, H, W]`` (normalized, augmented), tokens ``[B, L]``, caption ids ``[B]``.

        With ``reverse_pairs``, the clips of ``idx`` that have a reversed caption follow, in
        order, as frames flipped in time (same sampled frames and crop) with that caption.
        """
        from vidsearch.models.preprocess import normalize_frames

        cfg = self.cfg
        rows = self.train_rows[idx]
        fidx = segment_indices(self.train_cache.cache_frames, cfg.num_frames, len(idx), rng if cfg.jitter else None)
        x = normalize_frames(self.train_cache.get(rows, fidx))  # [B, T, C, H, W]
        if cfg.crop_scale < 1.0 or cfg.crop_shift > 0.0:
            x = random_crop(x, cfg.crop_scale, cfg.crop_shift, gen)
        cids = torch.from_numpy(self.train_cids[idx])
        rev = self.train_rev_cids[idx]
        has_rev = torch.from_numpy(rev >= 0)
        if has_rev.any():
            # Reverse after sampling and cropping, so the pair differs in frame order only.
            x = torch.cat([x, x[has_rev].flip(1)])
            cids = torch.cat([cids, torch.from_numpy(rev[rev >= 0])])
        return x.to(self.device), self.tokens[cids].to(self.device), cids.to(self.device)

    # ------------------------------------------------------------------- epoch
    def train_epoch(self, on_step: Callable[[StepInfo], None] | None = None) -> EpochResult:
        """Run one epoch (reseeded from ``(seed, epoch)``), validate, checkpoint."""
        cfg, model = self.cfg, self.model
        epoch = self.epoch + 1
        rng = np.random.default_rng([cfg.seed, epoch])
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
        torch.manual_seed(cfg.seed * 7919 + epoch)  # token masking draws from the global RNG
        caps = [self.captions[i] for i in self.train_cids]
        if cfg.hard_negatives > 1:
            batches = neighbour_batches(caps, cfg.batch_size, rng, group=cfg.hard_negatives)
        else:
            batches = unique_caption_batches(caps, cfg.batch_size, rng)
        model.train()
        t0, c0 = time.perf_counter(), time.process_time()
        losses: list[float] = []
        done = 0
        for k, idx in enumerate(batches):
            gstep = (epoch - 1) * self.steps_per_epoch + k
            lr = lr_at(gstep, self.total_steps, cfg.lr, cfg.warmup, cfg.min_lr_ratio)
            for g in self.optimizer.param_groups:
                g["lr"] = lr * g.get("lr_scale", 1.0)
            x, tok, cids = self._batch(idx, rng, gen)
            with self.autocast:
                v = model.encode_video(x, masking_prob=cfg.masking_prob) if cfg.masking_prob else model.encode_video(x)
                if cfg.freeze_text:
                    with torch.no_grad():
                        t = model.encode_text(tok)
                else:
                    t = model.encode_text(tok)
            loss = contrastive_loss(v, t, model.temp, cids)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss became {loss.item()} at epoch {epoch} step {k + 1}; lower --lr")
            self.optimizer.zero_grad(set_to_none=True)
            if self.scaler is not None:
                self.scaler.scale(loss).backward()
                self.scaler.unscale_(self.optimizer)
            else:
                loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], cfg.grad_clip)
            if self.scaler is not None:
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                self.optimizer.step()
            with torch.no_grad():
                model.temp.clamp_(min=cfg.temp_min)
            losses.append(float(loss.item()))
            done += x.shape[0]
            if on_step is not None:
                elapsed = max(1e-9, time.perf_counter() - t0)
                on_step(StepInfo(epoch, k + 1, len(batches), gstep + 1, self.total_steps, losses[-1], lr,
                                 float(model.temp.item()), done / elapsed))
        result = EpochResult(epoch, float(np.mean(losses)), seconds=time.perf_counter() - t0,
                             cpu_seconds=time.process_time() - c0)
        result.val = self.validate()
        self.epoch = epoch
        self.history.append(result)
        if self.out_dir is not None:
            result.checkpoint = str(self._checkpoint_path(epoch))
            self._checkpoint(epoch)
        LOG.info("epoch %d: loss %.4f val %s (%.0fs)", epoch, result.loss, result.val.get("t2v"), result.seconds)
        return result

    def fit(self, on_step: Callable[[StepInfo], None] | None = None,
            on_epoch: Callable[[EpochResult], None] | None = None) -> list[EpochResult]:
        """Train the remaining epochs and write the final ``model.pth`` (+ ``model.json``)."""
        while self.epoch < self.cfg.epochs:
            result = self.train_epoch(on_step)
            if on_epoch is not None:
                on_epoch(result)
        if self.out_dir is not None:
            self._save_model(self.out_dir / FINAL_NAME)
        return self.history

    # --------------------------------------------------------------- validation
    @torch.no_grad()
    def embed_videos(self, cache: FrameCache, rows: Sequence[int], batch_size: int = 64) -> torch.Tensor:
        """L2-normalized embeddings ``[N, D]`` of cache rows, frames sampled as the index does."""
        from vidsearch.models.preprocess import normalize_frames

        self.model.eval()
        out = []
        for s in range(0, len(rows), batch_size):
            r = list(rows[s : s + batch_size])
            fidx = segment_indices(cache.cache_frames, self.cfg.num_frames, len(r), None)
            x = normalize_frames(cache.get(r, fidx)).to(self.device)
            with self.autocast:
                out.append(F.normalize(self.model.encode_video(x).float(), dim=-1).cpu())
        return torch.cat(out)

    @torch.no_grad()
    def embed_texts(self, captions: Sequence[str], batch_size: int = 256) -> torch.Tensor:
        """L2-normalized embeddings ``[N, D]`` of known captions."""
        self.model.eval()
        ids = torch.tensor([self.caption_id[c] for c in captions])
        out = []
        for s in range(0, len(ids), batch_size):
            with self.autocast:
                t = self.model.encode_text(self.tokens[ids[s : s + batch_size]].to(self.device))
            out.append(F.normalize(t.float(), dim=-1).cpu())
        return torch.cat(out)

    def validate(self) -> dict[str, dict[str, float]]:
        """Retrieval metrics of the held-out clips (empty when there are none)."""
        from vidsearch.metrics import retrieval_metrics

        if not self.val or self.val_cache is None:
            return {}
        videos = list(dict.fromkeys(c.video for c in self.val))
        col = {v: i for i, v in enumerate(videos)}
        xb = self.embed_videos(self.val_cache, [self.val_cache.index[v] for v in videos])
        xq = self.embed_texts([c.caption for c in self.val])
        sims = (xq @ xb.t()).numpy()
        self.model.train()
        return retrieval_metrics(sims, np.array([col[c.video] for c in self.val]))

    # -------------------------------------------------------------- checkpoints
    def _save_model(self, path: Path) -> None:
        if self._save is not None:
            self._save(self.model, path)
            return
        from vidsearch.models.weights import save_checkpoint

        save_checkpoint(self.model, path, self.model.config)

    def _checkpoint_path(self, epoch: int) -> Path:
        return Path(self.out_dir or ".") / f"epoch-{epoch:03d}.pth"

    def _checkpoint(self, epoch: int) -> Path:
        """Write ``epoch-NNN.pth`` then the state pointing at it; prune old epoch files."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self._checkpoint_path(epoch)
        self._save_model(path)
        state = {
            "epoch": epoch,
            "checkpoint": path.name,
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "train_config": dataclasses.asdict(self.cfg),
            "history": [dataclasses.asdict(h) for h in self.history],
        }
        tmp = self.out_dir / (STATE_FILE + ".tmp")
        torch.save(state, tmp)
        os.replace(tmp, self.out_dir / STATE_FILE)
        if self.cfg.keep > 0:
            for old in sorted(self.out_dir.glob("epoch-*.pth"))[: -self.cfg.keep]:
                old.unlink(missing_ok=True)
                old.with_suffix(".json").unlink(missing_ok=True)
        return path

    def resume(self) -> int:
        """Load the weights, optimizer and history of the last complete epoch in ``out_dir``.

        Returns:
            The number of epochs already done (0 when there is nothing to resume).
        """
        if self.out_dir is None or not (self.out_dir / STATE_FILE).exists():
            return 0
        state = torch.load(self.out_dir / STATE_FILE, map_location="cpu", weights_only=False)
        ckpt = torch.load(self.out_dir / state["checkpoint"], map_location="cpu", weights_only=True)
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.history = [EpochResult(**h) for h in state["history"]]
        self.epoch = int(state["epoch"])
        LOG.info("resumed after epoch %d from %s", self.epoch, self.out_dir / state["checkpoint"])
        return self.epoch
