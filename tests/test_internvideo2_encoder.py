"""The InternVideo2 family end to end: routing, loading, encoding, ITM, index and query on generated videos.

The model is random-weight and of the 1B model's layout (patch 14, tubelet 1, 4 frames, q/k
RMSNorm, attention pooling, BERT text layers then fusion layers, a [CLS]-only tokenizer) with
its widths, depths and resolution reduced so that the tests stay fast.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
import videogen
from test_cli_hardening import run_main
from typer.testing import CliRunner

from vidsearch.cli import commands  # noqa: F401  (registers the commands)
from vidsearch.cli.main import app
from vidsearch.errors import WeightsNotFoundError
from vidsearch.models import EncoderSpec, open_encoder
from vidsearch.models.internvideo2 import InternVideo2, InternVideo2Config
from vidsearch.models.internvideo2_bert import BertConfig
from vidsearch.models.internvideo2_encoder import InternVideo2Encoder
from vidsearch.models.internvideo2_vision import VisionConfig
from vidsearch.models.registry import describe_encoder, model_key

SPECIAL = ["[PAD]"] + [f"[unused{i}]" for i in range(99)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = "a the red green blue square moving gradient noise dog car runs ##s video of".split()

SMALL = InternVideo2Config(
    vision=VisionConfig(
        img_size=56, patch_size=14, num_frames=4, width=64, depth=2, heads=4, mlp_hidden=279, pool_heads=4, pool_dim=48
    ),
    text=BertConfig(
        vocab_size=len(SPECIAL) + len(WORDS),
        hidden=32,
        layers=3,
        fusion_layer=2,
        heads=2,
        intermediate=64,
        encoder_width=64,
    ),
    embed_dim=24,
    max_txt_l=12,
)

runner = CliRunner()


def write_model(
    folder: Path, cfg: InternVideo2Config = SMALL, seed: int = 0, dtype: torch.dtype = torch.float32
) -> Path:
    """A random-weight checkpoint in the official layout (``{"module": ...}`` with the unused
    keys the published file has), its config JSON and vocab.txt beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    net = InternVideo2(cfg)
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.2 if p.ndim > 1 else 0.1)
    sd = {k: v.to(dtype) for k, v in net.state_dict().items()}
    sd["temp"] = torch.tensor(0.07)
    sd["vision_encoder.clip_decoder.0.head.weight"] = torch.zeros(8, cfg.vision.width)
    path = folder / "iv2-small.pt"
    torch.save({"module": sd}, path)
    path.with_suffix(".json").write_text(json.dumps({"family": "internvideo2", **cfg.to_dict()}))
    (folder / "vocab.txt").write_text("\n".join(SPECIAL + WORDS) + "\n")
    return path


@pytest.fixture(scope="module")
def small_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_model(tmp_path_factory.mktemp("iv2"))


def clips(n: int, t: int = 4, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, t, 70, 90, 3), dtype=np.uint8)


