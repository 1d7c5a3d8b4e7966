"""The encoder seam: one spec, one opener, presets declared once, and what front ends get from it."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import videogen
from typer.testing import CliRunner

from vidsearch.cli import commands  # noqa: F401  (registers the commands)
from vidsearch.cli.main import app
from vidsearch.errors import ModelError
from vidsearch.models import EncoderSpec, TextEncoder, VideoEncoder, VideoTextEncoder, open_encoder

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def test_presets_are_declared_once() -> None:
    """viclip.PRESETS, hub.HF_SOURCES and the registry's presets are all read from the catalog."""
    from vidsearch.models import catalog, hub, registry, viclip

    assert set(viclip.PRESETS) == {n for n, p in catalog.PRESETS.items() if p.family == "viclip"}
    assert set(hub.HF_SOURCES) == set(catalog.PRESETS) | set(catalog.HUB_FILES)
    assert [m for m in registry.list_models() if not m.endswith(">")] == sorted(catalog.PRESETS)
    for name, preset in catalog.PRESETS.items():
        assert hub.HF_SOURCES[name] == [(w.repo, w.filename, w.revision) for w in preset.weights]
        if preset.family == "viclip":
            assert viclip.PRESETS[name] == dict(preset.architecture)
            viclip.ViCLIPConfig.preset(name)  # every declared architecture builds a config
    # the literals live in the catalog only
    for module in ("viclip.py", "hub.py", "registry.py"):
        text = (ROOT / "vidsearch" / "models" / module).read_text()
        assert "model.safetensors" not in text and "vision_width=768" not in text, module


def test_one_opener() -> None:
    """Only the opener calls a family's ``load``; the loaders it replaced are gone."""
    callers = []
    for path in [*ROOT.glob("vidsearch/**/*.py"), *ROOT.glob("indexer/*.py"), *ROOT.glob("cli/*.py")]:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "function"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and node.args[0].value == "load"
            ):
                callers.append(path.relative_to(ROOT).as_posix())
            if isinstance(node, ast.FunctionDef) and node.name in (
                "load_encoder",
                "load_encoder_at",
                "load_query_encoder",
                "load_space_encoder",
                "load_text_query_encoder",
                "load_bench_encoder",
                "apply_precision",
            ):
                callers.append(f"{path.relative_to(ROOT).as_posix()} defines {node.name}")
    assert callers == ["vidsearch/models/opener.py"]


def test_spec_is_checked_and_torch_free() -> None:
    for bad, says in (
        (dict(towers="audio"), "unknown towers 'audio'; choose one of both, text, video"),
        (dict(backend="tpu"), "unknown backend 'tpu'; choose one of auto, torch, onnx"),
        (dict(precision="fp8"), "unknown precision 'fp8'"),
    ):
        with pytest.raises(ModelError, match=says):
            EncoderSpec("viclip-b16", **bad)
    with pytest.raises(ModelError, match="no model given"):
        EncoderSpec("")
    assert EncoderSpec("m", checkpoint=Path("/w.pth")).checkpoint == "/w.pth"  # paths are kept as text
    code = (
        "import sys\n"
        "from vidsearch.models import EncoderSpec, TextEncoder, VideoEncoder, open_encoder\n"
        "EncoderSpec('viclip-b16', towers='text')\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_for_space_reads_what_the_space_recorded() -> None:
    from vidsearch.store.spaces import SpaceInfo

    old = SpaceInfo(
        id=1, key="viclip-b16@0123456789ab+int8", dim=512, model_spec={"model": "viclip-b16"}, sampling={}, generation=0
    )
    spec = EncoderSpec.for_space(old, device="cpu")
    # no precision stored (spaces made before precisions existed): the key's; no resize stored: antialiased
    assert (spec.model, spec.precision, spec.antialias, spec.space_key) == ("viclip-b16", "int8", True, old.key)
    text = EncoderSpec.for_space(old, device="cpu", towers="text")
    assert (text.device, text.towers, text.antialias, text.space_key) == ("cpu", "text", None, old.key)
    new = SpaceInfo(
        id=2,
        key="viclip-custom-1@0123456789ab",
        dim=16,
        model_spec={"model": "/m.pth", "checkpoint": "/m.pth", "config": "/m.json", "precision": "fp32"},
        sampling={"antialias": False},
        generation=0,
    )
    spec = EncoderSpec.for_space(new)
    assert (spec.checkpoint, spec.config, spec.precision, spec.antialias) == ("/m.pth", "/m.json", "fp32", False)
    unknown = SpaceInfo(id=3, key="made-elsewhere@0", dim=4, model_spec={}, sampling={}, generation=0)
    with pytest.raises(ModelError, match="made-elsewhere@0 records no model"):
        EncoderSpec.for_space(unknown)


def test_opened_encoders_meet_the_protocols(tiny_checkpoint: Path) -> None:
    enc = open_encoder(EncoderSpec(str(tiny_checkpoint), device="cpu", precision="fp32", antialias=True))
    assert isinstance(enc, VideoTextEncoder) and isinstance(enc, VideoEncoder) and isinstance(enc, TextEncoder)
    assert enc.antialias is True and enc.spec["precision"] == "fp32"
    # the spec an encoder reports reopens it
    assert open_encoder(EncoderSpec.from_dict(enc.spec, device="cpu")).key == enc.key


def test_query_by_checkpoint_of_a_space_indexed_with_model_config(tmp_path: Path, tiny_checkpoint: Path) -> None:
    """`query --model CKPT` finds the space of `index --model CKPT --model-config CFG`: the space knows its config."""
    ckpt = tmp_path / "weights" / "mine.pth"
    cfg = tmp_path / "configs" / "mine-arch.json"  # not beside the checkpoint: only --model-config names it
    ckpt.parent.mkdir()
    cfg.parent.mkdir()
    shutil.copy(tiny_checkpoint, ckpt)
    shutil.copy(tiny_checkpoint.with_suffix(".json"), cfg)
    videogen.write_video(tmp_path / "videos" / "red.mp4", seconds=2, fps=8, color=(220, 40, 40))
    lib = tmp_path / "lib"
    common = ["--library", str(lib), "--model", str(ckpt)]
    out = runner.invoke(app, ["index", str(tmp_path / "videos"), *common, "--model-config", str(cfg), "--workers", "1"])
    assert out.exit_code == 0, out.stdout
    out = runner.invoke(app, ["query", "a red video", *common, "--json"])
    assert out.exit_code == 0, out.stdout
    assert [Path(h["path"]).name for h in json.loads(out.stdout)] == ["red.mp4"]


def test_offline_index_leaves_no_library_and_names_hf(tmp_path: Path) -> None:
    """No weights offline: one line naming the `hf` command, and no empty library.sqlite left behind."""
    videogen.write_video(tmp_path / "videos" / "red.mp4", seconds=2, fps=8, color=(220, 40, 40))
    lib = tmp_path / "lib"
    out = runner.invoke(app, ["index", str(tmp_path / "videos"), "--library", str(lib), "--model", "viclip-b16"])
    from vidsearch.errors import WeightsNotFoundError

    assert isinstance(out.exception, WeightsNotFoundError)  # cli.main prints it in one line, exit 1
    message = str(out.exception)
    assert "no weights for viclip-b16" in message and "hf download OpenGVLab/ViCLIP-B-16-hf" in message
    assert "huggingface-cli" not in message and "\n" not in message
    assert not (lib / "library.sqlite").exists()
