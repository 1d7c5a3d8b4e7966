"""The InternVideo2 Stage-2 video-text model: vision tower, BERT, projections and ITM head.

The port of the official ``InternVideo2_Stage2`` (``OpenGVLab/InternVideo``,
``InternVideo2/multi_modality``) for retrieval:

* ITC: ``vision_proj(attention_pool(tokens))`` and ``text_proj(BERT text layers [CLS])``, both
  L2-normalized; similarity is their cosine;
* ITM: the BERT fusion layers run the caption's text-layer states against a video's tokens;
  ``itm_head`` on the fused ``[CLS]`` gives (no match, match) logits, column 1 re-ranks.

Parameter names are the official ones, so a checkpoint maps key for key; what inference never
reads (distillation heads, the MLM head, the training temperature) is dropped by
:func:`fit_internvideo2_state_dict` with one warning line.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vidsearch.errors import CheckpointError, ModelError
from vidsearch.models.checkpoint_io import read_state_dict
from vidsearch.models.internvideo2_bert import BertConfig, BertTextFusion
from vidsearch.models.internvideo2_vision import InternVideo2Vision, VisionConfig

__all__ = [
    "InternVideo2Config",
    "InternVideo2",
    "PRESETS",
    "UNUSED_AT_INFERENCE",
    "fit_internvideo2_state_dict",
    "load_internvideo2_checkpoint",
]

LOG = logging.getLogger(__name__)

# Keys of the official checkpoint that inference never reads (keys_1b.txt's unused roles):
# the training temperature, the distillation heads and their position tables, the MLM head and
# BERT's position_ids buffer.
UNUSED_AT_INFERENCE = re.compile(
    r"^(temp"
    r"|vision_encoder\.(clip_pos_embed|clip_img_pos_embed|clip_decoder\..*|final_clip_decoder\..*)"
    r"|text_encoder\.cls\..*"
    r"|text_encoder\.bert\.embeddings\.position_ids)$"
)
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")


@dataclass(frozen=True)
class InternVideo2Config:
    """The whole model's sizes.

    Attributes:
        vision: the vision tower.
        text: the BERT text/fusion encoder (``encoder_width`` = ``vision.width``).
        embed_dim: joint ITC embedding size.
        max_txt_l: caption length in tokens (32 in the official MSR-VTT evaluation).
    """

    vision: VisionConfig = field(default_factory=VisionConfig)
    text: BertConfig = field(default_factory=BertConfig)
    embed_dim: int = 512
    max_txt_l: int = 32

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable dict (``from_dict`` reads it back)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> InternVideo2Config:
        """Build from :meth:`to_dict`'s layout; unknown or missing fields are a ModelError."""
        try:
            vision = VisionConfig(**d.get("vision", {}))
            text = BertConfig(**d.get("text", {}))
            rest = {k: v for k, v in d.items() if k not in ("vision", "text", "family")}
            cfg = cls(vision=vision, text=text, **rest)
        except TypeError as exc:
            raise ModelError(f"InternVideo2 config: {exc}; see InternVideo2Config.to_dict() for the fields") from None
        if cfg.text.encoder_width != cfg.vision.width:
            raise ModelError(
                f"InternVideo2 config: text.encoder_width {cfg.text.encoder_width} must equal "
                f"vision.width {cfg.vision.width}"
            )
        return cfg

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> InternVideo2Config:
        """Read a config JSON file; an unreadable one is a one-line ModelError naming it."""
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot read InternVideo2 config {path}: {exc}; pass a JSON file") from None
        if not isinstance(data, dict):
            raise ModelError(f"InternVideo2 config {path} is not a JSON object")
        return cls.from_dict(data)


# The published Stage-2 1B model at 224 px and 4 frames (scripts/.../1B/config_msrvtt.py).
PRESETS: dict[str, InternVideo2Config] = {"internvideo2-1b": InternVideo2Config()}


