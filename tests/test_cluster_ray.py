"""`vidsearch index --ray`: the Ray Data pipeline gives what a local run gives, exactly once.

One local Ray cluster serves the module (2 CPUs, a small object store, no dashboard, no usage
stats); each actor reserves half a CPU so that decode and encode actors never starve each other.
The tiny random-weight model on generated videos, as in the local end-to-end tests.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'vidsearch[ray]' runs these tests")
pytest.importorskip("ray.data", reason="Ray Data is not installed: pip install 'vidsearch[ray]' runs these tests")

import speechgen  # noqa: E402
import videogen  # noqa: E402
from faults import dying_encode_actor, dying_transcribe_actor  # noqa: E402

from vidsearch.cli import commands  # noqa: E402,F401  (registers the commands)
from vidsearch.cli.main import app  # noqa: E402
from vidsearch.cluster.options import RayOptions  # noqa: E402
from vidsearch.cluster.ray_runner import index_folder_ray  # noqa: E402
from vidsearch.indexer.options import IndexOptions  # noqa: E402
from vidsearch.indexer.pipeline import index_folder  # noqa: E402
from vidsearch.store.library import Library  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster() -> str:
    """A one-machine cluster for the module; its address (for a second driver process)."""
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    ray.init(
        address="local", num_cpus=2, include_dashboard=False, object_store_memory=96 * 1024**2, log_to_driver=False
    )
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ray-videos")
    for i in range(4):
        videogen.write_video(
            folder / f"clip{i}.mp4", seconds=2, fps=8, pattern="moving_square", color=(60 * i, 200, 40)
        )
    # Long enough for windows (0-8, 4-12, 8-16).
    videogen.write_video(folder / "sub dir" / "long.mkv", seconds=16, fps=4, pattern="noise", gop=16)
    return folder


def ray_options(**kw) -> RayOptions:
    return RayOptions(address="local", decode_cpus=0.5, encode_cpus=0.5, videos_per_batch=2, **kw)


def options(ckpt: Path, **kw) -> IndexOptions:
    return IndexOptions(model=str(ckpt), workers=1, device="cpu", **kw)


def content(lib: Path) -> dict[str, list[tuple[str, float, float, np.ndarray]]]:
    """Every video's segments with their vectors; asserts FAISS and SQLite agree, no duplicates."""
    with Library.open(lib, create=False) as library:
        (space,) = library.spaces()
        ids, xb = library.load_vectors(space.id)
        assert len(np.unique(ids)) == len(ids)
        assert np.array_equal(np.sort(library.vector_index(space).ids()), np.sort(ids))
        infos = library.segment_infos(ids)
        out: dict[str, list] = {}
        for i, x in zip(ids, xb, strict=False):
            info = infos[int(i)]
            out.setdefault(info.path, []).append((info.kind, info.start, info.end, x))
        return {p: sorted(v, key=lambda t: (t[0], t[1])) for p, v in out.items()}


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for path in a:
        assert [s[:3] for s in a[path]] == [s[:3] for s in b[path]], path
        np.testing.assert_allclose(np.stack([s[3] for s in a[path]]), np.stack([s[3] for s in b[path]]), atol=1e-5)


@pytest.fixture(scope="module")
def local(videos: Path, tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path) -> dict:
    """What a local run stores for the corpus (the reference)."""
    lib = tmp_path_factory.mktemp("local") / "lib"
    with Library.open(lib, create=True) as library:
        report = index_folder(library, videos, options(tiny_checkpoint))
    assert report.added == 5 and report.segments == 5 + 3
    return content(lib)


