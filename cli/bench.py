"""`vidsearch bench retrieval|recognition`: standard benchmarks, reported the way papers report them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from vidsearch.cli.app import app
from vidsearch.cli.common import (
    AllowMissingOption,
    AntialiasOption,
    BenchLibraryOption,
    CheckpointOption,
    JsonOption,
    ModelConfigOption,
    ModelOption,
    OutOption,
    PrecisionOption,
    RichProgress,
    bench_options,
    console,
    err_console,
)
from vidsearch.cli.format import check_output, fmt_figure, shown, write_report

__all__ = ["bench_app"]

bench_app = typer.Typer(
    help="Run standard benchmarks (MSR-VTT, VATEX, ... retrieval; Kinetics, UCF-101, HMDB-51 zero-shot recognition).",
    no_args_is_help=True,
)
app.add_typer(bench_app, name="bench")

_VIDEOS = typer.Option(
    ..., "--videos", help="Folder with the dataset's videos (searched recursively).", show_default=False
)


def _coverage_note(results: dict[str, Any]) -> str | None:
    from vidsearch.bench.datasets import name_list

    counts = results["counts"]
    if results["complete"]:
        return None
    parts = []
    if counts["missing"]:
        parts.append(f"{name_list(results['missing'], first=3)} missing")
    if counts["undecodable"]:
        parts.append(f"{name_list([u['video'] for u in results['undecodable']], first=3)} undecodable")
    return shown(
        f"INCOMPLETE: evaluated on {counts['videos']} of {counts['videos_in_annotations']} videos; " + "; ".join(parts)
    )


def _footer(results: dict[str, Any]) -> str:
    t = results["timing"]
    speed = f", {t['videos_per_second']:.2f} videos/s" if t.get("videos_per_second") else ""
    return (
        f"model {shown(results['model']['key'])}  ·  {results['sampling']['frames_per_video']} frames/video, whole video  ·  "
        f"{t['videos_encoded']} encoded, {t['videos_cached']} cached{speed}  ·  {t['wall_seconds']:.1f} s"
    )


def _show(table: Table, results: dict[str, Any]) -> None:
    """Print the table (an incomplete run says so in its caption), then the model and timing line."""
    note = _coverage_note(results)
    if note:
        table.caption = note
        table.caption_style = "bold yellow"
    console.print(table)
    console.print(_footer(results), highlight=False)


def _print_retrieval(results: dict[str, Any]) -> None:
    counts = results["counts"]
    kind = "paragraph retrieval" if results["paragraph"] else "retrieval"
    table = Table(title=f"{shown(results['dataset'])} {kind}: {counts['videos']} videos, {counts['captions']} captions")
    table.add_column("direction")
    for col in ("R@1", "R@5", "R@10", "MdR", "MnR"):
        table.add_column(col, justify="right")
    rows = [("text->video", results["metrics"]["t2v"]), ("video->text", results["metrics"]["v2t"])]
    if "metrics_dsl" in results:
        rows += [("text->video DSL", results["metrics_dsl"]["t2v"]), ("video->text DSL", results["metrics_dsl"]["v2t"])]
    if "metrics_itm" in results:
        rows += [("text->video ITM", results["metrics_itm"]["t2v"]), ("video->text ITM", results["metrics_itm"]["v2t"])]
    for name, m in rows:
        table.add_row(name, *(fmt_figure(m[c]) for c in ("R@1", "R@5", "R@10", "MdR", "MnR")))
    _show(table, results)


def _print_recognition(results: dict[str, Any]) -> None:
    counts = results["counts"]
    m = results["metrics"]
    table = Table(
        title=f"{shown(results['label_set'])} zero-shot recognition: {counts['videos']} videos, {results['classes']} classes"
    )
    for col in ("top-1", "top-5", "avg", "mean class top-1"):
        table.add_column(col, justify="right")
    table.add_row(
        fmt_figure(m["top1"]), fmt_figure(m["top5"]), fmt_figure(m["avg_top1_top5"]), fmt_figure(m["mean_class_top1"])
    )
    _show(table, results)


@bench_app.command("retrieval")
def retrieval_command(
    dataset: str = typer.Option(
        ..., "--dataset", help="msrvtt, vatex, msvd, didemo, activitynet or json.", show_default=False
    ),
    annotations: Path = typer.Option(
        ..., "--annotations", help="Annotation file (formats: see docs/benchmarks.md).", show_default=False
    ),
    videos: Path = _VIDEOS,
    model: str = ModelOption,
    model_config: Path | None = ModelConfigOption,
    checkpoint: Path | None = CheckpointOption,
    out: Path | None = OutOption,
    save_similarity: Path | None = typer.Option(
        None,
        "--save-similarity",
        help="Write the caption x video similarity matrix (.npy) and its orders (<stem>.orders.json).",
    ),
    dsl: bool = typer.Option(False, "--dsl", help="Also report dual-softmax (DSL) re-weighted metrics."),
    rerank: str | None = typer.Option(
        None, "--rerank", help="Also report metrics re-ranked by the model's matching head: itm (InternVideo2)."
    ),
    rerank_k: int | None = typer.Option(
        None, "--rerank-k", help="With --rerank: ITC candidates re-ranked per caption and per video (default 128)."
    ),
    library: Path | None = BenchLibraryOption,
    allow_missing: bool = AllowMissingOption,
    antialias: bool | None = AntialiasOption,
    precision: str = PrecisionOption,
    json_out: bool = JsonOption,
) -> None:
    """Text->video and video->text retrieval: R@1/5/10, median and mean rank."""
    from vidsearch.bench.datasets import read_annotations
    from vidsearch.bench.retrieval import run_retrieval

    check_output("--out", out)  # before the benchmark runs, not after
    check_output("--save-similarity", save_similarity)
    from vidsearch.bench.itm_rerank import DEFAULT_BENCH_RERANK_K
    from vidsearch.rerank import rerank_k_for

    candidates = rerank_k_for(rerank, rerank_k, default=DEFAULT_BENCH_RERANK_K)
    rs = read_annotations(dataset, annotations)
    options = bench_options(model, model_config, checkpoint, library, allow_missing, antialias, precision)
    with RichProgress("encoding videos", enabled=not json_out and err_console.is_terminal) as progress:
        run = run_retrieval(
            rs,
            videos,
            options,
            dsl=dsl,
            save_similarity_to=save_similarity,
            annotations=annotations,
            progress=progress,
            rerank_k=candidates,
        )
    write_report(run.results, out, json_out, _print_retrieval)


@bench_app.command("recognition")
def recognition_command(
    labels: str = typer.Option(
        ...,
        "--labels",
        help="kinetics400, kinetics600, kinetics700, ucf101, hmdb51, or a label file (one class a line).",
        show_default=False,
    ),
    annotations: Path = typer.Option(
        ...,
        "--annotations",
        help="CSV video,label (name or 0-based index); see docs/benchmarks.md.",
        show_default=False,
    ),
    videos: Path = _VIDEOS,
    model: str = ModelOption,
    model_config: Path | None = ModelConfigOption,
    checkpoint: Path | None = CheckpointOption,
    out: Path | None = OutOption,
    library: Path | None = BenchLibraryOption,
    allow_missing: bool = AllowMissingOption,
    antialias: bool | None = AntialiasOption,
    precision: str = PrecisionOption,
    json_out: bool = JsonOption,
) -> None:
    """Zero-shot action recognition with prompt ensembling: top-1 and top-5 accuracy."""
    from vidsearch.bench.recognition import read_recognition_annotations, run_recognition
    from vidsearch.labels import load_label_set

    check_output("--out", out)
    classes = load_label_set(labels)
    rec = read_recognition_annotations(annotations, classes)
    options = bench_options(model, model_config, checkpoint, library, allow_missing, antialias, precision)
    with RichProgress("encoding videos", enabled=not json_out and err_console.is_terminal) as progress:
        run = run_recognition(rec, classes, videos, options, label_set=labels, progress=progress)
    write_report(run.results, out, json_out, _print_recognition)