class InternVideo2(nn.Module):
    """The Stage-2 model for retrieval (official module names)."""

    def __init__(self, cfg: InternVideo2Config) -> None:
        super().__init__()
        self.config = cfg
        self.vision_encoder = InternVideo2Vision(cfg.vision)
        self.text_encoder = BertTextFusion(cfg.text)
        self.vision_proj = nn.Linear(cfg.vision.pool_dim, cfg.embed_dim)
        self.text_proj = nn.Linear(cfg.text.hidden, cfg.embed_dim)
        self.itm_head = nn.Linear(cfg.text.hidden, 2)
        self.temp: float | None = None  # the contrastive temperature it was trained with, from the checkpoint

    def encode_vision(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalized frames ``[B, T, C, H, W]`` -> (tokens ``[B, N, width]``, ITC feature ``[B, D]``, unnormalized)."""
        tokens, pooled = self.vision_encoder(video.permute(0, 2, 1, 3, 4))
        return tokens, self.vision_proj(pooled)

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids and mask ``[B, L]`` -> (text-layer states ``[B, L, hidden]``, ITC feature ``[B, D]``)."""
        states = self.text_encoder.encode_text(input_ids, attention_mask)
        return states, self.text_proj(states[:, 0])

    def itm_logits(self, text_states: torch.Tensor, attention_mask: torch.Tensor, vision: torch.Tensor) -> torch.Tensor:
        """(no match, match) logits ``[B, 2]`` of row-aligned captions and video tokens.

        Args:
            text_states: :meth:`encode_text`'s states ``[B, L, hidden]``.
            attention_mask: their mask ``[B, L]``.
            vision: :meth:`encode_vision`'s tokens ``[B, N, width]``.
        """
        fused = self.text_encoder.fusion_states(text_states, attention_mask, vision)[-1]
        return self.itm_head(fused[:, 0])


def _strip_wrappers(key: str) -> str:
    for prefix in _WRAPPER_PREFIXES:
        if key.startswith(prefix):
            return key[len(prefix) :]
    return key


def fit_internvideo2_state_dict(
    state_dict: Mapping[str, torch.Tensor], model: InternVideo2, source: str = "checkpoint"
) -> dict[str, torch.Tensor]:
    """Map an official state dict onto ``model``: wrappers stripped, unused keys dropped (one warning).

    Raises:
        CheckpointError: missing keys, other unexpected keys or wrong shapes, in one line.
    """
    from vidsearch.models.weights import mismatch, name_keys

    sd = {_strip_wrappers(k): v for k, v in state_dict.items()}
    target = model.state_dict()
    dropped = sorted(k for k in sd if k not in target and UNUSED_AT_INFERENCE.match(k))
    for k in dropped:
        del sd[k]
    parts = mismatch(sd, target)
    if parts:
        raise CheckpointError(
            f"checkpoint {source} does not fit the InternVideo2 model: {', '.join(parts)} keys",
            path=source,
            hint="give the model's config JSON",
            remedy="pass_model_config_json",
        )
    if dropped:
        LOG.warning(
            "checkpoint %s: ignored %d key(s) inference does not use: %s", source, len(dropped), name_keys(dropped)
        )
    return sd


def load_internvideo2_checkpoint(model: InternVideo2, path: str | os.PathLike[str]) -> InternVideo2:
    """Read ``path`` (a state dict, or one under ``model``/``module``), fit it and load it strictly.

    Tensors keep the model's dtype: the published bf16 file loads into an fp32 model as it is.
    The training temperature ``temp`` (not a parameter of the port) is kept as ``model.temp``.
    """
    raw = read_state_dict(path)
    temp = next((v for k, v in raw.items() if _strip_wrappers(k) == "temp" and v.numel() == 1), None)
    model.temp = float(temp.float()) if temp is not None else None
    sd = fit_internvideo2_state_dict(raw, model, source=str(path))
    model.load_state_dict(sd, strict=True)
    LOG.info("loaded %d tensors from %s", len(sd), path)
    return model


def infer_internvideo2_config(shapes: Mapping[str, tuple[int, ...]]) -> InternVideo2Config | None:
    """The preset whose shapes a checkpoint has (keys after wrapper stripping), else None."""
    keys = {_strip_wrappers(k): tuple(v) for k, v in shapes.items()}
    for cfg in PRESETS.values():
        v, t = cfg.vision, cfg.text
        expect = {
            "vision_encoder.pos_embed": (1, 1 + v.num_frames * v.grid**2, v.width),
            "vision_proj.weight": (cfg.embed_dim, v.pool_dim),
            "text_encoder.bert.embeddings.word_embeddings.weight": (t.vocab_size, t.hidden),
            f"vision_encoder.blocks.{v.depth - 1}.norm1.weight": (v.width,),
            f"text_encoder.bert.encoder.layer.{t.layers - 1}.crossattention.self.key.weight": (t.hidden, v.width),
        }
        if (
            all(keys.get(k) == s for k, s in expect.items())
            and f"vision_encoder.blocks.{v.depth}.norm1.weight" not in keys
        ):
            return cfg
    return None


def is_internvideo2_checkpoint(keys: Mapping[str, Any]) -> bool:
    """Whether a state dict's keys are InternVideo2 Stage-2's (an ``itm_head`` and BERT ``text_encoder``)."""
    names = {_strip_wrappers(k) for k in keys}
    return "itm_head.weight" in names and "text_encoder.bert.embeddings.word_embeddings.weight" in names
