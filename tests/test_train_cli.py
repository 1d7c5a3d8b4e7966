"""End to end with CliRunner: `vidsearch finetune` on generated videos, its checkpoint in `bench`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vidsearch.cli import commands, finetune  # noqa: F401  (register the commands)
from vidsearch.cli.main import app
from vidsearch.errors import InputError
from vidsearch.testing.synthetic import make_split

runner = CliRunner()

SCRATCH = dict(
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


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ft")
    ann = make_split(root, "train", 16, seed=1, size=32, num_frames=8)
    cfg = root / "tiny.json"
    cfg.write_text(json.dumps(SCRATCH))
    return {"root": root, "ann": ann, "videos": root / "train", "cfg": cfg}


def _finetune(data: dict[str, Path], out: Path, *extra: str):
    args = [
        "finetune",
        "--annotations",
        str(data["ann"]),
        "--videos",
        str(data["videos"]),
        "--out",
        str(out),
        "--epochs",
        "2",
        "--batch-size",
        "4",
        "--val-videos",
        "4",
        "--lr",
        "1e-3",
        "--json",
        *extra,
    ]
    return runner.invoke(app, args)


def _lines(stdout: str) -> list[dict]:
    """`--json` output: one JSON object per line (epochs as they end, then the summary)."""
    return [json.loads(line) for line in stdout.splitlines()]


def _summary(res) -> dict:
    lines = _lines(res.stdout)
    assert lines[-1]["event"] == "done"
    return lines[-1]


def test_finetune_from_scratch_then_bench_with_its_checkpoint(data, tmp_path):
    out = tmp_path / "run"
    res = _finetune(
        data, out, "--model-config", str(data["cfg"]), "--temp", "0.07", "--crop-scale", "0.8", "--crop-shift", "0.1"
    )
    assert res.exit_code == 0, res.output
    lines = _lines(res.stdout)
    summary = _summary(res)
    assert [x["event"] for x in lines] == ["epoch", "epoch", "done"]
    assert [x["epoch"] for x in lines[:2]] == [1, 2] and lines[0]["val"]["t2v"]["count"] == 4
    assert summary["train_clips"] == 12 and summary["val_clips"] == 4
    assert [e["epoch"] for e in summary["epochs"]] == [1, 2]
    assert summary["selected"] == "best" and summary["best_epoch"] in (1, 2) and Path(summary["last"]).exists()
    assert summary["epochs"][-1]["val"]["t2v"]["count"] == 4
    model = Path(summary["model"])
    assert model.exists() and json.loads(model.with_suffix(".json").read_text()) == {
        **SCRATCH,
        "context_length": 32,
        "vocab_size": 49408,
    }

    bench = runner.invoke(
        app,
        [
            "bench",
            "retrieval",
            "--dataset",
            "json",
            "--annotations",
            str(data["ann"]),
            "--videos",
            str(data["videos"]),
            "--model",
            str(model),
            "--library",
            str(tmp_path / "lib"),
            "--json",
        ],
    )
    assert bench.exit_code == 0, bench.output
    assert json.loads(bench.stdout)["metrics"]["t2v"]["count"] == 16

    # an existing run is not overwritten; --resume with the same settings has nothing left to do
    again = _finetune(
        data, out, "--model-config", str(data["cfg"]), "--temp", "0.07", "--crop-scale", "0.8", "--crop-shift", "0.1"
    )
    assert isinstance(again.exception, InputError) and "--resume" in str(again.exception)
    resumed = _finetune(
        data,
        out,
        "--model-config",
        str(data["cfg"]),
        "--temp",
        "0.07",
        "--resume",
        "--crop-scale",
        "0.8",
        "--crop-shift",
        "0.1",
    )
    assert resumed.exit_code == 0, resumed.output
    assert _summary(resumed)["epochs"] == summary["epochs"]
    changed = _finetune(data, out, "--model-config", str(data["cfg"]), "--resume", "--lr", "5e-4")
    assert isinstance(changed.exception, InputError) and "lr" in str(changed.exception)
    flipped = _finetune(
        data,
        out,
        "--model-config",
        str(data["cfg"]),
        "--temp",
        "0.07",
        "--resume",
        "--crop-scale",
        "0.8",
        "--crop-shift",
        "0.1",
        "--reverse-pairs",
        "left=right",
    )
    assert isinstance(flipped.exception, InputError) and "reverse_pairs" in str(flipped.exception)


def test_finetune_a_checkpoint_with_fewer_frames(data, tmp_path, tiny_checkpoint):
    res = _finetune(
        data, tmp_path / "ft", "--model", str(tiny_checkpoint), "--frames", "4", "--freeze-text", "--epochs", "1"
    )
    assert res.exit_code == 0, res.output
    cfg = json.loads(Path(_summary(res)["model"]).with_suffix(".json").read_text())
    assert cfg["num_frames"] == 4 and cfg["vision_width"] == 64


def test_lr_find_picks_the_rate_the_run_trains_at(data, tmp_path):
    res = _finetune(
        data,
        tmp_path / "lr",
        "--model-config",
        str(data["cfg"]),
        "--epochs",
        "1",
        "--lr-find",
        "--lr-find-steps",
        "6",
        "--no-select-best",
    )
    assert res.exit_code == 0, res.output
    lines = _lines(res.stdout)
    assert [x["event"] for x in lines] == ["lr_find", "epoch", "done"]
    found, summary = lines[0], lines[-1]
    assert len(found["lrs"]) == len(found["losses"]) >= 2 and found["lrs"] == sorted(found["lrs"])
    assert summary["config"]["lr"] == found["picked"] == summary["lr_find"]["picked"]
    assert summary["selected"] == "last" and summary["best"] is None
    # without --json the range test is a table with the pick
    plain = runner.invoke(
        app,
        [
            "finetune",
            "--annotations",
            str(data["ann"]),
            "--videos",
            str(data["videos"]),
            "--out",
            str(tmp_path / "lr2"),
            "--epochs",
            "1",
            "--batch-size",
            "4",
            "--val-videos",
            "4",
            "--model-config",
            str(data["cfg"]),
            "--lr-find",
            "--lr-find-steps",
            "6",
        ],
    )
    assert plain.exit_code == 0, plain.output
    assert "lr range test:" in plain.stdout and "training at lr" in plain.stdout and "*best*" in plain.stdout
    # a started run keeps its rate
    again = _finetune(
        data,
        tmp_path / "lr",
        "--model-config",
        str(data["cfg"]),
        "--epochs",
        "1",
        "--lr-find",
        "--lr-find-steps",
        "6",
        "--resume",
    )
    assert isinstance(again.exception, InputError) and "--lr-find" in str(again.exception)


def test_user_errors(data, tmp_path):
    res = _finetune(data, tmp_path / "x")
    assert isinstance(res.exception, InputError) and "--model-config" in str(res.exception)
    res = _finetune(data, tmp_path / "x", "--model-config", str(data["cfg"]), "--batch-size", "0")
    assert isinstance(res.exception, InputError) and "--batch-size" in str(res.exception)
    res = _finetune(data, tmp_path / "x", "--model-config", str(data["cfg"]), "--reverse-pairs", "left")
    assert isinstance(res.exception, InputError) and "--reverse-pairs" in str(res.exception)
    res = _finetune(data, tmp_path / "x", "--model-config", str(data["cfg"]), "--reverse-margin", "0.5")
    assert isinstance(res.exception, InputError) and "without --reverse-pairs" in str(res.exception)
    res = _finetune(
        data,
        tmp_path / "x",
        "--model-config",
        str(data["cfg"]),
        "--reverse-pairs",
        "left=right",
        "--reverse-margin",
        "1.5",
    )
    assert isinstance(res.exception, InputError) and "--reverse-margin" in str(res.exception)
    res = _finetune(data, tmp_path / "x", "--model-config", str(data["cfg"]), "--masking-motion", "0.5")
    assert isinstance(res.exception, InputError) and "add --masking" in str(res.exception)
    res = _finetune(
        data, tmp_path / "x", "--model-config", str(data["cfg"]), "--masking", "0.5", "--masking-motion", "1.5"
    )
    assert isinstance(res.exception, InputError) and "--masking-motion" in str(res.exception)
    for bad in ("1.0", "-1.5", "nan"):
        res = _finetune(data, tmp_path / "x", "--model-config", str(data["cfg"]), "--text-margin", bad)
        assert isinstance(res.exception, InputError) and "--text-margin" in str(res.exception)
    res = _finetune(data, tmp_path / "x", "--model-config", str(data["cfg"]), "--patience", "2", "--val-videos", "0")
    assert isinstance(res.exception, InputError) and "--patience" in str(res.exception)
    res = _finetune(data, tmp_path / "x", "--model-config", str(data["cfg"]), "--select-metric", "loss")
    assert isinstance(res.exception, InputError) and "--select-metric" in str(res.exception)
    # validation captions whose videos live elsewhere: one line naming the file and the folder
    other = make_split(tmp_path, "elsewhere", 2, seed=2, size=32, num_frames=8)
    res = _finetune(data, tmp_path / "x", "--model-config", str(data["cfg"]), "--val-annotations", str(other))
    assert isinstance(res.exception, InputError) and "--val-annotations" in str(res.exception)
    assert str(data["videos"]) in str(res.exception)


def test_precision_is_checked_before_any_work(data, tmp_path):
    from vidsearch.errors import ModelError

    res = _finetune(data, tmp_path / "p", "--model-config", str(data["cfg"]), "--precision", "int8", "--device", "cpu")
    assert isinstance(res.exception, InputError) and "not training" in str(res.exception)
    res = _finetune(data, tmp_path / "p", "--model-config", str(data["cfg"]), "--precision", "fp16", "--device", "cpu")
    assert isinstance(res.exception, ModelError) and "fp16 needs a GPU" in str(res.exception)
    res = _finetune(data, tmp_path / "p", "--model-config", str(data["cfg"]), "--precision", "fp8")
    assert res.exit_code != 0 and "--precision" in str(res.exception or res.stdout)
    assert not (tmp_path / "p" / "cache").exists()  # nothing was decoded


def test_training_precision_contexts():
    import torch

    from vidsearch.errors import ModelError
    from vidsearch.models.precision import training_precision
    from vidsearch.precision import cpu_has_native_bf16

    cpu = torch.device("cpu")
    ctx, scaler = training_precision(cpu, True, "fp32")
    with ctx:
        assert not torch.is_autocast_enabled("cpu")
    assert scaler is None
    with pytest.raises(ModelError, match="not training"):
        training_precision(cpu, True, "int8")
    if cpu_has_native_bf16():
        ctx, scaler = training_precision(cpu, True, "bf16")
        with ctx:
            y = torch.nn.Linear(4, 4)(torch.randn(2, 4))
        assert y.dtype == torch.bfloat16 and scaler is None


def test_the_family_recipe_runs_as_given(data, tmp_path):
    """FAMILY_RECIPE is passed to `vidsearch finetune` verbatim by the proof; every flag must parse and train."""
    from vidsearch.testing.synthetic import FAMILY_RECIPE

    out = tmp_path / "family"
    res = _finetune(data, out, "--model-config", str(data["cfg"]), *FAMILY_RECIPE, "--epochs", "1", "--batch-size", "4")
    assert res.exit_code == 0, res.output
    config = _summary(res)["config"]
    assert config["text_margin"] == 0.6 and config["masking_prob"] == 0.7 and config["masking_motion"] == 0.5
    assert config["reverse_margin"] == 0.5
    assert config["hard_negatives"] == 8 and config["reverse_pairs"]
    assert json.loads((out / "model.json").read_text())["num_frames"] == SCRATCH["num_frames"]
