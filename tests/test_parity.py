"""Parity of the ViCLIP port with the official implementation.

Two kinds of ground truth:

* the fixtures in ``../shared/fixtures/viclip`` (outputs of the official modules; override the
  location with ``VIDSEARCH_FIXTURES``), for the fixture's tiny architecture;
* for other sizes and frame counts, an independent, deliberately naive re-statement of the
  official forward passes written below (sequence-first ``nn.MultiheadAttention``, ``Conv3d``
  patch embedding, patch-major token order, ``ln_post`` on every token, the official text
  padding to the full context, the official loader's temporal-embedding resizing), run on the
  same weights.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vidsearch.models import tokenize
from vidsearch.models.preprocess import preprocess_frames
from vidsearch.models.viclip import ViCLIP, ViCLIPConfig
from vidsearch.models.weights import fit_state_dict, read_state_dict

FIXTURES = Path(
    os.environ.get("VIDSEARCH_FIXTURES", Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "viclip")
)
TOL = 1e-4

needs_fixtures = pytest.mark.skipif(
    not (FIXTURES / "tiny_expected.pth").is_file(),
    reason=f"ViCLIP parity fixtures not found at {FIXTURES} (set VIDSEARCH_FIXTURES)",
)


def fixture_config(expected: dict) -> ViCLIPConfig:
    c = expected["config"]
    return ViCLIPConfig(
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


@pytest.fixture(scope="module")
def expected() -> dict:
    return torch.load(FIXTURES / "tiny_expected.pth", map_location="cpu", weights_only=False)


@pytest.fixture(scope="module")
def fixture_model(expected: dict) -> ViCLIP:
    model = ViCLIP(fixture_config(expected)).eval()
    sd = fit_state_dict(read_state_dict(FIXTURES / "tiny_checkpoint.pth"), model)
    model.load_state_dict(sd, strict=True)
    return model


# --------------------------------------------------------------------------- fixture parity


@needs_fixtures
def test_fixture_video_image_text_embeds(expected: dict, fixture_model: ViCLIP) -> None:
    with torch.inference_mode():
        video = fixture_model.encode_video(expected["video"])
        image = fixture_model.encode_video(expected["image"])
        text = fixture_model.encode_text(expected["tokens"].long())
    assert (video - expected["video_embeds"]).abs().max().item() < TOL
    assert (image - expected["image_embeds"]).abs().max().item() < TOL
    assert (text - expected["text_embeds"]).abs().max().item() < TOL


@needs_fixtures
def test_fixture_grad_path_matches_inference(expected: dict, fixture_model: ViCLIP) -> None:
    """The autograd path (no in-place activation) computes the same numbers."""
    video = fixture_model.encode_video(expected["video"])
    assert video.requires_grad
    assert (video.detach() - expected["video_embeds"]).abs().max().item() < TOL


@needs_fixtures
def test_fixture_tokens(expected: dict) -> None:
    tokens = tokenize(expected["captions"], context_length=32)
    assert tokens.shape == expected["tokens"].shape
    assert torch.equal(tokens, expected["tokens"].long())
    assert tokens[4, -1].item() == 49407  # the truncated caption ends with end-of-text


@needs_fixtures
def test_fixture_preprocessing(expected: dict) -> None:
    """The antialiased resize (newer torchvision, ``--antialias``) against the fixture's."""
    raw = expected["raw_frames_uint8_TCHW"].permute(0, 2, 3, 1).numpy()  # TCHW -> THWC
    out = preprocess_frames(raw, 64, antialias=True)
    assert out.shape == expected["preprocessed"].shape
    assert (out - expected["preprocessed"]).abs().max().item() < 2e-2


@needs_fixtures
def test_fixture_preprocessing_torchvision_015(expected: dict) -> None:
    """The default resize is what the published models saw (torchvision 0.15.2: no antialias)."""
    raw = expected["raw_frames_uint8_TCHW"].permute(0, 2, 3, 1).numpy()
    out = preprocess_frames(raw, 64)
    want = expected["preprocessed_tv015"]
    assert out.shape == want.shape
    assert (out - want).abs().max().item() < 2e-2
    # and the two choices really differ on these frames: the tolerance cannot hide the choice
    assert (out - expected["preprocessed"]).abs().max().item() > 0.5


