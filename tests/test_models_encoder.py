"""open_encoder / model_key / the encoder interface on a tiny random ViCLIP checkpoint."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import vidsearch.models as vm
from vidsearch.errors import ModelError
from vidsearch.models.preprocess import preprocess_frames
from vidsearch.models.viclip import ViCLIP, ViCLIPConfig
from vidsearch.models.weights import save_checkpoint

TINY = dict(
    input_resolution=32,
    patch_size=16,
    vision_width=32,
    vision_layers=2,
    vision_heads=2,
    embed_dim=16,
    num_frames=4,
    text_width=32,
    text_layers=1,
    text_heads=2,
)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = ViCLIP(ViCLIPConfig(**TINY))
    with torch.no_grad():
        model.vision_encoder.temporal_positional_embedding.normal_()
    return save_checkpoint(model, tmp_path_factory.mktemp("enc") / "tiny.pth")


def test_import_is_lazy() -> None:
    code = (
        "import sys, vidsearch.models as m; "
        "heavy = [n for n in ('open_clip', 'torchvision', 'timm', 'vidsearch.models.viclip') if n in sys.modules]; "
        "assert not heavy, heavy; assert callable(m.open_encoder) and callable(m.tokenize); "
        "assert 'open_clip' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_encoder_interface(ckpt: Path) -> None:
    enc = vm.open_encoder(vm.EncoderSpec(str(ckpt), device="cpu"))
    assert isinstance(enc, vm.Encoder)
    assert (enc.num_frames, enc.resolution, enc.embed_dim) == (4, 32, 16)
    assert enc.device == torch.device("cpu") and not enc.model.training
    assert enc.key.startswith("viclip-custom-") and len(enc.key.split("@")[1]) == 12
    assert enc.checkpoint_hash.startswith(enc.key.split("@")[1])
    json.dumps(enc.spec)
    assert enc.spec == {
        "model": str(ckpt.resolve()),
        "checkpoint": str(ckpt.resolve()),
        "config": str(ckpt.with_suffix(".json").resolve()),
        "precision": "fp32",  # the precision it was opened at (what a space records)
    }
    rng = np.random.default_rng(0)
    for shape in [(3, 4, 32, 32, 3), (2, 4, 45, 60, 3), (1, 1, 20, 20, 3), (2, 7, 32, 32, 3)]:
        frames = rng.integers(0, 256, shape, dtype=np.uint8)
        out = enc.encode_video(frames)
        assert out.shape == (shape[0], 16) and out.dtype == np.float32
        assert np.allclose(np.linalg.norm(out, axis=1), 1, atol=1e-5)
        # Same as the documented pipeline: official resize + normalize, raw model, L2 normalize.
        x = torch.stack([preprocess_frames(clip, 32) for clip in frames])
        with torch.inference_mode():
            want = F.normalize(enc.model.encode_video(x), dim=-1).numpy()
        assert np.abs(out - want).max() < 1e-5
    assert np.array_equal(enc.encode_video(torch.from_numpy(frames)), enc.encode_video(frames))
    text = enc.encode_text(["a dog", "a cat on a mat", ""])
    assert text.shape == (3, 16) and text.dtype == np.float32
    assert np.allclose(np.linalg.norm(text, axis=1), 1, atol=1e-5)
    # Length-sorted chunks give what one unsorted batch gives.
    captions = [("word " * (i % 23)).strip() for i in range(150)]
    got = enc.encode_text(captions)
    with torch.inference_mode():
        want = F.normalize(enc.model.encode_text(vm.tokenize(captions)), dim=-1).numpy()
    assert np.abs(got - want).max() < 1e-5
    with pytest.raises(ValueError, match="sequence of strings"):
        enc.encode_text("a dog")
    with pytest.raises(ValueError, match="uint8"):
        enc.encode_video(frames.astype(np.float32))


def test_spec_reloads_the_same_encoder(ckpt: Path) -> None:
    enc = vm.open_encoder(vm.EncoderSpec(str(ckpt), device="cpu"))
    again = vm.open_encoder(vm.EncoderSpec.from_dict(enc.spec))
    assert again.key == enc.key
    frames = np.random.default_rng(1).integers(0, 256, (1, 4, 32, 32, 3), dtype=np.uint8)
    assert np.array_equal(again.encode_video(frames), enc.encode_video(frames))


def test_model_key_does_not_build_the_model(ckpt: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = vm.open_encoder(vm.EncoderSpec(str(ckpt), device="cpu")).key
    monkeypatch.setattr(ViCLIP, "__init__", lambda *a, **k: pytest.fail("model_key built a model"))
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("model_key read the weights"))
    assert vm.model_key(str(ckpt)) == key


def test_preset_key_and_config_override(ckpt: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A preset name with a checkpoint of another size fails in one line naming the file.
    with pytest.raises(ModelError, match="tiny.pth") as err:
        vm.open_encoder(vm.EncoderSpec("viclip-b16", checkpoint=ckpt, device="cpu"))
    assert "\n" not in str(err.value)
    # model_key of a preset resolves weights the same way (here from VIDSEARCH_CHECKPOINT).
    monkeypatch.setenv("VIDSEARCH_CHECKPOINT", str(ckpt))
    assert vm.model_key("viclip-b16").startswith("viclip-b16@")
    assert (
        vm.model_key("viclip-b16", config=ckpt.with_suffix(".json"))
        == vm.open_encoder(vm.EncoderSpec("viclip-b16", config=str(ckpt.with_suffix(".json")), device="cpu")).key
    )


def test_unknown_model_lists_choices() -> None:
    with pytest.raises(ModelError, match=r"internvideo2-1b, viclip-b16, viclip-l14, openclip:<arch>") as err:
        vm.open_encoder(vm.EncoderSpec("viclip-h14"))
    assert "\n" not in str(err.value)
    with pytest.raises(ModelError, match="unknown model"):
        vm.model_key("clip")
    assert vm.list_models() == ["internvideo2-1b", "viclip-b16", "viclip-l14", "openclip:<arch>"]


def test_device_resolution() -> None:
    from vidsearch.models.precision import resolve_device

    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ModelError, match="unknown device"):
        resolve_device("tpu!")
    if not torch.cuda.is_available():
        with pytest.raises(ModelError, match="CUDA is not available"):
            resolve_device("cuda")


def test_registry_presets_match_the_viclip_architectures() -> None:
    from vidsearch.models.registry import list_models
    from vidsearch.models.viclip import PRESETS

    presets = [m for m in list_models() if m.startswith("viclip-")]
    assert sorted(presets) == sorted(PRESETS)


def test_registry_routes_a_registered_family(ckpt: Path) -> None:
    """A family registered from outside is routed to by its prefix, and listed."""
    import types

    from vidsearch.models import registry
    from vidsearch.models.info import EncoderInfo

    calls: list[tuple] = []
    fake = types.ModuleType("fake_family")
    fake.load = lambda name, checkpoint, config, device, precision: (
        calls.append(("load", name, device, precision)) or types.SimpleNamespace(key=f"fake-{name}@0")
    )
    fake.key = lambda name, checkpoint, config: f"fake-{name}@0"
    fake.describe = lambda name, checkpoint, config: EncoderInfo(f"fake-{name}@0", 8, 32, 16, {"model": f"fake:{name}"})
    sys.modules["fake_family"] = fake
    try:
        registry.register_family(registry.Family("fake", "fake_family", load="load", key="key", describe="describe"))
        registry.register_prefix("fake:", "fake", "<name>")
        assert "fake:<name>" in registry.list_models()
        assert registry.model_key("fake:x") == "fake-x@0"
        assert vm.open_encoder(vm.EncoderSpec("fake:x", device="cpu")).key == "fake-x@0"
        assert calls == [("load", "x", torch.device("cpu"), "fp32")]
        info = registry.describe_encoder("fake:x", precision="int8")
        assert (info.key, info.spec) == ("fake-x@0+int8", {"model": "fake:x", "precision": "int8"})
        with pytest.raises(ValueError, match="register family"):
            registry.register_preset("nope", "no-such-family")
    finally:
        registry._PREFIXES.pop("fake:", None)
        registry._FAMILIES.pop("fake", None)
        del sys.modules["fake_family"]
    assert "fake:<name>" not in registry.list_models()


def test_described_without_loading_as_loaded(ckpt: Path) -> None:
    """describe_encoder gives the loaded encoder's key, shape, spec and resize choice at each precision."""
    from vidsearch.models import EncoderSpec, open_encoder
    from vidsearch.models.registry import describe_encoder

    enc = open_encoder(EncoderSpec(str(ckpt), device="cpu", precision="fp32"))
    info = describe_encoder(str(ckpt))
    assert (info.key, info.num_frames, info.resolution, info.embed_dim, info.spec, info.antialias) == (
        enc.key,
        enc.num_frames,
        enc.resolution,
        enc.embed_dim,
        enc.spec,
        enc.antialias,
    )
    assert (
        vm.open_encoder(
            vm.EncoderSpec.from_dict({k: v for k, v in info.spec.items() if k != "precision"}, device="cpu")
        ).key
        == enc.key
    )
    int8 = describe_encoder(str(ckpt), precision="int8")
    assert int8.key == enc.key + "+int8" and int8.spec["precision"] == "int8"
    with pytest.raises(ModelError, match="unknown model"):
        describe_encoder("viclip-b99")


