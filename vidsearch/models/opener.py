"""The one way to get an encoder: :func:`open_encoder` turns an :class:`EncoderSpec` into one.

It picks the backend:

* the text tower on a CPU, when its ONNX graph is cached for the space: ONNX Runtime, without
  importing torch (a query from a shell, the web server's text search);
* ``int8``: both towers as int8 ONNX Runtime graphs (:class:`~vidsearch.models.lowprec.OnnxInt8Encoder`);
* otherwise PyTorch: the family's module builds the model at the resolved precision (bf16/fp16
  autocast is chosen when the encoder is built, never patched onto it afterwards).

A text tower opened through PyTorch on a CPU exports its ONNX graph (parity-checked) for the next
opening. TensorRT engines are exported by ``vidsearch export tensorrt`` (:mod:`vidsearch.models.tensorrt_export`);
they are not a runtime backend here.
"""

from __future__ import annotations

import logging
from typing import Any

from vidsearch.errors import CheckpointError, ModelError
from vidsearch.models.registry import locate_weights, model_key, route
from vidsearch.models.spec import EncoderSpec, TextEncoder, VideoTextEncoder
from vidsearch.precision import choose_precision, cuda_visible, space_key, split_key

__all__ = ["open_encoder", "check_weights"]

LOG = logging.getLogger(__name__)


def open_encoder(spec: EncoderSpec) -> TextEncoder | VideoTextEncoder:
    """Open the encoder ``spec`` asks for, on the backend that serves it best.

    ``towers="text"`` may give a text-only encoder (``encode_text`` only); any other spec gives
    both towers: ``encode_video``/``encode_text`` return L2-normalized float32 numpy ``[B, D]``.

    Raises:
        ModelError: unknown name, device or precision, or a precision the device lacks (one line
            listing the valid choices).
        CheckpointError: unreadable weights, weights that do not fit, or (with ``space_key``)
            weights that changed since the space was indexed.
        WeightsNotFoundError: no weights locally and none downloadable.
    """
    if spec.towers == "text" and spec.backend != "torch":
        cached = _cached_text_graph(spec)
        if cached is not None:
            return cached
    try:
        if spec.space_key:  # the hash first (cheap, cached by size and mtime): other weights never load
            check_weights(spec.space_key, model_key(spec.model, spec.checkpoint, spec.config), spec.where())
        encoder = _open_torch(spec)
        if spec.space_key:  # again with what was loaded: the file may have been replaced meanwhile
            check_weights(spec.space_key, encoder.key, spec.where())
    except CheckpointError as exc:
        if spec.space_key:
            raise _space_load_error(spec, exc) from None
        raise
    if spec.towers == "text":
        _export_text_graph(spec, encoder)
        if spec.backend == "onnx":
            cached = _cached_text_graph(spec)
            if cached is not None:
                return cached
    return encoder


def _text_graph_key(spec: EncoderSpec) -> str | None:
    """The space key whose text graph answers ``spec`` (None when the spec names a GPU)."""
    on_cpu = spec.device == "cpu" or (spec.device == "auto" and not cuda_visible())
    if not on_cpu:
        return None  # a GPU host answers queries with the PyTorch tower on the GPU
    if spec.space_key:
        return spec.space_key
    # No space: the key the encoder would have (its hash is remembered, so usually no torch)
    return space_key(model_key(spec.model, spec.checkpoint, spec.config), choose_precision(spec.precision, "cpu"))


def _cached_text_graph(spec: EncoderSpec) -> TextEncoder | None:
    """The torch-free ONNX Runtime text encoder cached for ``spec``'s space, if there is one."""
    from vidsearch.models.onnx_text import open_text_encoder

    key = _text_graph_key(spec)
    if key is None:
        return None
    threads = 1 if spec.threads is None else spec.threads  # one caption: one thread is best on a busy machine
    encoder = open_text_encoder(key, threads, prepack=not spec.one_shot)
    if encoder is not None:
        LOG.info("text queries through ONNX Runtime (%s)", encoder.path)
    return encoder


def _export_text_graph(spec: EncoderSpec, encoder: Any) -> None:
    """Cache the ONNX text graph of a PyTorch-opened text tower, so the next opening skips torch."""
    from vidsearch.models.onnx_text import graph_precision, ort_available

    if encoder.device.type != "cpu" or not ort_available():
        return
    from vidsearch.models.viclip import ViCLIP

    key = _text_graph_key(spec)
    if key is None or not isinstance(encoder.model, ViCLIP):
        return
    from vidsearch.models.onnx_export import ensure_graph

    try:
        ensure_graph(encoder.model, key, "text", graph_precision(split_key(key)[1]))
    except (ModelError, OSError) as exc:  # the query is still answered, by PyTorch
        LOG.warning("could not cache an ONNX text graph for %s: %s", key, exc)


def _open_torch(spec: EncoderSpec) -> VideoTextEncoder:
    """Build the model with its family's module at the resolved precision (int8: ONNX Runtime graphs)."""
    family, name = route(spec.model)
    locate_weights(spec.model, spec.checkpoint)  # missing weights fail before torch is imported
    from vidsearch.models.precision import resolve_device, resolve_precision

    device = resolve_device(spec.device)
    # Query vectors are never stored: a text tower serves a space of any precision from the
    # device's default (the exact fp32 on a CPU); its cached graph keeps the space's precision.
    precision = resolve_precision("auto" if spec.towers == "text" else spec.precision, device)
    load = family.function("load")
    if precision == "int8" and not family.own_int8:
        from vidsearch.models.lowprec import OnnxInt8Encoder
        from vidsearch.models.onnx_text import ort_available

        if not ort_available():
            raise ModelError(
                "int8 runs on ONNX Runtime, which is not installed",
                argument="precision",
                hint="pip install 'vidsearch[fast]'",
            )
        encoder: Any = OnnxInt8Encoder(load(name, spec.checkpoint, spec.config, device, "fp32"), spec.threads)
    else:
        encoder = load(name, spec.checkpoint, spec.config, device, precision)
    if spec.antialias is not None:  # frames this encoder resizes are resized as the space's were
        encoder.antialias = spec.antialias
    LOG.info("encoder %s at %s on %s", encoder.key, precision, device)
    return encoder


def check_weights(space: str, found_key: str, where: Any) -> None:
    """Raise when the weights at ``where`` hash differently from those the space ``space`` was made with.

    Raises:
        CheckpointError: the hashes after ``@`` in the two keys differ.
    """
    # The weights' hashes: a space key's +<precision> suffix is no part of them.
    want, have = (split_key(k)[0].partition("@")[2] for k in (space, found_key))
    if want and have and want != have:
        raise CheckpointError(
            f"the weights at {where} changed since space {space} was indexed (hash {want}, now {have})",
            path=where,
            hint="restore the old file, or index again with the new weights to make a new space for them",
            remedy="reindex_space",
        )


def _space_load_error(spec: EncoderSpec, exc: CheckpointError) -> CheckpointError:
    """What to tell a searching user whose space's weights cannot be loaded."""
    if exc.remedy == "reindex_space":  # changed weights: passed on as it is
        return exc
    # The loader's own advice (give a checkpoint) is no option of a searching command.
    return CheckpointError(
        f"the model of embedding space {spec.space_key} cannot be loaded from {spec.where()} ({exc.what})",
        path=spec.where(),
        hint="put the file back there, or index again with the model at its new path",
        remedy="reindex_moved",
    )
