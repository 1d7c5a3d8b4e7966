"""The training loop: contrastive loss, AdamW with warmup + cosine, validation, checkpoints.

The loss is ViCLIP's video-text contrastive loss: cosine similarities divided by the learnable
temperature ``model.temp`` (the official parameter: logits are ``sim / temp``, and ``temp`` is
clamped to at least ``temp_min`` after each step), cross-entropy in both directions. Clips of
the batch that share a caption are all counted as positives of each other (the official loss
does the same with its ``idx``), so duplicates are never pushed apart; clips with a ``group``
(:class:`~vidsearch.train.data.Clip`) count by group instead, so paraphrased captions of one
event are positives too, and batches avoid repeating a group as they avoid repeating a caption.

Each epoch ends with a validation pass over held-out videos scored with
:func:`vidsearch.metrics.retrieval_metrics` (the code ``bench`` uses), a checkpoint in the
official layout (``epoch-NNN.pth`` + ``epoch-NNN.json``), ``best.pth`` when the validation
metric (``select_metric``, ties broken by the sum of all recalls) improved, and a training-state
file (``train_state.pt``: optimizer, epoch, history, best epoch) written atomically after them;
``resume`` continues after the last complete epoch. With ``patience`` the run stops once that
many epochs in a row brought no improvement. At the end ``last.pth`` holds the last weights and
``model.pth`` the selected ones: the best epoch's with ``select_best`` and a validation split,
else the last. Randomness is reseeded from ``(seed, epoch)`` at every epoch
start, so a resumed run draws the same batches, jitter and crops as an uninterrupted one.

With ``reverse_pairs`` (e.g. ``(("left", "right"), ("up", "down"))``) every batch also holds,
for each of its clips whose caption names a word of a pair, the same sampled and cropped frames
in reverse order with the words swapped (:func:`vidsearch.train.data.swap_words`): a step then
encodes up to twice ``batch_size`` clips. A reversed clip's caption may equal the caption of
another clip of the batch; both get the same caption id, so the loss counts them as positives
of each other, never as negatives. With ``reverse_margin`` the loss also gets
:func:`~vidsearch.train.optim.reversal_hinge` of every clip and its reversal and of every caption
and its swapped twin: a direct push away from the frame-order-blind start. With ``text_margin``
each caption's nearest caption of another group in the batch is hinged below that cosine
(:func:`~vidsearch.train.optim.neighbour_hinge`), so captions of different events cannot merge
while the video tower is still blind to what tells them apart.
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

import numpy as np
import torch
import torch.nn.functional as F

from vidsearch.errors import InputError
from vidsearch.models.precision import training_precision
from vidsearch.train.data import (
    Clip,
    FrameCache,
    neighbour_batches,
    random_crop,
    segment_indices,
    swap_words,
    unique_caption_batches,
)
from vidsearch.train.optim import build_optimizer, contrastive_loss, lr_at, neighbour_hinge, reversal_hinge

__all__ = [
    "TrainConfig",
    "StepInfo",
    "EpochResult",
    "contrastive_loss",
    "lr_at",
    "build_optimizer",
    "selection_score",
    "SELECT_METRICS",
    "Trainer",
]

LOG = logging.getLogger(__name__)

STATE_FILE = "train_state.pt"
FINAL_NAME = "model.pth"
BEST_NAME = "best.pth"
LAST_NAME = "last.pth"
# Metrics select_metric may name: higher is better for all of them.
SELECT_METRICS = tuple(f"{d}/R@{k}" for d in ("t2v", "v2t") for k in (1, 5, 10))


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
    masking_motion: float = (
        0.0  # share of the kept tokens chosen by motion (the patches that change most), not at random
    )
    jitter: bool = True  # random frame inside each temporal segment
    hard_negatives: int = 0  # >1: batches of groups of this many similar captions (0: random distinct captions)
    crop_scale: float = 1.0  # smallest random crop side (1: no spatial augmentation)
    crop_shift: float = 0.0  # largest crop-centre shift, fraction of the side
    grad_checkpointing: bool = False  # recompute activations in backward (less memory)
    amp: bool = True  # mixed precision on CUDA (bf16 if supported, else fp16); ignored on CPU
    precision: str = "auto"  # --precision: auto (as amp says), fp32, bf16 or fp16
    keep: int = 2  # epoch checkpoints kept on disk (older ones are deleted)
    reverse_pairs: tuple[tuple[str, str], ...] = ()  # add time-reversed clips with these words swapped
    reverse_margin: float | None = None  # with reverse_pairs: hinge cos(clip, reversed clip) below this (None: off)
    text_margin: float | None = (
        None  # hinge each caption's cosine to its nearest other-group caption in the batch below this
    )
    temporal_lr_scale: float = 1.0  # learning-rate multiplier of temporal_positional_embedding
    select_best: bool = True  # model.pth = the best validation epoch (when there is a validation split)
    select_metric: str = "t2v/R@1"  # one of SELECT_METRICS; ties broken by the sum of all recalls
    patience: int = 0  # stop after this many epochs without a better validation metric (0: never)


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
    best: bool = False  # the best validation metric so far


def selection_score(val: dict[str, dict[str, float]], metric: str = "t2v/R@1") -> tuple[float, float]:
    """``(metric, sum of R@1/5/10 in both directions)`` of a validation result; higher is better.

    Raises:
        ValueError: ``metric`` is not one of :data:`SELECT_METRICS`.
    """
    if metric not in SELECT_METRICS:
        raise ValueError(f"unknown selection metric {metric!r}; choose one of {', '.join(SELECT_METRICS)}")
    direction, name = metric.split("/")
    rsum = sum(val[d][f"R@{k}"] for d in ("t2v", "v2t") for k in (1, 5, 10))
    return float(val[direction][name]), float(rsum)


def _reversed_group(group: str, pairs: Sequence[Sequence[str]]) -> str:
    """The key of a time-reversed clip of ``group``: the group with the pair words swapped, when it names one."""
    swapped = swap_words(group, pairs)
    return f"group:{swapped}" if swapped is not None else f"group:{group} (reversed)"


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
        self.captions = sorted(
            {c.caption for c in self.train}
            | {c.caption for c in self.val}
            | {c for c in reversed_caps if c is not None}
        )
        self.caption_id = {c: i for i, c in enumerate(self.captions)}
        self.tokens = tokenize(self.captions)
        self.train_rows = np.array([train_cache.index[c.video] for c in self.train])
        self.train_cids = np.array([self.caption_id[c.caption] for c in self.train])
        self.train_rev_cids = np.array([-1 if c is None else self.caption_id[c] for c in reversed_caps])
        # What the loss and the sampler compare (Clip.key: the group, else the caption); a reversed
        # clip's key is its group with the pair words swapped ("a red disc moving left" -> "... right",
        # the group of the reversed event), else its reversed caption.
        keys = [c.key for c in self.train]
        rev_keys = [
            None if rc is None else (rc if c.group is None else _reversed_group(c.group, config.reverse_pairs))
            for c, rc in zip(self.train, reversed_caps, strict=False)
        ]
        self.key_id = {k: i for i, k in enumerate(sorted(set(keys) | {k for k in rev_keys if k is not None}))}
        self.train_keys = keys
        self.train_kids = np.array([self.key_id[k] for k in keys])
        self.train_rev_kids = np.array([-1 if k is None else self.key_id[k] for k in rev_keys])
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
        self.autocast, self.scaler = training_precision(self.device, config.amp, config.precision)
        self.epoch = 0  # completed epochs
        self.history: list[EpochResult] = []
        self.best_epoch = 0  # epoch of the best validation score (0: none yet)
        self.best_score: tuple[float, float] | None = None
        self.stopped_early = False  # patience ran out
        self._best_state: dict[str, torch.Tensor] | None = None  # best weights when nothing goes to disk

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

    def batch_keys(self, idx: Sequence[int]) -> torch.Tensor:
        """Positive-group ids ``[B']`` of the samples :meth:`_batch` builds for ``idx``, in its order.

        Samples with equal ids are positives of each other in the loss: the same group (or, for
        clips without one, the same caption).
        """
        rev = self.train_rev_kids[idx]
        return torch.from_numpy(np.concatenate([self.train_kids[idx], rev[rev >= 0]]))

    def train_step(
        self, idx: Sequence[int], rng: np.random.Generator, gen: torch.Generator, lr: float
    ) -> tuple[float, int]:
        """One optimizer step at learning rate ``lr`` on training clips ``idx``.

        Returns:
            ``(loss, clips encoded)``; the loss may be non-finite (the caller decides).
        """
        cfg, model = self.cfg, self.model
        for g in self.optimizer.param_groups:
            g["lr"] = lr * g.get("lr_scale", 1.0)
        x, tok, _ = self._batch(idx, rng, gen)
        kids = self.batch_keys(idx).to(self.device)
        with self.autocast:
            if cfg.masking_prob:
                v = model.encode_video(x, masking_prob=cfg.masking_prob, masking_motion=cfg.masking_motion)
            else:
                v = model.encode_video(x)
            if cfg.freeze_text:
                with torch.no_grad():
                    t = model.encode_text(tok)
            else:
                t = model.encode_text(tok)
        loss = contrastive_loss(v, t, model.temp, kids)
        if cfg.reverse_margin is not None:  # the reversed samples follow their batch, in order
            has_rev = torch.from_numpy(self.train_rev_cids[idx] >= 0).to(v.device)
            n = len(idx)
            # both towers: the caption and its swapped twin must stay apart too, or the text tower
            # collapses them while the video tower is still blind to order, and then the
            # contrastive gradient that would teach the video tower order vanishes with them
            loss = (
                loss
                + reversal_hinge(v[:n][has_rev], v[n:], cfg.reverse_margin)
                + reversal_hinge(t[:n][has_rev], t[n:], cfg.reverse_margin)
            )
        if cfg.text_margin is not None:  # captions of different events must not merge (optim.neighbour_hinge)
            loss = loss + neighbour_hinge(t, kids, cfg.text_margin)
        if not torch.isfinite(loss):
            return float(loss.item()), x.shape[0]
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
        return float(loss.item()), x.shape[0]

    def epoch_batches(self, epoch: int) -> tuple[list[list[int]], np.random.Generator, torch.Generator]:
        """The batches and random sources of ``epoch`` (1-based), reseeded from ``(seed, epoch)``."""
        cfg = self.cfg
        rng = np.random.default_rng([cfg.seed, epoch])
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
        torch.manual_seed(cfg.seed * 7919 + epoch)  # token masking draws from the global RNG
        # by key (the group, else the caption): no key twice in a batch where avoidable, and hard
        # negatives by the words of the keys (a group named by its words, e.g. the canonical caption
        # of the synthetic clips, then meets its neighbours without the noise of paraphrases)
        if cfg.hard_negatives > 1:
            batches = neighbour_batches(self.train_keys, cfg.batch_size, rng, group=cfg.hard_negatives)
        else:
            batches = unique_caption_batches(self.train_keys, cfg.batch_size, rng)
        return batches, rng, gen

    # ------------------------------------------------------------------- epoch
    def train_epoch(self, on_step: Callable[[StepInfo], None] | None = None) -> EpochResult:
        """Run one epoch (reseeded from ``(seed, epoch)``), validate, checkpoint."""
        cfg, model = self.cfg, self.model
        epoch = self.epoch + 1
        batches, rng, gen = self.epoch_batches(epoch)
        model.train()
        t0, c0 = time.perf_counter(), time.process_time()
        losses: list[float] = []
        done = 0
        for k, idx in enumerate(batches):
            gstep = (epoch - 1) * self.steps_per_epoch + k
            lr = lr_at(gstep, self.total_steps, cfg.lr, cfg.warmup, cfg.min_lr_ratio)
            loss, n = self.train_step(idx, rng, gen, lr)
            if not math.isfinite(loss):
                raise FloatingPointError(f"loss became {loss} at epoch {epoch} step {k + 1}; lower --lr")
            losses.append(loss)
            done += n
            if on_step is not None:
                elapsed = max(1e-9, time.perf_counter() - t0)
                on_step(
                    StepInfo(
                        epoch,
                        k + 1,
                        len(batches),
                        gstep + 1,
                        self.total_steps,
                        losses[-1],
                        lr,
                        float(model.temp.item()),
                        done / elapsed,
                    )
                )
        result = EpochResult(
            epoch, float(np.mean(losses)), seconds=time.perf_counter() - t0, cpu_seconds=time.process_time() - c0
        )
        result.val = self.validate()
        self.epoch = epoch
        self.history.append(result)
        if result.val:
            score = selection_score(result.val, self.cfg.select_metric)
            if self.best_score is None or score > self.best_score:
                self.best_score, self.best_epoch, result.best = score, epoch, True
            elif self.cfg.patience and epoch - self.best_epoch >= self.cfg.patience:
                self.stopped_early = True
                LOG.info(
                    "no better %s for %d epochs: stopping after epoch %d (best: epoch %d)",
                    self.cfg.select_metric,
                    self.cfg.patience,
                    epoch,
                    self.best_epoch,
                )
        if self.out_dir is not None:
            result.checkpoint = str(self._checkpoint_path(epoch))
            self._checkpoint(epoch, result.best and self.cfg.select_best)
        elif result.best and self.cfg.select_best:
            self._best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        LOG.info("epoch %d: loss %.4f val %s (%.0fs)", epoch, result.loss, result.val.get("t2v"), result.seconds)
        return result

    def fit(
        self, on_step: Callable[[StepInfo], None] | None = None, on_epoch: Callable[[EpochResult], None] | None = None
    ) -> list[EpochResult]:
        """Train the remaining epochs (or until ``patience`` runs out) and select the final weights.

        With ``out_dir``, writes ``last.pth`` (the last weights) and ``model.pth`` (the selected
        ones), each with its config JSON. With ``select_best`` and a validation split the model
        ends holding the best epoch's weights.
        """
        while self.epoch < self.cfg.epochs and not self.stopped_early:
            result = self.train_epoch(on_step)
            if on_epoch is not None:
                on_epoch(result)
        if self.out_dir is not None:
            self._save_model(self.out_dir / LAST_NAME)
        if self.selected == "best":
            if self.out_dir is not None:
                ckpt = torch.load(self.out_dir / BEST_NAME, map_location="cpu", weights_only=True)
                self.model.load_state_dict(ckpt["model"])
            elif self._best_state is not None:
                self.model.load_state_dict(self._best_state)
        if self.out_dir is not None:
            self._save_model(self.out_dir / FINAL_NAME)
        return self.history

    @property
    def selected(self) -> str:
        """Which weights the run ends with: ``"best"`` (a validation epoch was best) or ``"last"``."""
        return "best" if self.cfg.select_best and self.best_epoch > 0 else "last"

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

    def _checkpoint(self, epoch: int, best: bool = False) -> Path:
        """Write ``epoch-NNN.pth`` (and ``best.pth`` when ``best``), then the state pointing at them; prune old epoch files."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self._checkpoint_path(epoch)
        self._save_model(path)
        if best:
            self._save_model(self.out_dir / BEST_NAME)
        state = {
            "epoch": epoch,
            "checkpoint": path.name,
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "train_config": dataclasses.asdict(self.cfg),
            "history": [dataclasses.asdict(h) for h in self.history],
            "best_epoch": self.best_epoch,
            "best_score": self.best_score,
            "stopped_early": self.stopped_early,
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
        self.best_epoch = int(state.get("best_epoch", 0))
        score = state.get("best_score")
        self.best_score = tuple(score) if score is not None else None
        self.stopped_early = bool(state.get("stopped_early", False))
        LOG.info("resumed after epoch %d from %s", self.epoch, self.out_dir / state["checkpoint"])
        return self.epoch
