"""Checkpoints: find them, read them, fit them to a model, save them, hash them.

Resolution order for a named preset: an explicit path, then ``VIDSEARCH_CHECKPOINT``, then the
Hugging Face cache, then the hub (unless ``HF_HUB_OFFLINE`` is set). Reading accepts the
official ``{"model": state_dict}`` ``.pth`` layout, a flat ``.pth``/``.pt``/``.bin`` state dict
and a flat ``.safetensors``, with ``module.``/``model.`` style prefixes stripped. Fitting adapts
the temporal/text/spatial position embeddings the way the official loaders do, then loads
with ``strict=True`` and explains any mismatch in one line.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from vidsearch.errors import CheckpointError, ModelError, WeightsNotFoundError
from vidsearch.models.paths import cache_dir
from vidsearch.models.viclip import PRESETS, ViCLIP, ViCLIPConfig, resize_temporal_embedding

__all__ = [
    "CHECKPOINT_SUFFIXES",
    "HF_SOURCES",
    "CHECKPOINT_ENV",
    "read_state_dict",
    "normalize_keys",
    "infer_config",
    "fit_state_dict",
    "load_viclip_checkpoint",
    "save_checkpoint",
    "resolve_checkpoint",
    "resolve_config",
    "checkpoint_hash",
    "cache_dir",
]

LOG = logging.getLogger(__name__)

CHECKPOINT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")
CHECKPOINT_ENV = "VIDSEARCH_CHECKPOINT"
# Where each preset's published weights live, in the order they are tried.
HF_SOURCES: dict[str, list[tuple[str, str]]] = {
    "viclip-b16": [("OpenGVLab/ViCLIP-B-16-hf", "model.safetensors")],
    "viclip-l14": [
        ("OpenGVLab/ViCLIP-L-14-hf", "model.safetensors"),
        ("OpenGVLab/ViCLIP", "ViClip-InternVid-10M-FLT.pth"),
    ],
}
# Wrappers that training frameworks put in front of parameter names (DDP, torch.compile, ...).
_PREFIXES = ("module.", "model.", "_orig_mod.", "viclip.", "clip.")
_TOP_LEVEL = ("vision_encoder.", "text_encoder.")
_HASH_CACHE_FILE = "checkpoint_hashes.json"


# --------------------------------------------------------------------------- reading


def read_state_dict(path: str | os.PathLike[str], mmap: bool = False) -> dict[str, torch.Tensor]:
    """Read a checkpoint file into a flat ``{name: tensor}`` dict (keys not yet normalized).

    Args:
        path: a ``.pth``/``.pt``/``.bin`` (``torch.save``) or ``.safetensors`` file.
        mmap: map the file instead of reading it (cheap when only shapes are needed).

    Raises:
        CheckpointError: unreadable file, or a pickle that holds more than tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; pass the path of a downloaded checkpoint")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(path), device="cpu"))
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"cannot read safetensors checkpoint {path}: {exc}; re-download it") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as exc:  # torch raises several types (UnpicklingError, RuntimeError, EOFError)
        if _trust_pickles():
            LOG.warning("loading %s with full unpickling because VIDSEARCH_TRUST_CHECKPOINT=1", path)
            obj = torch.load(path, map_location="cpu", weights_only=False)
        else:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CheckpointError(
                f"cannot read checkpoint {path} as tensors only ({first}); if the file is a "
                f"truncated download fetch it again, or if you trust it set VIDSEARCH_TRUST_CHECKPOINT=1"
            ) from None
    return _unwrap(obj, path)


def _trust_pickles() -> bool:
    return os.environ.get("VIDSEARCH_TRUST_CHECKPOINT", "").lower() in {"1", "true", "yes"}


