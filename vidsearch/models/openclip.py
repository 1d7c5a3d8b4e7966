"""An alternative encoder: any open_clip image-text model, frames mean-pooled into a clip.

Video embedding = L2-normalize(mean over frames of the L2-normalized frame embeddings). Frames
get open_clip's own test transform (shortest side resized to the model's image size with
bicubic antialiasing, center crop, the model's mean/std). Weights must be a local file: the
model name is ``openclip:<arch>`` with ``arch`` an open_clip architecture (``ViT-B-32``, ...)
or any name together with ``config=`` pointing at an open_clip model config JSON.
"""

from __future__ import annotations

import logging
import math
import os
import pickle
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vidsearch.errors import CheckpointError, ModelError, WeightsNotFoundError
from vidsearch.fileio import why_not_a_file
from vidsearch.models.base import Encoder
from vidsearch.models.info import EncoderInfo
from vidsearch.models.keymemo import remember_key
from vidsearch.models.viclip import read_json_object
from vidsearch.models.weights import CHECKPOINT_ENV, checkpoint_hash
from vidsearch.precision import space_key
from vidsearch.settings import settings

__all__ = [
    "OPENCLIP_PREFIX",
    "OpenCLIPEncoder",
    "space_name",
    "resolve_openclip",
    "read_openclip_config",
    "openclip_key",
    "describe_openclip",
    "load_openclip",
]

LOG = logging.getLogger(__name__)

OPENCLIP_PREFIX = "openclip:"  # model names of this family: openclip:<arch>


def space_name(arch: str) -> str:
    """The name part of an open_clip encoder's ``key``: ``openclip-<arch>`` with odd characters as ``_``."""
    return "openclip-" + re.sub(r"[^A-Za-z0-9._-]+", "_", arch)


def read_openclip_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """An open_clip model config (``embed_dim``, ``vision_cfg``, ``text_cfg``) from JSON.

    Accepts both a bare model config and the ``open_clip_config.json`` layout (``model_cfg``).
    """
    data = read_json_object(path, "open_clip config")
    if isinstance(data.get("model_cfg"), dict):
        data = data["model_cfg"]
    if not all(k in data for k in ("embed_dim", "vision_cfg", "text_cfg")):
        raise ModelError(f"open_clip config {path} needs embed_dim, vision_cfg and text_cfg entries")
    return data


def resolve_openclip(
    arch: str, checkpoint: str | os.PathLike[str] | None, config: str | os.PathLike[str] | None
) -> tuple[str, Path, Path | None]:
    """(arch, absolute checkpoint path, absolute config path) for ``openclip:<arch>``.

    Raises:
        ModelError: empty architecture name.
        WeightsNotFoundError: no local checkpoint given.
        CheckpointError: the given checkpoint does not exist.
    """
    if not arch:
        raise ModelError(f"{OPENCLIP_PREFIX} needs an architecture, e.g. {OPENCLIP_PREFIX}ViT-B-32")
    source = checkpoint if checkpoint is not None else settings().checkpoint
    if not source:
        raise WeightsNotFoundError(
            f"{OPENCLIP_PREFIX}{arch} needs a local checkpoint (an open_clip .pt/.bin/.safetensors file)",
            hint=f"give its path or set {CHECKPOINT_ENV}=PATH",
            remedy="pass_checkpoint",
            env=CHECKPOINT_ENV,
        )
    path = Path(source).expanduser()
    why = why_not_a_file(path)
    if why:
        raise CheckpointError(f"checkpoint {path} {why}", path=path, hint="check its path", remedy="check_checkpoint")
    cfg_path = Path(config).expanduser().resolve() if config is not None else None
    return arch, path.resolve(), cfg_path


def _unknown_arch(arch: str) -> ModelError:
    return ModelError(
        f"unknown open_clip architecture {arch!r}; choose one of open_clip.list_models() "
        f"(e.g. ViT-B-32, ViT-B-16, ViT-L-14) or pass config=<model config JSON>"
    )


def _square_side(size: int | Sequence[int]) -> int:
    """The frame side of open_clip's ``image_size`` (an int, or ``(H, W)`` of a square input)."""
    return int(size[0] if isinstance(size, (tuple, list)) else size)


