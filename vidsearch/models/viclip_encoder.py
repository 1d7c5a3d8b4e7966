"""The ViCLIP encoder: a :class:`~vidsearch.models.viclip.ViCLIP` with the official preprocessing.

Model names of this family (routed here by :mod:`vidsearch.models.registry`):

* a preset: ``viclip-b16``, ``viclip-l14`` (weights: explicit path, ``VIDSEARCH_CHECKPOINT``,
  Hugging Face cache/hub; a config JSON may override the preset's architecture);
* a ViCLIP checkpoint path (``.pth``/``.pt``/``.bin``/``.safetensors``), its config from
  ``config=``, ``<stem>.json`` or ``config.json`` beside it (or inferred from its tensor shapes).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidsearch.errors import ModelError
from vidsearch.models.base import Encoder, l2_normalized
from vidsearch.models.info import EncoderInfo, checkpoint_spec
from vidsearch.models.keymemo import remember_checkpoint_key
from vidsearch.models.preprocess import normalize_frames
from vidsearch.models.tokenizer import tokenize
from vidsearch.models.viclip import PRESETS, ViCLIP, ViCLIPConfig
from vidsearch.models.weights import checkpoint_hash, load_viclip_checkpoint, resolve_checkpoint, resolve_config

__all__ = ["ViCLIPEncoder", "resolve_viclip", "viclip_key", "describe_viclip", "load_viclip"]

LOG = logging.getLogger(__name__)

TEXT_CHUNK = 64  # captions per text-tower call inside encode_text (sorted by length)


class ViCLIPEncoder(Encoder):
    """A :class:`~vidsearch.models.viclip.ViCLIP` with the official preprocessing around it."""

    def __init__(
        self,
        model: ViCLIP,
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
        self.num_frames, self.resolution, self.embed_dim = cfg.num_frames, cfg.input_resolution, cfg.embed_dim
        self.context_length = cfg.context_length
        self.set_source(name, checkpoint, sha256, spec, device, precision)

    @property
    def temperature(self) -> float | None:
        """ViCLIP's learned contrastive temperature ``temp`` (logits = similarity / temp)."""
        value = float(self.model.temp.detach().float().cpu())
        return value if value > 0 and math.isfinite(value) else None

    def encode_video(self, frames: np.ndarray | torch.Tensor) -> np.ndarray:
        """Embed uint8 clips ``[B, T, H, W, C]`` (any ``H, W, T``) into float32 ``[B, D]``.

        Frames not at ``resolution`` are resized with the official transform; ``T`` other than
        ``num_frames`` uses the temporal embedding a ``T``-frame model would get from the
        official loader (``T = 1`` is the image path).
        """
        x = self.frames_tensor(frames)
        with torch.inference_mode(), self.autocast():
            video = normalize_frames(x)  # [B, T, C, H, W] float32
            return l2_normalized(self.model.encode_video(video))

    def encode_text(self, texts: Sequence[str]) -> np.ndarray:
        """Embed captions (tokenized to ``context_length`` tokens) into float32 ``[B, D]``."""
        tokens = tokenize(self.check_texts(texts), context_length=self.context_length)
        # The text tower cuts each batch after its longest caption, so captions of similar
        # length are encoded together (same results, less padding in mixed batches).
        order = torch.argsort(tokens.argmax(dim=-1), stable=True)
        out = torch.empty(len(tokens), self.embed_dim)
        with torch.inference_mode(), self.autocast():
            for idx in order.split(TEXT_CHUNK):
                out[idx] = self.model.encode_text(tokens[idx].to(self.device)).float().cpu()
        return l2_normalized(out)


