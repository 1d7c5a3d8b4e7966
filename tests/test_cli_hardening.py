"""The CLI as a hostile or careless user meets it: usage errors, hostile names, bad numbers.

Each test reproduces one finding of the adversarial pass of issue 12 and runs the real entry
point (``python -m vidsearch.cli``: the installed typer, not a test runner) where the finding was
about what a shell user sees.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_main(*args: str, cwd: Path | None = None) -> tuple[int, str, str]:
    """The console-script entry point in this process: (exit code, stdout, stderr)."""
    import contextlib
    import io

    from vidsearch.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    argv, old_cwd = sys.argv, os.getcwd()
    sys.argv = ["vidsearch", *args]
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main()
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = argv
        os.chdir(old_cwd)
    return code, out.getvalue(), err.getvalue()


def one_line_error(code: int, err: str, says: str) -> None:
    """Exit 2 with one ``error:`` line that contains ``says``."""
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], (code, err)


def invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run a command in this process (faster than :func:`cli`; no entry-point error handling)."""
    from faults import FaultPlan, injected
    from typer.testing import CliRunner

    from vidsearch.cli import commands  # noqa: F401  (registers the commands)
    from vidsearch.cli.main import app

    # VIDSEARCH_FAULT_INJECT in `env`: the decoders of this run misbehave (tests/faults.py)
    with injected(FaultPlan.from_env(env or {})):
        result = CliRunner().invoke(app, list(args), env={"COLUMNS": "300", **(env or {})}, catch_exceptions=False)
    return result.exit_code, result.stdout


def cli(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m vidsearch.cli ARGS`` as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "vidsearch.cli", *args], capture_output=True, text=True, cwd=cwd,
        env={**os.environ, **(env or {})}, timeout=timeout,
    )  # fmt: skip


