"""Checkpoints for ViCLIP: fit their keys and shapes to a model, find the published ones.

Resolution order for a named preset: an explicit path, then ``VIDSEARCH_CHECKPOINT``, then the
Hugging Face cache, then the hub (unless ``HF_HUB_OFFLINE`` is set), at the repository
revisions that were checked (:data:`HF_SOURCES`; ``VIDSEARCH_HF_REVISION`` or ``revision=``
picks another). Reading files is :mod:`vidsearch.models.checkpoint_io`'s job. Fitting strips
``module.``/``model.`` style prefixes, drops what inference does not use (training-only
parameters, buffers, EMA or optimizer entries) with one warning, adapts the
temporal/text/spatial position embeddings the way the official loaders do, then loads with
``strict=True`` and explains any other mismatch in one line.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from vidsearch.errors import CheckpointError, ModelError
from vidsearch.models.checkpoint_io import (
    CHECKPOINT_SUFFIXES,
    cache_dir,
    checkpoint_hash,
    read_shapes,
    read_state_dict,
    save_checkpoint,
)
from vidsearch.models.hub import CHECKPOINT_ENV, HF_SOURCES, REVISION_ENV, resolve_checkpoint  # re-exported
from vidsearch.models.viclip import PRESETS, ViCLIP, ViCLIPConfig, resize_temporal_embedding

__all__ = [
    "CHECKPOINT_SUFFIXES",
    "HF_SOURCES",
    "CHECKPOINT_ENV",
    "REVISION_ENV",
    "TRAINING_ONLY_PARAMS",
    "read_state_dict",
    "normalize_keys",
    "infer_config",
    "foreign_architecture",
    "fit_state_dict",
    "load_viclip_checkpoint",
    "save_checkpoint",
    "resolve_checkpoint",
    "resolve_config",
    "name_keys",
    "mismatch",
    "checkpoint_hash",
    "cache_dir",
]

LOG = logging.getLogger(__name__)

# Parameters of ViCLIP that only training reads, with their initial value (``ViCLIP.temp``,
# as the official model initialises it): a checkpoint without them loads with these values.
TRAINING_ONLY_PARAMS: dict[str, float] = {"temp": 1 / 100.0}
# Wrappers that training frameworks put in front of parameter names (DDP, torch.compile, ...).
_PREFIXES = ("module.", "model.", "_orig_mod.", "viclip.", "clip.")
_TOP_LEVEL = ("vision_encoder.", "text_encoder.")
# Buffers some ports register inside the towers; this port computes them (causal mask) or has none.
_BUFFERS = {"attn_mask", "attention_mask", "position_ids", "num_batches_tracked"}
# Key names of other video-text models that share ViCLIP's top-level names.
_FOREIGN_VISION = re.compile(r"^vision_encoder\.(patch_embed|blocks\.\d+|clip_projector|pos_embed|cls_token)")
_FOREIGN_TEXT = {
    "a LLaMA text tower": re.compile(r"^text_encoder\.(transformer\.(layers\.\d+|embed_tokens|norm)|llama)\b"),
    "a MobileCLIP text tower": re.compile(r"^text_encoder\.(embedding_layer|projection_layer|final_layer_norm)\b"),
    "a BERT text tower": re.compile(r"^text_encoder\.(bert|encoder\.layer|embeddings)\b"),
}


def normalize_keys(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Strip wrapper prefixes (``module.``, ``model.``, ...) so keys start like the official ones."""
    out: dict[str, Any] = {}
    for key, value in state_dict.items():
        new = key
        while not new.startswith(_TOP_LEVEL) and new not in TRAINING_ONLY_PARAMS:
            for prefix in _PREFIXES:
                if new.startswith(prefix):
                    new = new[len(prefix) :]
                    break
            else:
                break
        out[new] = value
    return out


def foreign_architecture(keys: Iterable[str]) -> str | None:
    """Name the other architecture (InternVideo2-CLIP, ...) whose key names these are, if any."""
    keys = list(keys)
    if not any(_FOREIGN_VISION.match(k) for k in keys) and not any(k.startswith("vision_align.") for k in keys):
        return None
    towers = [name for name, pattern in _FOREIGN_TEXT.items() if any(pattern.match(k) for k in keys)]
    if towers:
        return f"InternVideo2-CLIP (an InternVideo2 vision tower with {' and '.join(towers)})"
    return "InternVideo2 (its vision tower)"


