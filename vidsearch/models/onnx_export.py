"""Export ViCLIP's towers to ONNX (torch side) and check the graphs against PyTorch.

Two thin wrappers make the towers exportable without data-dependent shapes:

* :class:`TextGraph` runs the text tower over the tokens as given (batch and length dynamic).
  The PyTorch tower cuts each batch after its last end-of-text token with a Python ``int``;
  the runtime (:mod:`vidsearch.models.onnx_text`) makes the same cut in numpy before the call,
  so the graph computes exactly what the tower computes;
* :class:`VisionGraph` takes normalized frames ``[B, T, 3, H, W]`` with ``T, H, W`` fixed at
  export time and the batch dynamic.

Both are traced with autograd on, so the towers take their functional path (the in-place
inference path is a CPU-eager optimisation a graph does not need). Graphs are written in one
file (every ViCLIP tower is under protobuf's 2 GB) through :func:`vidsearch.fileio.atomic_write`.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vidsearch.errors import ModelError
from vidsearch.fileio import atomic_write
from vidsearch.models.onnx_text import (
    INPUT_NAMES,
    INT8_RECIPE,
    cosine_rows,
    graph_path,
    int8_graph_current,
    make_session,
    quantize_int8,
    read_meta,
    remove_graph,
    write_meta,
)
from vidsearch.precision import int8_needs_reduce_range

__all__ = [
    "TextGraph",
    "VisionGraph",
    "export_tower",
    "example_input",
    "parity_inputs",
    "graph_parity",
    "graph_name",
    "ensure_graph",
    "OPSET",
]

LOG = logging.getLogger(__name__)

OPSET = 18
PARITY_MIN_COSINE = 0.9999  # an fp32 graph that agrees less than this with the tower is a bug


class TextGraph(nn.Module):
    """ViCLIP's text tower, tokens ``[B, L]`` -> raw embeddings ``[B, D]``, no shape branches."""

    def __init__(self, tower: nn.Module) -> None:
        super().__init__()
        self.tower = tower

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        t = self.tower
        x = t.token_embedding(tokens) + t.positional_embedding[: tokens.shape[1]]  # [B, L, D]
        for blk in t.transformer.resblocks:
            x = blk(x, causal=True)
        eot = tokens.argmax(dim=-1)  # the end-of-text token has the highest id in each row
        x = x[torch.arange(x.shape[0]), eot]  # [B, D]
        return t.ln_final(x) @ t.text_projection


class VisionGraph(nn.Module):
    """ViCLIP's vision tower, normalized frames ``[B, T, 3, H, W]`` -> raw embeddings ``[B, D]``."""

    def __init__(self, tower: nn.Module) -> None:
        super().__init__()
        self.tower = tower

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.tower(frames)


def _example(model: Any, tower: str, num_frames: int | None) -> tuple[nn.Module, torch.Tensor, dict[str, Any]]:
    cfg = model.config
    batch = torch.export.Dim("batch", min=1, max=4096)
    if tower == "text":
        tokens = torch.zeros(2, cfg.context_length, dtype=torch.long)
        tokens[:, 0], tokens[:, 5] = 49406, 49407
        length = torch.export.Dim("length", min=2, max=cfg.context_length)
        return TextGraph(model.text_encoder), tokens, {"tokens": {0: batch, 1: length}}
    if tower == "vision":
        t = num_frames or cfg.num_frames
        frames = torch.zeros(2, t, 3, cfg.input_resolution, cfg.input_resolution)
        return VisionGraph(model.vision_encoder), frames, {"frames": {0: batch}}
    raise ModelError(f"unknown tower {tower!r}; choose text or vision")


