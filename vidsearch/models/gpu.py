"""GPU encoding paths: fixed batch shapes, torch.compile, pinned-memory prefetch (CPU fallbacks).

Every path checks its capability and falls back to plain eager CPU behaviour, so the same calls
work everywhere and the fallbacks are tested on CPU machines:

* :func:`pad_batch` / :class:`FixedBatchEncoder`: every forward sees the same batch shape
  (the last chunk is padded by repeating its last clip), which CUDA graphs (``torch.compile``'s
  ``reduce-overhead`` mode) need and which avoids recompiles for ragged tails;
* :func:`compile_towers`: ``torch.compile`` of both towers on CUDA, with the mode picked by
  :func:`pick_compile_mode` (a timing run, fastest wins); on a CPU the eager in-place path is
  kept, since it is what was tuned there;
* :class:`PinnedPrefetcher`: host batches copied into pinned memory and sent to the GPU on a
  side stream one batch ahead, so the copy of batch ``i + 1`` overlaps the compute of batch ``i``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from vidsearch.errors import ModelError

__all__ = ["COMPILE_MODES", "pad_batch", "FixedBatchEncoder", "compile_towers", "pick_compile_mode", "PinnedPrefetcher"]

LOG = logging.getLogger(__name__)

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune-no-cudagraphs")


def pad_batch(x: np.ndarray, batch: int) -> tuple[np.ndarray, int]:
    """``x`` with its first axis padded to ``batch`` rows (last row repeated), and the real count."""
    n = len(x)
    if n > batch:
        raise ValueError(f"pad_batch: {n} rows do not fit a batch of {batch}")
    if n == batch:
        return x, n
    if n == 0:
        raise ValueError("pad_batch: an empty batch has no row to repeat")
    pad = np.repeat(x[-1:], batch - n, axis=0)
    return np.concatenate([x, pad], axis=0), n


class FixedBatchEncoder:
    """Calls ``encode_video`` only with batches of exactly ``batch`` clips.

    Args:
        encoder: any encoder with ``encode_video(frames) -> [B, D]``.
        batch: clips per forward (the shape a compiled or CUDA-graph model was built for).
    """

    def __init__(self, encoder: Any, batch: int = 8) -> None:
        if batch < 1:
            raise ModelError(f"the fixed batch must be at least 1 clip, got {batch}")
        self.encoder, self.batch = encoder, batch

    def encode_video(self, frames: np.ndarray) -> np.ndarray:
        """Embed ``[B, T, H, W, C]`` clips in fixed-size chunks; returns ``[B, D]``."""
        frames = np.asarray(frames)
        out = []
        for start in range(0, len(frames), self.batch):
            chunk, n = pad_batch(frames[start : start + self.batch], self.batch)
            out.append(self.encoder.encode_video(chunk)[:n])
        return np.concatenate(out, axis=0) if out else np.zeros((0, self.encoder.embed_dim), np.float32)

    def __getattr__(self, name: str) -> Any:  # key, num_frames, encode_text, ... of the encoder
        return getattr(self.encoder, name)


def compile_towers(model: torch.nn.Module, device: torch.device, mode: str = "default") -> torch.nn.Module:
    """``torch.compile`` both towers of a ViCLIP on CUDA (in place); unchanged on a CPU.

    Raises:
        ModelError: an unknown mode (lists the modes).
    """
    if mode not in COMPILE_MODES:
        raise ModelError(f"unknown torch.compile mode {mode!r}; choose one of {', '.join(COMPILE_MODES)}")
    if device.type != "cuda":
        LOG.info("torch.compile skipped on %s: the eager in-place path is the tuned CPU path", device)
        return model
    model.vision_encoder = torch.compile(model.vision_encoder, mode=mode, dynamic=False)
    model.text_encoder = torch.compile(model.text_encoder, mode=mode, dynamic=False)
    return model


def pick_compile_mode(
    run: Callable[[str], Callable[[], object]], modes: Sequence[str] = COMPILE_MODES, repeats: int = 3
) -> tuple[str, dict[str, float]]:
    """The fastest mode by a timing run: ``run(mode)`` builds a step, timed after two warm-ups.

    Returns:
        (the fastest mode, {mode: best seconds per step}); a mode that fails is left out.
    """
    timings: dict[str, float] = {}
    for mode in modes:
        try:
            step = run(mode)
            step()
            step()  # compile, then the first replay (CUDA graphs record on it)
            best = float("inf")
            for _ in range(repeats):
                start = time.perf_counter()
                step()
                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                best = min(best, time.perf_counter() - start)
            timings[mode] = best
        except Exception as exc:  # a backend failing in one mode should not stop the choice
            LOG.warning("torch.compile mode %s failed: %s", mode, str(exc).splitlines()[0] if str(exc) else exc)
    if not timings:
        raise ModelError("no torch.compile mode ran; use the eager path")
    return min(timings, key=timings.__getitem__), timings


class PinnedPrefetcher:
    """Iterate device tensors made from host arrays, the next copy overlapping current compute.

    On CUDA each array is copied into pinned memory and sent with ``non_blocking=True`` on a
    side stream one item ahead; the consumer's stream waits on that copy's event only. On a CPU
    the arrays are wrapped as tensors (no copy).

    Args:
        arrays: host arrays (e.g. uint8 frame batches) in the order they will be used.
        device: where the tensors go.
    """

    def __init__(self, arrays: Iterable[np.ndarray], device: torch.device) -> None:
        self.arrays, self.device = arrays, device
        self.cuda = device.type == "cuda" and torch.cuda.is_available()

    def __iter__(self) -> Iterator[torch.Tensor]:
        if not self.cuda:
            for a in self.arrays:
                yield torch.from_numpy(np.ascontiguousarray(a))
            return
        stream = torch.cuda.Stream(device=self.device)
        pending: tuple[torch.Tensor, Any] | None = None
        for a in self.arrays:
            host = torch.from_numpy(np.ascontiguousarray(a)).pin_memory()
            with torch.cuda.stream(stream):
                dev = host.to(self.device, non_blocking=True)
                event = torch.cuda.Event()
                event.record(stream)
            if pending is not None:
                yield self._ready(*pending)
            pending = (dev, event)
        if pending is not None:
            yield self._ready(*pending)

    @staticmethod
    def _ready(tensor: torch.Tensor, event: Any) -> torch.Tensor:
        torch.cuda.current_stream().wait_event(event)
        tensor.record_stream(torch.cuda.current_stream())  # the allocator must not reuse it early
        return tensor
