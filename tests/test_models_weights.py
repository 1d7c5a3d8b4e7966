"""Checkpoint reading, fitting, saving, resolution (no network) and hashing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from vidsearch.cli.errors import message as cli_message
from vidsearch.errors import CheckpointError, ModelError, WeightsNotFoundError
from vidsearch.models import hub as hub_module
from vidsearch.models import weights
from vidsearch.models.viclip import ViCLIP, ViCLIPConfig
from vidsearch.models.weights import (
    checkpoint_hash,
    fit_state_dict,
    load_viclip_checkpoint,
    read_state_dict,
    resolve_checkpoint,
    resolve_config,
    save_checkpoint,
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
    text_layers=1,
    text_heads=2,
)


def tiny_model(seed: int = 0, **overrides: int) -> ViCLIP:
    torch.manual_seed(seed)
    model = ViCLIP(ViCLIPConfig(**{**TINY, **overrides})).eval()
    with torch.no_grad():  # a non-zero temporal embedding, so resizing it is observable
        model.vision_encoder.temporal_positional_embedding.normal_()
    return model


def assert_same_weights(a: ViCLIP, b: ViCLIP) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_save_checkpoint_roundtrip(tmp_path: Path, suffix: str) -> None:
    model = tiny_model()
    path = save_checkpoint(model, tmp_path / f"ft{suffix}")
    assert path.is_file() and (tmp_path / "ft.json").is_file()
    assert not list(tmp_path.glob("*.tmp"))
    if suffix == ".pth":
        assert list(torch.load(path, weights_only=True)) == ["model"]  # the official layout
    cfg, cfg_path = resolve_config(path)
    assert cfg == model.config and cfg_path == (tmp_path / "ft.json").resolve()
    assert_same_weights(load_viclip_checkpoint(ViCLIP(cfg), path), model)


@pytest.mark.parametrize("prefix", ["", "module.", "model.", "module.model."])
@pytest.mark.parametrize("layout", ["flat-pth", "model-key", "state_dict-key", "safetensors"])
def test_layouts_and_prefixes_load(tmp_path: Path, prefix: str, layout: str) -> None:
    model = tiny_model()
    sd = {prefix + k: v.clone() for k, v in model.state_dict().items()}
    path = tmp_path / ("w.safetensors" if layout == "safetensors" else "w.pth")
    if layout == "safetensors":
        save_file(sd, str(path))
    else:
        torch.save(
            {"flat-pth": sd, "model-key": {"model": sd}, "state_dict-key": {"state_dict": sd, "epoch": 3}}[layout], path
        )
    assert_same_weights(load_viclip_checkpoint(tiny_model(seed=1), path), model)


def test_wrong_size_fails_in_one_line(tmp_path: Path) -> None:
    path = save_checkpoint(tiny_model(vision_layers=3), tmp_path / "deep.pth")
    with pytest.raises(CheckpointError) as err:
        load_viclip_checkpoint(tiny_model(), path)
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg
    assert "12 unexpected" in msg  # one extra vision block holds 12 tensors
    assert "vision width 32 x 3 layers" in msg  # describes what the file holds


def test_wrong_preset_names_the_preset_it_looks_like() -> None:
    with torch.device("meta"):
        b16 = ViCLIP(ViCLIPConfig.preset("viclip-b16")).state_dict()
        l14 = ViCLIP(ViCLIPConfig.preset("viclip-l14"))
    with pytest.raises(
        CheckpointError,
        match=r"144 missing.*302 of the wrong shape.*looks like viclip-b16: load it as model viclip-b16",
    ) as err:
        fit_state_dict(b16, l14, source="b16.safetensors")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("frames", [2, 7])
def test_temporal_embedding_is_resized_like_the_official_loader(tmp_path: Path, frames: int) -> None:
    src = tiny_model()  # 4 frames
    path = save_checkpoint(src, tmp_path / "four.pth")
    dst = load_viclip_checkpoint(tiny_model(seed=2, num_frames=frames), path)
    old = src.vision_encoder.temporal_positional_embedding.detach()
    got = dst.vision_encoder.temporal_positional_embedding.detach()
    if frames < 4:
        want = old[:, :frames]
    else:
        want = torch.nn.functional.interpolate(old.permute(0, 2, 1), frames, mode="linear").permute(0, 2, 1)
    assert got.shape == (1, frames, 32) and torch.allclose(got, want)


def test_text_context_and_spatial_grid_are_adapted(tmp_path: Path) -> None:
    path = save_checkpoint(tiny_model(), tmp_path / "w.pth")
    dst = load_viclip_checkpoint(tiny_model(seed=3, context_length=16, input_resolution=48), path)
    assert dst.text_encoder.positional_embedding.shape == (16, 32)
    assert dst.vision_encoder.positional_embedding.shape == (10, 32)
    with torch.inference_mode():
        assert torch.isfinite(dst.encode_video(torch.randn(1, 4, 3, 48, 48))).all()


def test_unreadable_checkpoints(tmp_path: Path) -> None:
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pth") as err:
        read_state_dict(tmp_path / "junk.pth")
    assert "\n" not in str(err.value)
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 16)
    with pytest.raises(CheckpointError, match="junk.safetensors"):
        read_state_dict(tmp_path / "junk.safetensors")
    torch.save({"epoch": 1}, tmp_path / "nodict.pth")
    with pytest.raises(CheckpointError, match="holds no state dict"):
        read_state_dict(tmp_path / "nodict.pth")
    with pytest.raises(CheckpointError, match="does not exist"):
        read_state_dict(tmp_path / "absent.pth")


def test_config_resolution_order(tmp_path: Path) -> None:
    model = tiny_model()
    path = save_checkpoint(model, tmp_path / "a" / "w.pth")
    other = ViCLIPConfig(**{**TINY, "num_frames": 8})
    other.to_json(tmp_path / "other.json")
    assert resolve_config(path, tmp_path / "other.json")[0] == other  # explicit wins
    os.replace(tmp_path / "a" / "w.json", tmp_path / "a" / "config.json")
    assert resolve_config(path)[0] == model.config  # config.json beside it
    (tmp_path / "a" / "config.json").write_text('{"architectures": ["ViCLIP"]}')  # a transformers config
    with pytest.raises(ModelError, match="needs a config.*looks like no preset"):
        resolve_config(path)


def test_preset_shaped_checkpoint_without_config_uses_the_preset(tmp_path: Path) -> None:
    with torch.device("meta"):
        shapes = ViCLIP(ViCLIPConfig.preset("viclip-b16")).state_dict()
    sd = {
        k: torch.zeros(v.shape) if v.ndim < 2 or "token_embedding" in k else torch.zeros(1) for k, v in shapes.items()
    }
    # Keep only what shape inference reads at full size; the rest need not be real.
    for k in (
        "vision_encoder.conv1.weight",
        "vision_encoder.positional_embedding",
        "vision_encoder.temporal_positional_embedding",
        "vision_encoder.proj",
        "text_encoder.text_projection",
        "text_encoder.positional_embedding",
    ):
        sd[k] = torch.zeros(shapes[k].shape)
    save_file({"module." + k: v for k, v in sd.items()}, str(tmp_path / "model.safetensors"))
    cfg, cfg_path = resolve_config(tmp_path / "model.safetensors")
    assert cfg == ViCLIPConfig.preset("viclip-b16") and cfg_path is None


def _pinned(repo: str) -> str:
    return next(rev for sources in weights.HF_SOURCES.values() for r, _, rev in sources if r == repo)


def _fake_hf_cache(root: Path, repo: str, filename: str, payload: bytes, rev: str | None = None) -> Path:
    """The on-disk layout huggingface_hub uses: models--org--name/{refs/main, snapshots/<rev>/file}.

    ``rev`` defaults to the revision vidsearch pins for ``repo``; ``refs/main`` points at it.
    """
    base = root / ("models--" + repo.replace("/", "--"))
    rev = rev or _pinned(repo)
    (base / "refs").mkdir(parents=True, exist_ok=True)
    (base / "refs" / "main").write_text(rev)
    target = base / "snapshots" / rev / filename
    target.parent.mkdir(parents=True)
    target.write_bytes(payload)
    return target


def test_resolution_order_explicit_env_cache_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    explicit, env = tmp_path / "explicit.pth", tmp_path / "env.pth"
    explicit.write_bytes(b"1")
    env.write_bytes(b"2")
    hub = tmp_path / "hf-hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    cached = _fake_hf_cache(hub, "OpenGVLab/ViCLIP-L-14-hf", "model.safetensors", b"3")
    monkeypatch.setenv("VIDSEARCH_CHECKPOINT", str(env))
    assert resolve_checkpoint("viclip-l14", explicit) == explicit.resolve()
    assert resolve_checkpoint("viclip-l14") == env.resolve()
    monkeypatch.delenv("VIDSEARCH_CHECKPOINT")
    assert (
        resolve_checkpoint("viclip-l14").read_bytes() == b"3" and resolve_checkpoint("viclip-l14") == cached.resolve()
    )

    # Not cached, online: the hub client is asked, in order (patched: no network).
    calls, revisions = [], []

    def fake_download(
        repo: str, filename: str, cache_dir: str | None = None, revision: str | None = None, **_: object
    ) -> str:
        calls.append((repo, filename))
        revisions.append(revision)
        if repo.endswith("-hf"):
            raise OSError("404")
        return str(_fake_hf_cache(Path(cache_dir), repo, filename, b"4", rev="f" * 40))

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    monkeypatch.setattr(hub_module, "_hub_reachable", lambda timeout=1.5: True)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    monkeypatch.delenv("HF_HUB_OFFLINE")
    assert resolve_checkpoint("viclip-l14").name == "ViClip-InternVid-10M-FLT.pth"
    assert calls == [
        ("OpenGVLab/ViCLIP-L-14-hf", "model.safetensors"),
        ("OpenGVLab/ViCLIP", "ViClip-InternVid-10M-FLT.pth"),
    ]
    assert revisions == ["1652361522e1cb41c28cdfae870f690d00e7456b", "main"]  # the checked -hf commit
    with pytest.raises(WeightsNotFoundError, match="could not be downloaded"):
        resolve_checkpoint("viclip-b16", download=True)

    # An unreachable hub is found out at once: no download is even attempted.
    calls.clear()
    monkeypatch.setattr(hub_module, "_hub_reachable", lambda timeout=1.5: False)
    with pytest.raises(WeightsNotFoundError, match="could not be downloaded"):
        resolve_checkpoint("viclip-b16", download=True)
    assert calls == []


def test_offline_with_nothing_cached_says_what_to_download(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda *a, **k: pytest.fail("went online"))
    with pytest.raises(WeightsNotFoundError) as err:
        resolve_checkpoint("viclip-b16")
    msg = cli_message(err.value)  # as the CLI words it; the library's own hint names no flag
    assert "\n" not in msg and "give its path" in str(err.value)
    for part in (
        "offline",
        "model.safetensors",
        "https://huggingface.co/OpenGVLab/ViCLIP-B-16-hf",
        "--checkpoint",
        "VIDSEARCH_CHECKPOINT",
    ):
        assert part in msg
    monkeypatch.setenv("VIDSEARCH_CHECKPOINT", "/nonexistent/w.pth")
    with pytest.raises(CheckpointError, match="VIDSEARCH_CHECKPOINT=/nonexistent/w.pth does not exist"):
        resolve_checkpoint("viclip-b16")


def test_checkpoint_hash_is_cached_by_path_size_mtime(tmp_path: Path) -> None:
    import hashlib

    f = tmp_path / "w.pth"
    f.write_bytes(b"abc")
    sha = hashlib.sha256(b"abc").hexdigest()
    assert checkpoint_hash(f) == sha
    assert (weights.cache_dir() / "checkpoint_hashes.json").is_file()
    st = f.stat()
    f.write_bytes(b"xyz")  # same size; restore the mtime: the cached digest is trusted
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert checkpoint_hash(f) == sha
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # touched: hashed again
    assert checkpoint_hash(f) == hashlib.sha256(b"xyz").hexdigest()


# --------------------------------------------------------------------------- keys inference does not need


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelname == "WARNING" and r.name in (weights.__name__, hub_module.__name__)
    ]


def test_keys_inference_does_not_need_are_dropped_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    src = tiny_model()
    sd = dict(src.state_dict())
    sd["logit_scale"] = torch.tensor(4.6)
    for i in range(TINY["text_layers"]):  # a port that registered CLIP's causal mask as a buffer
        sd[f"text_encoder.transformer.resblocks.{i}.attn_mask"] = torch.full((32, 32), float("-inf")).triu(1)
    sd.update({f"model_ema.{k}": v.clone() for k, v in src.state_dict().items()})  # an EMA copy
    sd["optimizer.state.0.exp_avg"] = torch.zeros(3)
    torch.save({"module": sd}, tmp_path / "w.pth")
    with caplog.at_level("WARNING"):
        assert_same_weights(load_viclip_checkpoint(tiny_model(seed=1), tmp_path / "w.pth"), src)
    (line,) = _warnings(caplog)
    assert "\n" not in line and "w.pth" in line
    for part in ("logit_scale", "resblocks.*.attn_mask", "model_ema.* (51)", "optimizer.state.*.exp_avg"):
        assert part in line


def test_missing_temp_is_filled_with_its_initial_value(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    src = tiny_model()
    sd = {k: v for k, v in src.state_dict().items() if k != "temp"}
    save_file({"model." + k: v for k, v in sd.items()}, str(tmp_path / "w.safetensors"))
    dst = tiny_model(seed=1)
    with torch.no_grad():
        dst.temp.fill_(float("nan"))  # as after to_empty(): the value must come from the loader
    with caplog.at_level("WARNING"):
        load_viclip_checkpoint(dst, tmp_path / "w.safetensors")
    assert dst.temp.item() == pytest.approx(0.01)
    (line,) = _warnings(caplog)
    assert "temp is missing" in line
    with torch.inference_mode():  # the towers are the checkpoint's
        x = torch.randn(1, 4, 3, 32, 32)
        assert torch.equal(dst.encode_video(x), src.encode_video(x))


def test_missing_weights_inference_needs_stay_an_error(tmp_path: Path) -> None:
    sd = {k: v for k, v in tiny_model().state_dict().items() if k != "text_encoder.ln_final.weight"}
    sd["logit_scale"] = torch.tensor(1.0)
    torch.save(sd, tmp_path / "w.pth")
    with pytest.raises(CheckpointError, match=r"1 missing \(e\.g\. text_encoder\.ln_final\.weight\)") as err:
        load_viclip_checkpoint(tiny_model(), tmp_path / "w.pth")
    msg = str(err.value)
    assert "\n" not in msg and "1 ignored: logit_scale" in msg
    assert "shapes are those of the requested model" in msg and "load it as model" not in msg


def test_no_load_it_as_hint_for_the_model_that_was_asked_for() -> None:
    with torch.device("meta"):
        b16 = ViCLIP(ViCLIPConfig.preset("viclip-b16"))
        sd = {k: v for k, v in b16.state_dict().items() if k != "vision_encoder.ln_post.bias"}
    with pytest.raises(CheckpointError) as err:
        fit_state_dict(sd, b16, source="model.safetensors")
    msg = str(err.value)
    assert "1 missing (e.g. vision_encoder.ln_post.bias)" in msg
    assert "load it as model viclip-b16" not in msg and "re-download" in msg


# --------------------------------------------------------------------------- other architectures


def _internvideo2_clip_keys(text: str) -> dict[str, torch.Tensor]:
    """Key names of InternVideo2-CLIP (InternVideo2 vision tower + LLaMA or MobileCLIP text tower)."""
    sd = {
        "vision_encoder.cls_token": torch.zeros(1, 1, 32),
        "vision_encoder.pos_embed": torch.zeros(1, 5, 32),
        "vision_encoder.patch_embed.proj.weight": torch.zeros(32, 3, 1, 14, 14),
        "vision_encoder.blocks.0.attn.qkv.weight": torch.zeros(96, 32),
        "vision_encoder.blocks.0.ls1.gamma": torch.zeros(32),
        "vision_encoder.clip_projector.k.weight": torch.zeros(32, 32),
        "temp": torch.tensor(0.01),
    }
    if text == "llama":
        sd.update(
            {
                "text_encoder.transformer.embed_tokens.weight": torch.zeros(10, 32),
                "text_encoder.transformer.layers.0.self_attn.q_proj.weight": torch.zeros(32, 32),
                "text_encoder.text_projection": torch.zeros(32, 16),
            }
        )
    else:
        sd.update(
            {
                "text_encoder.embedding_layer.weight": torch.zeros(10, 32),
                "text_encoder.transformer.0.pre_norm_mha.0.weight": torch.zeros(32),
                "text_encoder.projection_layer": torch.zeros(32, 16),
                "vision_align.0.weight": torch.zeros(32),
            }
        )
    return sd


@pytest.mark.parametrize("text,tower", [("llama", "LLaMA"), ("mobileclip", "MobileCLIP")])
def test_internvideo2_clip_is_named_as_another_architecture(tmp_path: Path, text: str, tower: str) -> None:
    sd = {"module." + k: v for k, v in _internvideo2_clip_keys(text).items()}
    with pytest.raises(
        CheckpointError,
        match=rf"InternVideo2-CLIP \(an InternVideo2 vision tower with a {tower} "
        rf"text tower\), a different architecture that vidsearch cannot load as ViCLIP",
    ) as err:
        fit_state_dict(sd, tiny_model(), source="clip.pth")
    assert "\n" not in str(err.value)
    save_file(sd, str(tmp_path / "model.safetensors"))
    with pytest.raises(ModelError, match="InternVideo2-CLIP.*cannot load as ViCLIP"):
        resolve_config(tmp_path / "model.safetensors")


# --------------------------------------------------------------------------- pinned revisions


def test_pinned_revisions_are_used_and_can_be_overridden(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib

    from vidsearch.models import model_key

    hub = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    repo = "OpenGVLab/ViCLIP-B-16-hf"
    assert _pinned(repo) == "8484a9cb5b1b86e43c3ded53abe7485f52d8b789"
    assert _pinned("OpenGVLab/ViCLIP-L-14-hf") == "1652361522e1cb41c28cdfae870f690d00e7456b"
    newer = _fake_hf_cache(hub, repo, "model.safetensors", b"newer", rev="e" * 40)  # refs/main -> newer
    with pytest.raises(WeightsNotFoundError, match="--revision 8484a9cb"):
        resolve_checkpoint("viclip-b16")  # main moved on: the checked revision is not cached
    pinned = _fake_hf_cache(hub, repo, "model.safetensors", b"pinned")
    (hub / ("models--" + repo.replace("/", "--")) / "refs" / "main").write_text("e" * 40)
    assert resolve_checkpoint("viclip-b16") == pinned.resolve()
    assert model_key("viclip-b16") == "viclip-b16@" + hashlib.sha256(b"pinned").hexdigest()[:12]
    assert resolve_checkpoint("viclip-b16", revision="main") == newer.resolve()
    monkeypatch.setenv("VIDSEARCH_HF_REVISION", "main")
    assert resolve_checkpoint("viclip-b16") == newer.resolve()
    assert model_key("viclip-b16") == "viclip-b16@" + hashlib.sha256(b"newer").hexdigest()[:12]
