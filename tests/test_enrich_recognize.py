"""Recognition over a library: migration 0002, stored labels vs recomputation, incremental runs, filters."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import videogen
from sqlalchemy import select

from vidsearch.cli.errors import message as cli_message
from vidsearch.errors import InputError
from vidsearch.store.labels import top_video_labels
from vidsearch.store.library import Library
from vidsearch.store.schema import LabelSet, Segment, SegmentLabel, SegmentRecognition

LABELS = ["red gradient", "green square moving", "noise", "blue circle", "dancing"]


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path) -> tuple[Path, Path, Path]:
    """(library, videos folder, label file): two short videos and one with windows, indexed once."""
    from vidsearch.indexer.pipeline import IndexOptions, index_folder

    root = tmp_path_factory.mktemp("enrich")
    videos = root / "videos"
    videogen.write_video(videos / "red.mp4", seconds=2, fps=10, pattern="gradient", color=(200, 40, 40))
    videogen.write_video(videos / "green.mp4", seconds=2, fps=10, pattern="moving_square", color=(40, 200, 40))
    videogen.write_video(videos / "long.mkv", seconds=16, fps=4, pattern="noise", gop=16)  # 3 windows
    lib = root / "lib"
    with Library.open(lib) as library:
        index_folder(library, videos, IndexOptions(model=str(tiny_checkpoint), device="cpu", workers=1))
    labels = root / "labels.txt"
    labels.write_text("\n".join(LABELS) + "\n")
    return lib, videos, labels


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_migration_0002_keeps_a_0001_library(tmp_path: Path) -> None:
    """A library at revision 0001 with data opens at head with its rows intact and the new tables."""
    from importlib.resources import files

    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy import create_engine, inspect, text

    from vidsearch.store.schema import Base

    db = tmp_path / "lib" / "library.sqlite"
    db.parent.mkdir()
    engine = create_engine(f"sqlite:///{db}")
    cfg = Config()
    cfg.set_main_option("script_location", str(files("vidsearch.migrations")))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
        conn.execute(text("INSERT INTO spaces VALUES (1, 'm@1', 2, '{}', '{}', 3, '2026-01-01', '2026-01-01')"))
        conn.execute(
            text(
                "INSERT INTO videos (id, path, size, mtime_ns, fingerprint, status, updated_at) VALUES (7, '/v.mp4', 10, 1, 'fp', 'indexed', '2026-01-01')"
            )
        )
        conn.execute(
            text("INSERT INTO segments VALUES (5, 7, 1, 'video', 0.0, 2.0, :v)"),
            {"v": np.array([0.6, 0.8], "<f4").tobytes()},
        )
    engine.dispose()

    with Library.open(tmp_path / "lib", create=False) as library:
        with library.engine.connect() as conn:
            head = ScriptDirectory.from_config(cfg).get_current_head()
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == head
            assert conn.execute(text('SELECT id, video_id, kind, "end" FROM segments')).all() == [(5, 7, "video", 2.0)]
            assert conn.execute(text("SELECT generation FROM spaces")).scalar() == 3
            tables = set(inspect(conn).get_table_names())
            assert {"label_sets", "segment_labels", "segment_recognitions"} <= tables
            # the migrated schema is exactly what the models describe
            # FTS5 virtual tables (and their shadow tables) are made by SQL in their migration,
            # not by the metadata.
            opts = {"include_name": lambda name, type_, parent: not (name or "").startswith("transcript_fts")}
            assert compare_metadata(MigrationContext.configure(conn, opts=opts), Base.metadata) == []
        ids, xb = next(library.iter_vectors(1))
        assert ids.tolist() == [5] and np.allclose(xb[0], [0.6, 0.8])


def _stored(library: Library) -> dict[int, dict]:
    with library.session() as s:
        recs = {r.segment_id: r for r in s.scalars(select(SegmentRecognition)).all()}
        labs = s.execute(
            select(
                SegmentLabel.segment_id, SegmentLabel.rank, SegmentLabel.label, SegmentLabel.score, SegmentLabel.prob
            )
        ).all()
        out = {sid: {"known": r.known_score, "unknown": r.unknown, "labels": {}} for sid, r in recs.items()}
        for sid, rank, label, score, prob in labs:
            out[sid]["labels"][rank] = (label, score, prob)
        return out


def test_stored_labels_equal_recomputation(
    indexed: tuple[Path, Path, Path], tmp_path: Path, tiny_checkpoint: Path
) -> None:
    from vidsearch.enrich.recognize import recognize_library
    from vidsearch.labels import DEFAULT_TEMPLATES, known_scores, label_embeddings
    from vidsearch.metrics import softmax
    from vidsearch.models import EncoderSpec, open_encoder

    lib_path, _, labels = indexed
    lib_path = _copy(lib_path, tmp_path / "lib")
    with Library.open(lib_path, create=False) as library:
        report = recognize_library(library, labels, top=3, device="cpu")
        space = library.space()
        assert report.labelled == 3 + 3 and report.videos == 3 and report.already == 0 and report.model_loaded
        stored = _stored(library)
        ids, xb = next(library.iter_vectors(space.id))
        with library.session() as s:
            row = s.scalar(select(LabelSet))
            T, th = row.temperature, row.threshold
            top_by_path = top_video_labels(s, row.name)
        infos = library.segment_infos(ids)
    # Recompute from the stored vectors with a freshly loaded model.
    encoder = open_encoder(EncoderSpec(str(tiny_checkpoint), device="cpu"))
    E = label_embeddings(encoder, LABELS, DEFAULT_TEMPLATES)
    S = xb @ E.T
    P = softmax(S / T, axis=1)
    assert T == pytest.approx(float(encoder.model.temp.detach()), rel=1e-6) and th == 0.5  # the documented default rule
    assert set(stored) == set(ids.tolist())
    for r, sid in enumerate(ids.tolist()):
        order = np.argsort(-S[r], kind="stable")[:3]
        got = stored[sid]
        assert [got["labels"][k][0] for k in (1, 2, 3)] == [LABELS[c] for c in order]
        assert [got["labels"][k][1] for k in (1, 2, 3)] == pytest.approx(S[r, order].tolist(), abs=1e-5)
        assert [got["labels"][k][2] for k in (1, 2, 3)] == pytest.approx(P[r, order].tolist(), abs=1e-5)
        assert got["known"] == pytest.approx(float(known_scores(S[r : r + 1], "msp", T)[0]), abs=1e-6)
        assert got["unknown"] == (got["known"] < 0.5)
        if infos[sid].kind == "video":  # the store's per-video summary agrees with the rows
            assert top_by_path[infos[sid].path] == (got["labels"][1][0], got["known"], got["unknown"])
    assert len(top_by_path) == 3


def test_incremental_runs_label_only_new_videos(
    indexed: tuple[Path, Path, Path], tmp_path: Path, tiny_checkpoint: Path
) -> None:
    from vidsearch.enrich.recognize import recognize_library
    from vidsearch.indexer.pipeline import IndexOptions, index_folder

    _, videos, labels = indexed
    videos = _copy(videos, tmp_path / "videos")  # this test changes the folder: its own library
    with Library.open(tmp_path / "lib") as library:
        index_folder(library, videos, IndexOptions(model=str(tiny_checkpoint), device="cpu", workers=1))
        first = recognize_library(library, labels, top=2, device="cpu")
        before = _stored(library)
        again = recognize_library(library, labels, top=2)
        assert (again.labelled, again.already, again.model_loaded, again.relabelled) == (0, 6, False, False)

        videogen.write_video(videos / "blue.mp4", seconds=2, fps=10, pattern="moving_square", color=(40, 40, 220))
        index_folder(library, videos, IndexOptions(model=str(tiny_checkpoint), device="cpu", workers=1))
        third = recognize_library(library, labels, top=2)
        assert (third.labelled, third.videos, third.already, third.model_loaded) == (1, 1, 6, False)
        after = _stored(library)
        assert {k: after[k] for k in before} == before  # earlier labels untouched
        assert len(after) == len(before) + 1

        # a changed video: its old segments (and labels) go, the new ones get labelled
        videogen.write_video(videos / "red.mp4", seconds=3, fps=10, pattern="noise")
        index_folder(library, videos, IndexOptions(model=str(tiny_checkpoint), device="cpu", workers=1))
        fourth = recognize_library(library, labels, top=2)
        assert (fourth.labelled, fourth.already) == (1, 6)
        with library.session() as s:
            orphans = s.scalar(select(SegmentLabel.id).where(~SegmentLabel.segment_id.in_(select(Segment.id))))
        assert orphans is None

        # changing top (or the rule) relabels everything, still without a model
        fifth = recognize_library(library, labels, top=3, threshold=0.9)
        assert fifth.relabelled and fifth.labelled == 7 and not fifth.model_loaded
        assert fifth.rule["threshold"] == 0.9
    assert first.model_loaded


def test_videos_with_label_and_timeline(indexed: tuple[Path, Path, Path], tmp_path: Path) -> None:
    from vidsearch.enrich.recognize import recognize_library, video_labels, videos_with_label

    lib_path, videos, labels = indexed
    lib_path = _copy(lib_path, tmp_path / "lib")
    with Library.open(lib_path, create=False) as library:
        with pytest.raises(InputError, match="run the recognition pass first") as err:
            videos_with_label(library, "noise")
        assert "run `vidsearch enrich recognize --labels kinetics400` first" in cli_message(err.value)
        recognize_library(library, labels, top=2, device="cpu", threshold=0.0)  # nothing unknown
        stored = _stored(library)
        infos = library.segment_infos(list(stored))
        for label in LABELS:
            expect = {infos[sid].video_id for sid, st in stored.items() if st["labels"][1][0] == label}
            assert videos_with_label(library, label) == expect
            # any spelling of the label matches
            assert videos_with_label(library, label.upper().replace(" ", "_"), label_set=str(labels)) == expect
        everything = set().union(*(videos_with_label(library, lab, max_rank=2) for lab in LABELS))
        assert everything == {i.video_id for i in infos.values()}
        with pytest.raises(InputError, match="did you mean 'blue circle'"):
            videos_with_label(library, "blue circles")

        # everything unknown: no label holds
        recognize_library(library, labels, top=2, threshold=1.01)
        assert all(not videos_with_label(library, lab) for lab in LABELS)
        assert videos_with_label(library, stored[next(iter(stored))]["labels"][1][0], include_unknown=True)

        recognize_library(library, labels, top=2, threshold=0.0)
        info = video_labels(library, videos / "long.mkv")
    ls = info["label_sets"][0]
    assert ls["label_set"] == "labels.txt" and len(ls["windows"]) == 3 and len(ls["labels"]) == 2
    tl = ls["timeline"]
    # the timeline covers the windows without overlap, one entry per run of equal top labels
    assert tl[0]["start"] == 0.0 and tl[-1]["end"] == pytest.approx(16.0)
    assert all(a["end"] == pytest.approx(b["start"]) for a, b in zip(tl, tl[1:], strict=False))
    assert sum(t["windows"] for t in tl) == 3
    tops = [w["labels"][0]["label"] for w in ls["windows"]]
    assert [t["label"] for t in tl] == [lab for i, lab in enumerate(tops) if i == 0 or tops[i - 1] != lab]
    with pytest.raises(InputError, match="not in the library"):
        video_labels(Library.open(lib_path, create=False), tmp_path / "nope.mp4")


def test_best_span_for_hit_uses_stored_windows(indexed: tuple[Path, Path, Path]) -> None:
    from vidsearch.search import best_span_for_hit, window_scores
    from vidsearch.spans import best_span_from_windows

    lib_path, _, _ = indexed
    with Library.open(lib_path, create=False) as library:
        space = library.space()
        infos = library.segment_infos(library.segment_ids(space.id).tolist())
        long_id = next(i.video_id for i in infos.values() if i.path.endswith("long.mkv"))
        short_id = next(i.video_id for i in infos.values() if i.path.endswith("red.mp4"))
        _, xb = next(library.iter_vectors(space.id))
        xq = xb[-1]
        windows = window_scores(library, space, long_id, xq)
        assert [(a, b) for a, b, _ in windows] == [(0.0, 8.0), (4.0, 12.0), (8.0, 16.0)]
        assert best_span_for_hit(library, space, long_id, xq) == best_span_from_windows(windows)
        assert best_span_for_hit(library, space, short_id, xq) is None


def test_label_set_file_change_relabels(indexed: tuple[Path, Path, Path], tmp_path: Path) -> None:
    from vidsearch.enrich.recognize import list_label_sets, recognize_library

    lib_path, _, _ = indexed
    lib_path = _copy(lib_path, tmp_path / "lib")
    labels = tmp_path / "mine.txt"
    labels.write_text("walking\nrunning\n")
    with Library.open(lib_path, create=False) as library:
        recognize_library(library, labels, device="cpu")
        labels.write_text("walking\nrunning\nswimming\n")
        report = recognize_library(library, labels, device="cpu")
        assert report.relabelled and report.model_loaded and report.labelled == 6
        (ls,) = list_label_sets(library)
        assert ls.labels == ["walking", "running", "swimming"] and ls.top == 5 and ls.display_name == "mine.txt"
        with library.session() as s:
            assert max(s.scalars(select(SegmentLabel.rank)).all()) == 3  # top is capped by the class count
            assert json.loads(s.scalar(select(LabelSet.templates)))
        with pytest.raises(InputError, match="score energy needs a threshold"):
            recognize_library(library, labels, score="energy")
