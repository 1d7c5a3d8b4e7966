"""Trainer features: best-checkpoint selection, early stopping, the learning-rate range test."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_train_loop import TINY, _data, _tokens, _trainer  # tests/ is on sys.path (conftest.py)

from vidsearch.train.loop import selection_score
from vidsearch.train.lrfind import lr_range_test


def _val(r1: float, rsum_extra: float = 0.0) -> dict[str, dict[str, float]]:
    t2v = {"R@1": r1, "R@5": 50.0 + rsum_extra, "R@10": 80.0}
    return {"t2v": t2v, "v2t": {"R@1": 10.0, "R@5": 40.0, "R@10": 70.0}}


def _scripted(tr, scores: list[dict]) -> None:
    """Make ``tr.validate`` return ``scores`` in turn (the selection logic, not the model, is under test)."""
    it = iter(scores)
    tr.validate = lambda: next(it)


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def test_selection_score_orders_by_metric_then_recall_sum():
    assert selection_score(_val(40.0)) > selection_score(_val(30.0, rsum_extra=40))
    assert selection_score(_val(40.0, rsum_extra=5)) > selection_score(_val(40.0))
    assert selection_score(_val(40.0), "t2v/R@5") == (50.0, 40 + 50 + 80 + 10 + 40 + 70)
    with pytest.raises(ValueError, match="t2v/R@1"):
        selection_score(_val(1.0), "loss")


def test_best_epoch_is_kept_beside_the_last_and_becomes_model_pth(tmp_path):
    out = tmp_path / "run"
    tr = _trainer(tmp_path, out, epochs=4)
    _scripted(tr, [_val(20.0), _val(50.0), _val(50.0), _val(40.0)])  # epoch 3 ties epoch 2: not better
    after = []
    tr.fit(on_epoch=lambda e: after.append(_weights(tr.model)))
    assert [h.best for h in tr.history] == [True, True, False, False]
    assert tr.best_epoch == 2 and tr.selected == "best" and not tr.stopped_early
    load = lambda name: torch.load(out / name, map_location="cpu", weights_only=True)["model"]  # noqa: E731
    assert _same(load("best.pth"), after[1]) and _same(load("model.pth"), after[1])
    assert _same(load("last.pth"), after[3]) and not _same(after[1], after[3])
    assert (out / "best.json").exists() and (out / "last.json").exists()
    assert _same(_weights(tr.model), after[1])  # the trainer ends holding the selected weights


def test_no_select_best_keeps_the_last_weights(tmp_path):
    out = tmp_path / "run"
    tr = _trainer(tmp_path, out, epochs=2, select_best=False)
    _scripted(tr, [_val(50.0), _val(10.0)])
    tr.fit()
    assert tr.selected == "last" and not (out / "best.pth").exists()
    last = torch.load(out / "last.pth", map_location="cpu", weights_only=True)["model"]
    model = torch.load(out / "model.pth", map_location="cpu", weights_only=True)["model"]
    assert _same(last, model)


def test_patience_stops_early_and_a_resume_keeps_the_best(tmp_path):
    out = tmp_path / "run"
    scores = [_val(10.0), _val(30.0), _val(20.0), _val(25.0), _val(60.0), _val(70.0)]
    tr = _trainer(tmp_path, out, epochs=6, patience=2)
    _scripted(tr, scores)
    tr.fit()
    # epoch 2 was best; epochs 3 and 4 brought nothing: stop after 4, never see epoch 5's 60
    assert [h.epoch for h in tr.history] == [1, 2, 3, 4] and tr.stopped_early and tr.best_epoch == 2

    again = _trainer(tmp_path, out, epochs=6, patience=2)
    assert again.resume() == 4 and again.stopped_early and again.best_epoch == 2
    again.fit()  # nothing left to do: the stop is part of the saved state
    assert len(again.history) == 4

    # an interrupted run resumed: the best of the first part still counts
    out2 = tmp_path / "run2"
    first = _trainer(tmp_path, out2, epochs=3)
    _scripted(first, scores[:2])
    first.train_epoch()
    first.train_epoch()
    second = _trainer(tmp_path, out2, epochs=3)
    assert second.resume() == 2 and second.best_epoch == 2
    _scripted(second, [_val(5.0)])
    second.fit()
    assert second.best_epoch == 2 and second.selected == "best"
    best = torch.load(out2 / "best.pth", map_location="cpu", weights_only=True)["model"]
    assert _same(best, _weights(second.model))


def test_without_validation_there_is_nothing_to_select(tmp_path):
    from vidsearch.models.viclip import ViCLIP, ViCLIPConfig
    from vidsearch.train.loop import TrainConfig, Trainer

    clips, cache = _data(tmp_path)
    tr = Trainer(
        ViCLIP(ViCLIPConfig(**TINY)),
        TrainConfig(epochs=1, batch_size=6, num_frames=4, patience=1),
        clips,
        cache,
        out_dir=tmp_path / "o",
        tokenize=_tokens,
    )
    tr.fit()
    assert tr.selected == "last" and tr.best_epoch == 0 and not (tmp_path / "o" / "best.pth").exists()


def test_lr_range_test_picks_a_rate_and_leaves_the_run_untouched(tmp_path):
    tr = _trainer(tmp_path, None, epochs=1)
    before = _weights(tr.model)
    rng_before = torch.random.get_rng_state()
    found = lr_range_test(tr, start=1e-5, end=1.0, steps=12)
    assert 2 <= len(found.lrs) <= 12 and len(found.losses) == len(found.lrs) == len(found.smoothed)
    ratios = np.array(found.lrs[1:]) / np.array(found.lrs[:-1])
    assert np.allclose(ratios, (1.0 / 1e-5) ** (1 / 11))  # geometric steps
    assert all(np.isfinite(found.losses))
    assert found.best_lr == found.lrs[int(np.argmin(found.smoothed))]
    assert found.picked == pytest.approx(max(1e-5, found.best_lr / 10))
    # weights, optimizer and random state are as before: the run then trains as it would have
    assert _same(before, _weights(tr.model)) and not tr.optimizer.state
    assert torch.equal(rng_before, torch.random.get_rng_state())
    straight = _trainer(tmp_path, None, epochs=1)
    straight.fit()
    tr.fit()
    assert _same(_weights(straight.model), _weights(tr.model))
    with pytest.raises(ValueError):
        lr_range_test(tr, steps=1)


def test_lr_range_test_stops_when_the_loss_diverges(tmp_path):
    tr = _trainer(tmp_path, None, epochs=1, grad_clip=0.0)
    found = lr_range_test(tr, start=1e-4, end=1e4, steps=30, divergence=1.5)
    assert found.diverged_at is not None and len(found.lrs) < 30
    assert found.best_lr < found.diverged_at
