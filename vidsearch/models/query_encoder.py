"""The encoder a text query uses: ONNX Runtime without torch when it can, else PyTorch.

Kept apart from :mod:`vidsearch.models.onnx_text` (the torch-free runtime) because the fallback
needs the PyTorch side (loading the encoder, exporting its graph for the next query).
"""

from __future__ import annotations

import logging
from typing import Any

from vidsearch.errors import ModelError
from vidsearch.models.onnx_text import graph_precision, open_text_encoder, ort_available
from vidsearch.models.registry import load_encoder
from vidsearch.precision import cuda_visible, split_key

__all__ = ["load_query_encoder"]

LOG = logging.getLogger(__name__)


def load_query_encoder(
    key: str, spec: dict[str, Any], device: str = "auto", threads: int | None = 1, *, one_shot: bool = False
) -> Any:
    """An encoder for text queries into the space ``key``: ONNX Runtime when it can, else PyTorch.

    On a CPU with ONNX Runtime installed the cached text graph answers without importing
    torch. Without a cached graph the PyTorch encoder is loaded from ``spec`` (what the space
    stores: ``load_encoder(**spec)``), and the graph is exported and parity-checked for the next
    query (a failed export is logged, the query still answered).

    Args:
        key: the space key (``name@hash`` plus an optional ``+precision``).
        spec: the space's model spec (``model``, ``checkpoint``, ``config``).
        device: ``auto``, ``cpu``, ``cuda``...; ONNX Runtime serves ``auto`` and ``cpu``.
        threads: ONNX Runtime threads for one query (one caption: 1 is best on a busy machine).
        one_shot: the encoder answers one query and is dropped (a CLI call): ONNX Runtime loads
            faster without repacking weights for many runs.
    """
    on_cpu = device in ("auto", "cpu")
    if on_cpu:
        encoder = open_text_encoder(key, threads, prepack=not one_shot)
        if encoder is not None and (device == "cpu" or not cuda_visible()):
            LOG.info("text queries through ONNX Runtime (%s)", encoder.path)
            return encoder

    # (The PyTorch tower's threads are the caller's: search.embed_text encodes on one torch thread.)
    # Query vectors are not stored: the fp32 tower serves a space of any precision.
    encoder = load_encoder(**{k: v for k, v in spec.items() if k != "precision"}, device=device)
    from vidsearch.models.viclip import ViCLIP

    if on_cpu and encoder.device.type == "cpu" and ort_available() and isinstance(encoder.model, ViCLIP):
        from vidsearch.models.onnx_export import ensure_graph

        try:
            ensure_graph(encoder.model, key, "text", graph_precision(split_key(key)[1]))
        except (ModelError, OSError) as exc:
            LOG.warning("could not cache an ONNX text graph for %s: %s", key, exc)
    return encoder
