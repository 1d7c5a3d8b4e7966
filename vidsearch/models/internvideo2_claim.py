"""Whether a checkpoint path is an InternVideo2 Stage-2 model (routing, before the family loads).

A path goes to the InternVideo2 family when its config JSON says ``"family": "internvideo2"``,
or, without a config, when the checkpoint's tensor names (read without the tensors) include
the Stage-2 ITM head and BERT text encoder. Everything else stays a ViCLIP path.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from vidsearch.errors import CheckpointError

__all__ = ["FAMILY", "config_family", "claims_checkpoint"]

FAMILY = "internvideo2"


def config_family(config: str | os.PathLike[str] | None) -> str | None:
    """The ``family`` a config JSON names, or None (no file, unreadable, no such field)."""
    if config is None:
        return None
    try:
        data = json.loads(Path(config).expanduser().read_text())
    except (OSError, ValueError):
        return None
    family = data.get("family") if isinstance(data, dict) else None
    return family if isinstance(family, str) else None


def claims_checkpoint(path: str | os.PathLike[str], config: str | os.PathLike[str] | None = None) -> bool:
    """Whether ``path`` is an InternVideo2 model: its config (``config``, else ``<stem>.json`` or
    ``config.json`` beside it) names the family, or, with none, its tensor names say so."""
    p = Path(path).expanduser()
    configs = [Path(config)] if config is not None else [p.with_suffix(".json"), p.parent / "config.json"]
    found = next((c for c in configs if c.expanduser().is_file()), None)
    if found is not None:  # a config decides (a ViCLIP config names no family): no weights are read
        return config_family(found) == FAMILY
    if not p.is_file():
        return False
    from vidsearch.models.checkpoint_io import read_shapes

    try:
        keys = read_shapes(p)
    except CheckpointError:
        return False  # the ViCLIP path reports the unreadable file
    from vidsearch.models.internvideo2 import is_internvideo2_checkpoint

    return is_internvideo2_checkpoint(keys)
