"""`vidsearch enrich recognize|calibrate` (`train-head`: enrich_head), `vidsearch labels`, `vidsearch localize [--boxes]`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from vidsearch.cli.actors_common import (
    ClipOption,
    DetectorOption,
    DetectorThresholdOption,
    DetectorWeightsOption,
    DetectSizeOption,
    MarginOption,
    actor_config,
    print_actor_hits,
    print_actor_scans,
)
from vidsearch.cli.app import app
from vidsearch.cli.checks import check_number, check_temperature
from vidsearch.cli.common import (
    CheckpointOption,
    JsonOption,
    LibraryOption,
    ModelConfigOption,
    PrecisionOption,
    RichProgress,
    SpaceOption,
    console,
    err_console,
    open_library,
    print_json,
)
from vidsearch.cli.format import fmt_time, shown
from vidsearch.errors import InputError
from vidsearch.precision import split_key

enrich_app = typer.Typer(
    help="Add information to an indexed library: zero-shot action labels with open-set 'unknown'.",
    no_args_is_help=True,
)
app.add_typer(enrich_app, name="enrich")

_LABELS_HELP = "kinetics400, kinetics600, kinetics700, ucf101, hmdb51, or a label file (one class a line)."
_SCORE_HELP = "Open-set score: msp (max softmax probability, default), energy or maxcos; see docs/enrich.md."
_TEMPLATES_HELP = (
    "Prompt templates file, one a line with {} for the class name (default: 'a video of a person {}.' and 7 more)."
)

# Shared by the commands that embed annotated videos outside the library (calibrate, train-head).
UnknownVideosOption = typer.Option(
    None, "--unknown-videos", help="Folder of the unknown videos (default: --videos).", show_default=False
)
AnnotatedCacheOption = typer.Option(
    None,
    "--bench-library",
    help="Embedding cache for annotated videos that are not in the library (default: <cache dir>/bench).",
    show_default=False,
)


_RULE_SOURCES = {
    "calibrated": "calibrated",
    "given": "as given, not calibrated",
    "stored": "kept from the last run, not calibrated",
    "default": "default, not calibrated",
}


def rule_line(rule: dict[str, Any], source: str, trained: bool = False) -> str:
    """The open-set rule as one line, saying where it came from (a RecognizeReport's ``rule_source``)."""
    if trained:  # a head's rule: its own score, its threshold chosen on held-out clips when it was trained
        return f"open set: the head's {rule['kind']} score, unknown below {rule['threshold']:.4g} (chosen at training)"
    how = _RULE_SOURCES.get(source, source)
    return f"open set: {rule['kind']} at temperature {rule['temperature']:.4g}, unknown below {rule['threshold']:.4g} ({how})"


@enrich_app.command("recognize")
def recognize_command(
    library: Path | None = LibraryOption,
    labels: str = typer.Option("kinetics400", "--labels", help=_LABELS_HELP),
    top: int | None = typer.Option(
        None,
        "--top",
        help="Classes stored per video and window (default: 5, or the label set's current).",
        show_default=False,
    ),
    model: str | None = SpaceOption,
    score: str | None = typer.Option(None, "--score", help=_SCORE_HELP, show_default=False),
    temperature: float | None = typer.Option(
        None,
        "--temperature",
        help="Softmax temperature (default: the model's own, or the calibrated one).",
        show_default=False,
    ),
    threshold: float | None = typer.Option(
        None,
        "--threshold",
        help="Known score below which a video is 'unknown' (default: 0.5 for msp, or the calibrated one).",
        show_default=False,
    ),
    templates: Path | None = typer.Option(
        None, "--templates", help=_TEMPLATES_HELP + " Unset: the label set's current ones.", show_default=False
    ),
    relabel: bool = typer.Option(False, "--relabel", help="Label every video again, not only the new ones."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N (only used for a new label set)."),
    precision: str = PrecisionOption,
    head: Path | None = typer.Option(
        None,
        "--head",
        help="Label with a trained head (`enrich train-head`) instead of a zero-shot label set; "
        "its classes and open-set rule, on the space it was trained on.",
        show_default=False,
    ),
    json_out: bool = JsonOption,
) -> None:
    """Label every indexed video and window with a label set, from the stored embeddings (no decoding).

    Re-running labels only what was indexed since; a video whose action is in none of the classes
    is marked 'unknown'.
    """
    from vidsearch.enrich.recognize import recognize_library
    from vidsearch.labels import read_templates
    from vidsearch.usecases.spaces import resolve_space

    check_number("--top", top, low=1)
    check_temperature("--temperature", temperature)
    check_number("--threshold", threshold)
    from vidsearch.labels import check_score_kind, load_label_set

    if head is not None:
        report = _recognize_head(head, library, model, precision, top, threshold, relabel,
                                 given={"--score": score, "--temperature": temperature, "--templates": templates})  # fmt: skip
    else:
        if score is not None:
            check_score_kind(score)  # before the library opens or a model loads
        load_label_set(labels)  # a missing label file fails now, not after the model loaded
        prompts = read_templates(templates) if templates is not None else None
        with open_library(library) as lib:
            report = recognize_library(
                lib, labels, space_key=resolve_space(lib, model, precision).key, top=top, score=score, temperature=temperature, threshold=threshold,
                templates=prompts, device=device, relabel=relabel,
            )  # fmt: skip
    if json_out:
        print_json(report.to_dict())
        return
    what = "relabelled" if report.relabelled else "labelled"
    console.print(
        f"{what} {report.labelled} segments ({report.videos} videos, {report.unknown} of them unknown) "
        f"with {'head ' if head else ''}{shown(report.label_set)} in {shown(report.space)}; {report.already} already labelled; {report.seconds:.1f} s",
        highlight=False,
    )
    console.print(rule_line(report.rule, report.rule_source, trained=head is not None), highlight=False)


def _recognize_head(
    head: Path, library: Path | None, model: str | None, precision: str, top: int | None,
    threshold: float | None, relabel: bool, given: dict[str, Any],
) -> Any:  # fmt: skip
    """`enrich recognize --head`: the head brings its classes and rule, so zero-shot settings are refused."""
    from vidsearch.enrich.head_library import recognize_with_head
    from vidsearch.usecases.spaces import resolve_space

    clash = [name for name, value in given.items() if value is not None]
    if clash:
        raise InputError(f"{', '.join(clash)} apply to zero-shot label sets; a --head brings its own classes and rule")
    with open_library(library) as lib:
        # no --model: the head's own space (resolve_space would take the latest one)
        wanted = resolve_space(lib, model, precision).key if model is not None or precision != "auto" else None
        return recognize_with_head(lib, head, space_key=wanted, top=top, threshold=threshold, relabel=relabel)


@enrich_app.command("calibrate")
def calibrate_command(
    annotations: Path = typer.Option(
        ..., "--annotations", help="Known videos: CSV video,label (as `bench recognition`).", show_default=False
    ),
    videos: Path = typer.Option(..., "--videos", help="Folder of the known videos.", show_default=False),
    library: Path | None = LibraryOption,
    labels: str = typer.Option("kinetics400", "--labels", help=_LABELS_HELP),
    unknown: Path | None = typer.Option(
        None,
        "--unknown",
        help="Videos of classes outside the label set: CSV video[,label] or one a line.",
        show_default=False,
    ),
    unknown_videos: Path | None = UnknownVideosOption,
    score: str = typer.Option("msp", "--score", help=_SCORE_HELP),
    keep: float = typer.Option(
        0.95, "--keep", help="Without --unknown: share of known videos to keep (threshold at that quantile)."
    ),
    temperature: float | None = typer.Option(
        None,
        "--temperature",
        help="Use this temperature instead of fitting one (NLL on the known videos).",
        show_default=False,
    ),
    model: str | None = SpaceOption,
    bench_library: Path | None = AnnotatedCacheOption,
    allow_missing: bool = typer.Option(False, "--allow-missing", help="Calibrate on the videos that exist and decode."),
    templates: Path | None = typer.Option(
        None, "--templates", help=_TEMPLATES_HELP + " Unset: the label set's current ones.", show_default=False
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    precision: str = PrecisionOption,
    json_out: bool = JsonOption,
) -> None:
    """Choose a label set's temperature and 'unknown' threshold on annotated videos, then relabel.

    With known videos only, the temperature minimizes their NLL and the threshold keeps --keep of
    them; with --unknown videos too, the threshold maximizes TPR - FPR.
    """
    from vidsearch.bench.openset import calibrate_label_set, read_video_list

    check_number("--keep", keep, low=0, high=1, above=True)
    check_temperature("--temperature", temperature)
    from vidsearch.labels import check_score_kind

    check_score_kind(score)
    from vidsearch.bench.recognition import read_recognition_annotations
    from vidsearch.labels import load_label_set, read_templates
    from vidsearch.usecases.spaces import resolve_space

    prompts = read_templates(templates) if templates is not None else None
    rec = read_recognition_annotations(annotations, load_label_set(labels))
    unknown_list = read_video_list(unknown) if unknown is not None else None
    with (
        open_library(library) as lib,
        RichProgress("encoding videos", enabled=not json_out and err_console.is_terminal) as progress,
    ):
        rule, cal, report = calibrate_label_set(
            lib,
            labels,
            rec,
            videos,
            unknown_list,
            unknown_videos,
            kind=score,
            keep=keep,
            temperature=temperature,
            space_key=resolve_space(lib, model, precision).key,
            device=device,
            bench_library=str(bench_library) if bench_library else None,
            allow_missing=allow_missing,
            templates=prompts,
            progress=progress,
        )
    if json_out:
        print_json({"rule": rule.to_dict(), "calibration": cal, "recognize": report.to_dict()})
        return
    console.print(rule_line(rule.to_dict(), "calibrated"), highlight=False)
    fpr = f", unknown kept {100 * cal['fpr']:.1f}%, AUROC {100 * cal['auroc']:.1f}" if cal["fpr"] is not None else ""
    console.print(
        f"chosen on {cal['known_videos']} known and {cal['unknown_videos']} unknown videos ({cal['threshold_method']}): "
        f"known kept {100 * cal['tpr']:.1f}%{fpr}",
        highlight=False,
    )
    console.print(
        f"relabelled {report.labelled} segments ({report.unknown} of {report.videos} videos unknown)", highlight=False
    )


@app.command("labels")
def labels_command(
    path: Path = typer.Argument(..., help="A video of the library.", show_default=False),
    library: Path | None = LibraryOption,
    labels: str | None = typer.Option(
        None, "--labels", help="Only this label set (default: all applied ones).", show_default=False
    ),
    model: str | None = SpaceOption,
    json_out: bool = JsonOption,
) -> None:
    """Show a video's action labels, their timeline over its windows, and its labelled person tubes."""
    from vidsearch.usecases.labels import video_annotations

    with open_library(library) as lib:
        info = video_annotations(lib, path, label_set=labels, model=model)
    if json_out:
        print_json(info)
        return
    console.print(f"[bold]{shown(info['path'])}[/]", highlight=False)
    for ls in info["label_sets"]:
        verdict = "[yellow]unknown[/]" if ls["unknown"] else shown(ls["labels"][0]["label"]) if ls["labels"] else "-"
        console.print(
            f"{shown(ls['label_set'])} ({shown(ls['space'])}): {verdict}  (known score {ls['known_score']:.3f})",
            highlight=False,
        )
        for lab in ls["labels"]:
            console.print(
                f"  {lab['rank']}. {shown(lab['label'])}  {lab['score']:.3f}  p={lab['prob']:.3f}", highlight=False
            )
        if ls["windows"]:
            console.print("  timeline:", highlight=False)
            for t in ls["timeline"]:
                name = "unknown" if t["unknown"] else shown(t["label"])
                console.print(
                    f"    {fmt_time(t['start'])}-{fmt_time(t['end'])}  {name}  ({t['windows']} windows, {t['score']:.3f})",
                    highlight=False,
                )
    print_actor_scans({"path": info["path"], "scans": info["actors"]})


@app.command("localize")
def localize_command(
    video: Path = typer.Argument(..., help="The video to search in (need not be in the library).", show_default=False),
    text: str = typer.Argument(..., help='What to find, e.g. "a dog jumps into the water".', show_default=False),
    top: int = typer.Option(3, "--top", help="How many spans to return."),
    library: Path | None = LibraryOption,
    model: str | None = SpaceOption,
    model_config: Path | None = ModelConfigOption,
    checkpoint: Path | None = CheckpointOption,
    window: float | None = typer.Option(
        None, "--window", help="Window length in seconds (default: duration/8 within 1-8 s).", show_default=False
    ),
    stride: float | None = typer.Option(
        None, "--stride", help="Seconds between windows (default: window/4).", show_default=False
    ),
    smooth: float | None = typer.Option(
        None, "--smooth", help="Gaussian smoothing sigma in seconds (default: one stride; 0: off).", show_default=False
    ),
    nms_iou: float = typer.Option(0.5, "--nms-iou", help="Drop spans overlapping a better one above this IoU."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not read or write the window embedding cache."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    precision: str = PrecisionOption,
    boxes: bool = typer.Option(
        False, "--boxes", help="Find the people who do it: person tubes (start, end, box track, score)."
    ),
    detector: str = DetectorOption,
    detector_weights: Path | None = DetectorWeightsOption,
    detector_threshold: float | None = DetectorThresholdOption,
    margin: float = MarginOption,
    clip: float = ClipOption,
    detect_size: int = DetectSizeOption,
    json_out: bool = JsonOption,
) -> None:
    """Find where in VIDEO the TEXT happens: spans (start, end, score), best first; with --boxes, who does it and where.

    With a library, its model (--model, and --precision where it has several, pick the space);
    where there is none (at --library or the default place), --model is loaded as `index` loads
    it, at --precision, and windows are cached in the user cache directory.
    """
    from vidsearch.enrich.localize import LocalizeConfig
    from vidsearch.usecases.localize import localize, localize_people

    if boxes:
        from vidsearch.models.detect import load_detector

        config = actor_config(detector, detector_weights, detector_threshold, margin, clip, detect_size)
        hits = localize_people(
            library, video, text, config,
            lambda: load_detector(detector, detector_weights, threshold=detector_threshold, device=device),
            model=model, precision=precision, device=device, top=top,
        )  # fmt: skip
        if json_out:
            print_json({"video": str(video), "text": text, "detector": detector, "tubes": [h.to_dict() for h in hits]})
        else:
            print_actor_hits(video, text, hits)
        return
    config = LocalizeConfig(window=window, stride=stride, smooth=smooth, nms_iou=nms_iou, top=top)
    found = localize(
        library, video, text, config, model=model, precision=precision,
        checkpoint=str(checkpoint) if checkpoint else None, model_config=str(model_config) if model_config else None,
        use_cache=not no_cache, device=device,
    )  # fmt: skip
    spans, emb, key = found.spans, found.windows, found.key
    if json_out:
        print_json(
            {
                "video": str(video),
                "text": text,
                "model": key,
                "precision": split_key(key)[1],
                "window": emb.window,
                "stride": emb.stride,
                "windows": len(emb.starts),
                "cached": emb.cached,
                "spans": [s.to_dict() for s in spans],
            }
        )
        return
    from rich.table import Table

    table = Table(
        title=f"{shown(repr(text))} in {shown(video.name)}  ({len(emb.starts)} windows of {emb.window:.2f} s every {emb.stride:.2f} s)"
    )
    for col in ("#", "span", "score"):
        table.add_column(col, justify="right" if col != "span" else "left")
    for i, s in enumerate(spans, 1):
        table.add_row(str(i), f"{fmt_time(s.start)}-{fmt_time(s.end)}", f"{s.score:.3f}")
    console.print(table)
