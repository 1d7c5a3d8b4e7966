"""Text queries without torch: the CLIP tokenizer in numpy and the text tower in ONNX Runtime.

``import torch`` alone costs seconds, and a query from a shell used to pay it (plus timm and
torch._dynamo for the tokenizer) on every call. Here a query needs only numpy, ``regex``/
``ftfy`` (:mod:`vidsearch.models.bpe`) and ONNX Runtime: the text tower is exported once per
embedding space (:func:`vidsearch.models.onnx_export.ensure_graph`, parity-checked against
PyTorch) into the user cache, keyed by the space key, which names the checkpoint's hash and
the precision. Front ends open it with :func:`vidsearch.models.opener.open_encoder` (``towers="text"``).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vidsearch.errors import ModelError
from vidsearch.fileio import atomic_write, atomic_write_text
from vidsearch.models import bpe
from vidsearch.models.paths import cache_dir
from vidsearch.precision import int8_needs_reduce_range, split_key

__all__ = [
    "OnnxTextEncoder",
    "graph_precision",
    "open_text_encoder",
    "ort_available",
    "graph_path",
    "make_session",
    "optimized_path",
    "remove_graph",
    "quantize_int8",
    "int8_graph_current",
    "read_meta",
    "write_meta",
    "cosine_rows",
    "INPUT_NAMES",
]

LOG = logging.getLogger(__name__)

INPUT_NAMES = {"text": "tokens", "vision": "frames"}
ONNX_DIR = "onnx"
TEXT_CHUNK = 64  # captions per call, sorted by length (as the PyTorch encoder does)


def ort_available() -> bool:
    """Whether ONNX Runtime is installed (the ``fast`` extra); found without importing it."""
    return importlib.util.find_spec("onnxruntime") is not None


def graph_path(key: str, tower: str, precision: str = "fp32") -> Path:
    """Where the ONNX graph of one tower of the space ``key`` is cached."""
    safe = re.sub(r"[^A-Za-z0-9._@+-]+", "_", key)
    return cache_dir() / ONNX_DIR / safe / f"{tower}-{precision}.onnx"


def _meta_path(path: Path) -> Path:
    return path.with_suffix(".json")


def read_meta(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The metadata written beside a graph once it passed its parity check; None if absent."""
    try:
        data = json.loads(_meta_path(Path(path)).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_meta(path: str | os.PathLike[str], meta: dict[str, Any]) -> None:
    """Record a checked graph's metadata (the graph counts as cached only with it)."""
    atomic_write_text(_meta_path(Path(path)), json.dumps(meta, indent=1, sort_keys=True) + "\n")


def optimized_path(path: str | os.PathLike[str]) -> Path:
    """Where the graph optimized by ONNX Runtime is kept beside ``path`` (weights in ``.data``)."""
    path = Path(path)
    return path.with_name(path.stem + ".opt.onnx")


def make_session(path: str | os.PathLike[str], threads: int | None = None, *, prepack: bool = True) -> Any:
    """An ONNX Runtime CPU session for a graph file.

    Optimizing a graph costs as much as loading it again, so the first session saves the
    optimized graph (portable optimizations only, weights as external data that is cheap to
    map) beside the original and later sessions load that one with optimization off.

    Args:
        path: the ``.onnx`` file.
        threads: intra-op threads (None: ONNX Runtime's default, all cores).
        prepack: let ONNX Runtime repack the weights for its matmul kernels at load. That makes
            each run ~3x faster but the load ~0.2 s slower (B/16 text tower), so it pays back
            after a few runs: a session that answers one query (a CLI call) loads without it.

    Raises:
        ModelError: ONNX Runtime is missing or cannot load the graph.
    """
    try:
        import onnxruntime as ort
    except ImportError:
        raise ModelError("ONNX Runtime is not installed; pip install 'vidsearch[fast]'") from None
    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # warnings about unused initializers are noise for users
    if not prepack:
        opts.add_session_config_entry("session.disable_prepacking", "1")
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    # ONNX Runtime's pool threads spin between runs by default. In a server whose other threads
    # search, read frames and answer HTTP on the same few cores, that spinning took the CPU they
    # needed (a text query cost 3x its own compute on a 2-core machine); parked threads wake in
    # microseconds, which no caller here notices.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opt = optimized_path(path)
    try:
        if opt.is_file():
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            return ort.InferenceSession(str(opt), sess_options=opts, providers=["CPUExecutionProvider"])
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        with tempfile.TemporaryDirectory(dir=opt.parent, prefix=".opt-") as tmp:
            opts.optimized_model_filepath = str(Path(tmp) / opt.name)
            opts.add_session_config_entry("session.optimized_model_external_initializers_file_name", opt.name + ".data")
            opts.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
            session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
            _move_optimized(Path(tmp) / opt.name, opt)
        return session
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ModelError(
            f"ONNX Runtime cannot load {path}: {str(exc).splitlines()[0]}; delete it to re-export"
        ) from None


def _move_optimized(src: Path, dst: Path) -> None:
    """Move an optimized graph and its weights in; the weights first, so a reader never sees
    the graph without them."""
    data = src.with_name(src.name + ".data")
    if not src.is_file():
        return
    if data.is_file():
        os.replace(data, dst.with_name(dst.name + ".data"))
    os.replace(src, dst)


def remove_graph(path: str | os.PathLike[str]) -> None:
    """Delete a cached graph with its metadata and optimized copy (before re-exporting it)."""
    path = Path(path)
    opt = optimized_path(path)
    for p in (_meta_path(path), opt, opt.with_name(opt.name + ".data"), path):
        p.unlink(missing_ok=True)


# How int8 graphs are made; cached graphs of another recipe are made again (onnx_export).
# 2: the first and last weight MatMul of a tower stay fp32 (see edge_matmuls).
# 3: and 7-bit weights where the CPU needs them (int8_needs_reduce_range), recorded per graph.
INT8_RECIPE = 3


def int8_graph_current(meta: dict[str, Any]) -> bool:
    """Whether a cached int8 graph's metadata says it was made by this recipe, for this CPU."""

    return meta.get("int8_recipe") == INT8_RECIPE and meta.get("reduce_range") == int8_needs_reduce_range()


def edge_matmuls(path: str | os.PathLike[str]) -> list[str]:
    """Names of the first and last MatMul with a constant weight in a tower's graph.

    They are the vision tower's patch embedding (in the text tower, whose token embedding is a
    lookup, the first layer's attention input) and the output projection: a few percent of the
    FLOPs, but most of the error int8 adds (quantizing them moved the top-10 retrieval sets of a
    trained tiny model by 2.5 %; kept fp32, by under 1 %).
    """
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    consts = {i.name for i in graph.initializer} | {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    names = [n.name for n in graph.node if n.op_type == "MatMul" and any(i in consts for i in n.input)]
    return [names[0], names[-1]] if len(names) > 2 else []


def quantize_int8(src: str | os.PathLike[str], dst: str | os.PathLike[str], reduce_range: bool) -> Path:
    """ONNX Runtime dynamic quantization: int8 weights (per channel), int8 activations per call.

    Every weight MatMul is quantized except the first and last (:func:`edge_matmuls`).
    ``reduce_range``: 7-bit weights (what :func:`vidsearch.precision.int8_needs_reduce_range`
    says this CPU needs; True for a graph any CPU runs accurately).
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=Path(dst).parent) as tmp:
        pre, out = Path(tmp) / "pre.onnx", Path(tmp) / "int8.onnx"
        # The quantizer logs advice on the root logger on every call; the advice is followed:
        # pre-processing folds constants (the split of a fused q/kv weight) so that every
        # MatMul has a constant weight the quantizer can convert.
        logging.disable(logging.WARNING)
        try:
            quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
            quantize_dynamic(
                str(pre),
                str(out),
                weight_type=QuantType.QInt8,
                per_channel=True,
                reduce_range=reduce_range,
                nodes_to_exclude=edge_matmuls(pre),
            )
        finally:
            logging.disable(logging.NOTSET)
        blob = out.read_bytes()
    return atomic_write(dst, lambda fh: fh.write(blob))


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of matching rows of ``a`` and ``b`` (``[B, D]`` each)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1) + 1e-30)


def _normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


class OnnxTextEncoder:
    """The text half of an encoder, run by ONNX Runtime (``encode_text`` only).

    Attributes:
        key: the embedding space key the graph was exported for.
        embed_dim: embedding size ``D``.
        context_length: tokens per caption.
        precision: the graph's precision (``fp32`` or ``int8``).
    """

    def __init__(
        self, path: str | os.PathLike[str], meta: dict[str, Any], threads: int | None = 1, *, prepack: bool = True
    ) -> None:
        self.path = Path(path)
        self.key = str(meta["key"])
        self.embed_dim = int(meta["embed_dim"])
        self.context_length = int(meta["context_length"])
        self.precision = str(meta.get("precision", "fp32"))
        self.session = make_session(path, threads, prepack=prepack)

    def encode_text(self, texts: Sequence[str]) -> np.ndarray:
        """Embed captions into L2-normalized float32 ``[B, D]``."""
        if isinstance(texts, str):
            raise ValueError("encode_text expects a sequence of strings, not one string; wrap it in a list")
        tokens = bpe.tokenize(list(texts), context_length=self.context_length)
        eot = tokens.argmax(axis=-1)
        out = np.empty((len(tokens), self.embed_dim), dtype=np.float32)
        order = np.argsort(eot, kind="stable")
        for start in range(0, len(order), TEXT_CHUNK):
            idx = order[start : start + TEXT_CHUNK]
            # Attention is causal: positions after the chunk's last end-of-text token cannot
            # change any pooled token, so they are not computed (what the PyTorch tower does).
            n = int(eot[idx].max()) + 1
            out[idx] = self.session.run(None, {"tokens": tokens[idx, :n]})[0]
        return _normalize(out)

    def __repr__(self) -> str:
        return f"OnnxTextEncoder(key={self.key!r}, precision={self.precision})"


def graph_precision(space_precision: str) -> str:
    """The graph precision that serves text queries into a space of ``space_precision``."""
    # Query vectors are never stored, so a space of any precision can be queried by the fp32
    # graph (the most exact); only int8 spaces use the int8 graph, which is also the fastest.
    return "int8" if space_precision == "int8" else "fp32"


def open_text_encoder(key: str, threads: int | None = 1, *, prepack: bool = True) -> OnnxTextEncoder | None:
    """The ONNX text encoder cached for the space ``key``, or None (no ONNX Runtime, no graph).

    ``prepack=False`` for an encoder that answers one or two queries (see :func:`make_session`).
    """
    if not ort_available():
        return None
    path = graph_path(key, "text", graph_precision(split_key(key)[1]))
    meta = read_meta(path)
    if meta is None or not path.is_file() or meta.get("key") != key:
        return None
    if meta.get("precision") == "int8" and not int8_graph_current(meta):
        return None  # made the old way or for another CPU: the PyTorch path answers and quantizes it again
    try:
        return OnnxTextEncoder(path, meta, threads, prepack=prepack)
    except ModelError as exc:
        LOG.warning("%s; using the PyTorch text tower", exc)
        return None
