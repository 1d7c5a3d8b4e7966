"""`vidsearch export onnx|tensorrt`: one tower of a model as a portable graph, parity-checked."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import typer

from vidsearch.cli.app import app
from vidsearch.cli.common import (
    CheckpointOption,
    JsonOption,
    ModelConfigOption,
    ModelOption,
    PrecisionOption,
    console,
    print_json,
)
from vidsearch.errors import InputError
from vidsearch.models import EncoderSpec, open_encoder
from vidsearch.precision import check_precision, choose_precision

FORMATS = ("onnx", "tensorrt")
TOWERS = ("vision", "text")
# Below this the exported graph does not compute what the PyTorch tower computes.
MIN_COSINE = {"fp32": 0.9999, "int8": 0.999, "fp16": 0.999, "bf16": 0.999}


@app.command("export")
def export_command(
    fmt: str = typer.Argument(..., metavar="FORMAT", help="onnx or tensorrt.", show_default=False),
    out: Path = typer.Option(
        ..., "--out", "-o", help="File to write (.onnx, or a TensorRT .engine).", show_default=False
    ),
    model: str = ModelOption,
    model_config: Path | None = ModelConfigOption,
    checkpoint: Path | None = CheckpointOption,
    tower: str = typer.Option("vision", "--tower", help="vision or text."),
    precision: str = PrecisionOption,
    json_out: bool = JsonOption,
) -> None:
    """Export a ViCLIP tower and check it against the PyTorch model on seeded inputs."""

    if fmt not in FORMATS:
        raise InputError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if tower not in TOWERS:
        raise InputError(f"--tower {tower!r}: choose one of {', '.join(TOWERS)}")
    check_precision(precision)
    if fmt == "tensorrt":
        from vidsearch.models.tensorrt_export import tensorrt_unavailable

        reason = tensorrt_unavailable()  # before loading a model that cannot be used
        if reason:
            raise InputError(reason)
    device = "cuda" if fmt == "tensorrt" else "cpu"
    resolved = choose_precision(precision, device, cuda_bf16=fmt == "tensorrt")
    # The fp32 network is exported; the graph's own precision is `resolved`.
    encoder: Any = open_encoder(
        EncoderSpec(
            model,
            checkpoint=None if checkpoint is None else str(checkpoint),
            config=None if model_config is None else str(model_config),
            device=device,
            precision="fp32",
            backend="torch",
        )
    )
    from vidsearch.models.viclip import ViCLIP

    if not isinstance(encoder.model, ViCLIP):
        raise InputError(f"--model {model}: export supports ViCLIP models (presets or checkpoints), not openclip:")
    net = encoder.model
    if fmt == "onnx":
        cosine = _export_onnx(net, tower, out, resolved)
    else:
        from vidsearch.models.onnx_export import parity_inputs
        from vidsearch.models.tensorrt_export import build_engine, engine_parity

        build_engine(net, tower, out, precision=resolved)
        cosine = engine_parity(net, tower, out, parity_inputs(net, tower))
    ok = cosine >= MIN_COSINE[resolved]
    report = {
        "format": fmt,
        "tower": tower,
        "precision": resolved,
        "out": str(out),
        "key": encoder.key,
        "parity_cosine": round(cosine, 6),
        "parity_ok": ok,
    }
    if json_out:
        print_json(report)
    else:
        console.print(
            f"wrote {out} ({fmt}, {tower} tower, {resolved}): parity cosine {cosine:.6f} "
            f"{'ok' if ok else 'BELOW ' + str(MIN_COSINE[resolved])}"
        )
    if not ok:
        raise typer.Exit(1)


def _export_onnx(net, tower: str, out: Path, precision: str) -> float:
    """Write the graph (fp32 or int8) to ``out`` and return its parity cosine."""

    from vidsearch.models.onnx_export import export_tower, graph_parity

    if precision not in ("fp32", "int8"):
        raise InputError(
            f"--precision {precision}: ONNX graphs are exported as fp32 or int8 (bf16/fp16 are GPU runtime settings)"
        )
    if precision == "fp32":
        export_tower(net, tower, out)
    else:
        from vidsearch.models.onnx_text import quantize_int8

        with tempfile.TemporaryDirectory() as tmp:
            # 7-bit weights: the file may run on another CPU, and without VNNI 8-bit ones saturate
            quantize_int8(export_tower(net, tower, Path(tmp) / "fp32.onnx"), out, reduce_range=True)
    return graph_parity(net, tower, out)
