"""InternVideo2 through the commands beyond index and query: `enrich recognize`, `localize`, `watch`;
its precisions against fp32; its hub revision.

The reduced random-weight model of the 1B layout (tests/test_internvideo2_encoder.py), opened by
every command through the one opener (``open_encoder(EncoderSpec)``), as a user's ``--model`` would.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import videogen
from test_internvideo2_encoder import small_model, write_model  # noqa: F401  (the module fixture)
from test_models_weights import _fake_hf_cache
from typer.testing import CliRunner

from vidsearch.cli import commands  # noqa: F401  (registers the commands)
from vidsearch.cli.main import app
from vidsearch.models import EncoderSpec, open_encoder
from vidsearch.models.precision import autocast_for
from vidsearch.store.library import Library

runner = CliRunner()


def run_json(*args: str) -> dict:
    result = runner.invoke(app, [*args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.stdout
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def indexed(small_model: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:  # noqa: F811
    """(library, videos): a short video and one with windows, indexed with the InternVideo2 model."""
    root = tmp_path_factory.mktemp("iv2-commands")
    videos = root / "videos"
    videogen.write_video(videos / "red.mp4", seconds=2, fps=8, pattern="gradient", color=(200, 40, 40))
    videogen.write_video(videos / "long.mkv", seconds=10, fps=4, pattern="noise", gop=8)
    lib = root / "lib"
    out = run_json("index", str(videos), "--library", str(lib), "--model", str(small_model), "--workers", "1")
    assert out["added"] == 2 and out["space_key"].startswith("internvideo2-") and not out["failed"]
    return lib, videos


@pytest.mark.slow
def test_enrich_recognize_labels_an_internvideo2_library(indexed: tuple[Path, Path], tmp_path: Path) -> None:
    lib, _ = indexed
    labels = tmp_path / "labels.txt"
    labels.write_text("red gradient\nnoise\na dog runs\n")
    out = run_json("enrich", "recognize", "--library", str(lib), "--labels", str(labels))
    assert out["space"].startswith("internvideo2-") and out["labelled"] == out["videos"] == 2
    assert out["model_loaded"] and 0 < out["rule"]["temperature"] < 1  # the checkpoint's own temperature
    again = run_json("enrich", "recognize", "--library", str(lib), "--labels", str(labels))
    assert again["labelled"] == 0 and again["already"] == 2


@pytest.mark.slow
def test_localize_with_the_library_and_without(
    indexed: tuple[Path, Path],
    small_model: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    lib, videos = indexed
    found = run_json("localize", str(videos / "long.mkv"), "noise", "--library", str(lib), "--no-cache")
    assert found["model"].startswith("internvideo2-") and found["windows"] > 4 and found["spans"]
    assert all(0 <= s["start"] < s["end"] <= 10.01 for s in found["spans"])
    alone = run_json(
        "localize", str(videos / "long.mkv"), "noise", "--library", str(tmp_path / "none"), "--model", str(small_model)
    )
    assert alone["model"] == found["model"]  # the same weights, the same space, without a library
    assert [s["start"] for s in alone["spans"]] == [s["start"] for s in found["spans"]]


@pytest.mark.slow
def test_watch_a_file_in_real_time_with_internvideo2(indexed: tuple[Path, Path], small_model: Path) -> None:  # noqa: F811
    _, videos = indexed
    lib = videos.parent / "watched"
    proc = subprocess.run(
        [sys.executable, "-m", "vidsearch.cli", "watch", str(videos / "red.mp4"), "--library", str(lib)]
        + ["--model", str(small_model), "--realtime", "--window", "1", "--stride", "0.5", "--name", "cam"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "cam: ended;" in proc.stderr and "0 dropped" in proc.stderr
    with Library.open(lib, create=False) as library:
        (space,) = library.spaces()
        ids, xb = library.load_vectors(space.id)
    assert space.key.startswith("internvideo2-") and len(ids) >= 2
    assert xb.shape[1] == 24 and np.allclose(np.linalg.norm(xb, axis=1), 1, atol=1e-4)  # SMALL's embed_dim


def test_bf16_and_fp16_agree_with_fp32(small_model: Path) -> None:  # noqa: F811
    """The GPU precisions through the project's autocast (emulated on the CPU): the pooled video
    feature of the reduced random model stays within a cosine of 0.999 of fp32 (measured: bf16
    0.99999, fp16 1.00000; printed by benchmarks/encoder_speed.py --internvideo2)."""
    encoder = open_encoder(EncoderSpec(str(small_model), device="cpu", precision="fp32"))
    frames = np.random.default_rng(0).integers(0, 256, (6, 4, 70, 90, 3), dtype=np.uint8)
    x = encoder._video_input(frames)
    cpu = torch.device("cpu")
    with torch.inference_mode():
        ref = encoder.model.encode_vision(x)[1].float()
        for precision in ("bf16", "fp16"):
            with autocast_for(cpu, precision):
                got = encoder.model.encode_vision(x)[1]
            cos = torch.nn.functional.cosine_similarity(ref, got.float())
            assert cos.min().item() > 0.999, precision
            assert not torch.equal(ref, got.float()), f"{precision}: autocast did not apply"


def test_the_preset_revision_reaches_the_hub_and_a_pin_leaves_the_vocab_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The preset's revision is what huggingface_hub is asked for; VIDSEARCH_HF_REVISION pins the
    weights' commit without asking the BERT vocabulary's repository for that commit."""
    from vidsearch.models.catalog import HUB_FILES, PRESETS
    from vidsearch.models.hub import resolve_checkpoint, resolve_hub_file

    (weights,) = PRESETS["internvideo2-1b"].weights
    (vocab,) = HUB_FILES["internvideo2-1b/vocab"]
    assert weights.revision and vocab.revision  # explicit, passed to the hub (docs/internvideo2.md: pinning)
    hub = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    pinned = "3" * 40
    at_main = _fake_hf_cache(hub, weights.repo, weights.filename, b"main", rev="a" * 40)
    text = _fake_hf_cache(hub, vocab.repo, vocab.filename, b"[PAD]\n", rev="b" * 40)
    assert resolve_checkpoint("internvideo2-1b") == at_main.resolve()  # "main", through refs/main
    monkeypatch.setenv("VIDSEARCH_HF_REVISION", pinned)
    with pytest.raises(Exception, match=f"--revision {pinned}"):
        resolve_checkpoint("internvideo2-1b")  # the pinned commit is not cached: said, not main's file used
    at_pin = _fake_hf_cache(hub, weights.repo, weights.filename, b"pinned", rev=pinned)
    assert resolve_checkpoint("internvideo2-1b") == at_pin.resolve()
    assert resolve_hub_file("internvideo2-1b/vocab") == text.resolve()  # its own revision, not the pin
