"""ViCLIPConfig, the preset architectures and the model's training-side behaviour."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from vidsearch.errors import ModelError
from vidsearch.models.viclip import ViCLIP, ViCLIPConfig, resize_temporal_embedding, vision_flops

FIXTURES = Path(
    os.environ.get("VIDSEARCH_FIXTURES", Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "viclip")
)
TINY = dict(
    input_resolution=32,
    patch_size=16,
    vision_width=32,
    vision_layers=2,
    vision_heads=2,
    embed_dim=16,
    num_frames=4,
    text_width=32,
    text_layers=2,
    text_heads=4,
)


def test_config_json_roundtrip(tmp_path: Path) -> None:
    cfg = ViCLIPConfig(**TINY, context_length=16)
    cfg.to_json(tmp_path / "c.json")
    assert ViCLIPConfig.from_json(tmp_path / "c.json") == cfg
    assert not list(tmp_path.glob("*.tmp"))
    assert json.loads((tmp_path / "c.json").read_text())["context_length"] == 16


def test_config_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="viclip-b16, viclip-l14"):
        ViCLIPConfig.preset("viclip-h14")
    (tmp_path / "bad.json").write_text(json.dumps({**TINY, "depth": 3}))
    with pytest.raises(ModelError, match="unknown ViCLIP config field.*depth") as err:
        ViCLIPConfig.from_json(tmp_path / "bad.json")
    assert "\n" not in str(err.value)
    with pytest.raises(ModelError, match="missing.*embed_dim"):
        ViCLIPConfig.from_dict({k: v for k, v in TINY.items() if k != "embed_dim"})
    with pytest.raises(ModelError, match="not divisible"):
        ViCLIPConfig(**{**TINY, "vision_heads": 3})
    with pytest.raises(ModelError, match="multiple of patch_size"):
        ViCLIPConfig(**{**TINY, "input_resolution": 40})
    with pytest.raises(ModelError, match="does not exist"):
        ViCLIPConfig.from_json(tmp_path / "absent.json")


def test_preset_copies_are_independent() -> None:
    a = ViCLIPConfig.preset("viclip-b16")
    a.num_frames = 16
    assert ViCLIPConfig.preset("viclip-b16").num_frames == 8
    assert ViCLIPConfig.preset("viclip-l14").preset_name() == "viclip-l14"
    assert ViCLIPConfig(**TINY).preset_name() is None


@pytest.mark.parametrize(
    "name,manifest,params",
    [
        ("viclip-b16", "viclip_b16_state_dict_shapes.json", 149.6e6),
        ("viclip-l14", "viclip_l14_state_dict_shapes.json", 427.6e6),
    ],
)
def test_preset_state_dict_matches_official_manifest(name: str, manifest: str, params: float) -> None:
    with torch.device("meta"):  # shapes only, no memory
        model = ViCLIP(ViCLIPConfig.preset(name))
    shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert abs(sum(p.numel() for p in model.parameters()) - params) < 0.05e6
    path = FIXTURES / manifest
    if not path.is_file():
        pytest.skip(f"state-dict manifest {path} not found (set VIDSEARCH_FIXTURES)")
    assert shapes == json.loads(path.read_text())


def test_resize_temporal_embedding_follows_official_loader() -> None:
    embed = torch.arange(8.0).view(1, 4, 2)
    assert torch.equal(resize_temporal_embedding(embed, 4), embed)
    assert torch.equal(resize_temporal_embedding(embed, 2), embed[:, :2])  # shorter: truncate
    longer = resize_temporal_embedding(embed, 8)  # longer: linear, align_corners=False
    want = torch.nn.functional.interpolate(embed.transpose(1, 2), 8, mode="linear").transpose(1, 2)
    assert longer.shape == (1, 8, 2) and torch.allclose(longer, want)
    assert longer[0, 0, 0] == 0 and longer[0, -1, 0] == 6  # endpoints are held


def test_motion_masking_keeps_the_moving_patches() -> None:
    """Tokens of highest motion are kept first; the rest of the kept share is random; order holds."""
    from vidsearch.models.masking import keep_tokens, patch_motion

    B, T, L, P = 3, 4, 16, 12
    patches = torch.zeros(B, T, L, P)
    where = {(b, t): t * L + (b * 5 + 2 * t) % L for b in range(B) for t in range(T)}  # an object passing through
    for (b, t), token in where.items():
        patches[b, t, token - t * L] = 1.0
    motion = patch_motion(patches)
    assert motion.shape == (B, T * L)
    # the object's own tokens move most (0.75); the same places in its other frames less (0.25); the rest 0
    hot = motion == motion.max(dim=1, keepdim=True).values
    assert hot.sum(1).tolist() == [T] * B and all(hot[b, token] for (b, _), token in where.items())
    assert int((motion > 0).sum()) == B * T * T
    x = torch.arange(T * L, dtype=torch.float32).expand(B, -1).unsqueeze(-1).repeat(1, 1, 2)  # feature = position
    for seed in range(5):
        torch.manual_seed(seed)
        kept = keep_tokens(x, 0.75, motion, 0.5)[..., 0]  # keep 16 of 64, 8 by motion
        assert kept.shape == (B, 16) and bool((kept[:, 1:] > kept[:, :-1]).all())  # original order
        for b in range(B):
            assert set(torch.nonzero(hot[b]).flatten().tolist()) <= set(kept[b].long().tolist())
    torch.manual_seed(0)
    plain = keep_tokens(x, 0.75)[..., 0]
    torch.manual_seed(1)
    assert not torch.equal(plain, keep_tokens(x, 0.75)[..., 0])  # random without motion


def test_training_path_masking_and_grad_checkpointing() -> None:
    torch.manual_seed(0)
    model = ViCLIP(ViCLIPConfig(**TINY)).train()
    video = torch.randn(2, 4, 3, 32, 32)
    tokens = torch.randint(1, 49000, (2, 10))
    tokens[:, -1] = 49407
    out = model.encode_video(video, masking_prob=0.5)
    assert out.shape == (2, 16) and torch.isfinite(out).all()
    guided = model.encode_video(video, masking_prob=0.5, masking_motion=0.5)
    assert guided.shape == (2, 16) and torch.isfinite(guided).all()
    image = model.encode_video(video[:, 0], masking_prob=0.5, masking_motion=1.0)  # one frame: no motion, random
    assert image.shape == (2, 16) and torch.isfinite(image).all()

    def grads(ckpt: bool) -> list[torch.Tensor]:
        model.zero_grad()
        model.set_grad_checkpointing(ckpt)
        v, t = model(video, tokens)
        (v.square().sum() + t.square().sum()).backward()
        return [p.grad.clone() for p in model.parameters() if p.grad is not None]

    plain, ckpt = grads(False), grads(True)
    assert len(plain) == len(ckpt) > 0
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(plain, ckpt, strict=False))


def test_shape_errors() -> None:
    model = ViCLIP(ViCLIPConfig(**TINY)).eval()
    with pytest.raises(ValueError, match=r"\[B, T, 3, 32, 32\]"):
        model.encode_video(torch.randn(1, 4, 3, 48, 48))
    with pytest.raises(ValueError, match="tokens"):
        model.encode_text(torch.zeros(1, 40, dtype=torch.long))


def test_vision_flops_match_a_flop_counter() -> None:
    """GEMM FLOPs as torch's FlopCounterMode sees them, plus attention (which it skips on CPU)."""
    from torch.utils.flop_counter import FlopCounterMode

    cfg = ViCLIPConfig(**{**TINY, "vision_layers": 3})
    model = ViCLIP(cfg)  # grad mode: the out-of-place path whose ops the counter knows
    counter = FlopCounterMode(display=False)
    with counter:
        model.encode_video(torch.randn(2, 4, 3, 32, 32))
    n, d = 4 * 4 + 1, 32
    attention = 2 * 4 * n * n * d + 4 * 1 * n * d  # two full blocks, a [CLS]-only last block
    assert counter.get_total_flops() + 2 * attention == 2 * vision_flops(cfg, cls_only_last=True)
    # The official full forward: every block for every token.
    assert vision_flops(cfg) - vision_flops(cfg, cls_only_last=True) == (
        2 * (n - 1) * d * d + 4 * (n - 1) * n * d + 2 * (n - 1) * d * d + 16 * (n - 1) * d * d
    )