# --------------------------------------------------------------------------- shapes


def _shape(value: Any) -> tuple[int, ...]:
    return tuple(value.shape) if hasattr(value, "shape") else tuple(value)


def _layers(keys: Iterable[str], tower: str) -> int:
    pattern = re.compile(rf"^{tower}\.transformer\.resblocks\.(\d+)\.")
    idx = [int(m.group(1)) for k in keys if (m := pattern.match(k))]
    return max(idx) + 1 if idx else 0


def infer_config(state_dict: Mapping[str, torch.Tensor | Sequence[int]]) -> dict[str, int]:
    """Every config field that the shapes determine (head counts cannot be inferred).

    Args:
        state_dict: normalized keys to tensors or to shapes (as :func:`read_shapes` gives).
    """
    shape = {k: _shape(v) for k, v in state_dict.items()}
    found: dict[str, int] = {}
    try:
        conv = shape["vision_encoder.conv1.weight"]  # [W, 3, 1, p, p]
        found["vision_width"], found["patch_size"] = int(conv[0]), int(conv[-1])
        grid = round((shape["vision_encoder.positional_embedding"][0] - 1) ** 0.5)
        found["input_resolution"] = grid * found["patch_size"]
        found["num_frames"] = int(shape["vision_encoder.temporal_positional_embedding"][1])
        found["embed_dim"] = int(shape["vision_encoder.proj"][1])
        found["text_width"] = int(shape["text_encoder.text_projection"][0])
        found["context_length"] = int(shape["text_encoder.positional_embedding"][0])
        found["vocab_size"] = int(shape["text_encoder.token_embedding.weight"][0])
    except (KeyError, IndexError):
        pass
    found["vision_layers"] = _layers(shape, "vision_encoder")
    found["text_layers"] = _layers(shape, "text_encoder")
    return found


def _same_architecture(found: Mapping[str, int], config: ViCLIPConfig) -> bool:
    """Whether inferred fields match ``config`` (frame count and context are adapted on load)."""
    full = config.to_dict()
    keys = [k for k in full if k in found and k not in ("num_frames", "context_length")]
    return len(keys) >= 8 and all(found[k] == full[k] for k in keys)


def _matching_preset(state_dict: Mapping[str, Any]) -> str | None:
    """The preset whose every shape-determined field matches the checkpoint, if any."""
    found = infer_config(state_dict)
    for name, fields in PRESETS.items():
        if _same_architecture(found, ViCLIPConfig(**fields)):
            return name
    return None


def _describe(state_dict: Mapping[str, Any], requested: ViCLIPConfig | None = None) -> str:
    """What the checkpoint holds, for the end of a one-line error."""
    foreign = foreign_architecture(state_dict)
    if foreign:
        return f"it is {foreign}, a different architecture that vidsearch cannot load as ViCLIP (see docs/weights.md)"
    f = infer_config(state_dict)
    if requested is not None and _same_architecture(f, requested):
        return (
            "its shapes are those of the requested model, so the file is incomplete or holds other "
            "weights under these names: re-download or re-export it"
        )
    preset = _matching_preset(state_dict)
    if preset:
        return f"it looks like {preset}: load it as model {preset}"
    if "vision_width" not in f:
        return "it does not look like a ViCLIP checkpoint (no vision_encoder.conv1.weight)"
    return (
        f"it looks like no preset (vision width {f['vision_width']} x {f['vision_layers']} layers, "
        f"patch {f['patch_size']}, text width {f.get('text_width')} x {f['text_layers']} layers, "
        f"embed {f.get('embed_dim')}), a custom size whose config JSON must be given"
    )


def name_keys(keys: Sequence[str], limit: int = 6) -> str:
    """A short list of key names: block indices folded (``resblocks.*``), big families by prefix."""
    families: dict[str, dict[str, int]] = {}
    for k in keys:
        pattern = re.sub(r"\.\d+(?=\.|$)", ".*", k)
        family = families.setdefault(k.split(".", 1)[0], {})
        family[pattern] = family.get(pattern, 0) + 1
    parts = []
    for top, patterns in families.items():
        if len(patterns) > 2:  # e.g. a whole EMA copy: name its prefix only
            parts.append(f"{top}.* ({sum(patterns.values())})")
        else:
            parts += [p if n == 1 else f"{p} ({n})" for p, n in patterns.items()]
    if len(parts) > limit:
        parts = parts[:limit] + [f"and {len(parts) - limit} more"]
    return ", ".join(parts)


