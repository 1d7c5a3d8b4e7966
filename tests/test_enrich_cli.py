"""End to end with CliRunner: `enrich recognize|calibrate`, `labels`, `localize`, `bench open-set|localization`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import videogen
from typer.testing import CliRunner

from vidsearch.cli import commands  # noqa: F401  (registers the commands)
from vidsearch.cli.errors import message
from vidsearch.cli.main import app
from vidsearch.errors import InputError

runner = CliRunner()


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout


def run_json(*args: str):
    code, out = run(*args, "--json")
    assert code == 0, out
    return json.loads(out)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("enrich-cli")
    videos = root / "videos"
    colours = {"red": (210, 40, 40), "green": (40, 200, 40), "blue": (40, 60, 220)}
    for name, rgb in colours.items():
        for i, pattern in enumerate(("gradient", "moving_square")):
            videogen.write_video(videos / f"{name}{i}.mp4", seconds=2, fps=8, pattern=pattern, color=rgb)
    videogen.write_video(videos / "long.mp4", seconds=14, fps=4, pattern="moving_square", color=(200, 200, 40))
    labels = root / "colours.txt"
    labels.write_text("red\ngreen\n")
    (root / "known.csv").write_text("video,label\nred0,red\nred1,red\ngreen0,green\ngreen1,green\n")
    (root / "unknown.csv").write_text("video\nblue0\nblue1\n")
    (root / "moments.txt").write_text("long 2.0 6.0##a yellow square\nlong 0 3.5 a yellow square moving\n")
    lib = root / "lib"
    code, out = run(
        "index", str(videos), "--library", str(lib), "--model", str(tiny_checkpoint), "--workers", "1", "--json"
    )
    assert code == 0, out
    return {"root": root, "videos": videos, "labels": labels, "lib": lib, "ckpt": tiny_checkpoint}


def test_recognize_then_labels(setup: dict[str, Path]) -> None:
    lib, labels = str(setup["lib"]), str(setup["labels"])
    first = run_json("enrich", "recognize", "--library", lib, "--labels", labels, "--top", "2")
    # 7 videos, the 14 s one with 8 s windows at 0, 4 and the end-aligned 6
    assert (first["labelled"], first["videos"], first["already"], first["model_loaded"]) == (10, 7, 0, True)
    assert first["rule"]["kind"] == "msp" and first["rule"]["threshold"] == 0.5 and not first["calibrated"]
    again = run_json("enrich", "recognize", "--library", lib, "--labels", labels, "--top", "2")
    assert (again["labelled"], again["already"], again["model_loaded"]) == (0, 10, False)
    code, out = run("enrich", "recognize", "--library", lib, "--labels", labels, "--top", "2")
    assert code == 0 and "0 segments" in out and "not calibrated" in out

    info = run_json("labels", str(setup["videos"] / "long.mp4"), "--library", lib)
    (ls,) = info["label_sets"]
    assert ls["label_set"] == "colours.txt" and [lab["rank"] for lab in ls["labels"]] == [1, 2]
    assert {lab["label"] for lab in ls["labels"]} == {"red", "green"}
    assert len(ls["windows"]) == 3 and ls["timeline"][-1]["end"] == pytest.approx(14.0)
    code, out = run("labels", str(setup["videos"] / "long.mp4"), "--library", lib)
    assert code == 0 and "timeline" in out and "colours.txt" in out

    result = runner.invoke(app, ["labels", str(setup["root"] / "missing.mp4"), "--library", lib])
    assert isinstance(result.exception, InputError) and "not in the library" in str(result.exception)


def test_calibrate_applies_to_the_library(setup: dict[str, Path]) -> None:
    lib, labels, root = str(setup["lib"]), str(setup["labels"]), setup["root"]
    out = run_json(
        "enrich", "calibrate", "--library", lib, "--labels", labels,
        "--annotations", str(root / "known.csv"), "--videos", str(setup["videos"]),
        "--unknown", str(root / "unknown.csv"), "--bench-library", str(root / "bench"),
    )  # fmt: skip
    cal, rule = out["calibration"], out["rule"]
    assert cal["known_videos"] == 4 and cal["unknown_videos"] == 2 and cal["threshold_method"] == "youden"
    assert 0.0 <= cal["auroc"] <= 1.0 and rule["threshold"] == cal["threshold"]
    assert out["recognize"]["relabelled"] and out["recognize"]["labelled"] == 10
    # the calibration videos went to the bench cache, not into the user's library
    assert run_json("info", "--library", lib)["videos_indexed"] == 7
    info = run_json("labels", str(setup["videos"] / "red0.mp4"), "--library", lib)
    assert info["label_sets"][0]["rule"] == rule
    # a plain re-run keeps the calibrated rule and says so
    again = run_json("enrich", "recognize", "--library", lib, "--labels", labels, "--top", "2")
    assert again["rule"] == rule and again["calibrated"] and again["labelled"] == 0


def test_localize(setup: dict[str, Path]) -> None:
    lib, video = str(setup["lib"]), str(setup["videos"] / "long.mp4")
    out = run_json("localize", video, "a yellow square", "--library", lib, "--top", "2")
    assert out["window"] == pytest.approx(14.0 / 8) and out["stride"] == pytest.approx(14.0 / 32) and not out["cached"]
    assert 1 <= len(out["spans"]) <= 2
    for s in out["spans"]:
        assert 0.0 <= s["start"] < s["end"] <= 14.0 + 1e-6
    again = run_json("localize", video, "a yellow square", "--library", lib, "--top", "2")
    assert again["cached"] and again["spans"] == out["spans"]
    code, table = run("localize", video, "a yellow square", "--library", lib, "--window", "2", "--stride", "1")
    assert code == 0 and "13 windows" in " ".join(table.split())
    result = runner.invoke(app, ["localize", video, "x", "--library", lib, "--stride", "-1"])
    assert isinstance(result.exception, InputError) and "--stride" in message(result.exception)


def test_bench_open_set_and_localization(setup: dict[str, Path]) -> None:
    root, videos, ckpt = setup["root"], str(setup["videos"]), str(setup["ckpt"])
    res = run_json(
        "bench", "open-set", "--known-labels", str(setup["labels"]), "--known", str(root / "known.csv"),
        "--known-videos", videos, "--unknown", str(root / "unknown.csv"), "--model", ckpt, "--library", str(root / "bench"),
    )  # fmt: skip
    m = res["metrics"]
    assert res["model"]["precision"] == "fp32" and "+" not in res["model"]["key"]  # the default on a CPU
    assert res["counts"]["known_videos"] == 4 and res["counts"]["unknown_videos"] == 2 and res["complete"]
    assert set(m["by_score"]) == {"msp", "energy", "maxcos"} and m["auroc"] == m["by_score"]["msp"]["auroc"]
    assert 0.0 <= m["auroc"] <= 100.0 and m["closed_top1"] in (0.0, 25.0, 50.0, 75.0, 100.0)

    loc = run_json(
        "bench",
        "localization",
        "--annotations",
        str(root / "moments.txt"),
        "--videos",
        videos,
        "--model",
        ckpt,
        "--library",
        str(root / "bench"),
    )
    assert loc["counts"]["queries"] == 2 and loc["counts"]["videos"] == 1
    assert set(loc["metrics"]) >= {"R@1,IoU=0.3", "R@1,IoU=0.5", "R@1,IoU=0.7", "R@5,IoU=0.5", "mIoU"}
    assert all(0.0 <= v <= 100.0 for k, v in loc["metrics"].items() if k != "count")
    code, out = run(
        "bench",
        "localization",
        "--annotations",
        str(root / "moments.txt"),
        "--videos",
        videos,
        "--model",
        ckpt,
        "--library",
        str(root / "bench"),
    )
    assert code == 0 and "mIoU" in out


def test_read_video_list_formats(tmp_path: Path) -> None:
    from vidsearch.bench.openset import read_video_list

    f = tmp_path / "u.csv"
    for text in (
        "video,label\nv1,brush_hair\nv2,cartwheel\n",
        "video\nv1\nv2\n",
        "v1 brush_hair\nv2 cartwheel\n",
        "v1\nv2\n",
        "v1,x\nv2,y\n",
    ):
        f.write_text(text)
        assert read_video_list(f) == ["v1", "v2"], text
    f.write_text("# nothing\n")
    with pytest.raises(InputError, match="no videos"):
        read_video_list(f)


def test_templates_option(setup: dict[str, Path], tmp_path: Path) -> None:
    lib, labels = str(setup["lib"]), str(setup["labels"])
    t = tmp_path / "templates.txt"
    t.write_text("# colour prompts\na {} square\na {} gradient\n")
    out = run_json("enrich", "recognize", "--library", lib, "--labels", labels, "--templates", str(t), "--top", "2")
    assert out["relabelled"] and out["model_loaded"] and out["labelled"] == 10  # other prompts: new class embeddings
    again = run_json("enrich", "recognize", "--library", lib, "--labels", labels, "--templates", str(t), "--top", "2")
    assert again["labelled"] == 0 and not again["model_loaded"]
    plain = run_json("enrich", "recognize", "--library", lib, "--labels", labels)  # unset options keep the set's
    assert plain["labelled"] == 0 and not plain["relabelled"] and not plain["model_loaded"]
    t.write_text("a square\n")
    result = runner.invoke(app, ["enrich", "recognize", "--library", lib, "--labels", labels, "--templates", str(t)])
    assert isinstance(result.exception, InputError) and "exactly once" in str(result.exception)