def _build(arch: str, cfg_path: Path | None) -> torch.nn.Module:
    import open_clip

    if cfg_path is None:
        if arch not in open_clip.list_models():
            raise _unknown_arch(arch)
        return open_clip.create_model(arch, pretrained=None, device="cpu")
    cfg = read_openclip_config(cfg_path)
    cfg = dict(cfg)
    custom = cfg.pop("custom_text", False) or "hf_model_name" in cfg.get("text_cfg", {})
    cls = open_clip.CustomTextCLIP if custom else open_clip.CLIP
    try:
        return cls(**cfg)
    except TypeError as exc:
        raise ModelError(f"open_clip config {cfg_path} is not a valid model config: {exc}") from None


class OpenCLIPEncoder(Encoder):
    """An open_clip model used per frame, its frame embeddings mean-pooled per clip."""

    antialias = True  # open_clip's transform resizes with PIL, which always antialiases
    num_frames = 8  # frames sampled per clip; any T is accepted (mean pooling)

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        arch: str,
        checkpoint: Path,
        sha256: str,
        spec: dict[str, Any],
        device: torch.device,
        tokenizer: Any,
        precision: str = "fp32",
    ) -> None:
        import open_clip

        self.model = model.eval().to(device)
        self.device = device
        visual = model.visual
        self.resolution = _square_side(getattr(visual, "image_size", 224))
        pre = open_clip.get_model_preprocess_cfg(model) if hasattr(open_clip, "get_model_preprocess_cfg") else {}
        self.mean = tuple(pre.get("mean", open_clip.OPENAI_DATASET_MEAN))
        self.std = tuple(pre.get("std", open_clip.OPENAI_DATASET_STD))
        self.embed_dim = int(getattr(visual, "output_dim", 0) or model.text_projection.shape[-1])
        self.checkpoint, self.checkpoint_hash = checkpoint, sha256
        self.precision = precision
        self.key = space_key(f"{space_name(arch)}@{sha256[:12]}", precision)
        self.spec = {**spec, "precision": precision}
        self._tokenizer = tokenizer

    @property
    def temperature(self) -> float | None:
        """``1 / exp(logit_scale)``: open_clip's logits are ``exp(logit_scale) * similarity``."""
        scale = getattr(self.model, "logit_scale", None)
        if scale is None:
            return None
        value = math.exp(float(scale.detach().float().cpu()))
        return 1.0 / value if value > 0 and math.isfinite(value) else None

    @classmethod
    def load(
        cls,
        arch: str,
        checkpoint: str | os.PathLike[str] | None,
        config: str | os.PathLike[str] | None,
        device: torch.device,
        precision: str = "fp32",
    ) -> OpenCLIPEncoder:
        """Build ``arch`` (or the config JSON) at a resolved ``precision``, load the local checkpoint strictly."""
        import open_clip

        arch, path, cfg_path = resolve_openclip(arch, checkpoint, config)
        model = _build(arch, cfg_path)
        try:
            open_clip.load_checkpoint(model, str(path), strict=True)
        except (pickle.UnpicklingError, EOFError, OSError) as exc:
            raise CheckpointError(f"cannot read open_clip checkpoint {path}: {exc}; re-download it") from None
        except Exception as exc:  # noqa: BLE001 - open_clip signals misfits with RuntimeError or assert
            if type(exc).__name__ == "SafetensorError":
                raise CheckpointError(f"cannot read open_clip checkpoint {path}: {exc}; re-download it") from None
            msg = " ".join(str(exc).split()) or type(exc).__name__
            raise CheckpointError(
                f"checkpoint {path} does not fit open_clip {arch} ({msg[:300]}); pick the matching "
                f"architecture or pass its model config JSON with config="
            ) from None
        if cfg_path is None:
            tokenizer = open_clip.get_tokenizer(arch)
        else:
            text_cfg = read_openclip_config(cfg_path)["text_cfg"]
            tokenizer = open_clip.SimpleTokenizer(context_length=text_cfg.get("context_length", 77))
        return cls(
            model,
            arch=arch,
            checkpoint=path,
            sha256=checkpoint_hash(path),
            spec=_spec(arch, path, cfg_path),
            device=device,
            tokenizer=tokenizer,
            precision=precision,
        )

    def _preprocess(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 ``[N, H, W, C]`` -> normalized float ``[N, C, S, S]`` (open_clip's test transform)."""
        x = torch.as_tensor(np.asarray(frames)).to(self.device).permute(0, 3, 1, 2).float()  # NHWC -> NCHW
        S = self.resolution
        H, W = x.shape[-2:]
        if min(H, W) != S:
            # torchvision Resize(S): the short side becomes S, the long side int(S * long / short).
            size = (S, int(S * W / H)) if H <= W else (int(S * H / W), S)
            x = F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=True)
            x = x.clamp_(0, 255).round_()  # PIL resizes in uint8
        H, W = x.shape[-2:]
        top, left = int(round((H - S) / 2.0)), int(round((W - S) / 2.0))
        x = x[..., top : top + S, left : left + S] / 255.0
        mean = torch.tensor(self.mean, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, 3, 1, 1)
        return (x - mean) / std

    def encode_frames(self, frames: np.ndarray | torch.Tensor) -> np.ndarray:
        """L2-normalized per-frame embeddings ``[N, D]`` of uint8 frames ``[N, H, W, C]``."""
        with torch.inference_mode(), self.autocast():
            return F.normalize(self.model.encode_image(self._preprocess(frames)).float(), dim=-1).cpu().numpy()

    def encode_video(self, frames: np.ndarray | torch.Tensor) -> np.ndarray:
        """Renormalized mean of the normalized frame embeddings: float32 ``[B, D]``."""
        frames = self.check_frames(frames)
        B, T = frames.shape[:2]
        with torch.inference_mode(), self.autocast():
            x = self._preprocess(frames.reshape(B * T, *frames.shape[2:]))
            emb = F.normalize(self.model.encode_image(x).float(), dim=-1)  # [B*T, D]
            emb = F.normalize(emb.view(B, T, -1).mean(1), dim=-1)  # [B, D]
        return emb.cpu().numpy().astype(np.float32, copy=False)

    def encode_text(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalized caption embeddings, float32 ``[B, D]``."""
        tokens = self._tokenizer(self.check_texts(texts)).to(self.device)
        with torch.inference_mode(), self.autocast():
            emb = F.normalize(self.model.encode_text(tokens).float(), dim=-1)
        return emb.cpu().numpy().astype(np.float32, copy=False)


def openclip_key(
    arch: str, checkpoint: str | os.PathLike[str] | None = None, config: str | os.PathLike[str] | None = None
) -> str:
    """The ``key`` :func:`load_openclip` would give, from the checkpoint's (cached) hash alone."""
    name, path, cfg_path = resolve_openclip(arch, checkpoint, config)
    key = f"{space_name(name)}@{checkpoint_hash(path)[:12]}"
    remember_key(OPENCLIP_PREFIX + arch, checkpoint, config, key, [path, cfg_path])  # the registry's name
    return key


def _spec(arch: str, path: Path, cfg_path: Path | None) -> dict[str, Any]:
    """The :class:`~vidsearch.models.spec.EncoderSpec` fields that rebuild a resolved ``openclip:<arch>``."""
    return {"model": OPENCLIP_PREFIX + arch, "checkpoint": str(path), "config": str(cfg_path) if cfg_path else None}


def describe_openclip(
    arch: str, checkpoint: str | os.PathLike[str] | None = None, config: str | os.PathLike[str] | None = None
) -> EncoderInfo:
    """What :func:`load_openclip` would build, from the model config and the checkpoint's (cached) hash.

    Raises:
        ModelError: an architecture open_clip does not know (without a config JSON).
    """
    import open_clip

    arch, path, cfg_path = resolve_openclip(arch, checkpoint, config)
    cfg = read_openclip_config(cfg_path) if cfg_path is not None else open_clip.get_model_config(arch)
    if cfg is None:
        raise _unknown_arch(arch)
    return EncoderInfo(
        key=openclip_key(arch, checkpoint, config),
        num_frames=OpenCLIPEncoder.num_frames,
        resolution=_square_side(cfg["vision_cfg"].get("image_size", 224)),
        embed_dim=int(cfg["embed_dim"]),
        spec=_spec(arch, path, cfg_path),
        antialias=OpenCLIPEncoder.antialias,
    )


def load_openclip(
    arch: str,
    checkpoint: str | os.PathLike[str] | None,
    config: str | os.PathLike[str] | None,
    device: torch.device,
    precision: str = "fp32",
) -> OpenCLIPEncoder:
    """Build ``openclip:<arch>`` on ``device`` at ``precision`` (see :meth:`OpenCLIPEncoder.load`)."""
    return OpenCLIPEncoder.load(arch, checkpoint, config, device, precision)