def test_routes_loads_and_encodes(small_model: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        enc = open_encoder(EncoderSpec(str(small_model), device="cpu"))
    assert isinstance(enc, InternVideo2Encoder)
    assert enc.temperature == pytest.approx(0.07)
    assert [r.message for r in caplog.records if "ignored 2 key(s)" in r.getMessage()]
    assert enc.key.startswith("internvideo2-custom-") and enc.key == model_key(str(small_model))
    info = describe_encoder(str(small_model))
    assert (info.num_frames, info.resolution, info.embed_dim) == (4, 56, 24)
    v = enc.encode_video(clips(3))
    t = enc.encode_text(["A red square, moving!", "noise"])
    assert v.shape == (3, 24) and t.shape == (2, 24)
    assert np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
    assert np.allclose(np.linalg.norm(t, axis=1), 1, atol=1e-5)
    # pre_text makes case and punctuation irrelevant
    assert np.allclose(enc.encode_text(["a red square moving"]), t[:1], atol=1e-6)
    # one image (T=1) uses the image position table
    assert enc.encode_video(clips(1, t=1)).shape == (1, 24)
    with pytest.raises(ValueError, match="4 frames"):
        enc.encode_video(clips(1, t=3))


def test_itm_scores_match_the_fusion_path(small_model: Path) -> None:
    enc = open_encoder(EncoderSpec(str(small_model), device="cpu"))
    assert isinstance(enc, InternVideo2Encoder)
    tokens = enc.video_tokens(clips(3))
    assert tokens.shape == (3, 1 + 4 * 16, 64)
    states, mask = enc.text_states(["a green square"])
    scores = enc.itm_scores(states, mask, tokens)
    with torch.inference_mode():
        want = [enc.model.itm_logits(states, mask, tokens[i : i + 1])[0, 1].item() for i in range(3)]
    assert np.allclose(scores, want, atol=1e-5)
    assert len(set(np.round(scores, 5))) == 3
    # one video against several captions broadcasts the other way
    states3, mask3 = enc.text_states(["a green square", "noise", "a red car"])
    per_text = enc.itm_scores(states3, mask3, tokens[:1])
    assert per_text[0] == pytest.approx(scores[0], abs=1e-5) and per_text.shape == (3,)


def test_bf16_file_loads_as_it_is(tmp_path: Path, small_model: Path) -> None:
    bf16 = write_model(tmp_path / "bf16", dtype=torch.bfloat16)
    a = open_encoder(EncoderSpec(str(small_model), device="cpu"))
    b = open_encoder(EncoderSpec(str(bf16), device="cpu"))
    assert next(b.model.parameters()).dtype == torch.float32
    cos = (a.encode_video(clips(2)) * b.encode_video(clips(2))).sum(1)
    assert cos.min() > 0.99


def test_preset_without_weights_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(WeightsNotFoundError, match="internvideo2-1b.*offline") as err:
        model_key("internvideo2-1b")
    assert "\n" not in str(err.value)
    videogen.write_video(tmp_path / "v" / "a.mp4", seconds=1, fps=8, pattern="gradient")
    args = ["index", str(tmp_path / "v"), "--library", str(tmp_path / "lib"), "--model", "internvideo2-1b"]
    code, _, err = run_main(*args)
    assert code == 2
    assert "no weights for internvideo2-1b" in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_index_and_query_end_to_end(small_model: Path, tmp_path: Path) -> None:
    folder = tmp_path / "videos"
    videogen.write_video(folder / "gradient.mp4", seconds=2, fps=8, pattern="gradient", color=(200, 40, 40))
    videogen.write_video(folder / "square.mp4", seconds=2, fps=8, pattern="moving_square", color=(40, 200, 40))
    lib = tmp_path / "lib"
    args = ["index", str(folder), "--library", str(lib), "--model", str(small_model), "--workers", "1", "--json"]
    result = runner.invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.stdout
    report = json.loads(result.stdout)
    assert report["added"] == 2 and report["failed"] == []
    result = runner.invoke(app, ["query", "a green square", "--library", str(lib), "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.stdout
    text_hits = json.loads(result.stdout)
    assert {Path(h["path"]).name for h in text_hits} == {"gradient.mp4", "square.mp4"}
    # a video of the library, as the query, finds itself first
    result = runner.invoke(app, ["query", "--video", str(folder / "square.mp4"), "--library", str(lib), "--json"])
    hits = json.loads(result.stdout)
    assert Path(hits[0]["path"]).name == "square.mp4" and hits[0]["score"] == pytest.approx(1.0, abs=1e-4)

    # ITM re-ranking: the same candidates, re-ordered by the match logit of their frames
    args = ["query", "a green square", "--library", str(lib), "--json", "--rerank", "itm", "--rerank-k", "2"]
    result = runner.invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.stdout
    reranked = json.loads(result.stdout)
    assert [h["rank"] for h in reranked] == [1, 2]
    assert {h["path"] for h in reranked} == {h["path"] for h in text_hits}
    enc = open_encoder(EncoderSpec(str(small_model), device="cpu"))
    from vidsearch.media.span import read_span

    frames = np.stack([read_span(h["path"], 4, 56) for h in reranked])
    want = enc.itm_scores(*enc.text_states(["a green square"]), enc.video_tokens(frames))
    assert [h["score"] for h in reranked] == pytest.approx(list(want), abs=1e-4)
    assert want[0] >= want[1]
    # past --rerank-k the hits keep their ITC order and cosine
    args = ["query", "a green square", "--library", str(lib), "--json", "--rerank", "itm", "--rerank-k", "1"]
    one = json.loads(runner.invoke(app, args, catch_exceptions=False).stdout)
    assert [h["rank"] for h in one] == [1, 2] and one[0]["path"] == text_hits[0]["path"]
    assert one[1]["score"] == pytest.approx(text_hits[1]["score"])
    # bad re-ranking arguments: one line, exit 2, before any model loads
    for bad, says in [
        (["--rerank", "bm25"], "unknown re-ranker"),
        (["--rerank", "itm", "--rerank-k", "0"], "re-rank at least 1"),
        (["--rerank-k", "4"], "--rerank-k only applies together with re-ranking"),
    ]:
        code, _, err = run_main("query", "a dog", "--library", str(lib), *bad)
        assert code == 2 and says in err and len(err.strip().splitlines()) == 1, err


def test_rerank_needs_an_itm_head(tmp_path: Path, tiny_checkpoint: Path) -> None:
    folder = tmp_path / "videos"
    videogen.write_video(folder / "a.mp4", seconds=1, fps=8, pattern="gradient")
    lib = tmp_path / "lib"
    code, _, err = run_main(
        "index", str(folder), "--library", str(lib), "--model", str(tiny_checkpoint), "--workers", "1"
    )
    assert code == 0, err
    code, _, err = run_main("query", "a dog", "--library", str(lib), "--rerank", "itm")
    assert code == 2 and "image-text matching head" in err and len(err.strip().splitlines()) == 1, err


def test_int8_on_cpu_agrees_with_fp32(small_model: Path) -> None:
    from vidsearch.models import EncoderSpec, open_encoder

    fp32 = open_encoder(EncoderSpec(str(small_model), device="cpu", precision="fp32"))
    int8 = open_encoder(EncoderSpec(str(small_model), device="cpu", precision="int8"))
    assert int8.key == fp32.key + "+int8" and int8.spec["precision"] == "int8"
    assert any("Quantized" in type(m).__name__ or "quantized" in type(m).__module__ for m in int8.model.modules())
    assert (fp32.encode_video(clips(3)) * int8.encode_video(clips(3))).sum(1).min() > 0.999
    texts = ["a red square", "noise video"]
    assert (fp32.encode_text(texts) * int8.encode_text(texts)).sum(1).min() > 0.999
    # ITM still runs on the quantized model
    assert int8.itm_scores(*int8.text_states(texts[:1]), int8.video_tokens(clips(2))).shape == (2,)


def test_vocab_offline_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_model(tmp_path / "m")
    (path.parent / "vocab.txt").unlink()
    with pytest.raises(WeightsNotFoundError, match="vocab.txt.*offline") as err:
        open_encoder(EncoderSpec(str(path), device="cpu"))
    assert "\n" not in str(err.value) and "bert-large-uncased" in str(err.value)
    vocab = tmp_path / "elsewhere.txt"
    vocab.write_text("\n".join(SPECIAL + WORDS) + "\n")
    monkeypatch.setenv("VIDSEARCH_BERT_VOCAB", str(vocab))
    assert open_encoder(EncoderSpec(str(path), device="cpu")).encode_text(["a dog"]).shape == (1, 24)