@contextlib.contextmanager
def _quiet_exporter_logs() -> Iterator[None]:
    """Only errors from the exporter's loggers while exporting (its optimizer logs each op it skips)."""
    loggers = [logging.getLogger(name) for name in ("onnxscript", "torch.onnx")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def export_tower(model: Any, tower: str, path: str | os.PathLike[str], num_frames: int | None = None) -> Path:
    """Write one tower of a :class:`~vidsearch.models.viclip.ViCLIP` as an fp32 ONNX graph.

    Args:
        model: the ViCLIP module (weights as they will be used; it is not modified).
        tower: ``text`` or ``vision``.
        path: the ``.onnx`` file to write (atomically).
        num_frames: frames per clip of the vision graph (default: the model's).

    Raises:
        ModelError: the exporter failed (its one-line reason is kept).
    """
    graph, example, dynamic = _example(model, tower, num_frames)
    graph = graph.eval()
    # The exporter reports its steps on stdout and warns (and logs) about internals users cannot act on.
    with (
        warnings.catch_warnings(),
        contextlib.redirect_stdout(io.StringIO()),
        _quiet_exporter_logs(),
        torch.enable_grad(),
    ):
        warnings.simplefilter("ignore")
        try:
            program = torch.onnx.export(
                graph,
                (example,),
                None,
                dynamo=True,
                verbose=False,
                input_names=[INPUT_NAMES[tower]],
                output_names=["embeds"],
                dynamic_shapes=dynamic,
                opset_version=OPSET,
                external_data=False,
            )
        except Exception as exc:  # the exporter raises many types; the user needs its reason
            raise ModelError(f"ONNX export of the {tower} tower failed: {str(exc).splitlines()[0]}") from exc
    blob = program.model_proto.SerializeToString()
    LOG.info("exported the %s tower to %s (%.1f MB)", tower, path, len(blob) / 1e6)
    return atomic_write(path, lambda fh: fh.write(blob))


def example_input(model: Any, tower: str, num_frames: int | None = None) -> torch.Tensor:
    """The example input a tower is exported with (its shape fixes the graph's static dims)."""
    return _example(model, tower, num_frames)[1]


def parity_inputs(model: Any, tower: str, num_frames: int | None = None, seed: int = 0) -> torch.Tensor:
    """Seeded random inputs for a parity check: token rows with EOTs at several places, or frames."""
    cfg = model.config
    g = torch.Generator().manual_seed(seed)
    if tower == "vision":
        t = num_frames or cfg.num_frames
        return torch.randn(3, t, 3, cfg.input_resolution, cfg.input_resolution, generator=g)
    L = cfg.context_length
    tokens = torch.randint(1, 49406, (4, L), generator=g)
    for i, n in enumerate((2, L // 3, L // 2, L)):  # EOTs at several places, one row full
        tokens[i, 0], tokens[i, n - 1], tokens[i, n:] = 49406, 49407, 0
    return tokens


def graph_parity(
    model: Any,
    tower: str,
    path: str | os.PathLike[str],
    num_frames: int | None = None,
    inputs: torch.Tensor | None = None,
    seed: int = 0,
) -> float:
    """The lowest per-row cosine between the ONNX graph at ``path`` and the PyTorch tower.

    Args:
        model: the ViCLIP module the graph was exported from.
        tower: ``text`` or ``vision``.
        path: the graph (fp32 or quantized).
        num_frames: frames per clip of a vision graph.
        inputs: token ids or normalized frames to compare on (default: seeded random ones).
        seed: seed of the default inputs.
    """
    x = parity_inputs(model, tower, num_frames, seed) if inputs is None else inputs
    with torch.inference_mode():
        ref = (model.encode_text(x) if tower == "text" else model.encode_video(x)).float().numpy()
    sess = make_session(path)
    got = sess.run(None, {INPUT_NAMES[tower]: x.numpy()})[0]
    return float(cosine_rows(got, ref).min())


def graph_name(model: Any, tower: str, num_frames: int | None = None) -> str:
    """The cache name of a tower's graph: ``text``, ``vision`` or ``vision-t<T>`` for other T."""
    if tower == "vision" and num_frames not in (None, model.config.num_frames):
        return f"vision-t{num_frames}"
    return tower


def ensure_graph(
    model: Any, key: str, tower: str = "text", precision: str = "fp32", num_frames: int | None = None
) -> Path:
    """The cached ONNX graph of one tower for the space ``key``, exported and checked once.

    The fp32 graph is exported and compared with the tower (cosine >= 0.9999 or it is not
    kept); an ``int8`` graph is ONNX Runtime's dynamic quantization of the fp32 one.

    Raises:
        ModelError: export failed or the graph disagrees with the PyTorch tower.
    """
    name = graph_name(model, tower, num_frames)
    path = graph_path(key, name, precision)
    meta = read_meta(path) if path.is_file() else None
    if meta is not None and (precision != "int8" or int8_graph_current(meta)):
        return path
    fp32 = graph_path(key, name, "fp32")
    if not (fp32.is_file() and read_meta(fp32) is not None):
        remove_graph(fp32)
        export_tower(model, tower, fp32, num_frames)
        cos = graph_parity(model, tower, fp32, num_frames)
        if cos < PARITY_MIN_COSINE:
            remove_graph(fp32)
            raise ModelError(
                f"the exported {tower} graph disagrees with PyTorch (cosine {cos:.6f}); please report this"
            )
        write_meta(fp32, _meta(model, key, tower, "fp32", num_frames, cos))
    if precision == "fp32":
        return fp32
    if precision != "int8":
        raise ModelError(f"no ONNX graph for precision {precision!r}; ONNX graphs are fp32 or int8")
    remove_graph(path)
    reduce_range = int8_needs_reduce_range()
    quantize_int8(fp32, path, reduce_range)
    write_meta(
        path,
        {
            **_meta(model, key, tower, precision, num_frames, graph_parity(model, tower, path, num_frames)),
            "int8_recipe": INT8_RECIPE,
            "reduce_range": reduce_range,
        },
    )
    return path


def _meta(model: Any, key: str, tower: str, precision: str, num_frames: int | None, cosine: float) -> dict[str, Any]:
    cfg = model.config
    return {
        "key": key,
        "tower": tower,
        "precision": precision,
        "opset": OPSET,
        "context_length": cfg.context_length,
        "embed_dim": cfg.embed_dim,
        "num_frames": num_frames or cfg.num_frames,
        "resolution": cfg.input_resolution,
        "parity_cosine": round(cosine, 6),
        "torch": torch.__version__,
    }