def test_same_as_local_despite_an_actor_death_and_rerun_adds_nothing(
    cluster: str, local: dict, videos: Path, tmp_path: Path, tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An encode actor that dies once (restarted, its task retried) still leaves every video once;
    the driver never loads the model (only the encode actors do)."""
    import vidsearch.models.opener as opener

    def no_load(*args: object, **kwargs: object) -> None:
        raise AssertionError("the driver loaded the model")

    monkeypatch.setattr(opener, "open_encoder", no_load)
    marker = tmp_path / "encoder-died"
    with Library.open(tmp_path / "ray", create=True) as lib:
        remote = index_folder_ray(
            lib, videos, options(tiny_checkpoint), ray_options(), encode_actor=dying_encode_actor(str(marker))
        )
    assert marker.exists(), "the fault was not injected"
    assert remote.added == 5 and remote.segments == 5 + 3
    assert remote.failed == [] and remote.stage_seconds["encode_busy"] > 0 and remote.stage_seconds["decode_busy"] > 0
    assert_same(local, content(tmp_path / "ray"))
    with Library.open(tmp_path / "ray", create=False) as lib:
        again = index_folder_ray(lib, videos, options(tiny_checkpoint), ray_options())
    assert again.added == again.updated == 0 and again.unchanged == 5 and not again.model_loaded
    assert_same(local, content(tmp_path / "ray"))


def test_staged_shards_survive_an_actor_death_and_ingest_once(
    cluster: str, local: dict, videos: Path, tmp_path: Path, tiny_checkpoint: Path
) -> None:
    from vidsearch.cluster.staging import ingest

    stage, marker = tmp_path / "stage", tmp_path / "encoder-died"
    with Library.open(tmp_path / "lib", create=True) as lib:
        staged = index_folder_ray(
            lib,
            videos,
            options(tiny_checkpoint),
            ray_options(stage_dir=stage),
            encode_actor=dying_encode_actor(str(marker)),
        )
        assert staged.added == 5 and lib.stats()["videos_indexed"] == 0  # nothing committed yet
    assert marker.exists(), "the fault was not injected"
    shards = sorted(p.name for p in stage.iterdir() if p.name != "stage.json")  # beside the run's folders
    assert len(shards) == 3 and all(
        p.startswith("shard-") and p.endswith(".parquet") for p in shards
    )  # 5 videos, 2 a shard
    with Library.open(tmp_path / "lib", create=False) as lib:
        first = ingest(lib, stage)
        assert first.scanned == 5 and first.added == 5 and first.segments == 5 + 3
    again = CliRunner().invoke(
        app, ["ingest", str(stage), "--library", str(tmp_path / "lib"), "--json"], catch_exceptions=False
    )
    assert again.exit_code == 0, again.stdout
    second = json.loads(again.stdout)
    assert second["added"] == second["updated"] == 0 and second["unchanged"] == 5
    assert_same(local, content(tmp_path / "lib"))


DRIVER = """
import sys
import ray
from vidsearch.cluster.options import RayOptions
from vidsearch.cluster.ray_runner import index_folder_ray
from vidsearch.indexer.options import IndexOptions
from vidsearch.store.library import Library

import dataclasses
sys.path.insert(0, sys.argv[5])
from faults import crash_after_commits
from vidsearch.cluster.ray_runner import RayRun

# the library's sink, SIGKILLing this driver after its 2nd commit (before the FAISS save)
stages_of = RayRun.stages
RayRun.stages = lambda self: dataclasses.replace(stages_of(self), sink=crash_after_commits(2))
ray.init(address=sys.argv[1], log_to_driver=False)
opts = IndexOptions(model=sys.argv[4], workers=1, device="cpu", batch_size=1)
with Library.open(sys.argv[3], create=True) as lib:
    index_folder_ray(lib, sys.argv[2], opts, RayOptions(address=sys.argv[1], decode_cpus=0.5, encode_cpus=0.5, videos_per_batch=1))
"""


def test_killed_driver_resumes_without_duplicates(
    cluster: str, videos: Path, tmp_path: Path, tiny_checkpoint: Path
) -> None:
    lib = tmp_path / "lib"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            DRIVER,
            cluster,
            str(videos),
            str(lib),
            str(tiny_checkpoint),
            str(Path(__file__).parent),
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == -9, proc.stderr[-2000:]  # SIGKILLed itself after its 2nd commit
    with Library.open(lib, create=False) as library:
        done = library.stats()["videos_indexed"]
    assert 1 <= done < 5
    with Library.open(lib, create=False) as library:
        report = index_folder_ray(library, videos, options(tiny_checkpoint), ray_options())
    assert report.added == 5 - done and report.unchanged == done
    got = content(lib)
    assert len(got) == 5 and sum(len(v) for v in got.values()) == 5 + 3


def test_bad_corpus_same_failures_and_exit_code(cluster: str, tmp_path: Path, tiny_checkpoint: Path) -> None:
    """Through the CLI (`--ray local` joins the module's cluster): same failures, same exit code."""
    corpus = tmp_path / "corpus"
    videogen.make_bad_corpus(corpus)
    runner = CliRunner()
    base = ["index", str(corpus), "--model", str(tiny_checkpoint), "--workers", "1", "--device", "cpu", "--json"]
    local = runner.invoke(app, [*base, "--library", str(tmp_path / "local")], catch_exceptions=False)
    remote = runner.invoke(app, [*base, "--library", str(tmp_path / "ray"), "--ray", "local"], catch_exceptions=False)
    assert remote.exit_code == local.exit_code == 1, remote.stdout
    lrep, rrep = json.loads(local.stdout), json.loads(remote.stdout)
    assert sorted(map(tuple, (f.values() for f in rrep["failed"]))) == sorted(
        map(tuple, (f.values() for f in lrep["failed"]))
    )
    assert rrep["added"] == lrep["added"] > 0
    assert_same(content(tmp_path / "local"), content(tmp_path / "ray"))


def test_preflight_names_the_node_and_the_unreadable_path(
    cluster: str, videos: Path, tmp_path: Path, tiny_checkpoint: Path
) -> None:
    from vidsearch.cluster.options import ClusterError

    wrong = (str(videos), str(tmp_path / "not-mounted"))
    with (
        Library.open(tmp_path / "lib", create=True) as lib,
        pytest.raises(ClusterError, match="cannot read .*not-mounted.*--path-map"),
    ):
        index_folder_ray(lib, videos, options(tiny_checkpoint), ray_options(path_map=wrong))


def transcript_rows(lib: Path) -> list[tuple]:
    """Every stored transcript line and every video's transcript state, by the video's file name."""
    with sqlite3.connect(lib / "library.sqlite") as db:
        lines = db.execute(
            "SELECT v.path, s.start, s.end, s.text, s.language, s.backend, s.words FROM transcript_segments s "
            "JOIN videos v ON v.id = s.video_id"
        ).fetchall()
        states = db.execute(
            "SELECT v.path, t.fingerprint, t.sidecars, t.source, t.backend, t.language, t.lines, t.notes "
            "FROM transcripts t JOIN videos v ON v.id = t.video_id"
        ).fetchall()
    return sorted((Path(r[0]).name, *r[1:]) for r in lines) + sorted(("state", Path(r[0]).name, *r[1:]) for r in states)


def test_transcripts_made_by_the_actors_match_a_local_run(
    cluster: str, tmp_path: Path, tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sidecar .srt, an espeak-ng spoken video (pocketsphinx) and a silent one: the actors make the
    transcripts (one dies and its task is retried), the driver only stores them; the rows are a
    local run's, and a CLI re-run with --ray has nothing to do."""
    pytest.importorskip("pocketsphinx", reason="the speech extra is not installed")
    if speechgen.ESPEAK is None:
        pytest.skip("espeak-ng is not installed (the README's contributing section installs it)")
    from vidsearch.cluster.transcripts import RayTranscripts
    from vidsearch.indexer.transcribe import transcribe_library

    folder = tmp_path / "videos"
    videogen.write_video(folder / "subtitled.mp4", seconds=3, fps=4, pattern="gradient", color=(200, 40, 40))
    speechgen.write_srt(folder / "subtitled.srt", [(0.5, 2.0, "the bridge is closed")])
    speechgen.write_spoken_video(folder / "spoken.mp4", [(0.5, "hello world")], seconds=3, fps=4)
    videogen.write_video(folder / "silent.mp4", seconds=2, fps=4, pattern="moving_square")
    with Library.open(tmp_path / "local", create=True) as lib:
        index_folder(lib, folder, options(tiny_checkpoint))
        here = transcribe_library(lib, "pocketsphinx")
    assert here.transcribed == 2 and [Path(p).name for p, _ in here.without_words] == ["silent.mp4"]

    import vidsearch.indexer.transcribe as pass_module

    def not_here(*args: object, **kwargs: object) -> None:
        raise AssertionError("the driver made a transcript")

    monkeypatch.setattr(pass_module, "open_transcriber", not_here)
    monkeypatch.setattr(pass_module, "transcript_or_reason", not_here)
    marker = tmp_path / "transcriber-died"
    with Library.open(tmp_path / "ray", create=True) as lib:
        index_folder_ray(lib, folder, options(tiny_checkpoint), ray_options())
        maker = RayTranscripts(ray_options(), "pocketsphinx", actor=dying_transcribe_actor(str(marker)))
        there = transcribe_library(lib, "pocketsphinx", maker=maker)
    assert marker.exists(), "the fault was not injected"
    assert there.without_words == here.without_words  # the same folder: the same paths and reasons
    assert (there.transcribed, there.lines, there.failed) == (here.transcribed, here.lines, 0)
    want = transcript_rows(tmp_path / "local")
    assert any(r[0] == "spoken.mp4" and r[5] == "pocketsphinx" and r[6] for r in want)  # word times recognized
    assert transcript_rows(tmp_path / "ray") == want
    again = CliRunner().invoke(
        app,
        ["index", str(folder), "--library", str(tmp_path / "ray"), "--model", str(tiny_checkpoint)]
        + ["--workers", "1", "--device", "cpu", "--ray", "local", "--transcribe", "pocketsphinx", "--json"],
        catch_exceptions=False,
    )
    assert again.exit_code == 0, again.stdout
    out = json.loads(again.stdout)
    assert out["unchanged"] == 3 and out["transcripts"]["unchanged"] == 3 and out["transcripts"]["transcribed"] == 0