# --------------------------------------------------------------------------- fitting


def _not_needed(key: str) -> bool:
    """An unexpected key that inference has no use for (not a sign of another architecture)."""
    if not key.startswith(_TOP_LEVEL):  # logit_scale, optimizer/EMA/teacher entries, ...
        return True
    return key.rsplit(".", 1)[-1] in _BUFFERS


def fit_state_dict(
    state_dict: Mapping[str, torch.Tensor], model: ViCLIP, source: str = "checkpoint"
) -> dict[str, torch.Tensor]:
    """Normalize keys, drop what inference does not use and adapt position embeddings.

    * keys inference does not need are dropped and training-only parameters the file lacks
      (``temp``) get their initial value, with one warning line naming them;
    * ``vision_encoder.temporal_positional_embedding`` and ``text_encoder.positional_embedding``:
      linear interpolation when the model is longer, truncation when shorter
      (InternVideo ``interpolate_pos_embed_vit``);
    * ``vision_encoder.positional_embedding`` of another grid: bicubic resize of the patch part
      (``viclip_vision.load_state_dict``);
    * a 2D ``conv1.weight`` ``[W, 3, p, p]``: inflated to the 3D ``[W, 3, 1, p, p]`` kernel.

    Raises:
        CheckpointError: another architecture (InternVideo2-CLIP, ...), weights inference needs
            missing, or shapes that cannot be adapted; one line.
    """
    sd = normalize_keys(state_dict)
    foreign = foreign_architecture(sd)
    if foreign:
        raise CheckpointError(f"checkpoint {source} cannot be loaded as ViCLIP: {_describe(sd)}")
    target = model.state_dict()
    key = "vision_encoder.temporal_positional_embedding"
    if key in sd and key in target and sd[key].shape[1:] != target[key].shape[1:]:
        if sd[key].shape[-1] == target[key].shape[-1]:
            LOG.info("%s: temporal embedding %d -> %d frames", source, sd[key].shape[1], target[key].shape[1])
            sd[key] = resize_temporal_embedding(sd[key], target[key].shape[1])
    key = "text_encoder.positional_embedding"
    if key in sd and key in target and sd[key].shape != target[key].shape:
        if sd[key].shape[-1] == target[key].shape[-1]:
            LOG.info("%s: text context %d -> %d", source, sd[key].shape[0], target[key].shape[0])
            sd[key] = resize_temporal_embedding(sd[key].unsqueeze(0), target[key].shape[0]).squeeze(0)
    key = "vision_encoder.positional_embedding"
    if key in sd and key in target and sd[key].shape != target[key].shape:
        old, new = sd[key], target[key]
        if old.shape[-1] == new.shape[-1]:
            g_old, g_new = round((old.shape[0] - 1) ** 0.5), round((new.shape[0] - 1) ** 0.5)
            if g_old**2 + 1 == old.shape[0] and g_new**2 + 1 == new.shape[0]:
                LOG.info("%s: spatial position grid %d -> %d", source, g_old, g_new)
                grid = old[1:].reshape(1, g_old, g_old, -1).permute(0, 3, 1, 2).float()  # [1, D, g, g]
                grid = F.interpolate(grid, size=(g_new, g_new), mode="bicubic", align_corners=False)
                grid = grid.permute(0, 2, 3, 1).reshape(g_new * g_new, -1).to(old.dtype)
                sd[key] = torch.cat([old[:1], grid], dim=0)
    key = "vision_encoder.conv1.weight"
    if key in sd and key in target and sd[key].ndim == 4 and target[key].ndim == 5 and target[key].shape[2] == 1:
        sd[key] = sd[key].unsqueeze(2)  # [W, 3, p, p] -> [W, 3, 1, p, p]
    dropped = [k for k in sd if k not in target and _not_needed(k)]
    filled = [k for k in TRAINING_ONLY_PARAMS if k in target and k not in sd]
    skip = set(dropped)
    _check_fit({k: v for k, v in sd.items() if k not in skip}, target, source, model.config, dropped)
    for k in dropped:
        del sd[k]
    for k in filled:
        sd[k] = torch.full(target[k].shape, TRAINING_ONLY_PARAMS[k], dtype=target[k].dtype)
    if dropped or filled:
        notes = [f"ignored {len(dropped)} key(s) inference does not use: {name_keys(dropped)}"] if dropped else []
        notes += [f"{k} is missing (training only), set to {TRAINING_ONLY_PARAMS[k]:g}" for k in filled]
        LOG.warning("checkpoint %s: %s", source, "; ".join(notes))
    return sd