def resolve_viclip(
    model: str, checkpoint: str | os.PathLike[str] | None, config: str | os.PathLike[str] | None, download: bool = True
) -> tuple[str, Path, ViCLIPConfig, Path | None]:
    """(space name, checkpoint path, ViCLIPConfig, config path) of a preset or checkpoint path, nothing built.

    Raises:
        ModelError: a checkpoint path together with a ``checkpoint`` naming another file, or an
            unusable config.
        CheckpointError, WeightsNotFoundError: see :func:`vidsearch.models.weights.resolve_checkpoint`.
    """
    if model in PRESETS:
        path = resolve_checkpoint(model, checkpoint, download=download)
        if config is not None:
            cfg_path = Path(config).expanduser().resolve()
            cfg = ViCLIPConfig.from_json(cfg_path)
        else:
            cfg, cfg_path = ViCLIPConfig.preset(model), None
    else:
        path = Path(model).expanduser()
        if checkpoint is not None and Path(checkpoint).expanduser().resolve() != path.resolve():
            raise ModelError(
                f"model {model} is a checkpoint path but checkpoint={checkpoint} names another file; pass only one"
            )
        path = resolve_checkpoint("", path)
        cfg, cfg_path = resolve_config(path, config)
    return _config_name(cfg), path, cfg, cfg_path


def _config_name(cfg: ViCLIPConfig) -> str:
    """The preset's name, or ``viclip-custom-<8 hex of the config>`` for any other architecture."""
    preset = cfg.preset_name()
    if preset:
        return preset
    blob = json.dumps(cfg.to_dict(), sort_keys=True).encode()
    return f"viclip-custom-{hashlib.sha256(blob).hexdigest()[:8]}"


def viclip_key(
    model: str, checkpoint: str | os.PathLike[str] | None = None, config: str | os.PathLike[str] | None = None
) -> str:
    """The ``key`` :func:`load_viclip` would give, from the checkpoint's (cached) hash alone."""
    name, path, _, cfg_path = resolve_viclip(model, checkpoint, config)
    return _remembered_key(model, checkpoint, config, name, path, cfg_path)


def _remembered_key(
    model: str,
    checkpoint: str | os.PathLike[str] | None,
    config: str | os.PathLike[str] | None,
    name: str,
    path: Path,
    cfg_path: Path | None,
) -> str:
    """The key of a resolved model, remembered for its (model, checkpoint, config) arguments."""
    return remember_checkpoint_key(model, checkpoint, config, name, checkpoint_hash(path), path, cfg_path)


def _spec(model: str, path: Path, cfg_path: Path | None) -> dict[str, Any]:
    """The :class:`~vidsearch.models.spec.EncoderSpec` fields that rebuild this resolved model."""
    return checkpoint_spec(model, model in PRESETS, path, cfg_path)


def describe_viclip(
    model: str, checkpoint: str | os.PathLike[str] | None = None, config: str | os.PathLike[str] | None = None
) -> EncoderInfo:
    """What :func:`load_viclip` would build, from the config and the checkpoint's (cached) hash alone."""
    name, path, cfg, cfg_path = resolve_viclip(
        model, checkpoint, config
    )  # once: a bare checkpoint's shapes are read here
    return EncoderInfo(
        key=_remembered_key(model, checkpoint, config, name, path, cfg_path),
        num_frames=cfg.num_frames,
        resolution=cfg.input_resolution,
        embed_dim=cfg.embed_dim,
        spec=_spec(model, path, cfg_path),
        antialias=ViCLIPEncoder.antialias,
    )


def load_viclip(
    model: str,
    checkpoint: str | os.PathLike[str] | None,
    config: str | os.PathLike[str] | None,
    device: torch.device,
    precision: str = "fp32",
) -> ViCLIPEncoder:
    """Build a ViCLIP preset or checkpoint path on ``device`` (eval mode) at a resolved ``precision``,
    weights loaded strictly."""
    name, path, cfg, cfg_path = resolve_viclip(model, checkpoint, config)
    sha = checkpoint_hash(path)
    with _default_device("meta"):
        net = ViCLIP(cfg)  # no memory for the random init: the checkpoint overwrites every tensor
    net = net.to_empty(device="cpu")
    load_viclip_checkpoint(net, path)
    spec = _spec(model, path, cfg_path)
    LOG.info("loaded %s from %s on %s", name, path, device)
    return ViCLIPEncoder(net, name=name, checkpoint=path, sha256=sha, spec=spec, device=device, precision=precision)


@contextlib.contextmanager
def _default_device(device: str) -> Iterator[None]:
    with torch.device(device):
        yield
