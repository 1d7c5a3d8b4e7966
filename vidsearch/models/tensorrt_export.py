"""Build a TensorRT engine from a tower's ONNX graph, and check it against PyTorch (GPU only).

Behind a capability check: TensorRT needs an NVIDIA GPU and the ``tensorrt`` package, and
:func:`tensorrt_unavailable` says in one line what is missing. The engine is built with a
fixed optimisation profile (batch ``1..max_batch``, optimum ``opt_batch``), bf16/fp16 layers
allowed when asked, and checked by running it on the GPU through torch CUDA buffers.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from vidsearch.errors import ModelError
from vidsearch.fileio import atomic_write
from vidsearch.models.onnx_export import example_input, export_tower
from vidsearch.models.onnx_text import INPUT_NAMES, cosine_rows

__all__ = ["tensorrt_unavailable", "build_engine", "engine_parity"]

LOG = logging.getLogger(__name__)


def tensorrt_unavailable() -> str | None:
    """Why a TensorRT engine cannot be built here, or None when it can."""
    if not torch.cuda.is_available():
        return "TensorRT export needs an NVIDIA GPU and none is visible; use `vidsearch export onnx` on this machine"
    if importlib.util.find_spec("tensorrt") is None:
        return (
            "TensorRT export needs the tensorrt package (pip install tensorrt); use `vidsearch export onnx` meanwhile"
        )
    return None


def build_engine(
    model: Any,
    tower: str,
    out: str | os.PathLike[str],
    precision: str = "fp16",
    max_batch: int = 32,
    opt_batch: int = 8,
) -> Path:
    """Export ``tower`` to ONNX, build a TensorRT engine from it and write it to ``out``.

    Raises:
        ModelError: no GPU/TensorRT (the one-line reason), or the build failed.
    """
    reason = tensorrt_unavailable()
    if reason:
        raise ModelError(reason)
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = export_tower(model.float().cpu(), tower, Path(tmp) / f"{tower}.onnx")
        if not parser.parse_from_file(str(onnx_path)):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise ModelError(f"TensorRT cannot parse the {tower} graph: {errors}")
    config = builder.create_builder_config()
    if precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    elif precision == "bf16":
        config.set_flag(trt.BuilderFlag.BF16)
    shape = tuple(example_input(model, tower).shape)
    profile = builder.create_optimization_profile()
    profile.set_shape(INPUT_NAMES[tower], (1, *shape[1:]), (opt_batch, *shape[1:]), (max_batch, *shape[1:]))
    config.add_optimization_profile(profile)
    blob = builder.build_serialized_network(network, config)
    if blob is None:
        raise ModelError(f"TensorRT could not build an engine for the {tower} tower (see its log above)")
    LOG.info("built a TensorRT %s engine for the %s tower", precision, tower)
    data = bytes(blob)
    return atomic_write(out, lambda fh: fh.write(data))


def engine_parity(model: Any, tower: str, engine_path: str | os.PathLike[str], inputs: torch.Tensor) -> float:
    """Lowest per-row cosine between a TensorRT engine and the PyTorch tower on ``inputs``."""
    import tensorrt as trt

    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    engine = runtime.deserialize_cuda_engine(Path(engine_path).read_bytes())
    context = engine.create_execution_context()
    x = inputs.cuda().contiguous()
    name = INPUT_NAMES[tower]
    context.set_input_shape(name, tuple(x.shape))
    out = torch.empty(x.shape[0], model.config.embed_dim, device="cuda", dtype=torch.float32)
    context.set_tensor_address(name, x.data_ptr())
    context.set_tensor_address("embeds", out.data_ptr())
    stream = torch.cuda.current_stream()
    if not context.execute_async_v3(stream.cuda_stream):
        raise ModelError("TensorRT failed to run the engine")
    stream.synchronize()
    with torch.inference_mode():
        ref = (model.encode_text(inputs) if tower == "text" else model.encode_video(inputs)).float()
    return float(cosine_rows(out.cpu().numpy(), ref.cpu().numpy()).min())
