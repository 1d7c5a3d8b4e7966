"""No start-up tax: an empty folder or an unchanged one needs no weights, no torch, no workers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import videogen

from vidsearch.models.keymemo import recall_key, remember_key

ROOT = Path(__file__).resolve().parents[1]


def _cli(args: list[str], env: dict[str, str]) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Run the CLI in a fresh interpreter; also return the top-level packages it imported."""
    code = (
        "import sys, runpy\n"
        "sys.argv = ['vidsearch'] + sys.argv[1:]\n"
        "try:\n    runpy.run_module('vidsearch.cli', run_name='__main__')\n"
        "finally:\n    sys.stderr.write('MODULES ' + ' '.join(sorted({m.split('.')[0] for m in sys.modules})) + '\\n')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, cwd=ROOT, timeout=600
    )
    mods = next((ln.split()[1:] for ln in proc.stderr.splitlines() if ln.startswith("MODULES ")), [])
    return proc, set(mods)


@pytest.fixture()
def env(tmp_path: Path) -> dict[str, str]:
    e = {
        **os.environ,
        "VIDSEARCH_CACHE_DIR": str(tmp_path / "cache"),
        "HF_HOME": str(tmp_path / "hf"),
        "HF_HUB_OFFLINE": "1",
    }
    e.pop("VIDSEARCH_CHECKPOINT", None)
    return e


def test_empty_folder_says_so_before_any_weights(tmp_path: Path, env: dict[str, str]) -> None:
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "notes.txt").write_text("not a video")
    # viclip-b16 has no weights here: an empty folder must not get as far as looking for them
    proc, mods = _cli(["index", str(tmp_path / "empty"), "--library", str(tmp_path / "lib")], env)
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    assert "no video files under" in proc.stdout and "nothing to index" in proc.stdout and len(lines) <= 2
    assert "weights" not in proc.stdout + proc.stderr.replace("MODULES", "")
    assert "torch" not in mods
    # Without a library there is nothing to remove either: nothing is created, and the answer
    # comes before the database layer or the decoders are imported.
    assert not (tmp_path / "lib").exists()
    assert not mods & {"sqlalchemy", "alembic", "numpy", "decord", "av"}, mods
    proc, _ = _cli(["index", str(tmp_path / "empty"), "--library", str(tmp_path / "lib"), "--json"], env)
    report = json.loads(proc.stdout)
    assert proc.returncode == 0 and report["scanned"] == 0 and report["removed"] == 0 and report["space_key"] == ""


def test_emptied_folder_of_a_library_still_removes_its_videos(
    tmp_path: Path, env: dict[str, str], tiny_checkpoint: Path
) -> None:
    folder = tmp_path / "v"
    videogen.write_video(folder / "a.mp4", seconds=1, fps=10)
    args = [
        "index",
        str(folder),
        "--library",
        str(tmp_path / "lib"),
        "--model",
        str(tiny_checkpoint),
        "--workers",
        "1",
        "--json",
    ]
    first, _ = _cli(args, env)
    assert first.returncode == 0 and json.loads(first.stdout)["added"] == 1, first.stderr
    (folder / "a.mp4").unlink()
    again, _ = _cli(args, env)
    assert again.returncode == 0 and json.loads(again.stdout)["removed"] == 1, again.stderr


def test_missing_weights_fail_fast_without_torch(tmp_path: Path, env: dict[str, str]) -> None:
    videogen.write_video(tmp_path / "v" / "a.mp4", seconds=1, fps=10)
    t0 = time.perf_counter()
    proc, mods = _cli(["index", str(tmp_path / "v"), "--library", str(tmp_path / "lib")], env)
    assert proc.returncode == 2 and "no weights for viclip-b16" in proc.stderr
    assert "torch" not in mods  # found missing before the model family was imported
    assert time.perf_counter() - t0 < 120  # generous: a shared test machine; benchmarks/index_startup.py times it


def test_unchanged_folder_needs_no_torch_and_no_workers(
    tmp_path: Path, env: dict[str, str], tiny_checkpoint: Path
) -> None:
    folder = tmp_path / "v"
    videogen.write_video(folder / "a.mp4", seconds=1, fps=10)
    args = [
        "index",
        str(folder),
        "--library",
        str(tmp_path / "lib"),
        "--model",
        str(tiny_checkpoint),
        "--workers",
        "1",
        "--json",
    ]
    first, _ = _cli(args, env)
    assert first.returncode == 0, first.stderr
    again, mods = _cli(args, env)
    report = json.loads(again.stdout)
    assert report["unchanged"] == 1 and report["added"] == 0 and not report["model_loaded"]
    assert report["space_key"] == json.loads(first.stdout)["space_key"]
    assert "torch" not in mods and "decord" not in mods and "av" not in mods


def test_remembered_key_is_dropped_when_a_file_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIDSEARCH_CACHE_DIR", str(tmp_path / "cache"))
    ckpt, cfg = tmp_path / "m.pth", tmp_path / "m.json"
    ckpt.write_bytes(b"weights")
    remember_key(str(ckpt), None, None, "viclip-x@abc", [ckpt, cfg])  # cfg absent: recorded as absent
    assert recall_key(str(ckpt)) == "viclip-x@abc"
    assert recall_key(str(ckpt), checkpoint=ckpt) is None  # other arguments, other entry
    cfg.write_text("{}")  # a config that resolution would now prefer appeared
    assert recall_key(str(ckpt)) is None
    remember_key(str(ckpt), None, None, "viclip-x@abc", [ckpt, cfg])
    ckpt.write_bytes(b"other weights")
    assert recall_key(str(ckpt)) is None
    monkeypatch.setenv("VIDSEARCH_CHECKPOINT", str(ckpt))  # resolution-changing environment
    assert recall_key(str(ckpt)) is None


def test_model_key_uses_the_memo_and_matches_the_loaded_encoder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_checkpoint: Path
) -> None:
    from vidsearch.models import EncoderSpec, model_key, open_encoder, registry

    monkeypatch.setenv("VIDSEARCH_CACHE_DIR", str(tmp_path / "cache"))
    key = model_key(str(tiny_checkpoint))
    assert open_encoder(EncoderSpec(str(tiny_checkpoint), device="cpu")).key == key
    monkeypatch.setattr(registry, "route", lambda model: pytest.fail("the remembered key was not used"))
    assert model_key(str(tiny_checkpoint)) == key