@needs_fixtures
def test_fixture_through_open_encoder(expected: dict, tmp_path: Path) -> None:
    """The user path: checkpoint + config JSON on disk, uint8 frames in, normalized numpy out."""
    from vidsearch.models import EncoderSpec, open_encoder

    ckpt = tmp_path / "tiny.pth"
    ckpt.write_bytes((FIXTURES / "tiny_checkpoint.pth").read_bytes())
    fixture_config(expected).to_json(tmp_path / "tiny.json")
    enc = open_encoder(EncoderSpec(str(ckpt), device="cpu"))
    got = enc.encode_text(expected["captions"])
    want = F.normalize(expected["text_embeds"], dim=-1).numpy()
    assert got.dtype == np.float32 and np.abs(got - want).max() < TOL


# --------------------------------------------------------------------------- independent reference


def _official_temporal(embed: torch.Tensor, t: int) -> torch.Tensor:
    """The temporal embedding a t-frame official model holds after its loader resized ``embed``."""
    n = embed.shape[1]
    if t > n:
        return F.interpolate(embed.permute(0, 2, 1), t, mode="linear").permute(0, 2, 1)
    return embed[:, :t]


def _mha(sd: dict, prefix: str, width: int, heads: int) -> nn.MultiheadAttention:
    attn = nn.MultiheadAttention(width, heads)
    attn.load_state_dict({k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)})
    return attn.eval()


def _blocks(sd: dict, tower: str, x: torch.Tensor, layers: int, width: int, heads: int, mask=None) -> torch.Tensor:
    """Official residual blocks on a sequence-first ``[L, B, D]`` tensor."""
    for i in range(layers):
        p = f"{tower}.transformer.resblocks.{i}."
        attn = _mha(sd, p + "attn.", width, heads)
        h = F.layer_norm(x, (width,), sd[p + "ln_1.weight"], sd[p + "ln_1.bias"])
        x = x + attn(h, h, h, need_weights=False, attn_mask=mask)[0]
        h = F.layer_norm(x, (width,), sd[p + "ln_2.weight"], sd[p + "ln_2.bias"])
        h = F.linear(h, sd[p + "mlp.c_fc.weight"], sd[p + "mlp.c_fc.bias"])
        h = h * torch.sigmoid(1.702 * h)
        x = x + F.linear(h, sd[p + "mlp.c_proj.weight"], sd[p + "mlp.c_proj.bias"])
    return x


def reference_vision(sd: dict, cfg: ViCLIPConfig, video: torch.Tensor) -> torch.Tensor:
    """Official ``ViCLIP.encode_vision(test=True)`` on ``[B, T, C, H, W]`` or ``[B, C, H, W]``."""
    v = "vision_encoder."
    x = video.permute(0, 2, 1, 3, 4) if video.ndim == 5 else video.unsqueeze(2)  # B C T H W
    x = F.conv3d(x, sd[v + "conv1.weight"], stride=(1, cfg.patch_size, cfg.patch_size))
    B, C, T, H, W = x.shape
    x = x.permute(0, 2, 3, 4, 1).reshape(B * T, H * W, C)
    cls = sd[v + "class_embedding"] + torch.zeros(B * T, 1, C)
    x = torch.cat([cls, x], dim=1) + sd[v + "positional_embedding"]
    cls_tokens, x = x[:B, :1], x[:, 1:]
    x = x.reshape(B, T, H * W, C).permute(0, 2, 1, 3).reshape(B * H * W, T, C)  # (b t) n m -> (b n) t m
    temporal = sd[v + "temporal_positional_embedding"]
    x = x + (temporal.mean(1) if T == 1 else _official_temporal(temporal, T))
    x = x.reshape(B, H * W * T, C)  # (b n) t m -> b (n t) m
    x = torch.cat([cls_tokens, x], dim=1)
    x = F.layer_norm(x, (C,), sd[v + "ln_pre.weight"], sd[v + "ln_pre.bias"]).permute(1, 0, 2)
    x = _blocks(sd, "vision_encoder", x, cfg.vision_layers, C, cfg.vision_heads)
    x = F.layer_norm(x, (C,), sd[v + "ln_post.weight"], sd[v + "ln_post.bias"])
    return x[0] @ sd[v + "proj"]


