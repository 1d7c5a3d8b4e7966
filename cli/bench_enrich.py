"""`vidsearch bench open-set|localization`: benchmarks of the enrichment passes."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import typer
from rich.table import Table

from vidsearch.cli.bench import bench_app
from vidsearch.cli.checks import check_number, check_temperature
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
from vidsearch.models.opener import open_encoder


def _incomplete_note(results: dict[str, Any]) -> None:
    if not results["complete"]:
        err_console.print(
            "[yellow]INCOMPLETE: some videos were missing or undecodable (see --json)[/]", highlight=False
        )


@bench_app.command("open-set")
def open_set_command(
    known: Path = typer.Option(
        ..., "--known", help="Known videos: CSV video,label (as `bench recognition`).", show_default=False
    ),
    known_videos: Path = typer.Option(..., "--known-videos", help="Folder of the known videos.", show_default=False),
    unknown: Path = typer.Option(
        ..., "--unknown", help="Unknown videos: CSV video[,label] or one video a line.", show_default=False
    ),
    unknown_videos: Path | None = typer.Option(
        None, "--unknown-videos", help="Folder of the unknown videos (default: --known-videos).", show_default=False
    ),
    known_labels: str = typer.Option(
        "ucf101", "--known-labels", help="The known label set: ucf101, hmdb51, kinetics400/600/700 or a label file."
    ),
    score: str = typer.Option(
        "msp", "--score", help="Score of the operating point: msp, energy or maxcos (AUROC is reported for all)."
    ),
    temperature: float | None = typer.Option(
        None, "--temperature", help="Softmax temperature (default: the model's own).", show_default=False
    ),
    threshold: float | None = typer.Option(
        None,
        "--threshold",
        help="Operating-point threshold (default 0.5 for msp; required for energy/maxcos).",
        show_default=False,
    ),
    templates: Path | None = typer.Option(
        None,
        "--templates",
        help="Prompt templates file, one a line with {} for the class name (default: the recognition benchmark's).",
        show_default=False,
    ),
    model: str = ModelOption,
    model_config: Path | None = ModelConfigOption,
    checkpoint: Path | None = CheckpointOption,
    out: Path | None = OutOption,
    library: Path | None = BenchLibraryOption,
    allow_missing: bool = AllowMissingOption,
    antialias: bool | None = AntialiasOption,
    precision: str = PrecisionOption,
    heads: list[Path] | None = typer.Option(
        None,
        "--head",
        help="A trained head (`enrich train-head`) of this model and --known-labels to measure beside the "
        "zero-shot rules; repeat for several (e.g. EDL and CE).",
        show_default=False,
    ),
    json_out: bool = JsonOption,
) -> None:
    """Open-set recognition (InternVideo protocol: UCF-101 known, HMDB-51 unknown): AUROC and closed-set accuracy."""
    from vidsearch.bench.common import bench_encoder_spec
    from vidsearch.bench.openset import read_video_list, run_open_set
    from vidsearch.bench.recognition import read_recognition_annotations
    from vidsearch.labels import default_rule, load_label_set, override_rule, read_templates

    check_temperature("--temperature", temperature)
    check_number("--threshold", threshold)
    check_output("--out", out)
    prompts = read_templates(templates)
    classes = load_label_set(known_labels)
    rec = read_recognition_annotations(known, classes)
    unknown_list = read_video_list(unknown)
    override_rule(default_rule(), score, temperature, threshold)  # bad settings fail before the model loads
    from vidsearch.enrich.head import load_head

    trained = [(path.name, load_head(path)) for path in heads or []]
    options = bench_options(model, model_config, checkpoint, library, allow_missing, antialias, precision)
    encoder = cast(Any, open_encoder(bench_encoder_spec(options)))  # both towers and the trained temperature
    rule = override_rule(default_rule(encoder.temperature), score, temperature, threshold)
    with RichProgress("encoding videos", enabled=not json_out and err_console.is_terminal) as progress:
        run = run_open_set(
            rec, classes, known_videos, unknown_list, unknown_videos or known_videos, options,
            label_set=known_labels, rule=rule, templates=prompts, encoder=encoder, progress=progress, heads=trained,
        )  # fmt: skip
    write_report(run.results, out, json_out, _print_open_set)


def _print_open_set(results: dict[str, Any]) -> None:
    m, c = results["metrics"], results["counts"]
    table = Table(
        title=f"open set: {shown(results['label_set'])} known ({c['known_videos']} videos), {c['unknown_videos']} unknown videos"
    )
    for col in ("score", "AUROC", "FPR@95TPR"):
        table.add_column(col, justify="right" if col != "score" else "left")
    for kind, v in m["by_score"].items():
        table.add_row(
            kind + (" *" if kind == results["rule"]["kind"] else ""),
            fmt_figure(v["auroc"]),
            fmt_figure(v["fpr_at_95tpr"]),
        )
    op = m["operating_point"]
    table.caption = (
        f"closed-set top-1 {fmt_figure(m['closed_top1'])}, top-5 {fmt_figure(m['closed_top5'])}  ·  * at threshold {op['threshold']:.4g} "
        f"(T={results['rule']['temperature']:.4g}): known kept {fmt_figure(op['known_kept'])}%, unknown kept {fmt_figure(op['unknown_kept'])}%, "
        f"open-set top-1 {fmt_figure(op['open_set_top1'])}, macro F1 {fmt_figure(op['macro_f1'])}  ·  model {shown(results['model']['key'])}"
    )
    console.print(table)
    if results["heads"]:
        _print_heads(results)
    _incomplete_note(results)


def _print_heads(results: dict[str, Any]) -> None:
    """The guide's table: trained heads beside the zero-shot rule, at each one's threshold."""
    m = results["metrics"]
    table = Table(title="trained heads vs zero-shot (at each one's threshold)")
    for col in ("classifier", "score", "closed top-1", "AUROC", "macro F1", "known kept", "unknown kept"):
        table.add_column(col, justify="left" if col in ("classifier", "score") else "right")
    op = m["operating_point"]
    table.add_row(
        "zero-shot", results["rule"]["kind"], fmt_figure(m["closed_top1"]), fmt_figure(m["auroc"]),
        fmt_figure(op["macro_f1"]), fmt_figure(op["known_kept"]), fmt_figure(op["unknown_kept"]),
    )  # fmt: skip
    for name, h in results["heads"].items():
        table.add_row(
            f"{shown(name)} ({h['loss']})", h["score"], fmt_figure(h["closed_top1"]), fmt_figure(h["auroc"]),
            fmt_figure(h["macro_f1"]), fmt_figure(h["known_kept"]), fmt_figure(h["unknown_kept"]),
        )  # fmt: skip
    console.print(table)


@bench_app.command("localization")
def localization_command(
    annotations: Path = typer.Option(
        ...,
        "--annotations",
        help="Lines 'video start end##sentence' (Charades-STA) or 'video start end sentence'.",
        show_default=False,
    ),
    videos: Path = typer.Option(..., "--videos", help="Folder with the videos.", show_default=False),
    window: float | None = typer.Option(
        None, "--window", help="Window length in seconds (default: duration/8 within 1-8 s).", show_default=False
    ),
    stride: float | None = typer.Option(
        None, "--stride", help="Seconds between windows (default: window/4).", show_default=False
    ),
    smooth: float | None = typer.Option(
        None, "--smooth", help="Gaussian smoothing sigma in seconds (default: one stride).", show_default=False
    ),
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
    """Temporal localization (Charades-STA style): R@1/R@5 at IoU 0.3/0.5/0.7 and mIoU."""
    from vidsearch.bench.localization import read_localization_annotations, run_localization
    from vidsearch.enrich.localize import LocalizeConfig

    check_output("--out", out)
    moments = read_localization_annotations(annotations)
    options = bench_options(model, model_config, checkpoint, library, allow_missing, antialias, precision)
    config = LocalizeConfig(window=window, stride=stride, smooth=smooth)
    with RichProgress("localizing", enabled=not json_out and err_console.is_terminal) as progress:
        progress.start(len({m.video for m in moments}))
        run = run_localization(
            moments,
            videos,
            options,
            config,
            annotations=str(annotations),
            on_video=lambda name: progress.advance(name, True),
        )
    write_report(run.results, out, json_out, _print_localization)


def _print_localization(results: dict[str, Any]) -> None:
    m, c = results["metrics"], results["counts"]
    table = Table(title=f"localization: {c['queries']} queries in {c['videos']} videos")
    cols = ["R@1,IoU=0.3", "R@1,IoU=0.5", "R@1,IoU=0.7", "R@5,IoU=0.5", "R@5,IoU=0.7", "mIoU"]
    for col in cols:
        table.add_column(col, justify="right")
    table.add_row(*(fmt_figure(m[col]) for col in cols))
    t = results["timing"]
    table.caption = f"model {shown(results['model']['key'])}  ·  {t['videos_encoded']} videos encoded, {t['videos_cached']} cached  ·  {t['wall_seconds']:.1f} s"
    console.print(table)
    _incomplete_note(results)
