"""The open_clip encoder, on a tiny randomly initialized open_clip model saved to a temp dir."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import vidsearch.models as vm
from vidsearch.errors import CheckpointError, ModelError, WeightsNotFoundError

open_clip = pytest.importorskip("open_clip")

TINY_CFG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("openclip")
    (root / "tiny-clip.json").write_text(json.dumps(TINY_CFG))
    torch.manual_seed(0)
    model = open_clip.CLIP(**TINY_CFG)
    torch.save({"state_dict": {"module." + k: v for k, v in model.state_dict().items()}}, root / "tiny-clip.pt")
    return root / "tiny-clip.pt", root / "tiny-clip.json"


def test_video_is_renormalized_mean_of_frame_embeddings(tiny: tuple[Path, Path]) -> None:
    ckpt, cfg = tiny
    enc = vm.open_encoder(vm.EncoderSpec("openclip:tiny-clip", checkpoint=str(ckpt), config=str(cfg), device="cpu"))
    assert (enc.resolution, enc.embed_dim) == (32, 16)
    assert enc.key.startswith("openclip-tiny-clip@")
    assert vm.model_key("openclip:tiny-clip", checkpoint=str(ckpt), config=str(cfg)) == enc.key
    frames = np.random.default_rng(0).integers(0, 256, (2, 3, 40, 48, 3), dtype=np.uint8)
    video = enc.encode_video(frames)
    assert video.shape == (2, 16) and video.dtype == np.float32
    per_frame = enc.encode_frames(frames.reshape(6, 40, 48, 3)).reshape(2, 3, 16)
    assert np.allclose(np.linalg.norm(per_frame, axis=-1), 1, atol=1e-5)
    mean = per_frame.mean(1)
    assert np.abs(video - mean / np.linalg.norm(mean, axis=1, keepdims=True)).max() < 1e-5
    # Frame embeddings are the model's own encode_image on open_clip-preprocessed frames.
    x = enc._preprocess(frames[0])
    assert x.shape == (3, 3, 32, 32)
    with torch.inference_mode():
        want = torch.nn.functional.normalize(enc.model.encode_image(x), dim=-1).numpy()
    assert np.abs(per_frame[0] - want).max() < 1e-5
    text = enc.encode_text(["a dog", "a cat"])
    assert text.shape == (2, 16) and np.allclose(np.linalg.norm(text, axis=1), 1, atol=1e-5)
    again = vm.open_encoder(vm.EncoderSpec.from_dict(enc.spec))
    assert again.key == enc.key and np.array_equal(again.encode_video(frames), video)
    # open_clip's logits are exp(logit_scale) * cosine: the temperature is its inverse
    assert enc.temperature == pytest.approx(1.0 / float(enc.model.logit_scale.detach().exp()))


def test_errors(tiny: tuple[Path, Path], tmp_path: Path) -> None:
    ckpt, cfg = tiny
    with pytest.raises(WeightsNotFoundError, match="needs a local checkpoint"):
        vm.open_encoder(vm.EncoderSpec("openclip:ViT-B-32", device="cpu"))
    with pytest.raises(ModelError, match="unknown open_clip architecture"):
        vm.open_encoder(vm.EncoderSpec("openclip:NoSuchNet", checkpoint=str(ckpt), device="cpu"))
    with pytest.raises(CheckpointError, match="does not fit open_clip ViT-B-32") as err:
        vm.open_encoder(vm.EncoderSpec("openclip:ViT-B-32", checkpoint=str(ckpt), device="cpu"))
    assert "\n" not in str(err.value)
    (tmp_path / "bad.json").write_text(json.dumps({"embed_dim": 4}))
    with pytest.raises(ModelError, match="needs embed_dim, vision_cfg and text_cfg"):
        vm.open_encoder(
            vm.EncoderSpec("openclip:x", checkpoint=str(ckpt), config=str(tmp_path / "bad.json"), device="cpu")
        )


def test_described_without_loading_as_loaded(tiny: tuple[Path, Path]) -> None:
    """describe_encoder says what the loaded encoder says of itself; a named arch needs no weights read."""
    from vidsearch.models import EncoderSpec, open_encoder
    from vidsearch.models.registry import describe_encoder

    ckpt, cfg = tiny
    enc = open_encoder(
        EncoderSpec("openclip:tiny-clip", checkpoint=str(ckpt), config=str(cfg), device="cpu", precision="fp32")
    )
    info = describe_encoder("openclip:tiny-clip", checkpoint=str(ckpt), config=str(cfg))
    assert (info.key, info.num_frames, info.resolution, info.embed_dim, info.spec, info.antialias) == (
        enc.key,
        enc.num_frames,
        enc.resolution,
        enc.embed_dim,
        enc.spec,
        enc.antialias,
    )
    big = describe_encoder("openclip:ViT-B-32", checkpoint=str(ckpt))  # the tiny file is only hashed
    assert (big.resolution, big.embed_dim) == (224, 512)
    with pytest.raises(ModelError, match="unknown open_clip architecture"):
        describe_encoder("openclip:no-such-arch", checkpoint=str(ckpt))
