"""Encoder precision: the policy, the space-key suffix, and every precision path against fp32.

Tolerance: cosine >= 0.999 per clip and per caption against the fp32 encoder on the same
inputs, for the parity fixture's model (random weights) and the B/16 widths (2 layers per
tower, as in test_models_onnx.py, to keep the export within seconds on shared 2-core machines).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vidsearch.errors import ModelError
from vidsearch.precision import (
    CHOICES,
    check_precision,
    choose_precision,
    cpu_has_native_bf16,
    key_suffix,
    space_key,
    split_key,
)

CAPTIONS = ["a person playing basketball", "", "A MAN Is COOKING!!! in the   kitchen...", "dog", "word " * 40]


def test_auto_policy() -> None:
    assert choose_precision("auto", "cpu") == "fp32"
    assert choose_precision("auto", "cuda", cuda_bf16=True) == "bf16"
    assert choose_precision("auto", "cuda", cuda_bf16=False) == "fp16"
    assert choose_precision("int8", "cpu") == "int8"
    assert choose_precision("fp32", "cuda", cuda_bf16=True) == "fp32"
    for bad, device, match in (
        ("int8", "cuda", "CPU path"),
        ("fp16", "cpu", "needs a GPU"),
        ("fp8", "cpu", "choose one of"),
    ):
        with pytest.raises(ModelError, match=match):
            choose_precision(bad, device)
    with pytest.raises(ModelError, match="no bf16"):
        choose_precision("bf16", "cuda", cuda_bf16=False)
    assert check_precision("auto") == "auto" and "auto" in CHOICES


def test_cpu_bf16_only_where_native(monkeypatch: pytest.MonkeyPatch) -> None:
    import vidsearch.precision as precision

    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    with pytest.raises(ModelError, match="no native bf16"):
        choose_precision("bf16", "cpu")
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert choose_precision("bf16", "cpu") == "bf16"
    assert choose_precision("auto", "cpu") == "fp32"  # never bf16 on a CPU unless asked
    monkeypatch.undo()
    assert isinstance(cpu_has_native_bf16(), bool)


@pytest.mark.parametrize(
    "machine, flags, want",
    [
        ("x86_64", {"avx2", "fma"}, True),  # VPMADDUBSW saturates: 7-bit weights
        ("x86_64", {"avx2", "avx512f", "avx512_vnni"}, False),
        ("x86_64", {"avx2", "avx_vnni"}, False),
        ("aarch64", {"asimd", "asimddp"}, False),
    ],
)
def test_int8_reduce_range_only_on_x86_without_vnni(
    monkeypatch: pytest.MonkeyPatch, machine: str, flags: set, want: bool
) -> None:
    import platform

    import vidsearch.precision as precision

    monkeypatch.setattr(platform, "machine", lambda: machine)
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset(flags))
    assert precision.int8_needs_reduce_range() is want


def test_space_key_suffix_round_trip() -> None:
    base = "viclip-b16@0123456789ab"
    assert key_suffix("fp32") == "" and space_key(base, "fp32") == base  # old libraries keep their keys
    for p in ("int8", "bf16", "fp16"):
        key = space_key(base, p)
        assert key == f"{base}+{p}" and split_key(key) == (base, p)
    assert split_key(base) == (base, "fp32")
    assert split_key("weird+name") == ("weird+name", "fp32")  # a '+' that is no precision suffix
    with pytest.raises(ModelError, match="resolved precision"):
        key_suffix("auto")


# --------------------------------------------------------------------------- precision paths


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def _clips(resolution: int, n: int = 3, t: int = 8, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # Smooth frames (what video looks like) plus noise, at another size than the model's.
    base = rng.integers(0, 256, (n, t, 6, 6, 3)).astype(np.float32)
    frames = np.repeat(np.repeat(base, 8, axis=2), 8, axis=3) + rng.normal(0, 20, (n, t, 48, 48, 3))
    return np.clip(frames, 0, 255).astype(np.uint8)


def _precision_paths() -> list:
    params = [
        pytest.param("bf16", marks=pytest.mark.skipif(not cpu_has_native_bf16(), reason="this CPU has no native bf16"))
    ]
    try:
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401

        params.append(pytest.param("int8"))
    except ImportError:
        params.append(
            pytest.param(
                "int8",
                marks=pytest.mark.skip(reason="ONNX Runtime/onnxscript not installed (pip install -e '.[fast]')"),
            )
        )
    return params


def _checkpoint(tmp_path: Path, name: str, config: dict) -> Path:
    from vidsearch.models.viclip import ViCLIP, ViCLIPConfig
    from vidsearch.models.weights import save_checkpoint

    torch.manual_seed(0)
    cfg = ViCLIPConfig(**config)
    return save_checkpoint(ViCLIP(cfg), tmp_path / f"{name}.pth", cfg)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from vidsearch.models.viclip import PRESETS

    tmp = tmp_path_factory.mktemp("precision")
    fixture = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "viclip" / "tiny_checkpoint.pth"
    out = {"b16-2-layers": _checkpoint(tmp, "b16", {**PRESETS["viclip-b16"], "vision_layers": 2, "text_layers": 2})}
    if fixture.is_file():
        # The fixture's weights with a config beside them (res 64, widths 64/32, 2 layers).
        import json
        import shutil

        dst = tmp / "fixture.pth"
        shutil.copy(fixture, dst)
        expected = torch.load(fixture.with_name("tiny_expected.pth"), map_location="cpu", weights_only=False)["config"]
        cfg = dict(
            input_resolution=expected["res"],
            patch_size=expected["patch"],
            vision_width=expected["vw"],
            vision_layers=expected["vl"],
            vision_heads=expected["vh"],
            embed_dim=expected["dim"],
            num_frames=expected["frames"],
            text_width=expected["tw"],
            text_layers=expected["tl"],
            text_heads=expected["th"],
        )
        dst.with_suffix(".json").write_text(json.dumps(cfg))
        out["fixture"] = dst
    return out


@pytest.mark.parametrize("model", ["fixture", "b16-2-layers"])
@pytest.mark.parametrize("precision", _precision_paths())
def test_precision_matches_fp32(checkpoints: dict[str, Path], model: str, precision: str) -> None:
    from vidsearch.models import EncoderSpec, open_encoder

    if model not in checkpoints:
        pytest.skip("parity fixtures not found")
    path = str(checkpoints[model])
    ref = open_encoder(EncoderSpec(path, device="cpu", precision="fp32"))
    enc = open_encoder(EncoderSpec(path, device="cpu", precision=precision))
    assert ref.key == split_key(ref.key)[0] and enc.key == f"{ref.key}+{precision}"
    assert enc.spec["precision"] == precision
    clips = _clips(enc.resolution)
    v_ref, v = ref.encode_video(clips), enc.encode_video(clips)
    t_ref, t = ref.encode_text(CAPTIONS), enc.encode_text(CAPTIONS)
    assert v.dtype == np.float32 and v.shape == v_ref.shape and t.shape == t_ref.shape
    assert _cosines(v, v_ref).min() >= 0.999, _cosines(v, v_ref)
    assert _cosines(t, t_ref).min() >= 0.999, _cosines(t, t_ref)
    # The spec rebuilds the encoder at the same precision (what a space stores).
    assert open_encoder(EncoderSpec.from_dict({**enc.spec, "device": "cpu"})).key == enc.key


def test_fp32_is_the_plain_encoder(checkpoints: dict[str, Path]) -> None:
    """``auto`` on a CPU opens the same fp32 encoder as an explicit fp32: same key, same vectors."""
    from vidsearch.models import EncoderSpec, open_encoder

    path = str(checkpoints["b16-2-layers"])
    plain = open_encoder(EncoderSpec(path, device="cpu", precision="fp32"))
    clips = _clips(plain.resolution, n=1)
    enc = open_encoder(EncoderSpec(path, device="cpu"))
    assert enc.key == plain.key and enc.precision == "fp32" and enc.spec["precision"] == "fp32"
    np.testing.assert_array_equal(enc.encode_video(clips), plain.encode_video(clips))
    with pytest.raises(ModelError, match="needs a GPU"):
        open_encoder(EncoderSpec(path, device="cpu", precision="fp16"))


def test_precision_is_chosen_when_opened_not_patched_on(checkpoints: dict[str, Path]) -> None:
    """The encoder's autocast is its class's method, answering the precision it was built with."""
    from vidsearch.models import EncoderSpec, open_encoder
    from vidsearch.models.viclip_encoder import ViCLIPEncoder

    enc = open_encoder(EncoderSpec(str(checkpoints["b16-2-layers"]), device="cpu", precision="fp32"))
    assert "autocast" not in vars(enc)  # nothing assigned on the instance
    assert type(enc).autocast is not None and isinstance(enc, ViCLIPEncoder)
    import contextlib

    assert isinstance(enc.autocast(), contextlib.nullcontext)


def test_int8_needs_onnx_runtime(checkpoints: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    import vidsearch.models.onnx_text as onnx_text
    from vidsearch.models import EncoderSpec, open_encoder

    monkeypatch.setattr(onnx_text, "ort_available", lambda: False)
    with pytest.raises(ModelError, match=r"vidsearch\[fast\]"):
        open_encoder(EncoderSpec(str(checkpoints["b16-2-layers"]), device="cpu", precision="int8"))


def test_index_space_key_carries_the_precision(checkpoints: dict[str, Path], tmp_path: Path) -> None:
    """`vidsearch index --precision`: the space key is known (and checked) before any model loads."""
    from vidsearch.indexer.pipeline import IndexOptions, space_key_for
    from vidsearch.models import model_key

    path = str(checkpoints["b16-2-layers"])
    assert space_key_for(IndexOptions(model=path, device="cpu")) == model_key(path)
    assert space_key_for(IndexOptions(model=path, device="cpu", precision="int8")) == model_key(path) + "+int8"
    with pytest.raises(ModelError, match="needs a GPU"):
        space_key_for(IndexOptions(model=path, device="cpu", precision="fp16"))


def test_weights_check_ignores_the_precision_suffix() -> None:
    from vidsearch.errors import CheckpointError
    from vidsearch.models.opener import check_weights

    check_weights("viclip-b16@0123456789ab+int8", "viclip-b16@0123456789ab", "m.pth")  # same weights
    check_weights("viclip-b16@0123456789ab+bf16", "viclip-b16@0123456789ab+bf16", "m.pth")
    with pytest.raises(CheckpointError, match="changed since space"):
        check_weights("viclip-b16@0123456789ab+int8", "viclip-b16@ba9876543210", "m.pth")
