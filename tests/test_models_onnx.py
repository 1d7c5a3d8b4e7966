"""ONNX graphs of the ViCLIP towers against PyTorch, and the torch-free text-query path.

Tolerances: an fp32 graph agrees with the PyTorch tower to cosine >= 0.9999 per row, an int8
graph (ONNX Runtime dynamic quantization) to >= 0.999. "Full-size B/16" here is the B/16 widths,
heads, vocabulary, context and resolution with 2 layers per tower instead of 12 (exporting 12
layers takes minutes on the shared 2-core machines; every layer is the same code).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime", reason="ONNX Runtime is not installed (pip install -e '.[fast]')")
pytest.importorskip("onnxscript", reason="the ONNX exporter needs onnxscript (pip install -e '.[fast]')")

from vidsearch.models import bpe  # noqa: E402
from vidsearch.models.onnx_export import ensure_graph, export_tower, graph_parity  # noqa: E402
from vidsearch.models.onnx_text import (  # noqa: E402
    INT8_RECIPE,
    cosine_rows,
    graph_path,
    make_session,
    open_text_encoder,
    optimized_path,
    read_meta,
    write_meta,
)
from vidsearch.models.opener import open_encoder  # noqa: E402
from vidsearch.models.spec import EncoderSpec  # noqa: E402
from vidsearch.models.viclip import PRESETS, ViCLIP, ViCLIPConfig  # noqa: E402
from vidsearch.models.weights import fit_state_dict, read_state_dict  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "viclip"
needs_fixtures = pytest.mark.skipif(
    not (FIXTURES / "tiny_expected.pth").is_file(), reason=f"fixtures not at {FIXTURES}"
)
B16_2_LAYERS = {**PRESETS["viclip-b16"], "vision_layers": 2, "text_layers": 2}


@pytest.fixture(scope="module")
def expected() -> dict:
    return torch.load(FIXTURES / "tiny_expected.pth", map_location="cpu", weights_only=False)


@pytest.fixture(scope="module")
def fixture_model(expected: dict) -> ViCLIP:
    c = expected["config"]
    cfg = ViCLIPConfig(
        input_resolution=c["res"],
        patch_size=c["patch"],
        vision_width=c["vw"],
        vision_layers=c["vl"],
        vision_heads=c["vh"],
        embed_dim=c["dim"],
        num_frames=c["frames"],
        text_width=c["tw"],
        text_layers=c["tl"],
        text_heads=c["th"],
    )
    model = ViCLIP(cfg).eval()
    model.load_state_dict(fit_state_dict(read_state_dict(FIXTURES / "tiny_checkpoint.pth"), model), strict=True)
    return model


@pytest.fixture(scope="module")
def b16_model() -> ViCLIP:
    torch.manual_seed(0)
    return ViCLIP(ViCLIPConfig(**B16_2_LAYERS)).eval()


@needs_fixtures
def test_fixture_graphs_match_the_official_outputs(fixture_model: ViCLIP, expected: dict, tmp_path: Path) -> None:
    text = export_tower(fixture_model, "text", tmp_path / "text.onnx")
    got = make_session(text).run(None, {"tokens": expected["tokens"].long().numpy()})[0]
    assert cosine_rows(got, expected["text_embeds"].numpy()).min() >= 0.9999
    vision = export_tower(fixture_model, "vision", tmp_path / "vision.onnx")
    got = make_session(vision).run(None, {"frames": expected["video"].numpy()})[0]
    assert cosine_rows(got, expected["video_embeds"].numpy()).min() >= 0.9999
    # The optimized copy is written once and then loaded instead of re-optimizing.
    assert optimized_path(text).is_file()
    again = make_session(text).run(None, {"tokens": expected["tokens"].long().numpy()})[0]
    assert cosine_rows(again, expected["text_embeds"].numpy()).min() >= 0.9999
    # A one-query session (no weight prepacking, the CLI's) computes the same embeddings.
    once = make_session(text, 1, prepack=False).run(None, {"tokens": expected["tokens"].long().numpy()})[0]
    assert cosine_rows(once, expected["text_embeds"].numpy()).min() >= 0.9999


@needs_fixtures
@pytest.mark.parametrize("precision,tol", [("fp32", 0.9999), ("int8", 0.999)])
def test_fixture_text_encoder_matches_pytorch(
    fixture_model: ViCLIP, expected: dict, precision: str, tol: float
) -> None:
    key = "fixture@000000000000" + ("" if precision == "fp32" else "+int8")
    ensure_graph(fixture_model, key, "text", precision)
    enc = open_text_encoder(key)
    assert enc is not None and enc.precision == precision
    got = enc.encode_text(expected["captions"])
    ref = expected["text_embeds"].numpy()
    one_shot = open_text_encoder(key, prepack=False)
    assert one_shot is not None and cosine_rows(one_shot.encode_text(expected["captions"]), ref).min() >= tol
    assert got.shape == ref.shape and got.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(got, axis=-1), 1.0, rtol=1e-5)
    assert cosine_rows(got, ref).min() >= tol


@pytest.mark.parametrize("tower", ["text", "vision"])
def test_b16_graphs_fp32_and_int8(b16_model: ViCLIP, tower: str) -> None:
    key = f"b16-2l@{tower:0<12}"
    fp32 = ensure_graph(b16_model, key, tower, "fp32")
    assert read_meta(fp32)["parity_cosine"] >= 0.9999
    assert graph_parity(b16_model, tower, fp32, seed=1) >= 0.9999  # fresh inputs, not the export's
    int8 = ensure_graph(b16_model, key, tower, "int8")
    # Every weight matrix really is int8 but the first and last (vision: the patch embedding; text,
    # whose token embedding is a lookup: the first layer's attention input; both: the projection).
    import onnx

    graph = onnx.load(str(int8), load_external_data=False).graph
    consts = {i.name for i in graph.initializer}
    float_weights = [n for n in graph.node if n.op_type == "MatMul" and any(i in consts for i in n.input)]
    int8_weights = [n for n in graph.node if n.op_type in ("DynamicQuantizeMatMul", "MatMulInteger")]
    assert (
        len(float_weights) == 2
        and len(int8_weights) >= 4 * B16_2_LAYERS["vision_layers" if tower == "vision" else "text_layers"] - 1
    )
    assert int8.stat().st_size < fp32.stat().st_size / 2.5
    assert graph_parity(b16_model, tower, int8, seed=1) >= 0.999


@needs_fixtures
def test_int8_graphs_of_an_older_recipe_are_made_again(fixture_model: ViCLIP) -> None:
    key = "recipe@333333333333+int8"
    path = ensure_graph(fixture_model, key, "text", "int8")
    assert read_meta(path)["int8_recipe"] == INT8_RECIPE and open_text_encoder(key) is not None
    meta = read_meta(path)
    write_meta(path, {**meta, "reduce_range": not meta["reduce_range"]})  # made on a CPU of the other kind
    assert open_text_encoder(key) is None
    del meta["int8_recipe"]  # as written before the recipe was recorded
    write_meta(path, meta)
    assert open_text_encoder(key) is None  # not served: the PyTorch path answers and re-quantizes
    ensure_graph(fixture_model, key, "text", "int8")
    assert read_meta(path)["int8_recipe"] == INT8_RECIPE and open_text_encoder(key) is not None


@needs_fixtures
def test_graph_cache_is_keyed_and_reused(fixture_model: ViCLIP) -> None:
    key = "cache@111111111111"
    path = ensure_graph(fixture_model, key, "text")
    mtime = path.stat().st_mtime_ns
    assert ensure_graph(fixture_model, key, "text") == path and path.stat().st_mtime_ns == mtime
    assert graph_path("cache@222222222222", "text") != path  # another checkpoint, another graph
    assert open_text_encoder("cache@222222222222") is None
    # A graph without its metadata (an interrupted export) is not used, and is re-exported.
    path.with_suffix(".json").unlink()
    assert open_text_encoder(key) is None
    ensure_graph(fixture_model, key, "text")
    assert open_text_encoder(key) is not None


def test_query_encoder_falls_back_to_pytorch_and_caches(
    tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("VIDSEARCH_CACHE_DIR", str(tmp_path / "cache"))  # other tests cache this model's graph

    torch_enc = open_encoder(EncoderSpec(str(tiny_checkpoint), device="cpu"))
    spec = EncoderSpec.from_dict(torch_enc.spec, device="cpu", towers="text", space_key=torch_enc.key)
    captions = ["a dog catches a frisbee", "", "someone cooks pasta in a kitchen"]
    ref = torch_enc.encode_text(captions)
    import vidsearch.models.onnx_text as onnx_text

    with monkeypatch.context() as m:  # (undo() would also undo the isolated cache directory)
        m.setattr(onnx_text, "ort_available", lambda: False)
        first = open_encoder(spec)
    assert type(first).__name__ == "ViCLIPEncoder"  # no ONNX Runtime: the PyTorch path
    assert not graph_path(torch_enc.key, "text").exists()
    second = open_encoder(spec)
    assert type(second).__name__ == "ViCLIPEncoder" and graph_path(torch_enc.key, "text").is_file()
    third = open_encoder(spec)
    assert type(third).__name__ == "OnnxTextEncoder"
    assert cosine_rows(third.encode_text(captions), ref).min() >= 0.9999


def test_cached_text_query_imports_no_torch(fixture_model: ViCLIP) -> None:
    key = "notorch@333333333333"
    ensure_graph(fixture_model, key, "text")
    code = (
        "import sys\n"
        "from vidsearch.models import EncoderSpec, open_encoder\n"
        f"enc = open_encoder(EncoderSpec('unused', device='cpu', towers='text', space_key={key!r}))\n"
        "print(type(enc).__name__, enc.encode_text(['a dog']).shape)\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, env=dict(os.environ), timeout=120
    )
    assert out.stdout.split() == ["OnnxTextEncoder", "(1,", f"{fixture_model.config.embed_dim})"]


def test_tokens_cut_after_the_last_eot_change_nothing(fixture_model: ViCLIP) -> None:
    path = ensure_graph(fixture_model, "cut@444444444444", "text")
    sess = make_session(path)
    tokens = bpe.tokenize(["a dog", "a man is cooking in the kitchen"], 32)
    full = sess.run(None, {"tokens": tokens})[0]
    cut = sess.run(None, {"tokens": tokens[:, : int(tokens.argmax(-1).max()) + 1]})[0]
    np.testing.assert_allclose(cut, full, rtol=1e-5, atol=1e-6)


def test_export_logs_nothing_a_user_cannot_act_on(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """`index --precision int8` exports graphs; the exporter's optimizer notes stay out of the terminal."""
    from conftest import TINY_CONFIG

    model = ViCLIP(ViCLIPConfig(**TINY_CONFIG)).eval()
    with caplog.at_level(logging.WARNING):
        export_tower(model, "text", tmp_path / "text.onnx")
        export_tower(model, "vision", tmp_path / "vision.onnx")
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
