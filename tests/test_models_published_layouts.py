"""The official tiny ViCLIP weights, written in every layout the published checkpoints use, load
to the official outputs (``../shared/fixtures/viclip``; set ``VIDSEARCH_FIXTURES`` to move it)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from test_models_checkpoint_io import training_checkpoint
from test_parity import fixture_config

from vidsearch.errors import ModelError
from vidsearch.models.viclip import ViCLIP, ViCLIPConfig
from vidsearch.models.weights import load_viclip_checkpoint, resolve_config

FIXTURES = Path(
    os.environ.get("VIDSEARCH_FIXTURES", Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "viclip")
)
TOL = 1e-4
# config.json of OpenGVLab/ViCLIP-L-14-hf at 1652361 (a transformers config, not a ViCLIPConfig).
HF_CONFIG = {
    "architectures": ["ViCLIP"],
    "auto_map": {"AutoConfig": "configuration_viclip.Config", "AutoModel": "viclip.ViCLIP"},
    "torch_dtype": "float32",
    "size": "l",
    "tokenizer_path": "./bpe_simple_vocab_16e6.txt.gz",
}

pytestmark = pytest.mark.skipif(
    not (FIXTURES / "tiny_expected.pth").is_file(),
    reason=f"ViCLIP parity fixtures not found at {FIXTURES} (set VIDSEARCH_FIXTURES)",
)


@pytest.fixture(scope="module")
def expected() -> dict:
    return torch.load(FIXTURES / "tiny_expected.pth", map_location="cpu", weights_only=False)


@pytest.fixture(scope="module")
def official() -> dict[str, torch.Tensor]:
    return torch.load(FIXTURES / "tiny_checkpoint.pth", map_location="cpu", weights_only=True)["model"]


def write(layout: str, sd: dict[str, torch.Tensor], cfg: ViCLIPConfig, tmp_path: Path) -> Path:
    """``sd`` saved as ``layout``; a ViCLIPConfig JSON beside it unless the layout has its own."""
    sd = {k: v.clone() for k, v in sd.items()}
    if layout == "hf-safetensors":  # flat fp32 safetensors + the repo's transformers config.json
        path = tmp_path / "model.safetensors"
        save_file(sd, str(path), metadata={"format": "pt"})
        (tmp_path / "config.json").write_text(json.dumps(HF_CONFIG))
        return path
    path = tmp_path / "w.pth"
    if layout == "training":
        model = ViCLIP(cfg)
        model.load_state_dict(sd)
        path = training_checkpoint(model, tmp_path)
    elif layout == "legacy":
        torch.save({"model": sd}, path, _use_new_zipfile_serialization=False)
    elif layout in ("module.", "model.", "module.model."):
        torch.save({"model": {layout + k: v for k, v in sd.items()}}, path)
    elif layout == "no-temp":
        torch.save({"model": {k: v for k, v in sd.items() if k != "temp"}}, path)
    elif layout == "extra-logit_scale":
        torch.save({"model": {**sd, "logit_scale": torch.tensor(4.6)}}, path)
    else:
        assert layout == "model-pth"
        torch.save({"model": sd}, path)
    cfg.to_json(path.with_suffix(".json"))
    return path


@pytest.mark.parametrize(
    "layout",
    [
        "hf-safetensors",
        "model-pth",
        "training",
        "legacy",
        "module.",
        "model.",
        "module.model.",
        "no-temp",
        "extra-logit_scale",
    ],
)
def test_published_layout_loads_to_the_official_outputs(
    tmp_path: Path, expected: dict, official: dict[str, torch.Tensor], layout: str
) -> None:
    cfg = fixture_config(expected)
    path = write(layout, official, cfg, tmp_path)
    if layout == "hf-safetensors":
        with pytest.raises(ModelError, match="needs a config") as err:  # the HF config.json is not one
            resolve_config(path)
        assert "\n" not in str(err.value)
        cfg.to_json(tmp_path / "tiny.json")
        got_cfg, _ = resolve_config(path, tmp_path / "tiny.json")
    else:
        got_cfg, cfg_path = resolve_config(path)
        assert cfg_path == path.with_suffix(".json").resolve()
    assert got_cfg == cfg
    with torch.device("meta"):
        model = ViCLIP(got_cfg)
    model = load_viclip_checkpoint(model.to_empty(device="cpu"), path).eval()  # as open_encoder builds it
    with torch.inference_mode():
        video = model.encode_video(expected["video"])
        text = model.encode_text(expected["tokens"].long())
    assert (video - expected["video_embeds"]).abs().max().item() < TOL
    assert (text - expected["text_embeds"]).abs().max().item() < TOL
    temp = official["temp"].item() if layout != "no-temp" else 0.01
    assert model.temp.item() == pytest.approx(temp)
