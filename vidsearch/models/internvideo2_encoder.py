"""The InternVideo2 encoder family: :class:`InternVideo2Encoder` and its registry functions.

Model names (routed here by :mod:`vidsearch.models.registry`):

* the preset ``internvideo2-1b`` (``OpenGVLab/InternVideo2-Stage2_1B-224p-f4``; weights: explicit
  path, ``VIDSEARCH_CHECKPOINT``, Hugging Face cache/hub; the published bf16 ``.pt`` loads as it is);
* a checkpoint path whose config JSON (``config=``, ``<stem>.json`` or ``config.json``) says
  ``"family": "internvideo2"`` (sizes in :meth:`InternVideo2Config.to_dict` layout), or whose
  keys are the Stage-2 model's and whose shapes are the 1B preset's.

The BERT vocabulary: ``VIDSEARCH_BERT_VOCAB``, else ``vocab.txt`` beside the checkpoint, else
bert-large-uncased's from the hub (the checkpoint ships none).

Preprocessing is the official evaluation's: frames resized to 224x224 bicubic without
antialiasing (torchvision 0.14.1), ImageNet mean/std; captions through ``pre_text`` and
WordPiece to ``max_txt_l`` tokens. Besides the ITC embeddings the encoder gives what ITM
re-ranking needs: a video's tokens and :meth:`InternVideo2Encoder.itm_scores`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidsearch.errors import ModelError
from vidsearch.models.base import Encoder, l2_normalized
from vidsearch.models.checkpoint_io import checkpoint_hash, read_shapes
from vidsearch.models.hub import resolve_checkpoint, resolve_hub_file
from vidsearch.models.info import EncoderInfo, checkpoint_spec
from vidsearch.models.internvideo2 import (
    PRESETS,
    InternVideo2,
    InternVideo2Config,
    infer_internvideo2_config,
    load_internvideo2_checkpoint,
)
from vidsearch.models.internvideo2_itm import itm_match_scores
from vidsearch.models.internvideo2_text import WordPieceTokenizer, pre_text
from vidsearch.models.keymemo import remember_checkpoint_key
from vidsearch.models.preprocess import normalize_frames

__all__ = [
    "VOCAB_ENV",
    "InternVideo2Encoder",
    "resolve_internvideo2",
    "internvideo2_key",
    "describe_internvideo2",
    "load_internvideo2",
]

LOG = logging.getLogger(__name__)

VOCAB_ENV = "VIDSEARCH_BERT_VOCAB"
TEXT_CHUNK = 64  # captions per text-tower call
ITM_BATCH = 16  # (caption, video) pairs per fusion call


class InternVideo2Encoder(Encoder):
    """An :class:`~vidsearch.models.internvideo2.InternVideo2` with the official preprocessing.

    ``encode_video``/``encode_text`` give the ITC space; :meth:`video_tokens` and
    :meth:`itm_scores` give ITM re-ranking.
    """

    antialias = False  # the published model was evaluated with torchvision 0.14.1 (no antialias)
    model: InternVideo2

    def __init__(
        self,
        model: InternVideo2,
        tokenizer: WordPieceTokenizer,
        *,
        name: str,
        checkpoint: Path,
        sha256: str,
        spec: dict[str, Any],
        device: torch.device,
        precision: str = "fp32",
    ) -> None:
        self.model = model.eval().to(device)
        cfg = model.config
        self.config = cfg
        self.tokenizer = tokenizer
        self.num_frames, self.resolution, self.embed_dim = cfg.vision.num_frames, cfg.vision.img_size, cfg.embed_dim
        self.set_source(name, checkpoint, sha256, spec, device, precision)

    @property
    def temperature(self) -> float | None:
        """The checkpoint's contrastive temperature ``temp`` (ITC logits = cosine / temp), if it has one."""
        t = self.model.temp
        return t if t is not None and 0 < t < float("inf") else None

    def _video_input(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        t = self.check_frames(frames).shape[1]
        if t not in (1, self.num_frames):
            raise ValueError(f"InternVideo2 takes clips of {self.num_frames} frames (or 1 image), got {t}")
        return normalize_frames(self.frames_tensor(frames))  # [B, T, C, H, W]

    def encode_video(self, frames: np.ndarray | torch.Tensor) -> np.ndarray:
        """Embed uint8 clips ``[B, T, H, W, C]`` (``T`` = ``num_frames`` or 1) into float32 ``[B, D]``."""
        x = self._video_input(frames)
        with torch.inference_mode(), self.autocast():
            return l2_normalized(self.model.encode_vision(x)[1])

    def video_tokens(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """The ITM memory of uint8 clips: the last block's tokens ``[B, 1+T*L, width]`` on the device."""
        x = self._video_input(frames)
        with torch.inference_mode(), self.autocast():
            return self.model.encode_vision(x)[0]

    def tokenize(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Captions cleaned by ``pre_text`` -> ``(input_ids, attention_mask)`` on the device."""
        ids, mask = self.tokenizer([pre_text(t) for t in self.check_texts(texts)])
        return ids.to(self.device), mask.to(self.device)

    def encode_text(self, texts: Sequence[str]) -> np.ndarray:
        """Embed captions into float32 ``[B, D]``."""
        ids, mask = self.tokenize(texts)
        out = torch.empty(len(ids), self.embed_dim)
        with torch.inference_mode(), self.autocast():
            for i in range(0, len(ids), TEXT_CHUNK):
                out[i : i + TEXT_CHUNK] = (
                    self.model.encode_text(ids[i : i + TEXT_CHUNK], mask[i : i + TEXT_CHUNK])[1].float().cpu()
                )
        return l2_normalized(out)

    def text_states(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """The ITM input of captions: text-layer states ``[B, L, hidden]`` and masks ``[B, L]``, on the device."""
        ids, mask = self.tokenize(texts)
        with torch.inference_mode(), self.autocast():
            return self.model.encode_text(ids, mask)[0], mask

    def itm_scores(self, states: torch.Tensor, mask: torch.Tensor, tokens: torch.Tensor) -> np.ndarray:
        """ITM match logits of row-aligned (caption, video) pairs; one caption or one video broadcasts.

        Args:
            states: :meth:`text_states`' states ``[K, L, hidden]`` or ``[1, L, hidden]``.
            mask: their masks.
            tokens: :meth:`video_tokens` ``[K, N, width]`` or ``[1, N, width]``.

        Returns:
            float32 ``[K]``.
        """
        with torch.inference_mode(), self.autocast():
            scores = itm_match_scores(
                self.model, states.to(self.device), mask.to(self.device), tokens.to(self.device), batch=ITM_BATCH
            )
        return scores.cpu().numpy().astype(np.float32)

    def quantize_int8(self) -> InternVideo2Encoder:
        """This encoder with int8 weights and dynamically quantized activations in its ``nn.Linear`` layers (CPU).

        PyTorch's dynamic quantization (fbgemm/x86 kernels), not the ONNX Runtime recipe of
        ViCLIP: the 1B vision tower's fp32 graph is 4 GB, past ONNX's 2 GB single-file limit.
        The attention-pooling head keeps fp32 (it reads its weights directly, and runs on one
        query token). Quantizes in place; the key gets its ``+int8`` suffix from the caller.
        """

        from torch import nn

        qconfig = torch.ao.quantization.default_dynamic_qconfig
        spec = {
            name: qconfig
            for name, module in self.model.named_modules()
            if isinstance(module, nn.Linear) and not name.startswith("vision_encoder.clip_projector")
        }
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch.ao's notice; the kernels are current
            warnings.simplefilter("ignore", UserWarning)
            torch.ao.quantization.quantize_dynamic(self.model, spec, dtype=torch.qint8, inplace=True)
        return self


# ------------------------------------------------------------------------------ the family functions


def _config_name(cfg: InternVideo2Config) -> str:
    """The preset's name, or ``internvideo2-custom-<8 hex of the config>``."""
    for name, preset in PRESETS.items():
        if preset == cfg:
            return name
    blob = json.dumps(cfg.to_dict(), sort_keys=True).encode()
    return f"internvideo2-custom-{hashlib.sha256(blob).hexdigest()[:8]}"


def resolve_internvideo2(
    model: str, checkpoint: str | os.PathLike[str] | None, config: str | os.PathLike[str] | None
) -> tuple[str, Path, InternVideo2Config, Path | None]:
    """(space name, checkpoint path, config, config path) of a preset or checkpoint path, nothing built.

    Raises:
        ModelError: unusable config, or a checkpoint path whose shapes fit no preset and no config given.
        CheckpointError, WeightsNotFoundError: the weights cannot be found or read.
    """
    if model in PRESETS:
        path = resolve_checkpoint(model, checkpoint)
    else:
        path = Path(model).expanduser()
        if checkpoint is not None and Path(checkpoint).expanduser().resolve() != path.resolve():
            raise ModelError(f"model {model} is a checkpoint path but checkpoint={checkpoint} names another file")
        path = resolve_checkpoint("", path)
    cfg_path = Path(config).expanduser().resolve() if config is not None else None
    if cfg_path is None and model not in PRESETS:
        cfg_path = next((c for c in (path.with_suffix(".json"), path.parent / "config.json") if c.is_file()), None)
    if cfg_path is not None:
        cfg = InternVideo2Config.from_json(cfg_path)
    elif model in PRESETS:
        cfg = PRESETS[model]
    else:
        found = infer_internvideo2_config(read_shapes(path))
        if found is None:
            raise ModelError(
                f"checkpoint {path} is an InternVideo2 model of no known size",
                path=path,
                hint='give its config JSON (InternVideo2Config.to_dict() fields and "family": "internvideo2")',
                remedy="pass_model_config",
            )
        cfg = found
    return _config_name(cfg), path, cfg, cfg_path


def _spec(model: str, path: Path, cfg_path: Path | None) -> dict[str, Any]:
    """The :class:`~vidsearch.models.spec.EncoderSpec` fields that rebuild this resolved model."""
    return checkpoint_spec(model, model in PRESETS, path, cfg_path)


def internvideo2_key(
    model: str, checkpoint: str | os.PathLike[str] | None = None, config: str | os.PathLike[str] | None = None
) -> str:
    """The ``key`` :func:`load_internvideo2` would give, from the checkpoint's (cached) hash alone."""
    name, path, _, cfg_path = resolve_internvideo2(model, checkpoint, config)
    return remember_checkpoint_key(model, checkpoint, config, name, checkpoint_hash(path), path, cfg_path)


def describe_internvideo2(
    model: str, checkpoint: str | os.PathLike[str] | None = None, config: str | os.PathLike[str] | None = None
) -> EncoderInfo:
    """What :func:`load_internvideo2` would build, without its weights."""
    name, path, cfg, cfg_path = resolve_internvideo2(model, checkpoint, config)
    return EncoderInfo(
        key=remember_checkpoint_key(model, checkpoint, config, name, checkpoint_hash(path), path, cfg_path),
        num_frames=cfg.vision.num_frames,
        resolution=cfg.vision.img_size,
        embed_dim=cfg.embed_dim,
        spec=_spec(model, path, cfg_path),
        antialias=InternVideo2Encoder.antialias,
    )


def resolve_vocab(checkpoint: Path) -> Path:
    """The BERT ``vocab.txt``: ``VIDSEARCH_BERT_VOCAB``, beside the checkpoint, else the hub's bert-large-uncased."""
    env = os.environ.get(VOCAB_ENV)
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise ModelError(f"{VOCAB_ENV}={env} does not exist; point it at bert-large-uncased's vocab.txt")
        return path
    beside = checkpoint.parent / "vocab.txt"
    if beside.is_file():
        return beside
    return resolve_hub_file("internvideo2-1b/vocab")


def load_internvideo2(
    model: str,
    checkpoint: str | os.PathLike[str] | None,
    config: str | os.PathLike[str] | None,
    device: torch.device,
    precision: str = "fp32",
) -> InternVideo2Encoder:
    """Build the preset or checkpoint path on ``device`` (eval mode) at a resolved ``precision``, loaded
    strictly (int8: fp32 weights quantized by :meth:`InternVideo2Encoder.quantize_int8`)."""
    name, path, cfg, cfg_path = resolve_internvideo2(model, checkpoint, config)
    tokenizer = WordPieceTokenizer(resolve_vocab(path), cfg.max_txt_l)
    sha = checkpoint_hash(path)
    with torch.device("meta"):
        net = InternVideo2(cfg)  # no memory for a random init: the checkpoint overwrites every tensor
    net = net.to_empty(device="cpu")
    load_internvideo2_checkpoint(net, path)
    LOG.info("loaded %s from %s on %s", name, path, device)
    encoder = InternVideo2Encoder(
        net,
        tokenizer,
        name=name,
        checkpoint=path,
        sha256=sha,
        spec=_spec(model, path, cfg_path),
        device=device,
        precision=precision,
    )
    return encoder.quantize_int8() if precision == "int8" else encoder