def _unwrap(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    """Find the state dict inside the usual training-checkpoint wrappers."""
    for _ in range(3):
        if isinstance(obj, Mapping) and not _is_state_dict(obj):
            for wrapper in ("model", "state_dict", "module", "model_state"):
                if isinstance(obj.get(wrapper), Mapping):
                    obj = obj[wrapper]
                    break
            else:
                break
    if not isinstance(obj, Mapping) or not _is_state_dict(obj):
        raise CheckpointError(
            f"checkpoint {path} holds no state dict (expected tensors, or a dict with a 'model' or "
            f"'state_dict' entry); save it with vidsearch.models.weights.save_checkpoint"
        )
    return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def _is_state_dict(obj: Mapping[str, Any]) -> bool:
    return bool(obj) and sum(isinstance(v, torch.Tensor) for v in obj.values()) >= max(1, len(obj) // 2)


def normalize_keys(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Strip wrapper prefixes (``module.``, ``model.``, ...) so keys start like the official ones."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        new = key
        while not new.startswith(_TOP_LEVEL) and new != "temp":
            for prefix in _PREFIXES:
                if new.startswith(prefix):
                    new = new[len(prefix) :]
                    break
            else:
                break
        out[new] = value
    return out


# --------------------------------------------------------------------------- shapes


def _layers(state_dict: Mapping[str, torch.Tensor], tower: str) -> int:
    pattern = re.compile(rf"^{tower}\.transformer\.resblocks\.(\d+)\.")
    idx = [int(m.group(1)) for k in state_dict if (m := pattern.match(k))]
    return max(idx) + 1 if idx else 0


def infer_config(state_dict: Mapping[str, torch.Tensor]) -> dict[str, int]:
    """Every config field that the tensor shapes determine (head counts cannot be inferred)."""
    sd = state_dict
    found: dict[str, int] = {}
    try:
        conv = sd["vision_encoder.conv1.weight"]  # [W, 3, 1, p, p]
        found["vision_width"], found["patch_size"] = int(conv.shape[0]), int(conv.shape[-1])
        grid = round((sd["vision_encoder.positional_embedding"].shape[0] - 1) ** 0.5)
        found["input_resolution"] = grid * found["patch_size"]
        found["num_frames"] = int(sd["vision_encoder.temporal_positional_embedding"].shape[1])
        found["embed_dim"] = int(sd["vision_encoder.proj"].shape[1])
        found["text_width"] = int(sd["text_encoder.text_projection"].shape[0])
        found["context_length"] = int(sd["text_encoder.positional_embedding"].shape[0])
        found["vocab_size"] = int(sd["text_encoder.token_embedding.weight"].shape[0])
    except KeyError:
        pass
    found["vision_layers"] = _layers(sd, "vision_encoder")
    found["text_layers"] = _layers(sd, "text_encoder")
    return found


def _matching_preset(state_dict: Mapping[str, torch.Tensor]) -> str | None:
    """The preset whose every shape-determined field matches the checkpoint, if any."""
    found = infer_config(state_dict)
    for name, fields in PRESETS.items():
        full = ViCLIPConfig(**fields).to_dict()
        # num_frames/context_length are adapted on load, so they do not decide the architecture.
        keys = [k for k in full if k in found and k not in ("num_frames", "context_length")]
        if len(keys) >= 8 and all(found[k] == full[k] for k in keys):
            return name
    return None


def _describe(state_dict: Mapping[str, torch.Tensor]) -> str:
    preset = _matching_preset(state_dict)
    if preset:
        return f"it looks like {preset}: load it as model {preset}"
    f = infer_config(state_dict)
    if "vision_width" not in f:
        return "it does not look like a ViCLIP checkpoint (no vision_encoder.conv1.weight)"
    return (
        f"it looks like no preset (vision width {f['vision_width']} x {f['vision_layers']} layers, "
        f"patch {f['patch_size']}, text width {f.get('text_width')} x {f['text_layers']} layers, "
        f"embed {f.get('embed_dim')}): give its config JSON with config="
    )


# --------------------------------------------------------------------------- fitting


def fit_state_dict(
    state_dict: Mapping[str, torch.Tensor], model: ViCLIP, source: str = "checkpoint"
) -> dict[str, torch.Tensor]:
    """Normalize keys and adapt position embeddings of another length, like the official loaders.

    * ``vision_encoder.temporal_positional_embedding`` and ``text_encoder.positional_embedding``:
      linear interpolation when the model is longer, truncation when shorter
      (InternVideo ``interpolate_pos_embed_vit``).
    * ``vision_encoder.positional_embedding`` of another grid: bicubic resize of the patch part
      (``viclip_vision.load_state_dict``).
    * a 2D ``conv1.weight`` ``[W, 3, p, p]``: inflated to the 3D ``[W, 3, 1, p, p]`` kernel.
    """
    sd = normalize_keys(state_dict)
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
    _check_fit(sd, target, source)
    return sd


def _check_fit(sd: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor], source: str) -> None:
    missing = [k for k in target if k not in sd]
    unexpected = [k for k in sd if k not in target]
    wrong = [k for k in target if k in sd and tuple(sd[k].shape) != tuple(target[k].shape)]
    if not (missing or unexpected or wrong):
        return
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
    if wrong:
        k = wrong[0]
        parts.append(
            f"{len(wrong)} of the wrong shape (e.g. {k}: {tuple(sd[k].shape)} vs {tuple(target[k].shape)})"
        )
    raise CheckpointError(
        f"checkpoint {source} does not fit the requested model: {', '.join(parts)} keys; {_describe(sd)}"
    )


def load_viclip_checkpoint(model: ViCLIP, path: str | os.PathLike[str]) -> ViCLIP:
    """Read ``path``, fit it to ``model`` and load it with ``strict=True``."""
    sd = fit_state_dict(read_state_dict(path), model, source=str(path))
    model.load_state_dict(sd, strict=True)
    LOG.info("loaded %d tensors from %s", len(sd), path)
    return model


# --------------------------------------------------------------------------- saving


def save_checkpoint(
    model: ViCLIP, path: str | os.PathLike[str], config: ViCLIPConfig | None = None
) -> Path:
    """Write ``model``'s weights and its config JSON, atomically.

    ``.safetensors`` gets a flat state dict; any other suffix gets the official
    ``{"model": state_dict}`` ``torch.save`` layout. ``<stem>.json`` (the
    :class:`ViCLIPConfig`) is written beside it so ``load_encoder(path)`` finds it.

    Returns:
        The checkpoint path.
    """
    path = Path(path)
    config = config or model.config
    if path.suffix not in CHECKPOINT_SUFFIXES:
        raise CheckpointError(
            f"checkpoint name {path} must end with one of {', '.join(CHECKPOINT_SUFFIXES)}"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    # Own every tensor (no views shared between keys) so both formats can serialize it.
    sd = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    tmp = path.with_name(path.name + ".tmp")
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(sd, str(tmp), metadata={"format": "pt", "config": json.dumps(config.to_dict())})
    else:
        torch.save({"model": sd}, tmp)
    os.replace(tmp, path)
    config.to_json(path.with_suffix(".json"))
    LOG.info("saved checkpoint %s", path)
    return path


# --------------------------------------------------------------------------- resolution


def _hf_cache_dir() -> str:
    """The hub cache huggingface_hub would use, read from the environment at call time."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub")
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE


def _hf_offline() -> bool:
    return any(
        os.environ.get(v, "").lower() in {"1", "true", "yes", "on"} for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the hub endpoint opens within ``timeout`` seconds.

    huggingface_hub retries connection errors with exponential backoff (about 20 s in all), far
    too long to find out that a machine is offline; one quick connect tells.
    """
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "huggingface.co", port), timeout=timeout):
            return True
    except OSError:
        return False


def _from_hub(preset: str, download: bool) -> Path | None:
    """A cached (or, when allowed and online, downloaded) published checkpoint for ``preset``."""
    import huggingface_hub

    sources = HF_SOURCES.get(preset, [])
    cache = _hf_cache_dir()
    for repo, filename in sources:
        found = huggingface_hub.try_to_load_from_cache(repo, filename, cache_dir=cache)
        if isinstance(found, str) and os.path.isfile(found):
            LOG.info("using cached %s/%s", repo, filename)
            return Path(found)
    if not download or _hf_offline():
        return None
    if not _hub_reachable():
        LOG.info("the Hugging Face hub is not reachable; not downloading")
        return None
    for repo, filename in sources:
        try:
            LOG.info("downloading %s from %s", filename, repo)
            return Path(huggingface_hub.hf_hub_download(repo, filename, cache_dir=cache))
        except Exception as exc:  # network, auth and missing-file errors all mean "try the next"
            LOG.warning("could not download %s from %s: %s", filename, repo, exc)
    return None


def resolve_checkpoint(preset: str, checkpoint: str | os.PathLike[str] | None = None, download: bool = True) -> Path:
    """Find the weights for a preset: explicit path, ``VIDSEARCH_CHECKPOINT``, HF cache, HF hub.

    Raises:
        CheckpointError: an explicit or environment path that does not exist.
        WeightsNotFoundError: nothing found; the message says what to download and where.
    """
    if checkpoint is not None:
        path = Path(checkpoint).expanduser()
        if not path.is_file():
            raise CheckpointError(f"checkpoint {path} does not exist; check the --checkpoint path")
        return path.resolve()
    env = os.environ.get(CHECKPOINT_ENV)
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise CheckpointError(f"{CHECKPOINT_ENV}={env} does not exist; fix or unset the variable")
        return path.resolve()
    found = _from_hub(preset, download)
    if found is not None:
        return found.resolve()
    repo, filename = HF_SOURCES[preset][0]
    why = "offline (HF_HUB_OFFLINE is set)" if _hf_offline() else "not in the Hugging Face cache and could not be downloaded"
    raise WeightsNotFoundError(
        f"no weights for {preset}: {why}; download {filename} from https://huggingface.co/{repo} "
        f"(huggingface-cli download {repo} {filename}) and pass --checkpoint PATH or set {CHECKPOINT_ENV}=PATH"
    )


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
    shapes = normalize_keys(read_state_dict(checkpoint, mmap=True))
    preset = _matching_preset(shapes)
    if preset is None:
        raise ModelError(
            f"checkpoint {checkpoint} needs a config: pass config=PATH (--config) or put "
            f"{stem_json.name} beside it (a ViCLIPConfig JSON); {_describe(shapes)}"
        )
    cfg = ViCLIPConfig.preset(preset)
    inferred = infer_config(shapes)
    # A preset trained with another frame count / context keeps its own lengths.
    cfg.num_frames = inferred.get("num_frames", cfg.num_frames)
    cfg.context_length = inferred.get("context_length", cfg.context_length)
    return cfg, None


# --------------------------------------------------------------------------- hashing


def _read_hash_cache(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def checkpoint_hash(path: str | os.PathLike[str]) -> str:
    """Full sha256 hex digest of a file, cached by (absolute path, size, mtime_ns).

    Hashing a 1.5 GB checkpoint takes seconds, so the digest is kept in a small JSON file
    under :func:`cache_dir`, rewritten atomically. A cache that cannot be written is ignored.
    """
    path = Path(path).resolve()
    st = path.stat()
    cache_file = cache_dir() / _HASH_CACHE_FILE
    entries = _read_hash_cache(cache_file)
    hit = entries.get(str(path))
    if isinstance(hit, dict) and hit.get("size") == st.st_size and hit.get("mtime_ns") == st.st_mtime_ns:
        return str(hit["sha256"])
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    sha = digest.hexdigest()
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        entries = _read_hash_cache(cache_file)  # re-read: another process may have added entries
        entries[str(path)] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha}
        fd, tmp = tempfile.mkstemp(dir=cache_file.parent, prefix=_HASH_CACHE_FILE, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(entries, fh, indent=1, sort_keys=True)
        os.replace(tmp, cache_file)
    except OSError as exc:
        LOG.warning("cannot write the checkpoint hash cache %s: %s", cache_file, exc)
    return sha