def reference_text(sd: dict, cfg: ViCLIPConfig, tokens: torch.Tensor) -> torch.Tensor:
    """Official ``CLIP_TEXT.forward`` on full-context tokens ``[B, context_length]``."""
    t = "text_encoder."
    L, D = cfg.context_length, cfg.text_width
    mask = torch.full((L, L), float("-inf")).triu_(1)
    x = F.embedding(tokens, sd[t + "token_embedding.weight"]) + sd[t + "positional_embedding"]
    x = _blocks(sd, "text_encoder", x.permute(1, 0, 2), cfg.text_layers, D, cfg.text_heads, mask).permute(1, 0, 2)
    x = F.layer_norm(x, (D,), sd[t + "ln_final.weight"], sd[t + "ln_final.bias"])
    return x[torch.arange(x.shape[0]), tokens.argmax(dim=-1)] @ sd[t + "text_projection"]


def random_model(cfg: ViCLIPConfig, seed: int) -> ViCLIP:
    """A model whose every tensor (biases, norms, temporal embedding too) is random."""
    torch.manual_seed(seed)
    model = ViCLIP(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("ln_1.weight", "ln_2.weight", "ln_pre.weight", "ln_post.weight", "ln_final.weight")):
                p.copy_(1 + 0.1 * torch.randn_like(p))
            elif "token_embedding" in name or "embedding" in name:
                p.copy_(0.3 * torch.randn_like(p))
            else:
                p.copy_(torch.randn_like(p) * (p.shape[-1] ** -0.5 if p.ndim > 1 else 0.05))
    return model


SIZES = [
    # res, patch, vw, vl, vh, dim, frames, tw, tl, th
    (32, 16, 48, 2, 3, 24, 8, 32, 2, 2),
    (28, 14, 64, 3, 2, 16, 4, 48, 1, 6),
    (48, 16, 32, 1, 4, 32, 16, 32, 2, 8),
]


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"res{s[0]}p{s[1]}w{s[2]}h{s[4]}f{s[6]}")
def test_other_sizes_and_frame_counts_match_reference(size: tuple) -> None:
    res, patch, vw, vl, vh, dim, frames, tw, tl, th = size
    cfg = ViCLIPConfig(
        input_resolution=res,
        patch_size=patch,
        vision_width=vw,
        vision_layers=vl,
        vision_heads=vh,
        embed_dim=dim,
        num_frames=frames,
        text_width=tw,
        text_layers=tl,
        text_heads=th,
    )
    model = random_model(cfg, seed=sum(size))
    sd = {k: v.detach() for k, v in model.state_dict().items()}
    gen = torch.Generator().manual_seed(1)
    with torch.inference_mode():
        # T = 1 as a video, fewer / equal / more frames than trained with, and images.
        for t in sorted({1, 2, max(1, frames // 2), frames, frames + 3}):
            video = torch.randn(2, t, 3, res, res, generator=gen)
            got, want = model.encode_video(video), reference_vision(sd, cfg, video)
            assert (got - want).abs().max().item() < TOL, f"T={t}"
        image = torch.randn(3, 3, res, res, generator=gen)
        assert (model.encode_video(image) - reference_vision(sd, cfg, image)).abs().max().item() < TOL
        captions = ["a dog", "", "two people dancing on a stage in the rain " * 6, "x"]
        tokens = tokenize(captions, context_length=cfg.context_length)
        got, want = model.encode_text(tokens), reference_text(sd, cfg, tokens)
        assert (got - want).abs().max().item() < TOL


def test_image_equals_single_frame_video() -> None:
    cfg = ViCLIPConfig(
        **dict(
            zip(
                [
                    "input_resolution",
                    "patch_size",
                    "vision_width",
                    "vision_layers",
                    "vision_heads",
                    "embed_dim",
                    "num_frames",
                    "text_width",
                    "text_layers",
                    "text_heads",
                ],
                SIZES[0],
                strict=False,
            )
        )
    )
    model = random_model(cfg, seed=3)
    image = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        assert torch.allclose(model.encode_video(image), model.encode_video(image.unsqueeze(1)), atol=1e-6)