def test_temperature_is_the_models_own(ckpt: Path) -> None:
    enc = vm.open_encoder(vm.EncoderSpec(str(ckpt), device="cpu"))
    assert enc.temperature == pytest.approx(float(enc.model.temp.detach()))
    with torch.no_grad():
        enc.model.temp.fill_(0.0)  # not a usable temperature: reported as none
    assert enc.temperature is None


def test_precision_policy() -> None:
    from vidsearch.models.precision import autocast, autocast_dtype, training_precision

    cpu = torch.device("cpu")
    assert autocast_dtype(cpu) is None
    ctx, scaler = training_precision(cpu)
    assert scaler is None
    with ctx, autocast(cpu):  # reusable no-ops on CPU: fp32
        assert torch.ones(2, 2).matmul(torch.ones(2, 2)).dtype == torch.float32
    if torch.cuda.is_available():
        cuda = torch.device("cuda")
        want = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        assert autocast_dtype(cuda) == want
        with autocast(cuda):
            assert torch.ones(2, 2, device=cuda).matmul(torch.ones(2, 2, device=cuda)).dtype == want
        assert (training_precision(cuda)[1] is not None) == (want == torch.float16)
        assert autocast_dtype(cuda) is not None and training_precision(cuda, enabled=False)[1] is None
