"""The int8 encoder (CPU, ONNX Runtime); :func:`vidsearch.models.opener.open_encoder` opens it.

The policy (what ``auto`` means on which device, the key suffix) is :mod:`vidsearch.precision`
(torch-free), resolved for a device by :func:`vidsearch.models.precision.resolve_precision`.
The other precisions are the PyTorch encoders' own (:class:`~vidsearch.models.base.Encoder`
takes its precision when built: ``bf16``/``fp16`` run the towers under ``torch.autocast`` with
that dtype, LayerNorms staying fp32; ``fp32`` runs without autocast on any device).

* ``int8`` (CPU): both towers run as ONNX Runtime graphs with dynamic int8 quantization
  (``quantize_dynamic``: int8 weights per output channel, activations quantized per call).
  Measured against torchao's int8 dynamic-activation/int8-weight on ViCLIP-B/16 in the same
  run (``benchmarks/encoder_speed.py``), ONNX Runtime was the faster one by a wide margin, so it
  is the int8 path. The PyTorch module keeps its fp32 weights and official parameter names
  (checkpoints are never written from a quantized model).

The encoder's ``key`` gets the ``+int8`` suffix, and its ``spec`` records the precision, so a
library never mixes vectors of two precisions in one space.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from vidsearch.errors import ModelError
from vidsearch.media.resize import resize_clips
from vidsearch.models.base import Encoder
from vidsearch.models.preprocess import IMAGENET_MEAN, IMAGENET_STD
from vidsearch.precision import space_key, split_key

__all__ = ["OnnxInt8Encoder", "normalize_frames_np"]

LOG = logging.getLogger(__name__)


def normalize_frames_np(frames: np.ndarray) -> np.ndarray:
    """uint8 ``[B, T, H, W, C]`` -> normalized float32 ``[B, T, C, H, W]`` (numpy, for ONNX)."""
    x = frames.astype(np.float32) * np.float32(1 / 255)
    x -= np.asarray(IMAGENET_MEAN, dtype=np.float32)
    x /= np.asarray(IMAGENET_STD, dtype=np.float32)
    return np.ascontiguousarray(x.transpose(0, 1, 4, 2, 3))


def _l2(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


class OnnxInt8Encoder(Encoder):
    """A ViCLIP encoder whose towers run as int8 ONNX Runtime graphs (CPU).

    Frames are resized with the official transform and normalized in numpy; the graphs are
    exported from ``inner``'s model once per space (cached, parity-checked).

    Args:
        inner: the fp32 PyTorch encoder (its model is exported; it stays loaded for fine-tuning).
        threads: ONNX Runtime intra-op threads (None: all cores).
    """

    def __init__(self, inner: Encoder, threads: int | None = None) -> None:
        from vidsearch.models.onnx_text import OnnxTextEncoder, read_meta
        from vidsearch.models.viclip import ViCLIP

        if not isinstance(inner.model, ViCLIP):
            raise ModelError("int8 supports ViCLIP models", argument="precision", hint="use fp32 for openclip: models")
        from vidsearch.models.onnx_export import ensure_graph

        self.inner = inner
        self.model, self.device = inner.model, inner.device
        self.num_frames, self.resolution, self.embed_dim = inner.num_frames, inner.resolution, inner.embed_dim
        self.checkpoint_hash = inner.checkpoint_hash
        self.precision = "int8"
        self.key = space_key(split_key(inner.key)[0], "int8")
        self.spec = {**inner.spec, "precision": "int8"}
        self.threads = threads
        text_path = ensure_graph(self.model, self.key, "text", "int8")
        self._text = OnnxTextEncoder(text_path, read_meta(text_path) or {}, threads)
        self._vision: dict[int, Any] = {}

    def _vision_session(self, t: int) -> Any:
        from vidsearch.models.onnx_export import ensure_graph
        from vidsearch.models.onnx_text import make_session

        if t not in self._vision:
            self._vision[t] = make_session(
                ensure_graph(self.model, self.key, "vision", "int8", num_frames=t), self.threads
            )
        return self._vision[t]

    def encode_video(self, frames: np.ndarray | torch.Tensor) -> np.ndarray:
        """Embed uint8 clips ``[B, T, H, W, C]`` into L2-normalized float32 ``[B, D]``."""
        frames = resize_clips(self.check_frames(frames), self.resolution, self.antialias)
        out = self._vision_session(frames.shape[1]).run(None, {"frames": normalize_frames_np(frames)})[0]
        return _l2(out)

    def encode_text(self, texts: Sequence[str]) -> np.ndarray:
        """Embed captions into L2-normalized float32 ``[B, D]``."""
        return self._text.encode_text(texts)
