"""`vidsearch ingest` of shards it must not trust: files that are no video, outside the run's
folders or changed, vectors that are not finite or of the wrong size, shards missing columns."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pytest
import videogen
from test_cli_hardening import one_line_error, run_main
from typer.testing import CliRunner

pa = pytest.importorskip("pyarrow", reason="staged shards need pyarrow: pip install 'vidsearch[ray]'")
import pyarrow.parquet as pq  # noqa: E402

from vidsearch.cli import commands  # noqa: E402,F401  (registers the commands)
from vidsearch.cli.main import app  # noqa: E402
from vidsearch.cluster.options import ClusterError  # noqa: E402
from vidsearch.cluster.staging import COLUMNS, ingest, shard_name, write_stage_roots  # noqa: E402
from vidsearch.media import fingerprint, probe  # noqa: E402
from vidsearch.store.catalog import list_videos  # noqa: E402
from vidsearch.store.library import Library  # noqa: E402

DIM = 8


def _row(path: Path, *, vectors: np.ndarray | None = None, fp: str | None = None) -> dict:
    st = os.stat(path)
    try:
        info = json.dumps(dataclasses.asdict(probe(str(path))))
    except Exception:  # noqa: BLE001 -- a file that is no video: a shard can claim anything
        info = json.dumps({"path": str(path), "num_frames": 10, "fps": 10.0, "duration": 1.0, "width": 8, "height": 8})
    xb = vectors if vectors is not None else np.eye(1, DIM, dtype=np.float32)
    return {
        "space_key": "test-space",
        "dim": DIM,
        "model_spec": json.dumps({"name": "test"}),
        "sampling": json.dumps({}),
        "path": str(path),
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "fingerprint": fp if fp is not None else fingerprint(str(path), st.st_size),
        "status": "indexed",
        "reason": None,
        "reader": "pyav",
        "info": info,
        "kinds": ["video"] * len(xb),
        "starts": [0.0] * len(xb),
        "ends": [1.0] * len(xb),
        "vectors": np.ascontiguousarray(xb, dtype="<f4").tobytes(),
    }


def _stage(stage: Path, rows: list[dict], drop: tuple[str, ...] = ()) -> Path:
    stage.mkdir(parents=True, exist_ok=True)
    cols = {k: [r[k] for r in rows] for k in COLUMNS if k not in drop}
    name = shard_name("test-space", [(r["path"], r["size"], r["mtime_ns"]) for r in rows])
    pq.write_table(pa.table(cols), stage / name)
    return stage


@pytest.fixture()
def videos(tmp_path: Path) -> Path:
    folder = tmp_path / "videos"
    videogen.write_video(folder / "ok.mp4", seconds=1, fps=10, size=(64, 48))
    videogen.write_video(folder / "nan.mp4", seconds=1, fps=10, size=(64, 48))
    (folder / "notes.txt").write_text("the server's secrets\n" * 50)
    return folder


def _indexed(lib_dir: Path) -> list[str]:
    with Library.open(lib_dir, create=False) as lib:
        return sorted(Path(v.path).name for v in list_videos(lib))


def test_only_real_unchanged_videos_under_the_run_folders_are_committed(videos: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere" / "private.mp4"
    videogen.write_video(outside, seconds=1, fps=10, size=(64, 48))
    changed = videos / "changed.mp4"
    videogen.write_video(changed, seconds=1, fps=10, size=(64, 48))
    nan = np.full((1, DIM), np.nan, np.float32)
    rows = [
        _row(videos / "ok.mp4"),
        _row(videos / "notes.txt"),
        _row(outside),
        _row(changed, fp="0" * 32),
        _row(videos / "nan.mp4", vectors=nan),
    ]
    stage = _stage(tmp_path / "stage", rows)
    write_stage_roots(stage, [videos])
    with Library.open(tmp_path / "lib", create=True) as lib:
        report = ingest(lib, stage)
    reasons = {Path(p).name: why for p, why in report.failed}
    assert report.added == 1 and _indexed(tmp_path / "lib") == ["ok.mp4"], (reasons, _indexed(tmp_path / "lib"))
    assert "does not open as a video" in reasons["notes.txt"]
    assert "outside the folders" in reasons["private.mp4"]
    assert "fingerprint" in reasons["changed.mp4"]
    assert "NaN" in reasons["nan.mp4"]


def test_vectors_of_the_wrong_length_and_missing_columns_are_one_line_errors(videos: Path, tmp_path: Path) -> None:
    row = _row(videos / "ok.mp4")
    row["vectors"] = row["vectors"][:-4]
    stage = _stage(tmp_path / "stage", [row])
    with Library.open(tmp_path / "lib", create=True) as lib:
        report = ingest(lib, stage, roots=[videos])
    assert report.added == 0 and "not 1 segments x 8 float32" in report.failed[0][1]

    broken = _stage(tmp_path / "broken", [_row(videos / "ok.mp4")], drop=("vectors", "fingerprint"))
    write_stage_roots(broken, [videos])
    code, _, err = run_main("ingest", str(broken), "--library", str(tmp_path / "lib"))
    one_line_error(code, err, "lacks the column(s) fingerprint, vectors")


def test_a_stage_without_its_folders_needs_root(videos: Path, tmp_path: Path) -> None:
    stage = _stage(tmp_path / "stage", [_row(videos / "ok.mp4")])
    with Library.open(tmp_path / "lib", create=True) as lib, pytest.raises(ClusterError, match="--root"):
        ingest(lib, stage)
    r = CliRunner().invoke(app, ["ingest", str(stage), "--root", str(videos), "--library", str(tmp_path / "lib")])
    assert r.exit_code == 0, r.output
    assert _indexed(tmp_path / "lib") == ["ok.mp4"]
