"""What a run needs to know of an encoder without loading it: :class:`EncoderInfo`.

A cluster driver (``vidsearch index --ray``) plans, opens the embedding space and sizes the
decode jobs on the driver, while the model runs only on the cluster's encode actors: loading it on
the driver as well would cost seconds of start-up and memory for nothing. The families describe
their models from the config and the checkpoint's cached hash alone
(:func:`vidsearch.models.registry.describe_encoder`). No torch import here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["EncoderInfo", "checkpoint_spec"]


@dataclass(frozen=True)
class EncoderInfo:
    """The attributes of an :class:`~vidsearch.models.base.Encoder` that need no weights.

    Attributes:
        key: the embedding space key, precision suffix included (as the loaded encoder's).
        num_frames: frames per clip.
        resolution: square frame side.
        embed_dim: embedding size.
        spec: ``open_encoder(EncoderSpec.from_dict(spec))`` builds the encoder this describes.
        antialias: the model's own frame-resize choice.
    """

    key: str
    num_frames: int
    resolution: int
    embed_dim: int
    spec: dict[str, Any] = field(default_factory=dict)
    antialias: bool = False


def checkpoint_spec(model: str, preset: bool, path: Path, cfg_path: Path | None) -> dict[str, Any]:
    """The :class:`~vidsearch.models.spec.EncoderSpec` fields that rebuild a resolved model: a preset by name, else by checkpoint path."""
    return {
        "model": model if preset else str(path),
        "checkpoint": str(path),
        "config": str(cfg_path) if cfg_path else None,
    }
