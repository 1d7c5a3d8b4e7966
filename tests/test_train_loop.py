"""The training loop: loss, schedule, optimizer groups, learning, checkpoints, exact resume."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vidsearch.train.data import Clip, build_frame_cache
from vidsearch.train.loop import TrainConfig, Trainer, build_optimizer, contrastive_loss, lr_at

TINY = dict(
    input_resolution=16,
    patch_size=8,
    vision_width=32,
    vision_layers=1,
    vision_heads=2,
    embed_dim=16,
    num_frames=4,
    text_width=32,
    text_layers=1,
    text_heads=2,
)


def test_contrastive_loss_matches_the_definition():
    torch.manual_seed(0)
    v, t = torch.randn(5, 8), torch.randn(5, 8)
    temp = torch.tensor(0.05)
    logits = F.normalize(v, dim=-1) @ F.normalize(t, dim=-1).t() / 0.05
    want = 0.5 * (F.cross_entropy(logits, torch.arange(5)) + F.cross_entropy(logits.t(), torch.arange(5)))
    assert torch.allclose(contrastive_loss(v, t, temp), want)
    assert torch.allclose(contrastive_loss(v, t, temp, torch.arange(5)), want)


def test_duplicate_captions_are_positives_not_negatives():
    # Two clips with the same caption at an angle `a` to each other (texts equal to videos):
    # with the duplicates known the loss falls as the twins come together; counted as each
    # other's negatives it would rise, pushing them apart.
    def loss(a, ids):
        e = torch.tensor([[1.0, 0.0, 0.0], [math.cos(a), math.sin(a), 0.0], [0.0, 0.0, 1.0]])
        return contrastive_loss(e, e, torch.tensor(0.1), ids).item()

    ids = torch.tensor([7, 7, 3])
    assert loss(0.2, ids) < loss(0.6, ids)
    assert loss(0.2, None) > loss(0.6, None)


def test_lr_schedule_warms_up_then_decays_to_the_floor():
    total, base = 100, 1e-3
    lrs = [lr_at(s, total, base, warmup=0.1, min_ratio=0.01) for s in range(total)]
    assert lrs[0] == pytest.approx(base / 10)
    assert lrs[9] == pytest.approx(base)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:], strict=False))
    assert lrs[-1] == pytest.approx(base * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * 89 / 90))))
    assert lr_at(10**6, total, base, 0.1, 0.01) == pytest.approx(base * 0.01)


def test_optimizer_does_not_decay_norms_biases_embeddings_or_temp():
    from vidsearch.models.viclip import ViCLIP, ViCLIPConfig

    model = ViCLIP(ViCLIPConfig(**TINY))
    opt = build_optimizer(model, 1e-3, 0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    no_decay = {names[id(p)] for p in opt.param_groups[1]["params"]}
    decay = {names[id(p)] for p in opt.param_groups[0]["params"]}
    assert "temp" in no_decay and "text_encoder.token_embedding.weight" in no_decay
    assert "vision_encoder.temporal_positional_embedding" in no_decay
    assert "vision_encoder.proj" in decay and "vision_encoder.transformer.resblocks.0.attn.in_proj_weight" in decay
    assert len(no_decay) + len(decay) == len(names)


def _data(tmp_path: Path, n: int = 24):
    """Clips whose colour (red/green/blue) is what the caption says: learnable in a few steps."""
    colours = {"red": (230, 20, 20), "green": (20, 220, 20), "blue": (20, 20, 230)}
    names = list(colours)
    videos = [tmp_path / f"v{i}.mp4" for i in range(n)]
    clips = [Clip(v, f"a {names[i % 3]} video") for i, v in enumerate(videos)]

    def decode(path: Path, count: int, res: int) -> np.ndarray:
        i = int(path.stem[1:])
        rng = np.random.default_rng(i)
        frames = rng.integers(0, 60, size=(count, res, res, 3)).astype(np.int32)
        frames += np.asarray(colours[names[i % 3]]) // 2
        return np.clip(frames, 0, 255).astype(np.uint8)

    cache = build_frame_cache(
        videos, tmp_path / "cache.npy", cache_frames=6, resolution=16, max_bytes=10**8, decode=decode
    )
    return clips, cache


def _trainer(tmp_path: Path, out: Path | None, **kw) -> Trainer:
    from vidsearch.models.viclip import ViCLIP, ViCLIPConfig

    clips, cache = _data(tmp_path)
    torch.manual_seed(0)
    model = ViCLIP(ViCLIPConfig(**TINY))
    cfg = TrainConfig(
        **{
            **dict(
                epochs=2,
                lr=3e-3,
                batch_size=6,
                num_frames=4,
                temp_init=0.1,
                warmup=0.1,
                crop_scale=0.8,
                crop_shift=0.1,
                masking_prob=0.25,
            ),
            **kw,
        }
    )
    return Trainer(model, cfg, clips[:18], cache, clips[18:], cache, out_dir=out, tokenize=lambda caps: _tokens(caps))


def _tokens(captions) -> torch.Tensor:
    from vidsearch.models.tokenizer import tokenize

    return tokenize(list(captions), context_length=32)


def test_training_lowers_the_loss_and_validates(tmp_path):
    tr = _trainer(tmp_path, None, epochs=6)
    steps = []
    history = tr.fit(on_step=steps.append)
    assert len(steps) == 6 * 3 and steps[-1].global_step == tr.total_steps
    first = np.mean([s.loss for s in steps[:3]])
    last = np.mean([s.loss for s in steps[-3:]])
    assert last < first - 0.2, (first, last)
    assert set(history[-1].val) == {"t2v", "v2t"} and history[-1].val["t2v"]["count"] == 6
    assert all(s.temp >= 0.01 for s in steps)


def test_checkpoint_loads_as_an_encoder_and_resume_is_exact(tmp_path):
    from vidsearch.models import EncoderSpec, open_encoder

    out = tmp_path / "run"
    straight = _trainer(tmp_path, None)
    straight.fit()

    first = _trainer(tmp_path, out, epochs=2)
    first.train_epoch()  # "interrupted" after epoch 1
    assert (out / "epoch-001.pth").exists() and (out / "epoch-001.json").exists()
    resumed = _trainer(tmp_path, out, epochs=2)
    assert resumed.resume() == 1
    resumed.fit()
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values(), strict=False):
        assert torch.allclose(a, b, atol=1e-6), name

    enc = open_encoder(EncoderSpec(str(out / "model.pth"), device="cpu"))
    assert enc.num_frames == 4 and enc.resolution == 16
    frames = np.zeros((1, 4, 16, 16, 3), np.uint8)
    v = enc.encode_video(frames)
    with torch.no_grad():
        ref = F.normalize(
            resumed.model.eval().encode_video(
                torch.from_numpy(np.zeros((1, 4, 3, 16, 16), np.float32))
                .sub(torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1))
                .div(torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1))
            ),
            dim=-1,
        ).numpy()
    assert np.allclose(v, ref, atol=1e-5)


def _direction_trainer(
    tmp_path: Path, groups: list[str | None] | None = None, captions: list[str] | None = None, **kw
) -> Trainer:
    """Six clips whose frames encode (video, frame) so a reversal is visible; captions name directions."""
    from vidsearch.models.viclip import ViCLIP, ViCLIPConfig

    caps = captions or [
        "a dot moving left",
        "a dot moving right",
        "a dot moving up",
        "a dot standing still",
        "a dot moving left",
        "a dot moving down",
    ]
    videos = [tmp_path / f"d{i}.mp4" for i in range(len(caps))]

    def decode(path: Path, count: int, res: int) -> np.ndarray:
        i = int(path.stem[1:])
        frames = np.zeros((count, res, res, 3), np.uint8)
        frames += (np.arange(count) * 20 + i * 3).astype(np.uint8)[:, None, None, None]
        return frames

    cache = build_frame_cache(
        videos, tmp_path / "dcache.npy", cache_frames=8, resolution=16, max_bytes=10**8, decode=decode
    )
    torch.manual_seed(0)
    model = ViCLIP(ViCLIPConfig(**TINY))
    cfg = TrainConfig(
        **{
            **dict(
                epochs=1,
                lr=1e-3,
                batch_size=6,
                num_frames=4,
                crop_scale=0.7,
                crop_shift=0.1,
                reverse_pairs=(("left", "right"), ("up", "down")),
            ),
            **kw,
        }
    )
    clips = [Clip(v, c, g) for v, c, g in zip(videos, caps, groups or [None] * len(caps), strict=False)]
    return Trainer(model, cfg, clips, cache, out_dir=None, tokenize=lambda c: _tokens(c))


def test_reversed_clips_join_their_batch_with_swapped_captions(tmp_path):
    tr = _direction_trainer(tmp_path)
    idx = [0, 1, 2, 3, 5]  # left, right, up, still (no reversible word), down
    rng = np.random.default_rng(0)
    x, tok, cids = tr._batch(idx, rng, torch.Generator().manual_seed(0))
    assert x.shape[0] == 5 + 4 and tok.shape[0] == 9 and cids.shape[0] == 9
    caps = [tr.captions[i] for i in cids.tolist()]
    assert caps[5:] == ["a dot moving right", "a dot moving left", "a dot moving down", "a dot moving up"]
    # the same sampled (jittered, cropped) frames, in reverse order: frame order is the only difference
    for rev, orig in zip(range(5, 9), (0, 1, 2, 4), strict=False):
        assert torch.equal(x[rev], x[orig].flip(0))
        assert not torch.equal(x[rev], x[orig])
    # a reversed clip whose caption another clip of the batch carries shares its caption id, so
    # the loss counts the two as positives of each other, not as negatives
    assert cids[5] == cids[1] and cids[6] == cids[0]
    assert torch.equal(tok[5], tok[1])
    # reversed captions that no training clip has are tokenized too
    assert torch.equal(tok[7], tr.tokens[tr.caption_id["a dot moving down"]])


def test_without_reverse_pairs_batches_are_unchanged(tmp_path):
    tr = _direction_trainer(tmp_path, reverse_pairs=())
    x, _, cids = tr._batch([0, 1, 3], np.random.default_rng(0), torch.Generator().manual_seed(0))
    assert x.shape[0] == 3 and len(set(tr.captions)) == 5


def test_groups_make_paraphrases_positives_and_reversed_clips_take_the_swapped_group(tmp_path):
    caps = [
        "a dot moving left",
        "one dot going to the left",
        "a dot moving right",
        "the dot heads up",
        "a dot moving down",
    ]
    groups = ["dot left", "dot left", "dot right", "dot up", None]
    tr = _direction_trainer(tmp_path, groups=groups, captions=caps)
    idx = [0, 1, 2, 3, 4]
    x, tok, cids = tr._batch(idx, np.random.default_rng(0), torch.Generator().manual_seed(0))
    kids = tr.batch_keys(idx)
    assert kids.shape[0] == x.shape[0] == 10
    # paraphrases of one group share a key (positives), other groups do not; captions stay distinct
    assert kids[0] == kids[1] and len(set(kids[:5].tolist())) == 4 and len(set(cids[:5].tolist())) == 5
    # reversed "dot left" clips are the group "dot right"; reversed "dot up" has no clip of its own group
    assert kids[5] == kids[6] == kids[2] and kids[7] == kids[0] and kids[8] not in kids[:5]
    # without a group the reversed clip's key is its reversed caption, as before
    assert kids[9].item() == tr.key_id["a dot moving up"]
    # the loss counts the paraphrases as positives: it equals the loss with ids = keys
    v, t = torch.randn(10, 8), torch.randn(10, 8)
    temp = torch.tensor(0.1)
    assert not torch.isclose(contrastive_loss(v, t, temp, kids), contrastive_loss(v, t, temp, cids))
    # batches avoid repeating a group like they avoid repeating a caption
    tr.cfg.batch_size = 2
    batches, _, _ = tr.epoch_batches(1)
    assert all(len({groups[i] or caps[i] for i in b}) == len(b) for b in batches)


def test_reverse_margin_adds_the_hinge_of_each_clip_and_its_reversal(tmp_path):
    from vidsearch.train.optim import reversal_hinge

    v = torch.randn(3, 8)
    assert reversal_hinge(v, v, 0.8).item() == pytest.approx(0.2)  # cosine 1: 1 - 0.8
    assert reversal_hinge(v, -v, 0.8).item() == 0.0 and reversal_hinge(v[:0], v[:0], 0.8).item() == 0.0
    idx = [0, 1, 2, 3, 5]  # "a dot standing still" (3) has no reversal
    losses = {}
    for margin in (None, 0.5):
        tr = _direction_trainer(tmp_path / str(margin), reverse_margin=margin, crop_scale=1.0, crop_shift=0.0)
        x, tok, _ = tr._batch(idx, np.random.default_rng(0), torch.Generator().manual_seed(0))
        with torch.no_grad():
            vid, txt = tr.model.encode_video(x), tr.model.encode_text(tok)
        has = torch.tensor([True, True, True, False, True])
        want = contrastive_loss(vid, txt, tr.model.temp, tr.batch_keys(idx))
        if margin is not None:
            want = want + reversal_hinge(vid[:5][has], vid[5:], margin) + reversal_hinge(txt[:5][has], txt[5:], margin)
        losses[margin], _ = tr.train_step(idx, np.random.default_rng(0), torch.Generator().manual_seed(0), 1e-3)
        assert losses[margin] == pytest.approx(want.item(), rel=1e-5)
    # a fresh model embeds a clip and its reversal alike, so the hinge is active
    assert losses[0.5] > losses[None]


def test_neighbour_hinge_keeps_captions_of_different_groups_apart():
    from vidsearch.train.optim import neighbour_hinge

    a, a2, b = torch.tensor([1.0, 0.0]), torch.tensor([1.0, 0.1]), torch.tensor([0.0, 1.0])
    keys = torch.tensor([0, 1, 2])
    # rows 0 and 1 nearly merged, row 2 far from both: each row's nearest other-key row counts once
    emb = torch.stack([a, a2, b])
    cos = float(torch.nn.functional.cosine_similarity(a, a2, dim=0))
    assert cos > 0.99 and float(torch.nn.functional.cosine_similarity(a2, b, dim=0)) < 0.7
    assert neighbour_hinge(emb, keys, 0.7).item() == pytest.approx(2 * (cos - 0.7) / 3)
    # the same merged rows as paraphrases (one key) are left alone
    assert neighbour_hinge(emb, torch.tensor([0, 0, 2]), 0.7).item() == 0.0
    assert neighbour_hinge(emb, torch.tensor([5, 5, 5]), 0.7).item() == 0.0  # no other key at all
    emb.requires_grad_(True)
    neighbour_hinge(emb, keys, 0.7).backward()
    assert emb.grad[:2].abs().sum() > 0 and emb.grad[2].abs().sum() == 0


def test_text_margin_adds_the_neighbour_hinge_of_the_captions(tmp_path):
    from vidsearch.train.optim import neighbour_hinge

    idx = [0, 1, 2, 3, 5]
    for margin in (None, -0.5):
        tr = _direction_trainer(tmp_path / str(margin), text_margin=margin, crop_scale=1.0, crop_shift=0.0)
        x, tok, _ = tr._batch(idx, np.random.default_rng(0), torch.Generator().manual_seed(0))
        with torch.no_grad():
            vid, txt = tr.model.encode_video(x), tr.model.encode_text(tok)
        kids = tr.batch_keys(idx)
        want = contrastive_loss(vid, txt, tr.model.temp, kids)
        if margin is not None:
            hinge = neighbour_hinge(txt, kids, margin)
            assert hinge.item() > 0  # a margin of -0.5 is always active on random embeddings
            want = want + hinge
        loss, _ = tr.train_step(idx, np.random.default_rng(0), torch.Generator().manual_seed(0), 1e-3)
        assert loss == pytest.approx(want.item(), rel=1e-5)


def test_temporal_lr_scale_gives_the_temporal_embedding_its_own_rate(tmp_path):
    from vidsearch.models.viclip import ViCLIP, ViCLIPConfig

    model = ViCLIP(ViCLIPConfig(**TINY))
    assert len(build_optimizer(model, 1e-3, 0.1).param_groups) == 2
    opt = build_optimizer(model, 1e-3, 0.1, temporal_lr_scale=10.0)
    names = {id(p): n for n, p in model.named_parameters()}
    assert [names[id(p)] for p in opt.param_groups[2]["params"]] == ["vision_encoder.temporal_positional_embedding"]
    assert opt.param_groups[2]["weight_decay"] == 0.0
    assert sum(len(g["params"]) for g in opt.param_groups) == len(names)

    tr = _direction_trainer(tmp_path, temporal_lr_scale=10.0)
    steps = []
    tr.fit(on_step=steps.append)
    lrs = [g["lr"] for g in tr.optimizer.param_groups]
    assert lrs[2] == pytest.approx(10 * steps[-1].lr) and lrs[0] == pytest.approx(steps[-1].lr)


def test_scratch_models_start_with_a_random_temporal_embedding(tmp_path):
    # zeros (the official init) would make a scratch model exactly blind to frame order
    import json

    from vidsearch.train.run import FinetuneJob, build_model

    cfg = tmp_path / "tiny.json"
    cfg.write_text(json.dumps(TINY))
    job = FinetuneJob(annotations=tmp_path / "a.json", videos=tmp_path, out=tmp_path / "o", model_config=cfg)
    embed = build_model(job, None, seed=0).vision_encoder.temporal_positional_embedding
    assert embed.shape == (1, 4, 32) and 0.1 < float(embed.detach().std()) < 0.3  # std width**-0.5 = 0.18
    assert torch.equal(embed, build_model(job, None, seed=0).vision_encoder.temporal_positional_embedding)
    assert build_model(job, 2, seed=0).vision_encoder.temporal_positional_embedding.shape == (1, 2, 32)
    job.temporal_init_std = 1.0  # --temporal-init-std: frames more distinct at the start
    wide = build_model(job, None, seed=0).vision_encoder.temporal_positional_embedding
    assert 0.6 < float(wide.detach().std()) < 1.6
