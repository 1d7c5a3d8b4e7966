"""Parity of the InternVideo2 Stage-2 port with the official implementation.

Ground truth: ``../shared/fixtures/internvideo2`` (override with ``VIDSEARCH_IV2_FIXTURES``),
outputs of the official modules on a tiny seeded model. Sizes are read from the fixture's
``config.json``, so any fixture of the same layout runs through the same test.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from vidsearch.media.sampling import middle_indices
from vidsearch.models.internvideo2 import (
    UNUSED_AT_INFERENCE,
    InternVideo2,
    InternVideo2Config,
    fit_internvideo2_state_dict,
    load_internvideo2_checkpoint,
)
from vidsearch.models.internvideo2_bert import BertConfig
from vidsearch.models.internvideo2_itm import itm_match_scores, retrieval_matrices
from vidsearch.models.internvideo2_text import WordPieceTokenizer, pre_text
from vidsearch.models.internvideo2_vision import VisionConfig
from vidsearch.models.preprocess import preprocess_frames

FIXTURES = Path(
    os.environ.get(
        "VIDSEARCH_IV2_FIXTURES", Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "internvideo2"
    )
)
TOL = 1e-4

pytestmark = pytest.mark.skipif(
    not (FIXTURES / "expected.pth").is_file(),
    reason=f"InternVideo2 parity fixtures not found at {FIXTURES} (set VIDSEARCH_IV2_FIXTURES)",
)


def config_from_fixture(conf: dict[str, Any]) -> InternVideo2Config:
    """The port's config from the fixture's official vision-tower and BERT settings."""
    vt, bc = conf["vision_tower"], conf["bert_config"]
    vision = VisionConfig(
        img_size=vt["img_size"],
        patch_size=vt["patch_size"],
        num_frames=vt["num_frames"],
        width=vt["embed_dim"],
        depth=vt["depth"],
        heads=vt["num_heads"],
        mlp_hidden=vt["mlp_hidden"],
        pool_heads=vt["attn_pool_num_heads"],
        pool_dim=vt["clip_embed_dim"],
    )
    text = BertConfig(
        vocab_size=bc["vocab_size"],
        hidden=bc["hidden_size"],
        layers=bc["num_hidden_layers"],
        fusion_layer=bc["fusion_layer"],
        heads=bc["num_attention_heads"],
        intermediate=bc["intermediate_size"],
        max_positions=bc["max_position_embeddings"],
        encoder_width=bc["encoder_width"],
        eps=bc["layer_norm_eps"],
    )
    return InternVideo2Config(
        vision=vision, text=text, embed_dim=conf["embed_dim"], max_txt_l=conf["text"]["max_txt_l"]
    )


@pytest.fixture(scope="module")
def conf() -> dict[str, Any]:
    return json.loads((FIXTURES / "config.json").read_text())


@pytest.fixture(scope="module")
def inputs() -> dict[str, Any]:
    return torch.load(FIXTURES / "inputs.pth", map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def expected() -> dict[str, torch.Tensor]:
    return torch.load(FIXTURES / "expected.pth", map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def model(conf: dict[str, Any]) -> InternVideo2:
    net = InternVideo2(config_from_fixture(conf)).eval()
    return load_internvideo2_checkpoint(net, FIXTURES / "checkpoint.pth")


@pytest.fixture(scope="module")
def tokens(inputs: dict[str, Any], conf: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    return WordPieceTokenizer(inputs["vocab"], conf["text"]["max_txt_l"])(inputs["captions"])


@pytest.fixture(scope="module")
def outputs(model: InternVideo2, inputs: dict[str, Any], tokens: tuple[torch.Tensor, torch.Tensor]) -> dict[str, Any]:
    ids, mask = tokens
    with torch.inference_mode():
        vis_tokens, vis_proj = model.encode_vision(inputs["video"])
        img_tokens, img_proj = model.encode_vision(inputs["image"])
        txt_states, txt_proj = model.encode_text(ids, mask)
    return {
        "vision_embeds": vis_tokens,
        "vision_proj": vis_proj,
        "image_vision_embeds": img_tokens,
        "image_proj": img_proj,
        "text_embeds": txt_states,
        "text_proj": txt_proj,
    }


def close(got: torch.Tensor, want: torch.Tensor, what: str) -> None:
    assert got.shape == want.shape, f"{what}: shape {tuple(got.shape)} vs {tuple(want.shape)}"
    err = (got.float() - want.float()).abs().max().item()
    assert err <= TOL, f"{what}: max abs difference {err:.3g} > {TOL}"


def test_checkpoint_loads_key_for_key_with_one_warning(conf: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    sd = torch.load(FIXTURES / "checkpoint.pth", map_location="cpu", weights_only=True)["module"]
    net = InternVideo2(config_from_fixture(conf))
    with caplog.at_level(logging.WARNING):
        fitted = fit_internvideo2_state_dict(sd, net)
    assert set(fitted) == set(net.state_dict())
    assert set(sd) - set(fitted) == {k for k in sd if UNUSED_AT_INFERENCE.match(k)}
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1


@pytest.mark.parametrize("layout", ["model", "module", "bare"])
def test_three_checkpoint_layouts(conf: dict[str, Any], tmp_path: Path, layout: str) -> None:
    sd = torch.load(FIXTURES / "checkpoint.pth", map_location="cpu", weights_only=True)["module"]
    path = tmp_path / "ck.pth"
    torch.save(sd if layout == "bare" else {layout: sd, "epoch": 3}, path)
    net = load_internvideo2_checkpoint(InternVideo2(config_from_fixture(conf)), path)
    close(net.itm_head.weight.detach(), sd["itm_head.weight"], "itm_head.weight")


def test_preprocessing(inputs: dict[str, Any], conf: dict[str, Any]) -> None:
    t = conf["vision_tower"]["num_frames"]
    for i, raw in enumerate(inputs["raw_videos_uint8_THWC"]):
        idx = middle_indices(len(raw), t)
        assert idx == inputs["frame_indices"][i].tolist()
        sampled = raw.numpy()[idx]
        assert np.array_equal(sampled, inputs["sampled_frames_uint8_TCHW"][i].permute(0, 2, 3, 1).numpy())
        got = preprocess_frames(sampled, conf["vision_tower"]["img_size"], antialias=False)
        close(got, inputs["video_no_antialias"][i], f"video {i} (torchvision 0.14.1 transform)")
        # the same transform with antialias is the fixture's `video` (torchvision >= 0.17)
        got_aa = preprocess_frames(sampled, conf["vision_tower"]["img_size"], antialias=True)
        assert (got_aa - inputs["video"][i]).abs().max().item() < 2e-2


def test_pre_text_and_tokenizer(inputs: dict[str, Any], conf: dict[str, Any]) -> None:
    assert [pre_text(c) for c in inputs["captions_raw"]] == list(inputs["captions"])
    tok = WordPieceTokenizer(inputs["vocab"], conf["text"]["max_txt_l"])
    for text_key, ids_key, mask_key in [
        ("captions", "input_ids", "attention_mask"),
        ("captions_raw", "input_ids_demo", "attention_mask_demo"),
    ]:
        ids, mask = tok(inputs[text_key])
        assert torch.equal(ids, inputs[ids_key]), text_key
        assert torch.equal(mask, inputs[mask_key]), text_key


def test_vision_tower(model: InternVideo2, inputs: dict[str, Any], expected: dict[str, torch.Tensor]) -> None:
    x = inputs["video"].permute(0, 2, 1, 3, 4)
    with torch.inference_mode():
        close(model.vision_encoder.patch_embed(x), expected["video_patch_embed"], "video_patch_embed")
        blocks, pooled = model.vision_encoder(x, return_blocks=True)
        close(blocks, expected["vision_block_outputs"], "vision_block_outputs")
        close(pooled, expected["vision_pooled"], "vision_pooled")
        _, img_pooled = model.vision_encoder(inputs["image"].permute(0, 2, 1, 3, 4))
        close(img_pooled, expected["image_vision_pooled"], "image_vision_pooled")


def test_features_and_itc(outputs: dict[str, Any], expected: dict[str, torch.Tensor]) -> None:
    norm = torch.nn.functional.normalize
    close(outputs["vision_embeds"], expected["vision_embeds"], "vision_embeds")
    close(outputs["vision_proj"], expected["vision_proj"], "vision_proj")
    close(norm(outputs["vision_proj"], dim=-1), expected["vision_feat"], "vision_feat")
    close(outputs["image_vision_embeds"], expected["image_vision_embeds"], "image_vision_embeds")
    close(norm(outputs["image_proj"], dim=-1), expected["image_vision_feat"], "image_vision_feat")
    close(outputs["text_embeds"], expected["text_embeds"], "text_embeds")
    close(outputs["text_embeds"][:, 0], expected["text_cls"], "text_cls")
    close(outputs["text_proj"], expected["text_proj"], "text_proj")
    tf = norm(outputs["text_proj"], dim=-1)
    vf = norm(outputs["vision_proj"], dim=-1)
    close(tf, expected["text_feat"], "text_feat")
    close(vf @ tf.T, expected["sim_v2t"], "sim_v2t")
    close(tf @ vf.T, expected["sim_t2v"], "sim_t2v")
    close((100 * vf @ tf.T).softmax(-1), expected["demo_probs_v2t"], "demo_probs_v2t")


def test_text_and_fusion_layers(
    model: InternVideo2,
    outputs: dict[str, Any],
    tokens: tuple[torch.Tensor, torch.Tensor],
    expected: dict[str, torch.Tensor],
) -> None:
    ids, mask = tokens
    fusion = expected["fusion_hidden_states"]  # [layer, text, video, L, H]
    with torch.inference_mode():
        close(torch.stack(model.text_encoder.text_states(ids, mask)), expected["text_hidden_states"], "text layers")
        for t in range(fusion.shape[1]):
            for v in range(fusion.shape[2]):
                states = model.text_encoder.fusion_states(
                    outputs["text_embeds"][t : t + 1], mask[t : t + 1], outputs["vision_embeds"][v : v + 1]
                )
                close(torch.stack(states)[:, 0], fusion[:, t, v], f"fusion states (text {t}, video {v})")
                logits = model.itm_logits(
                    outputs["text_embeds"][t : t + 1], mask[t : t + 1], outputs["vision_embeds"][v : v + 1]
                )
                close(logits[0], expected["itm_logits"][t, v], f"itm_logits (text {t}, video {v})")
        n_text, n_video = expected["itm_score"].shape
        scores = itm_match_scores(
            model,
            outputs["text_embeds"].repeat_interleave(n_video, 0),
            mask.repeat_interleave(n_video, 0),
            outputs["vision_embeds"].repeat(n_text, 1, 1),
            batch=3,
        )
        close(scores.view(n_text, n_video), expected["itm_score"], "itm_score")


@pytest.mark.parametrize("prefix,k_test", [("eval_", 128), ("eval_k1_", None)])
def test_official_evaluation(
    model: InternVideo2,
    outputs: dict[str, Any],
    tokens: tuple[torch.Tensor, torch.Tensor],
    expected: dict[str, torch.Tensor],
    conf: dict[str, Any],
    prefix: str,
    k_test: int | None,
) -> None:
    k = k_test if k_test is not None else conf["spec"]["k_test_small"]
    with torch.inference_mode():
        got = retrieval_matrices(
            model,
            outputs["vision_embeds"],
            outputs["vision_proj"],
            outputs["text_embeds"],
            tokens[1],
            outputs["text_proj"],
            k_test=k,
        )
    names = [
        n for n in expected if n.startswith(prefix) and re.fullmatch(r"(i2t|t2i)_(sim|dsl|match)", n[len(prefix) :])
    ]
    assert len(names) == 6
    for name in names:
        want = expected[name]
        close(got[name[len(prefix) :]], want, name)
        # the rankings the evaluation's recall is computed from, reproduced exactly
        assert torch.equal(
            got[name[len(prefix) :]].argsort(dim=1, descending=True, stable=True),
            want.argsort(dim=1, descending=True, stable=True),
        ), name


def test_key_manifest_1b_maps_one_to_one() -> None:
    lines = [
        ln.split("\t") for ln in (FIXTURES / "keys_1b.txt").read_text().splitlines() if ln and not ln.startswith("#")
    ]
    manifest = {k: tuple(json.loads(shape)) for k, shape, *_ in lines}
    roles = {k: role for k, _, _, role in lines}
    with torch.device("meta"):
        net = InternVideo2(InternVideo2Config())
    ours = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    unused = {k for k in manifest if UNUSED_AT_INFERENCE.match(k)}
    assert unused == {k for k, r in roles.items() if r.startswith("unused_at_inference") or r == "buffer"}
    assert set(manifest) - unused == set(ours)
    assert all(manifest[k] == shape for k, shape in ours.items())
    n_params = sum(int(np.prod(s)) for k, s in manifest.items() if k not in unused)
    assert n_params == sum(int(np.prod(s)) for s in ours.values())
