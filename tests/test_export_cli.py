"""`vidsearch export`: ONNX graphs checked against PyTorch; TensorRT refused in one line without a GPU."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from vidsearch.cli import commands  # noqa: F401  (registers the commands)
from vidsearch.cli.main import app

runner = CliRunner()


def _run(*args: str):
    return runner.invoke(app, list(args))


@pytest.mark.parametrize("tower,precision", [("vision", "fp32"), ("text", "int8")])
def test_export_onnx_with_parity(tiny_checkpoint: Path, tmp_path: Path, tower: str, precision: str) -> None:
    pytest.importorskip("onnxruntime", reason="ONNX Runtime is not installed (pip install -e '.[fast]')")
    pytest.importorskip("onnxscript", reason="the ONNX exporter needs onnxscript (pip install -e '.[fast]')")
    out = tmp_path / f"{tower}.onnx"
    result = _run(
        "export",
        "onnx",
        "--model",
        str(tiny_checkpoint),
        "--out",
        str(out),
        "--tower",
        tower,
        "--precision",
        precision,
        "--json",
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["parity_ok"] and report["precision"] == precision and out.is_file()
    # The file itself answers like the PyTorch tower (checked here independently of the command).
    from vidsearch.models import EncoderSpec, open_encoder
    from vidsearch.models.onnx_text import make_session

    enc = open_encoder(EncoderSpec(str(tiny_checkpoint), device="cpu"))
    sess = make_session(out)
    if tower == "vision":
        x = torch.randn(2, enc.num_frames, 3, enc.resolution, enc.resolution)
        with torch.inference_mode():
            ref = enc.model.encode_video(x).numpy()
        got = sess.run(None, {"frames": x.numpy()})[0]
    else:
        from vidsearch.models.tokenizer import tokenize

        tok = tokenize(["a dog", "someone cooks pasta in a kitchen"], enc.context_length)
        with torch.inference_mode():
            ref = enc.model.encode_text(tok).numpy()
        got = sess.run(None, {"tokens": tok.numpy()})[0]
    cos = (got * ref).sum(-1) / (np.linalg.norm(got, axis=-1) * np.linalg.norm(ref, axis=-1))
    assert cos.min() >= (0.9999 if precision == "fp32" else 0.999)


def test_export_errors_are_one_line(tiny_checkpoint: Path, tmp_path: Path) -> None:
    from vidsearch.errors import VidsearchError

    for args, match in (
        (["export", "keras", "--out", "x"], "choose one of onnx, tensorrt"),
        (["export", "onnx", "--out", "x", "--tower", "audio"], "choose one of vision, text"),
        (["export", "onnx", "--out", "x", "--precision", "fp8"], "choose one of auto"),
    ):
        with pytest.raises(VidsearchError, match=match):
            runner.invoke(app, [*args, "--model", str(tiny_checkpoint)], catch_exceptions=False)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the no-GPU refusal is tested on machines without a GPU")
def test_tensorrt_without_gpu_is_refused(tiny_checkpoint: Path, tmp_path: Path) -> None:
    from vidsearch.errors import VidsearchError

    with pytest.raises(VidsearchError, match="needs an NVIDIA GPU"):
        runner.invoke(
            app,
            ["export", "tensorrt", "--model", str(tiny_checkpoint), "--out", str(tmp_path / "e.engine")],
            catch_exceptions=False,
        )