def _check_fit(
    sd: Mapping[str, torch.Tensor],
    target: Mapping[str, torch.Tensor],
    source: str,
    requested: ViCLIPConfig | None = None,
    dropped: Sequence[str] = (),
) -> None:
    parts = mismatch(sd, target, optional=TRAINING_ONLY_PARAMS)
    if not parts:
        return
    also = f" (besides {len(dropped)} ignored: {name_keys(dropped, limit=3)})" if dropped else ""
    raise CheckpointError(
        f"checkpoint {source} does not fit the requested model: {', '.join(parts)} keys{also}; "
        f"{_describe(sd, requested)}"
    )


def mismatch(
    sd: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor], optional: Iterable[str] = ()
) -> list[str]:
    """How ``sd`` fails to fit ``target`` key for key (empty: it fits), e.g. ``["2 missing (e.g. x)"]``.

    ``optional``: target keys ``sd`` may lack.
    """
    skip = set(optional)
    missing = [k for k in target if k not in sd and k not in skip]
    unexpected = [k for k in sd if k not in target]
    wrong = [k for k in target if k in sd and tuple(sd[k].shape) != tuple(target[k].shape)]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
    if wrong:
        k = wrong[0]
        parts.append(f"{len(wrong)} of the wrong shape (e.g. {k}: {tuple(sd[k].shape)} vs {tuple(target[k].shape)})")
    return parts


def load_viclip_checkpoint(model: ViCLIP, path: str | os.PathLike[str]) -> ViCLIP:
    """Read ``path``, fit it to ``model`` and load it with ``strict=True``."""
    sd = fit_state_dict(read_state_dict(path), model, source=str(path))
    model.load_state_dict(sd, strict=True)
    LOG.info("loaded %d tensors from %s", len(sd), path)
    return model


# --------------------------------------------------------------------------- resolution


def resolve_config(
    checkpoint: Path, config: str | os.PathLike[str] | ViCLIPConfig | None = None
) -> tuple[ViCLIPConfig, Path | None]:
    """The config of a checkpoint file and the JSON it came from.

    Order: ``config`` (a :class:`ViCLIPConfig` or JSON path), ``<stem>.json`` beside the
    checkpoint, a ViCLIP ``config.json`` beside it, then the preset whose shapes it matches.

    Raises:
        ModelError: no config found and the shapes match no preset.
    """
    if isinstance(config, ViCLIPConfig):
        return config, None
    if config is not None:
        path = Path(config).expanduser().resolve()
        return ViCLIPConfig.from_json(path), path
    stem_json = checkpoint.with_suffix(".json")
    if stem_json.is_file():
        return ViCLIPConfig.from_json(stem_json), stem_json.resolve()
    beside = checkpoint.parent / "config.json"
    if beside.is_file():
        try:
            return ViCLIPConfig.from_json(beside), beside.resolve()
        except ModelError as exc:  # e.g. a transformers config.json of the -hf repositories
            LOG.debug("ignoring %s: %s", beside, exc)
    shapes = normalize_keys(read_shapes(checkpoint))
    preset = _matching_preset(shapes)
    if preset is None:
        raise ModelError(
            f"checkpoint {checkpoint} needs a config ({_describe(shapes)})",
            path=checkpoint,
            hint=f"give config=PATH or put {stem_json.name} beside it (a ViCLIPConfig JSON)",
            remedy="pass_config",
            value=stem_json.name,
        )
    cfg = ViCLIPConfig.preset(preset)
    inferred = infer_config(shapes)
    # A preset trained with another frame count / context keeps its own lengths.
    cfg.num_frames = inferred.get("num_frames", cfg.num_frames)
    cfg.context_length = inferred.get("context_length", cfg.context_length)
    return cfg, None
