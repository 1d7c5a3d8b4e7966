"""`--precision` through the CLI: one option on every command that encodes, with the tiny random-weight model.

Commands that load a model (`bench *`, `localize` without a library) run it at the precision
asked for and say so (`--json`: ``model.precision``, the key's ``+int8``); commands that work on a
library's embedding space (`enrich *`, `localize` with a library) take the space's, pick the
space of an explicit precision where the library has several, and refuse a precision the
library has no space of in one line (exit 2).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import videogen
from typer.testing import CliRunner

from vidsearch.cli import commands  # noqa: F401  (registers the commands)
from vidsearch.cli.common import PRECISION_HELP
from vidsearch.cli.errors import message as cli_message
from vidsearch.cli.main import app
from vidsearch.errors import InputError, ModelError

runner = CliRunner()
MSRVTT_CSV = Path(__file__).parent / "data" / "msrvtt_1kA_test.csv"

# Every command that encodes with a model (serve answers with the precision of the space it serves).
ENCODING_COMMANDS = [
    ("index",),
    ("export",),
    ("localize",),
    ("query",),
    ("watch",),
    ("enrich", "recognize"),
    ("enrich", "calibrate"),
    ("enrich", "train-head"),
    ("enrich", "actors"),
    ("bench", "retrieval"),
    ("bench", "recognition"),
    ("bench", "open-set"),
    ("bench", "localization"),
    ("bench", "ava"),
]


def _needs_int8() -> None:
    pytest.importorskip("onnxruntime", reason="int8 runs on ONNX Runtime (pip install -e '.[fast]')")
    pytest.importorskip("onnxscript", reason="the ONNX exporter needs onnxscript (pip install -e '.[fast]')")


def run_json(*args: str) -> dict:
    result = runner.invoke(app, [*args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.stdout
    return json.loads(result.stdout)


def error_of(*args: str) -> BaseException:
    """The one-line error a command stops with (main() prints it and exits 2)."""
    result = runner.invoke(app, list(args))
    assert result.exception is not None and result.exit_code != 0, result.stdout
    return result.exception


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m vidsearch.cli ARGS`` as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "vidsearch.cli", *args],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=120,
    )


def test_every_encoding_command_has_the_one_option() -> None:
    import typer.main

    root = typer.main.get_command(app)
    for path in ENCODING_COMMANDS:
        cmd = root
        for name in path:
            cmd = cmd.commands[name]
        (opt,) = [p for p in cmd.params if "--precision" in p.opts]
        assert opt.default == "auto" and opt.help == PRECISION_HELP, path


@pytest.mark.parametrize(
    "args",
    [
        ["bench", "retrieval", "--dataset", "msrvtt", "--annotations", str(MSRVTT_CSV), "--videos", "."],
        ["enrich", "recognize"],
        ["localize", "v.mp4", "a dog"],
    ],
)
def test_unknown_precision_is_one_line_and_exit_2(args: list[str], tmp_path: Path) -> None:
    res = cli(*args, "--library", str(tmp_path / "lib"), "--precision", "fp8")
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip() == "error: --precision 'fp8': choose one of auto, fp32, int8, bf16, fp16"


def test_a_precision_the_cpu_lacks_fails_before_the_model_loads(tiny_checkpoint: Path, tmp_path: Path) -> None:
    exc = error_of(
        "bench",
        "retrieval",
        "--dataset",
        "msrvtt",
        "--annotations",
        str(MSRVTT_CSV),
        "--videos",
        str(tmp_path),
        "--model",
        str(tmp_path / "no-such-weights.pth"),
        "--precision",
        "fp16",
    )
    assert isinstance(exc, ModelError) and "--precision fp16 needs a GPU" in cli_message(exc)
    video = tmp_path / "v.mp4"
    videogen.write_video(video, num_frames=8, fps=8, size=(32, 32))
    exc = error_of(
        "localize",
        str(video),
        "a dog",
        "--library",
        str(tmp_path / "none"),
        "--model",
        str(tiny_checkpoint),
        "--precision",
        "fp16",
    )
    assert isinstance(exc, ModelError) and "needs a GPU" in str(exc)


# --------------------------------------------------------------------------- bench: the model runs at --precision


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("precision-cli")
    lines = MSRVTT_CSV.read_bytes().split(b"\r\n")
    (root / "msrvtt.csv").write_bytes(b"\r\n".join(lines[:5]) + b"\r\n")
    videos = root / "videos"
    for i, ln in enumerate(lines[1:5]):
        name = ln.decode().split(";")[2]
        videogen.write_video(
            videos / f"{name}.mp4",
            num_frames=8 + 2 * i,
            fps=8,
            size=(32, 32),
            pattern=("gradient", "noise")[i % 2],
            color=((220, 40, 40), (40, 220, 40), (40, 40, 220), (220, 220, 40))[i],
        )
    videogen.write_video(videos / "long.mp4", seconds=8, fps=4, pattern="moving_square", color=(200, 200, 40))
    (root / "moments.txt").write_text("long 2.0 6.0##a yellow square\n")
    (root / "colours.txt").write_text("red\ngreen\n")
    return {"root": root, "videos": videos}


def test_bench_runs_and_records_the_precision(corpus: dict[str, Path], tiny_checkpoint: Path) -> None:
    _needs_int8()
    root, ckpt = corpus["root"], str(tiny_checkpoint)
    common = ["--videos", str(corpus["videos"]), "--model", ckpt, "--library", str(root / "bench")]
    retrieval = ["bench", "retrieval", "--dataset", "msrvtt", "--annotations", str(root / "msrvtt.csv"), *common]
    fp32 = run_json(*retrieval)
    int8 = run_json(*retrieval, "--precision", "int8")
    assert fp32["model"]["precision"] == "fp32" and "+" not in fp32["model"]["key"]
    assert int8["model"]["precision"] == "int8" and int8["model"]["key"] == fp32["model"]["key"] + "+int8"
    assert int8["timing"]["videos_encoded"] == 4  # its own space in the bench library, not fp32's vectors
    from vidsearch.store.library import Library

    with Library.open(root / "bench") as lib:
        assert {s.key for s in lib.spaces()} == {fp32["model"]["key"], int8["model"]["key"]}
    loc = run_json("bench", "localization", "--annotations", str(root / "moments.txt"), *common, "--precision", "int8")
    assert loc["model"]["precision"] == "int8" and loc["model"]["key"] == int8["model"]["key"]


# --------------------------------------------------------------------------- a library's space decides


@pytest.fixture(scope="module")
def int8_library(corpus: dict[str, Path], tiny_checkpoint: Path) -> Path:
    _needs_int8()
    lib = corpus["root"] / "lib"
    out = run_json(
        "index",
        str(corpus["videos"]),
        "--library",
        str(lib),
        "--model",
        str(tiny_checkpoint),
        "--workers",
        "1",
        "--precision",
        "int8",
    )
    assert out["space_key"].endswith("+int8") and out["added"] == 5
    return lib


def test_space_commands_refuse_another_precision(corpus: dict[str, Path], int8_library: Path) -> None:
    lib, labels, long = str(int8_library), str(corpus["root"] / "colours.txt"), str(corpus["videos"] / "long.mp4")
    (corpus["root"] / "known.csv").write_text("video,label\nlong,red\n")
    # An explicit precision the library has no space of: one line naming the option and the space's precision.
    for args in (
        ["enrich", "recognize", "--library", lib, "--labels", labels],
        ["enrich", "actors", "--library", lib, "--labels", labels, "--detector", "hog"],
        [
            "enrich",
            "calibrate",
            "--library",
            lib,
            "--labels",
            labels,
            "--annotations",
            str(corpus["root"] / "known.csv"),
            "--videos",
            str(corpus["videos"]),
        ],
        ["localize", long, "a yellow square", "--library", lib],
        ["localize", long, "a yellow square", "--library", lib, "--boxes", "--detector", "hog"],
    ):
        exc = error_of(*args, "--precision", "fp32")
        assert isinstance(exc, InputError), (args, exc)
        assert (
            cli_message(exc).startswith("--precision fp32: embedding space ")
            and "+int8 of " in str(exc)
            and "is int8" in str(exc)
        ), str(exc)
    res = cli("enrich", "recognize", "--library", lib, "--labels", labels, "--precision", "fp32")
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1 and "is int8" in res.stderr, res.stderr


# An int8 space's key ends in +int8, which is no part of the weights' hash its encoder is checked by.
def test_space_commands_run_at_the_space_precision(
    corpus: dict[str, Path], int8_library: Path, tiny_checkpoint: Path
) -> None:
    lib, labels, long = str(int8_library), str(corpus["root"] / "colours.txt"), str(corpus["videos"] / "long.mp4")
    rec = run_json(
        "enrich",
        "recognize",
        "--library",
        lib,
        "--labels",
        labels,
        "--model",
        str(tiny_checkpoint),
        "--precision",
        "int8",
    )
    assert rec["space"].endswith("+int8") and rec["labelled"] >= 5
    loc = run_json("localize", long, "a yellow square", "--library", lib, "--model", rec["space"])
    assert loc["precision"] == "int8" and loc["model"] == rec["space"]
    # A clip query loads the space's int8 encoder; the clip finds itself first.
    hits = run_json("query", "--video", long, "--library", lib, "--precision", "int8")
    assert hits[0]["path"].endswith("long.mp4") and hits[0]["score"] > 0.99
    exc = error_of("query", "a yellow square", "--library", lib, "--precision", "fp32")
    assert isinstance(exc, InputError) and "is int8" in str(exc)


def test_precision_picks_the_space_where_the_library_has_several(
    corpus: dict[str, Path], int8_library: Path, tiny_checkpoint: Path
) -> None:
    lib, ckpt, labels = str(int8_library), str(tiny_checkpoint), str(corpus["root"] / "colours.txt")
    run_json(
        "index", str(corpus["videos"]), "--library", lib, "--model", ckpt, "--workers", "1"
    )  # now an fp32 space too
    from vidsearch.store.library import Library
    from vidsearch.usecases.spaces import resolve_space

    with Library.open(int8_library) as opened:
        keys = {s.key for s in opened.spaces()}
        fp32_key = next(k for k in keys if "+" not in k)
        assert keys == {fp32_key, fp32_key + "+int8"}
        for model in (None, ckpt, fp32_key.split("@")[0]):  # the latest space, a checkpoint, a space's name
            assert resolve_space(opened, model, "int8").key == fp32_key + "+int8"
            assert resolve_space(opened, model, "fp32").key == fp32_key
    fp32 = run_json("enrich", "recognize", "--library", lib, "--labels", labels, "--model", ckpt, "--precision", "fp32")
    assert fp32["space"] == fp32_key
    # --model as an exact space key is that space: an explicit other precision is refused.
    exc = error_of(
        "enrich", "recognize", "--library", lib, "--labels", labels, "--model", fp32_key, "--precision", "int8"
    )
    assert isinstance(exc, InputError) and "is fp32" in str(exc)


def test_localize_without_a_library_runs_at_the_precision(
    corpus: dict[str, Path], tiny_checkpoint: Path, tmp_path: Path
) -> None:
    _needs_int8()
    long = str(corpus["videos"] / "long.mp4")
    base = [
        "localize",
        long,
        "a yellow square",
        "--library",
        str(tmp_path / "no-library"),
        "--model",
        str(tiny_checkpoint),
    ]
    fp32 = run_json(*base)
    int8 = run_json(*base, "--precision", "int8")
    assert fp32["precision"] == "fp32" and int8["precision"] == "int8" and int8["model"] == fp32["model"] + "+int8"
    assert not int8["cached"]  # the window cache is keyed by the precision too
