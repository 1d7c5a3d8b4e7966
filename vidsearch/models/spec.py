"""What an encoder is asked for (:class:`EncoderSpec`) and what it answers to (the protocols).

Torch-free, so that services and front ends can build a spec and type against an encoder without
paying for torch: a text query served by the ONNX Runtime graph never imports it. The one place
a spec becomes an encoder is :func:`vidsearch.models.opener.open_encoder`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from vidsearch.errors import ModelError
from vidsearch.precision import check_precision, split_key

if TYPE_CHECKING:
    import numpy as np

__all__ = ["TOWERS", "BACKENDS", "EncoderSpec", "SpaceRecord", "TextEncoder", "VideoEncoder", "VideoTextEncoder"]

# Which towers the caller will use. "text" lets the opener answer with the torch-free ONNX text graph.
TOWERS = ("both", "text", "video")
# "auto": ONNX Runtime for a text tower on a CPU when its graph is cached (and for int8), else
# PyTorch; "torch" never takes a cached graph; "onnx" exports the text graph when it is missing.
BACKENDS = ("auto", "torch", "onnx")


@runtime_checkable
class TextEncoder(Protocol):
    """Captions -> L2-normalized float32 ``[B, D]`` in the embedding space ``key``."""

    key: str
    embed_dim: int

    def encode_text(self, texts: Sequence[str]) -> np.ndarray:
        """Embed captions into float32 ``[B, D]``, L2-normalized."""
        ...


@runtime_checkable
class VideoEncoder(Protocol):
    """uint8 clips ``[B, T, H, W, 3]`` -> L2-normalized float32 ``[B, D]`` in the space ``key``."""

    key: str
    embed_dim: int
    num_frames: int
    resolution: int
    antialias: bool

    def encode_video(self, frames: Any) -> np.ndarray:
        """Embed uint8 clips (any ``H, W``; resized as the model's frames were) into float32 ``[B, D]``."""
        ...


@runtime_checkable
class VideoTextEncoder(TextEncoder, VideoEncoder, Protocol):
    """Both towers of one model (what indexing, enrichment and benchmarks use)."""


class SpaceRecord(Protocol):
    """What an embedding space records of the model that made it (the store's ``SpaceInfo``)."""

    @property
    def key(self) -> str: ...

    @property
    def model_spec(self) -> dict[str, Any]: ...

    @property
    def sampling(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class EncoderSpec:
    """An encoder to open: which model, at which precision, on which device, which towers.

    Attributes:
        model: a preset (``viclip-b16``), ``openclip:<arch>``, or a checkpoint path.
        checkpoint: the weights file (else ``VIDSEARCH_CHECKPOINT``, else the Hugging Face cache/hub).
        config: the architecture's config JSON (a ViCLIPConfig, or an open_clip model config).
        precision: ``auto``, ``fp32``, ``int8``, ``bf16`` or ``fp16`` (resolved for the device
            when opened; it is part of the space key).
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N``.
        towers: ``both``, ``text`` or ``video`` (see :data:`TOWERS`).
        backend: ``auto``, ``torch`` or ``onnx`` (see :data:`BACKENDS`).
        threads: ONNX Runtime intra-op threads (None: all cores).
        one_shot: the encoder answers one query and is dropped (ONNX Runtime then skips
            repacking its weights, which only pays off over many calls).
        antialias: how frames not at the model's resolution are resized (None: the model's own).
        space_key: the embedding space this encoder must reproduce: the weights are checked
            against the key's hash before and after loading, and errors name the space.
    """

    model: str
    checkpoint: str | None = None
    config: str | None = None
    precision: str = "auto"
    device: str = "auto"
    towers: str = "both"
    backend: str = "auto"
    threads: int | None = None
    one_shot: bool = False
    antialias: bool | None = None
    space_key: str | None = None

    def __post_init__(self) -> None:
        if not self.model:
            raise ModelError("no model given", argument="model", hint="a preset, openclip:<arch> or a checkpoint path")
        check_precision(self.precision)
        if self.towers not in TOWERS:
            raise ModelError(f"unknown towers {self.towers!r}; choose one of {', '.join(TOWERS)}")
        if self.backend not in BACKENDS:
            raise ModelError(f"unknown backend {self.backend!r}; choose one of {', '.join(BACKENDS)}")
        for name in ("checkpoint", "config", "device"):  # paths and torch.device values as text
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                object.__setattr__(self, name, str(value))

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any], **overrides: Any) -> EncoderSpec:
        """A spec from an encoder's or a space's ``spec`` dict (``model``, ``checkpoint``, ``config``, ``precision``)."""
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{**{k: v for k, v in spec.items() if k in fields}, **overrides})

    @classmethod
    def for_space(cls, space: SpaceRecord, **overrides: Any) -> EncoderSpec:
        """The spec of the model that made ``space``'s vectors, at the space's precision and resize.

        Args:
            space: the embedding space (its key, stored model spec and sampling record).
            overrides: other fields (``device``, ``towers``, ``threads``, ``one_shot``...).
        """
        spec = dict(space.model_spec)
        if not spec.get("model"):  # a space written by hand or by another tool: nothing says which model made it
            raise ModelError(f"the space {space.key} records no model; index the videos again to rebuild it")
        # Spaces made before precisions existed store no precision: their key's (fp32 for a plain key).
        spec["precision"] = spec.get("precision") or split_key(space.key)[1]
        antialias = None
        if overrides.get("towers", "both") != "text":  # a text tower resizes no frames (and a query skips media)
            from vidsearch.media.sampling import recorded_antialias

            antialias = recorded_antialias(space.sampling)
        return cls.from_dict(spec, **{"antialias": antialias, "space_key": space.key, **overrides})

    def replace(self, **changes: Any) -> EncoderSpec:
        """This spec with some fields changed."""
        return dataclasses.replace(self, **changes)

    def where(self) -> str:
        """Where the weights come from, for messages: the checkpoint, else the model name."""
        return self.checkpoint or self.model