@pytest.mark.parametrize(
    "args, says",
    [
        (["index"], "Missing argument"),
        (["query", "red", "--bogus"], "No such option: --bogus"),
        (["query", "red", "-k", "2.5"], "'-k'"),
        (["bogus"], "No such command 'bogus'"),
        (["index", ".", "--window", "abc"], "'--window'"),
    ],
)
def test_usage_errors_are_short_and_exit_2(args: list[str], says: str, tmp_path: Path) -> None:
    res = cli(*args, cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr and says in res.stderr
    assert len(res.stderr.strip().splitlines()) <= 4  # usage, hint, blank, error


def test_typer_range_is_pinned() -> None:
    import importlib.metadata

    text = (ROOT / "pyproject.toml").read_text()
    assert '"typer>=0.12,<0.30"' in text
    major, minor = (int(x) for x in importlib.metadata.version("typer").split(".")[:2])
    assert (0, 12) <= (major, minor) < (0, 30)


# ------------------------------------------------------------------------- hostile names (item 8)

HOSTILE = ["a[/]b.mp4", "[blink]bad.mp4", "x\x1b[31mred.mp4"]


@pytest.fixture(scope="module")
def hostile_library(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import videogen
    from conftest import make_tiny_checkpoint

    root = tmp_path_factory.mktemp("hostile")
    ckpt = make_tiny_checkpoint(root / "tiny.pth")
    videos = root / "videos"
    for i, name in enumerate(HOSTILE):
        videogen.write_video(videos / name, seconds=2, fps=8, pattern="gradient", color=(60 * i, 90, 200))
    (videos / "broken[").mkdir()  # "[/]" in a path: a folder "broken[" holding "]x..."
    (videos / "broken[/]x\x1b[2J.mp4").write_bytes(b"not a video at all" * 50)
    lib = root / "lib"
    code, out = invoke("index", str(videos), "--library", str(lib), "--model", str(ckpt), "--workers", "1")
    assert code == 1, out  # the broken file failed, the rest were indexed
    return {"lib": lib, "videos": videos, "ckpt": ckpt, "index_out": out}  # type: ignore[dict-item]


def _no_raw_escape(text: str) -> None:
    assert "\x1b" not in text and "Traceback" not in text


def test_hostile_names_print_as_they_are(hostile_library: dict[str, Path]) -> None:
    lib = str(hostile_library["lib"])
    index_out = str(hostile_library["index_out"])
    _no_raw_escape(index_out)
    assert "broken[/]x\\x1b[2J.mp4" in index_out  # the failure line names the file, escaped
    code, out = invoke("query", "a gradient", "--library", lib)
    assert code == 0, out
    _no_raw_escape(out)
    assert "a[/]b.mp4" in out and "[blink]bad.mp4" in out and "x\\x1b[31mred.mp4" in out
    code, out = invoke("info", "--library", lib)
    assert code == 0, out
    _no_raw_escape(out)
    assert "broken[/]x\\x1b[2J.mp4" in out
    res = cli("query", "--video", str(hostile_library["videos"] / "gone\x1b[31m.mp4"), "--library", lib)
    assert res.returncode == 2 and "gone\\x1b[31m.mp4" in res.stderr
    _no_raw_escape(res.stderr)


def test_shown_escapes_markup_and_control_characters() -> None:
    from rich.console import Console

    from vidsearch.cli.format import shown

    console = Console(record=True, width=200, color_system=None)
    for name in [*HOSTILE, "tab\there", "bytes\udcff.mp4", "[bold red]x[/bold red]"]:
        console.print(f"[bold]file[/] {shown(name)}")
    text = console.export_text()
    assert "a[/]b.mp4" in text and "[blink]bad.mp4" in text and "x\\x1b[31mred.mp4" in text
    assert "tab\\x09here" in text and "bytes\\xff.mp4" in text and "[bold red]x[/bold red]" in text


# ----------------------------------------------------------------- numeric options (item 5)


@pytest.mark.parametrize(
    "args, says",
    [
        (["index", "{dir}", "--window", "nan"], "--window must be > 0 seconds, got nan"),
        (["index", "{dir}", "--stride", "inf"], "--stride must be > 0"),
        (["index", "{dir}", "--stride", "-4"], "--stride must be > 0"),
        (["index", "{dir}", "--timeout", "nan"], "--timeout must be > 0"),
        (["index", "{dir}", "--timeout", "0"], "--timeout must be > 0"),
        (["index", "{dir}", "--workers", "0"], "--workers must be in [1, 256]"),
        (["index", "{dir}", "--workers", "100000"], "--workers must be in [1, 256]"),
        (["index", "{dir}", "--batch-size", "0"], "--batch-size must be >= 1"),
        (["query", "x", "-k", "0"], "-k must be >= 1"),
        (["query", "x", "--min-score", "nan"], "--min-score must be in [-1, 1]"),
        (["query", "x", "--min-score", "2"], "--min-score must be in [-1, 1]"),
        (["query", "x", "--min-duration", "-1"], "--min-duration must be >= 0"),
        (["query", "x", "--max-duration", "inf"], "--max-duration must be >= 0"),
        (
            ["query", "x", "--min-duration", "9", "--max-duration", "3"],
            "--min-duration 9 must be at most --max-duration 3",
        ),
        (["query", "--video", "v.mp4", "--start", "nan"], "--start must be >= 0"),
        (["query", "--video", "v.mp4", "--end", "-inf"], "--end must be > 0"),
        (["query", "--video", "v.mp4", "--start", "5", "--end", "2"], "--start 5 must be below --end 2"),
        (["enrich", "recognize", "--temperature", "nan"], "--temperature must be > 0"),
        (["enrich", "recognize", "--threshold", "inf"], "--threshold must be a finite number"),
        (["enrich", "recognize", "--top", "0"], "--top must be >= 1"),
        (["localize", "v.mp4", "x", "--window", "nan"], "--window must be a positive number"),
        (["localize", "v.mp4", "x", "--nms-iou", "nan"], "--nms-iou must be in [0, 1]"),
        (
            ["finetune", "--annotations", "a", "--videos", "v", "--out", "o", "-m", "m.pth", "--lr", "nan"],
            "--lr must be > 0",
        ),
        (
            ["finetune", "--annotations", "a", "--videos", "v", "--out", "o", "-m", "m.pth", "--warmup", "inf"],
            "--warmup must be in [0, 1]",
        ),
    ],
)
def test_numeric_options_reject_nan_inf_and_out_of_range(args: list[str], says: str, tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    args = [a.format(dir=tmp_path) for a in args]
    if args[0] != "finetune":  # the one command here without --library
        args += ["--library", str(lib)]
    code, _, err = run_main(*args, cwd=tmp_path)
    one_line_error(code, err, says)
    assert not lib.exists()  # rejected before a library was created or opened


# ------------------------------------------------------------------------------- remove (item 1)


def _library_with_rows(tmp_path: Path, n: int) -> tuple[Path, Path]:
    """A library whose rows are ``n`` (failed) videos under ``tmp_path/vids``: no model needed."""
    from vidsearch.indexer.sink import record_problem
    from vidsearch.store.library import Library

    vids, lib = tmp_path / "vids", tmp_path / "lib"
    vids.mkdir()
    with Library.open(lib, create=True) as library:
        for i in range(n):
            (vids / f"v{i}.mp4").write_bytes(b"x")
            record_problem(library, str(vids / f"v{i}.mp4"), "not a video")
    return vids, lib


def _stored(lib: Path) -> list[str]:
    from vidsearch.store.library import Library

    with Library.open(lib, create=False) as library:
        return [f["path"] for f in library.stats()["failed"]]


def test_remove_refuses_empty_paths_and_large_removals(tmp_path: Path) -> None:
    vids, lib = _library_with_rows(tmp_path, 7)
    before = _stored(lib)
    assert len(before) == 7
    for empty in ("", "   "):
        code, _, err = run_main("remove", empty, "--library", str(lib), cwd=vids)
        one_line_error(code, err, "is empty")
        assert _stored(lib) == before
    code, _, err = run_main("remove", str(vids), "--library", str(lib))
    one_line_error(code, err, "would forget 7 videos")
    assert "--yes" in err and _stored(lib) == before
    code, out, err = run_main("remove", str(vids), "--library", str(lib), "--dry-run")
    assert code == 0 and "would remove 7 video(s)" in out and str(vids / "v6.mp4") in out
    assert _stored(lib) == before
    code, out, _ = run_main("remove", str(vids / "v0.mp4"), "--library", str(lib))  # a handful: no --yes needed
    assert code == 0 and "removed 1 video(s)" in out and len(_stored(lib)) == 6
    code, out, _ = run_main("remove", ".", "--library", str(lib), "--yes", cwd=vids)
    assert code == 0 and "removed 6 video(s)" in out and _stored(lib) == []


# ---------------------------------------------- --model everywhere (17), checks up front (16)


@pytest.fixture(scope="module")
def small_library(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import videogen
    from conftest import make_tiny_checkpoint

    root = tmp_path_factory.mktemp("small")
    ckpt = make_tiny_checkpoint(root / "mine.pth", seed=3)
    videos = root / "videos"
    videogen.write_video(videos / "red.mp4", seconds=2, fps=8, pattern="gradient", color=(210, 40, 40))
    videogen.write_video(videos / "square.mp4", seconds=4, fps=8, pattern="moving_square", color=(40, 200, 40))
    lib = root / "lib"
    code, out = invoke("index", str(videos), "--library", str(lib), "--model", str(ckpt), "--workers", "1", "--json")
    assert code == 0, out
    import json

    return {"root": root, "lib": lib, "videos": videos, "ckpt": ckpt, "key": json.loads(out)["space_key"]}  # type: ignore[dict-item]


def test_model_option_takes_what_index_took(small_library: dict, tmp_path: Path) -> None:
    import json

    lib, ckpt, key = str(small_library["lib"]), small_library["ckpt"], small_library["key"]
    # the checkpoint path as given to index, a relative path to it, the space key, its name
    for model in (str(ckpt), os.path.relpath(ckpt), key, key.split("@")[0]):
        code, out = invoke("query", "a red gradient", "--library", lib, "--model", model, "--json")
        assert code == 0, out
        assert {Path(h["path"]).name for h in json.loads(out)} == {"red.mp4", "square.mp4"}
    labels = tmp_path / "colours.txt"
    labels.write_text("red\ngreen\n")
    code, out = invoke("enrich", "recognize", "--library", lib, "--labels", str(labels), "--model", str(ckpt), "--json")
    assert code == 0 and json.loads(out)["space"] == key, out
    code, out = invoke(
        "labels", str(small_library["videos"] / "red.mp4"), "--library", lib, "--model", str(ckpt), "--json"
    )
    assert code == 0 and json.loads(out)["label_sets"][0]["space"] == key, out
    video = str(small_library["videos"] / "square.mp4")
    code, out = invoke("localize", video, "a square", "--library", lib, "--model", str(ckpt), "--json")
    assert code == 0 and json.loads(out)["spans"], out
    # another checkpoint: not a space of this library, said in one line
    other = small_library["root"] / "other.pth"
    if not other.exists():
        from conftest import make_tiny_checkpoint

        make_tiny_checkpoint(other, seed=9)
    code, _, err = run_main("query", "x", "--library", lib, "--model", str(other))
    one_line_error(code, err, "has no embeddings for model")
    code, _, err = run_main("query", "x", "--library", lib, "--model", "viclip-nonsense")
    one_line_error(code, err, "--model viclip-nonsense: not an embedding space")
    code, _, err = run_main("query", "x", "--library", lib, "--model", "viclip-l14")  # no weights here (offline)
    one_line_error(code, err, "no weights for viclip-l14")
    assert "--checkpoint" not in err  # query has no such option


def test_checks_before_the_work(small_library: dict, tmp_path: Path) -> None:
    lib = str(small_library["lib"])
    code, _, err = run_main("query", "--video", str(small_library["videos"]), "--library", lib)
    one_line_error(code, err, "is a directory, not a video file")
    code, _, err = run_main("enrich", "recognize", "--library", lib, "--score", "bogus")
    one_line_error(code, err, "choose one of msp, energy, maxcos")
    code, _, err = run_main("enrich", "recognize", "--library", lib, "--labels", str(tmp_path / "missing.txt"))
    assert code == 2 and "missing.txt" in err
    ann = tmp_path / "ann.json"
    ann.write_text('[{"video": "red.mp4", "caption": "a red gradient"}]')
    for cmd in (
        [
            "bench",
            "retrieval",
            "--dataset",
            "json",
            "--annotations",
            str(ann),
            "--videos",
            str(small_library["videos"]),
        ],
    ):
        code, _, err = run_main(
            *cmd, "--model", str(small_library["ckpt"]), "--out", str(tmp_path), "--library", str(tmp_path / "benchlib")
        )
        one_line_error(code, err, "is a directory; give a file name")
        assert not (tmp_path / "benchlib").exists()  # nothing was encoded


def test_moved_checkpoint_message_names_what_to_do(tmp_path: Path) -> None:
    import shutil

    import videogen
    from conftest import make_tiny_checkpoint

    ckpt = make_tiny_checkpoint(tmp_path / "w" / "mine.pth")
    videogen.write_video(tmp_path / "v" / "a.mp4", seconds=2, fps=8, pattern="gradient")
    lib = str(tmp_path / "lib")
    code, out = invoke("index", str(tmp_path / "v"), "--library", lib, "--model", str(ckpt), "--workers", "1")
    assert code == 0, out
    shutil.move(tmp_path / "w", tmp_path / "moved")
    code, _, err = run_main("query", "x", "--library", lib)
    one_line_error(code, err, "put the file back there, or index again with --model")
    assert "--checkpoint" not in err and str(ckpt) in err


def test_localize_without_a_library(small_library: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    monkeypatch.setenv("VIDSEARCH_LIBRARY", str(tmp_path / "no-library-here"))
    monkeypatch.setenv("VIDSEARCH_CACHE_DIR", str(tmp_path / "cache"))
    video = str(small_library["videos"] / "square.mp4")
    args = ("localize", video, "a green square", "--model", str(small_library["ckpt"]), "--json")
    code, out = invoke(*args)
    assert code == 0, out
    first = json.loads(out)
    assert first["spans"] and not first["cached"]
    assert list((tmp_path / "cache" / "windows").glob("*.npz"))  # the user cache dir, no library made
    assert not (tmp_path / "no-library-here").exists()
    code, out = invoke(*args)
    again = json.loads(out)
    assert code == 0 and again["cached"] and again["spans"] == first["spans"]


# ------------------------------------------- failures caused by the run's options (item 5)


def test_a_file_that_failed_under_some_options_is_retried_when_they_change(tmp_path: Path) -> None:
    import json

    import videogen
    from conftest import make_tiny_checkpoint

    ckpt = make_tiny_checkpoint(tmp_path / "tiny.pth")
    folder = tmp_path / "videos"
    videogen.write_video(folder / "a.mp4", seconds=2, fps=8, pattern="gradient")
    lib = str(tmp_path / "lib")
    base = ("index", str(folder), "--library", lib, "--model", str(ckpt), "--workers", "1", "--json")
    code, out = invoke(*base, env={"VIDSEARCH_FAULT_INJECT": "crash:" + str(folder)})  # the decoder dies on it
    report = json.loads(out)
    assert code == 1 and report["failed"][0]["reason"].endswith("(with --window 8 --stride 4)"), report
    code, out = invoke(*base)  # the same options: not retried (as before)
    assert code == 1 and json.loads(out)["failed_unchanged"] == 1
    code, out = invoke(*base, "--window", "6")  # other options: tried again, and it works
    report = json.loads(out)
    assert code == 0 and report["failed"] == [] and report["updated"] + report["added"] == 1, report


def test_failures_before_decoding_are_not_retried_for_new_options() -> None:
    from vidsearch.indexer.options import IndexOptions, failed_with_other_options, failure_options, with_options
    from vidsearch.indexer.scan import FileSource, plan_changes
    from vidsearch.store.videos import KnownVideo, Snapshot

    old, new = IndexOptions(), IndexOptions(timeout=30.0)
    rows = [
        KnownVideo(
            1, "/v/slow.mp4", 10, 1, "fp1", "failed", with_options("timed out after 3 s", old), failure_options(old)
        ),
        KnownVideo(2, "/v/gone.mp4", 10, 1, "fp2", "failed", "cannot read: Permission denied"),
    ]
    files = [FileSource("/v/slow.mp4", 10, 1), FileSource("/v/gone.mp4", 10, 1)]
    for options, retried in ((old, []), (new, ["/v/slow.mp4"])):
        plan = plan_changes(
            Snapshot(rows), files, None, retry_options=lambda r, o=options: failed_with_other_options(r, o)
        )
        assert [e.path for e in plan.encode] == retried
        assert plan.failed_unchanged == 2 - len(retried)


# -------------------------------------------------------------------- MSR-VTT CSV (Also)


def test_msrvtt_csv_duplicate_video_id_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from vidsearch.bench.datasets import read_msrvtt_csv

    csv = tmp_path / "msrvtt.csv"
    csv.write_text(
        "key;vid_key;video_id;sentence\nret0;msr7;video7;a dog runs\nret1;msr8;video8;a cat\nret2;msr7;video7;a man sings\n"
    )
    with caplog.at_level("WARNING"):
        rs = read_msrvtt_csv(csv)
    assert "video_id video7 is on lines 2, 4" in caplog.text
    assert len(rs.videos) == 2  # still merged, as before: the warning says so
    caplog.clear()
    csv.write_text("key;vid_key;video_id;sentence\nret0;msr7;video7;a dog runs\nret1;msr8;video8;a cat\n")
    with caplog.at_level("WARNING"):
        read_msrvtt_csv(csv)
    assert "video_id" not in caplog.text


def test_a_checkpoint_without_its_config_names_the_flag_that_gives_it(tmp_path: Path, tiny_checkpoint: Path) -> None:
    """A custom-size checkpoint alone: one line naming ``--model-config``, a flag `index` has."""
    import shutil

    import videogen

    ckpt = tmp_path / "mine.pth"  # no mine.json beside it
    shutil.copy(tiny_checkpoint, ckpt)
    videogen.write_video(tmp_path / "videos" / "red.mp4", seconds=2, fps=8, color=(220, 40, 40))
    lib = tmp_path / "lib"
    code, _, err = run_main("index", str(tmp_path / "videos"), "--library", str(lib), "--model", str(ckpt))
    one_line_error(code, err, "pass --model-config PATH or put mine.json beside it")
    assert "config=" not in err  # the Python API's keyword means nothing in a shell
    code, out, _ = run_main("index", "--help")
    assert code == 0 and "--model-config" in out
