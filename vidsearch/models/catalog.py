"""Every encoder family and named preset, declared once (torch-free, nothing imported).

A *family* is one module of ``vidsearch/models/`` with three functions (see :class:`Family`);
a *preset* is a named architecture of a family with the published weights it loads. This file
is the only place either is written down: :mod:`vidsearch.models.registry` routes names with
it, :data:`vidsearch.models.viclip.PRESETS` (the ViCLIP architectures) and
:data:`vidsearch.models.hub.HF_SOURCES` (where weights are downloaded from) are read from it.

Adding a family (for example InternVideo2): write ``vidsearch/models/<family>.py`` with its
``load``/``key``/``describe`` functions, then add one :class:`Family` to :data:`FAMILIES` (and its
presets to :data:`PRESETS`, or a prefix to :data:`PREFIXES`). Nothing else changes.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

__all__ = [
    "Family",
    "WeightSource",
    "Preset",
    "FAMILIES",
    "PRESETS",
    "PREFIXES",
    "PATH_FAMILY",
    "PATH_CLAIMS",
    "HUB_FILES",
]


@dataclass(frozen=True)
class Family:
    """How the encoders of one kind are built (the module is imported on first use only).

    Attributes:
        name: the family's name (``viclip``, ``openclip``).
        module: the module holding the three functions.
        load: name of ``(name, checkpoint, config, device, precision) -> Encoder`` in ``module``
            (``device`` a ``torch.device``, ``precision`` resolved: fp32, bf16 or fp16).
        key: name of ``(name, checkpoint, config) -> str`` in ``module`` (no model built).
        describe: name of ``(name, checkpoint, config) -> EncoderInfo`` in ``module`` (no model built).
        own_int8: ``load`` builds int8 itself (given ``precision="int8"``); otherwise int8 is the
            ONNX Runtime graphs of :class:`~vidsearch.models.lowprec.OnnxInt8Encoder`.
    """

    name: str
    module: str
    load: str
    key: str
    describe: str
    own_int8: bool = False

    def function(self, attr: str) -> Any:
        """The family's ``load``, ``key`` or ``describe`` function (imports its module)."""
        return getattr(importlib.import_module(self.module), getattr(self, attr))


@dataclass(frozen=True)
class WeightSource:
    """A published checkpoint on the Hugging Face hub, at a checked revision (docs/weights.md)."""

    repo: str
    filename: str
    revision: str


@dataclass(frozen=True)
class Preset:
    """A named architecture of a family and the published weights it loads.

    Attributes:
        name: what ``--model`` takes (``viclip-b16``).
        family: the :class:`Family` that builds it.
        architecture: the family's config fields (for ViCLIP: ``ViCLIPConfig`` keyword arguments).
        weights: where the weights are found, in the order tried (empty: a local file only).
    """

    name: str
    family: str
    architecture: Mapping[str, int]
    weights: tuple[WeightSource, ...] = ()


FAMILIES: tuple[Family, ...] = (
    Family(
        "viclip", "vidsearch.models.viclip_encoder", load="load_viclip", key="viclip_key", describe="describe_viclip"
    ),
    Family(
        "openclip", "vidsearch.models.openclip", load="load_openclip", key="openclip_key", describe="describe_openclip"
    ),
    # int8 by PyTorch's dynamic quantization: the 1B vision tower's fp32 graph is past ONNX's 2 GB file limit
    Family(
        "internvideo2",
        "vidsearch.models.internvideo2_encoder",
        load="load_internvideo2",
        key="internvideo2_key",
        describe="describe_internvideo2",
        own_int8=True,
    ),
)

# Families that recognise their own checkpoint paths: (family, module, ``(path, config) -> bool``).
PATH_CLAIMS: tuple[tuple[str, str, str], ...] = (
    ("internvideo2", "vidsearch.models.internvideo2_claim", "claims_checkpoint"),
)

# A checkpoint path given as --model is a ViCLIP checkpoint.
PATH_FAMILY = "viclip"

# prefix -> (family, what follows the prefix, as list_models shows it)
PREFIXES: Mapping[str, tuple[str, str]] = MappingProxyType({"openclip:": ("openclip", "<arch>")})

# Published architectures (InternVideo `clip_joint_b16`/`clip_text_b16`, `*_l14`), context 32.
_PRESETS = (
    Preset(
        "viclip-b16",
        "viclip",
        MappingProxyType(
            dict(
                input_resolution=224,
                patch_size=16,
                vision_width=768,
                vision_layers=12,
                vision_heads=12,
                embed_dim=512,
                num_frames=8,
                text_width=512,
                text_layers=12,
                text_heads=8,
            )
        ),
        (WeightSource("OpenGVLab/ViCLIP-B-16-hf", "model.safetensors", "8484a9cb5b1b86e43c3ded53abe7485f52d8b789"),),
    ),
    Preset(
        "viclip-l14",
        "viclip",
        MappingProxyType(
            dict(
                input_resolution=224,
                patch_size=14,
                vision_width=1024,
                vision_layers=24,
                vision_heads=16,
                embed_dim=768,
                num_frames=8,
                text_width=768,
                text_layers=12,
                text_heads=12,
            )
        ),
        (
            WeightSource("OpenGVLab/ViCLIP-L-14-hf", "model.safetensors", "1652361522e1cb41c28cdfae870f690d00e7456b"),
            WeightSource("OpenGVLab/ViCLIP", "ViClip-InternVid-10M-FLT.pth", "main"),
        ),
    ),
    # Gated repository (accept its terms on the hub, then `hf auth login`). Its commit could not
    # be looked up from the build machine (no network), so the revision is the branch "main":
    # pin a commit with VIDSEARCH_HF_REVISION=<40-hex commit> (docs/internvideo2.md, "Pinning"),
    # or replace "main" here once a commit has been checked. The architecture is the family's
    # own preset config (vidsearch.models.internvideo2).
    Preset(
        "internvideo2-1b",
        "internvideo2",
        MappingProxyType({}),
        (WeightSource("OpenGVLab/InternVideo2-Stage2_1B-224p-f4", "InternVideo2-stage2_1b-224p-f4.pt", "main"),),
    ),
)
PRESETS: Mapping[str, Preset] = MappingProxyType({p.name: p for p in _PRESETS})

# Other files a preset needs from the hub, by name: (repo, file, revision) sources.
HUB_FILES: Mapping[str, tuple[WeightSource, ...]] = MappingProxyType(
    {
        # The checkpoint ships no tokenizer: the official code reads bert-large-uncased's vocab.txt.
        "internvideo2-1b/vocab": (WeightSource("google-bert/bert-large-uncased", "vocab.txt", "main"),),
    }
)
