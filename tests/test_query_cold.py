"""`vidsearch query TEXT` from a cold shell: the second query of a space imports no torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import videogen

pytest.importorskip("onnxruntime", reason="ONNX Runtime is not installed (pip install -e '.[fast]')")
pytest.importorskip("onnxscript", reason="the ONNX exporter needs onnxscript (pip install -e '.[fast]')")

PROBE = (
    "import sys\n"
    "sys.argv = ['vidsearch', *sys.argv[1:]]\n"
    "from vidsearch.cli.main import main\n"
    "try:\n"
    "    main()\n"
    "finally:\n"
    "    print('TORCH' if 'torch' in sys.modules else 'NO-TORCH', file=sys.stderr)\n"
)


def _query(lib: Path, text: str) -> tuple[list[dict], str]:
    r = subprocess.run(
        [sys.executable, "-c", PROBE, "query", text, "--library", str(lib), "--json"],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout), r.stderr.strip().splitlines()[-1]


def test_second_text_query_is_torch_free_and_answers_the_same(
    tmp_path: Path, tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    monkeypatch.setenv("VIDSEARCH_CACHE_DIR", str(tmp_path / "cache"))  # no graph cached by other tests

    from vidsearch.cli import commands  # noqa: F401
    from vidsearch.cli.main import app

    videos = tmp_path / "videos"
    videogen.write_video(videos / "red.mp4", seconds=2, fps=8, pattern="gradient", color=(200, 40, 40))
    videogen.write_video(videos / "square.mp4", seconds=2, fps=8, pattern="moving_square", color=(40, 200, 40))
    lib = tmp_path / "lib"
    res = CliRunner().invoke(
        app,
        ["index", str(videos), "--library", str(lib), "--model", str(tiny_checkpoint), "--workers", "1", "--json"],
        catch_exceptions=False,
    )
    assert res.exit_code == 0, res.stdout
    first, first_mod = _query(lib, "a green square moving")  # PyTorch, caches the text graph
    second, second_mod = _query(lib, "a green square moving")
    assert first_mod == "TORCH" and second_mod == "NO-TORCH"
    assert [h["path"] for h in first] == [h["path"] for h in second]
    for a, b in zip(first, second, strict=False):
        assert b["score"] == pytest.approx(a["score"], abs=1e-4)
        assert (b["start"], b["end"]) == (a["start"], a["end"])


def test_cli_main_imports_no_torch() -> None:
    r = subprocess.run(
        [sys.executable, "-c", "import sys, vidsearch.cli.main, vidsearch.cli.commands; print('torch' in sys.modules)"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.stdout.strip() == "False", r.stderr
