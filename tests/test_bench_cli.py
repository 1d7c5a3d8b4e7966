"""End to end: `vidsearch bench retrieval|recognition` on generated stand-in videos.

The retrieval runs use the real MSR-VTT 1k-A CSV (tests/data) with stand-in videos named like its
MSR-VTT ids, a tiny random-weight checkpoint, and check every printed and JSON number against a
recomputation from the saved similarity matrix.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import videogen
from typer.testing import CliRunner

from vidsearch.cli import bench, commands  # noqa: F401  (register the commands)
from vidsearch.cli.main import app
from vidsearch.errors import InputError

DATA = Path(__file__).parent / "data"
MSRVTT_CSV = DATA / "msrvtt_1kA_test.csv"
N_VIDEOS = 6

runner = CliRunner()

_PATTERNS = ("gradient", "moving_square", "noise")
_COLORS = ((220, 40, 40), (40, 220, 40), (40, 40, 220), (220, 220, 40), (40, 220, 220), (220, 40, 220))


def _csv_rows(n: int) -> list[tuple[str, str]]:
    lines = MSRVTT_CSV.read_text(encoding="utf-8").splitlines()[1 : n + 1]
    return [(ln.split(";")[2], ln.split(";")[3]) for ln in lines]


def _make_videos(folder: Path, names: list[str]) -> None:
    for i, name in enumerate(names):
        videogen.write_video(
            folder / f"{name}.mp4",
            num_frames=8 + 2 * i,
            fps=8,
            size=(32, 32),
            pattern=_PATTERNS[i % 3],
            color=_COLORS[i % 6],
        )


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bench")
    rows = _csv_rows(N_VIDEOS)
    videos = root / "videos"
    _make_videos(videos, [vid for vid, _ in rows])
    subset = root / "msrvtt_subset.csv"
    # the first rows of the real file, byte for byte (CRLF line ends included)
    raw = MSRVTT_CSV.read_bytes().split(b"\r\n")
    subset.write_bytes(b"\r\n".join(raw[: N_VIDEOS + 1]) + b"\r\n")
    return {"root": root, "videos": videos, "subset": subset}


def invoke(*args: str) -> tuple[int, str, BaseException | None]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.exception


def _table_rows(out: str) -> dict[str, list[str]]:
    rows = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.replace("┃", "│").split("│") if c.strip()]
        if cells and cells[0] in ("text->video", "video->text", "text->video DSL", "video->text DSL"):
            rows[cells[0]] = cells[1:]
    return rows


def test_retrieval_end_to_end(corpus: dict[str, Path], tmp_path: Path, tiny_checkpoint: Path) -> None:
    from vidsearch.bench.retrieval import load_similarity
    from vidsearch.metrics import retrieval_metrics

    lib = tmp_path / "cache-lib"
    sims_path = tmp_path / "out" / "sims.npy"
    results_path = tmp_path / "out" / "results.json"
    common = [
        "bench",
        "retrieval",
        "--dataset",
        "msrvtt",
        "--annotations",
        str(corpus["subset"]),
        "--videos",
        str(corpus["videos"]),
        "--model",
        str(tiny_checkpoint),
        "--library",
        str(lib),
    ]
    code, out, exc = invoke(*common, "--save-similarity", str(sims_path), "--out", str(results_path), "--dsl")
    assert code == 0, (out, exc)

    sims, rs = load_similarity(sims_path)
    assert sims.shape == (N_VIDEOS, N_VIDEOS)
    assert rs.videos == [vid for vid, _ in _csv_rows(N_VIDEOS)]
    assert rs.captions == [cap for _, cap in _csv_rows(N_VIDEOS)]
    expected = retrieval_metrics(sims, rs.caption_video)
    expected_dsl = retrieval_metrics(sims, rs.caption_video, dsl=True)

    # the printed table
    rows = _table_rows(out)
    for name, direction, m in [
        ("text->video", "t2v", expected),
        ("video->text", "v2t", expected),
        ("text->video DSL", "t2v", expected_dsl),
        ("video->text DSL", "v2t", expected_dsl),
    ]:
        assert rows[name] == [f"{m[direction][c]:.1f}" for c in ("R@1", "R@5", "R@10", "MdR", "MnR")], (name, out)

    # the results JSON
    results = json.loads(results_path.read_text())
    assert results["metrics"] == expected and results["metrics_dsl"] == expected_dsl
    assert results["counts"] == {
        "videos": N_VIDEOS,
        "captions": N_VIDEOS,
        "videos_in_annotations": N_VIDEOS,
        "captions_in_annotations": N_VIDEOS,
        "missing": 0,
        "undecodable": 0,
    }
    assert results["complete"] is True and results["dataset"] == "msrvtt"
    model = results["model"]
    assert model["key"].startswith("viclip-custom-") and len(model["checkpoint_hash"]) == 64
    assert model["key"].endswith(model["checkpoint_hash"][:12]) and model["num_frames"] == 8
    assert results["sampling"]["frames_per_video"] == 8 and results["sampling"]["mode"] == "whole video"
    assert {"python", "numpy", "torch", "vidsearch"} <= results["versions"].keys()
    timing = results["timing"]
    assert timing["videos_encoded"] == N_VIDEOS and timing["videos_per_second"] > 0 and timing["wall_seconds"] > 0

    # the similarity matrix is the model's: recompute two entries from the encoder itself
    from vidsearch.models import EncoderSpec, open_encoder
    from vidsearch.store.library import Library

    enc = open_encoder(EncoderSpec(str(tiny_checkpoint), device="cpu"))
    text = enc.encode_text(rs.captions[:2])
    with Library.open(lib) as library:
        xb, found = library.video_embeddings(enc.key, [corpus["videos"] / f"{v}.mp4" for v in rs.videos])
    assert found == list(range(N_VIDEOS))
    np.testing.assert_allclose(sims[:2], text @ xb.T, atol=1e-5)

    # second run: every video comes from the cache, same numbers
    code, out2, exc = invoke(*common, "--json")
    assert code == 0, exc
    again = json.loads(out2)
    assert again["timing"]["videos_encoded"] == 0 and again["timing"]["videos_cached"] == N_VIDEOS
    assert again["metrics"] == expected and "metrics_dsl" not in again


def test_retrieval_missing_and_undecodable(corpus: dict[str, Path], tmp_path: Path, tiny_checkpoint: Path) -> None:
    lib = tmp_path / "lib"
    videos = tmp_path / "videos"
    names = [vid for vid, _ in _csv_rows(N_VIDEOS + 1)]
    _make_videos(videos, names[:N_VIDEOS])
    (videos / f"{names[N_VIDEOS]}.mp4").write_text("not a video\n" * 10)  # the 7th: undecodable
    common = [
        "bench",
        "retrieval",
        "--dataset",
        "msrvtt",
        "--annotations",
        str(MSRVTT_CSV),
        "--videos",
        str(videos),
        "--model",
        str(tiny_checkpoint),
        "--library",
        str(lib),
    ]

    # the full 1k-A CSV: 993 videos are not there -> one line naming the count and the first few
    code, _, exc = invoke(*common)
    assert code != 0 and isinstance(exc, InputError)
    msg = str(exc)
    first_missing = [vid for vid, _ in _csv_rows(N_VIDEOS + 6)][N_VIDEOS + 1 :]
    assert msg.startswith(
        f"993 of 1000 videos are not in {videos} ({', '.join(first_missing)}, ...); pass --allow-missing"
    )
    assert "\n" not in msg

    sims_path = tmp_path / "s.npy"
    code, out, exc = invoke(*common, "--allow-missing", "--json", "--save-similarity", str(sims_path))
    assert code == 0, exc
    results = json.loads(out)
    assert results["complete"] is False
    assert results["counts"]["videos"] == N_VIDEOS and results["counts"]["captions"] == N_VIDEOS
    assert results["counts"]["missing"] == 993 and results["counts"]["undecodable"] == 1
    assert results["undecodable"][0]["video"] == names[N_VIDEOS] and results["undecodable"][0]["reason"]
    assert len(results["missing"]) == 993 and not set(names) & set(results["missing"])

    from vidsearch.bench.retrieval import recompute_metrics

    assert recompute_metrics(sims_path) == results["metrics"]

    # the table says the run is incomplete
    code, out, exc = invoke(*common, "--allow-missing")
    assert code == 0, exc
    assert "INCOMPLETE: evaluated on 6 of 1000 videos" in " ".join(out.split())

    # with every file present, the undecodable one alone stops the run
    subset = tmp_path / "seven.csv"
    subset.write_text("\n".join(MSRVTT_CSV.read_text().splitlines()[: N_VIDEOS + 2]) + "\n")
    code, _, exc = invoke(*common[:5], str(subset), *common[6:])
    assert isinstance(exc, InputError) and "1 of 7 videos could not be decoded" in str(exc)


def test_recognition_end_to_end(tmp_path: Path, tiny_checkpoint: Path) -> None:
    from vidsearch.labels import label_embeddings, load_label_set
    from vidsearch.metrics import topk_accuracy
    from vidsearch.models import EncoderSpec, open_encoder
    from vidsearch.store.library import Library

    videos = tmp_path / "videos"
    names = [f"clip{i}" for i in range(5)]
    _make_videos(videos, names)
    classes = load_label_set("hmdb51")
    # by name (either spelling) and by 0-based index
    ann = tmp_path / "ann.csv"
    ann.write_text("video,label\nclip0,brush_hair\nclip1,Cartwheel\nclip2,2\nclip3,ride horse\nclip4,50\n")
    truth = [0, 1, 2, classes.index("ride_horse"), 50]
    lib = tmp_path / "lib"
    out_json = tmp_path / "rec.json"
    code, out, exc = invoke(
        "bench",
        "recognition",
        "--labels",
        "hmdb51",
        "--annotations",
        str(ann),
        "--videos",
        str(videos),
        "--model",
        str(tiny_checkpoint),
        "--library",
        str(lib),
        "--out",
        str(out_json),
    )
    assert code == 0, exc
    results = json.loads(out_json.read_text())
    assert results["classes"] == 51 and results["counts"]["videos"] == 5 and results["complete"]

    enc = open_encoder(EncoderSpec(str(tiny_checkpoint), device="cpu"))
    with Library.open(lib) as library:
        xb, found = library.video_embeddings(enc.key, [videos / f"{n}.mp4" for n in names])
    assert found == list(range(5))
    scores = xb @ label_embeddings(enc, classes).T
    acc = topk_accuracy(scores, truth, ks=(1, 5))
    m = results["metrics"]
    assert m["top1"] == pytest.approx(acc["top1"]) and m["top5"] == pytest.approx(acc["top5"])
    assert m["avg_top1_top5"] == pytest.approx((acc["top1"] + acc["top5"]) / 2)
    flat = " ".join(out.split())
    assert f"{acc['top1']:.1f}" in flat and f"{acc['top5']:.1f}" in flat and "hmdb51 zero-shot recognition" in flat

    bad = tmp_path / "bad.csv"
    bad.write_text("video,label\nclip0,flying carpet\n")
    code, _, exc = invoke(
        "bench",
        "recognition",
        "--labels",
        "hmdb51",
        "--annotations",
        str(bad),
        "--videos",
        str(videos),
        "--model",
        str(tiny_checkpoint),
        "--library",
        str(lib),
    )
    assert isinstance(exc, InputError) and "'flying carpet' is not in the label set" in str(exc)
