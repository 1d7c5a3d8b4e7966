"""`vidsearch enrich actors` and `vidsearch bench ava`: person tubes with zero-shot action labels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from vidsearch.cli.actors_common import (
    ClipOption,
    DetectorOption,
    DetectorThresholdOption,
    DetectorWeightsOption,
    DetectSizeOption,
    MarginOption,
    TemplatesOption,
    actor_config,
)
from vidsearch.cli.bench import bench_app
from vidsearch.cli.common import (
    AllowMissingOption,
    CheckpointOption,
    JsonOption,
    LibraryOption,
    ModelConfigOption,
    ModelOption,
    OutOption,
    PrecisionOption,
    SpaceOption,
    console,
    err_console,
    open_library,
    print_json,
)
from vidsearch.cli.enrich import enrich_app
from vidsearch.cli.format import fmt_figure, write_report
from vidsearch.errors import InputError
from vidsearch.models.opener import open_encoder
from vidsearch.models.registry import precision_before_load


@enrich_app.command("actors")
def actors_command(
    library: Path | None = LibraryOption,
    labels: str = typer.Option(
        "kinetics400",
        "--labels",
        help="kinetics400, kinetics600, kinetics700, ucf101, hmdb51, or a label file (one class a line).",
    ),
    model: str | None = SpaceOption,
    detector: str = DetectorOption,
    detector_weights: Path | None = DetectorWeightsOption,
    detector_threshold: float | None = DetectorThresholdOption,
    margin: float = MarginOption,
    clip: float = ClipOption,
    detect_size: int = DetectSizeOption,
    top: int = typer.Option(5, "--top", help="Classes stored per tube."),
    templates: Path | None = TemplatesOption,
    rescan: bool = typer.Option(False, "--rescan", help="Scan every video again, not only the new ones."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    precision: str = PrecisionOption,
    json_out: bool = JsonOption,
) -> None:
    """Find the people in every indexed video, follow them (tubes) and label what each one does."""
    from vidsearch.enrich.actors_library import enrich_actors
    from vidsearch.labels import read_templates
    from vidsearch.usecases.spaces import resolve_space

    config = actor_config(detector, detector_weights, detector_threshold, margin, clip, detect_size, top)
    prompts = read_templates(templates)
    with open_library(library) as lib:
        report = enrich_actors(
            lib,
            labels,
            space_key=resolve_space(lib, model, precision).key,
            config=config,
            templates=prompts,
            device=device,
            rescan=rescan,
        )
    if json_out:
        print_json(report.to_dict())
        return
    console.print(
        f"{report.label_set} ({report.space}, detector {report.detector}): scanned {report.scanned} videos, "
        f"{report.tubes} tubes; {report.already} scanned before; {report.seconds:.1f} s",
        highlight=False,
    )
    for path, why in report.failed.items():
        err_console.print(f"[red]failed[/] {path}: {why}", highlight=False)


@bench_app.command("ava")
def ava_command(
    annotations: Path = typer.Option(
        ...,
        "--annotations",
        help="AVA box CSV (video_id,timestamp,x1,y1,x2,y2,action_id[,person_id]), e.g. ava_val_v2.2.csv.",
        show_default=False,
    ),
    videos: Path = typer.Option(
        ..., "--videos", help="Folder with the videos (<video_id>.<ext>, searched recursively).", show_default=False
    ),
    labels: Path = typer.Option(
        ...,
        "--labels",
        help="AVA label map, e.g. ava_action_list_v2.2.pbtxt (the 60 evaluated classes are kept).",
        show_default=False,
    ),
    boxes: str = typer.Option(
        "gt",
        "--boxes",
        help="gt: the annotated person boxes (isolates the action model); detect: detected and linked ones.",
    ),
    excluded: Path | None = typer.Option(None, "--excluded", help="AVA's excluded-timestamps CSV.", show_default=False),
    time_offset: float = typer.Option(
        0.0, "--time-offset", help="Seconds to subtract from timestamps (900 for videos trimmed to AVA's 15 minutes)."
    ),
    detector: str = DetectorOption,
    detector_weights: Path | None = DetectorWeightsOption,
    detector_threshold: float | None = DetectorThresholdOption,
    margin: float = MarginOption,
    clip: float = ClipOption,
    detect_size: int = DetectSizeOption,
    templates: Path | None = TemplatesOption,
    model: str = ModelOption,
    model_config: Path | None = ModelConfigOption,
    checkpoint: Path | None = CheckpointOption,
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    precision: str = PrecisionOption,
    out: Path | None = OutOption,
    allow_missing: bool = AllowMissingOption,
    json_out: bool = JsonOption,
) -> None:
    """Spatio-temporal action detection, AVA protocol: frame-level AP at IoU 0.5 per class, and mAP."""
    from vidsearch.bench.ava import BOX_SOURCES, run_ava
    from vidsearch.bench.common import BenchOptions, bench_encoder_spec, model_info
    from vidsearch.labels import read_templates
    from vidsearch.models.detect import load_detector

    if boxes not in BOX_SOURCES:
        raise InputError(f"--boxes must be one of {', '.join(BOX_SOURCES)} (got {boxes!r})")
    config = actor_config(detector, detector_weights, detector_threshold, margin, clip, detect_size)
    prompts = read_templates(templates)
    options = BenchOptions(
        model=model,
        checkpoint=str(checkpoint) if checkpoint else None,
        model_config=str(model_config) if model_config else None,
        device=device,
        precision=precision_before_load(precision, device),
    )
    det = (
        load_detector(detector, detector_weights, threshold=detector_threshold, device=device)
        if boxes == "detect"
        else None
    )
    encoder = open_encoder(bench_encoder_spec(options))
    run = run_ava(
        annotations,
        videos,
        labels,
        encoder,
        boxes=boxes,
        detector=det,
        config=config,
        templates=prompts,
        excluded=excluded,
        time_offset=time_offset,
        allow_missing=allow_missing,
    )
    results = {
        "benchmark": "ava",
        "boxes": boxes,
        "model": model_info(encoder, options),
        "detector": detector if boxes == "detect" else None,
        "annotations": str(annotations),
        "metrics": run.to_dict(),
    }
    write_report(results, out, json_out, _print_ava)


def _print_ava(results: dict[str, Any]) -> None:
    m = results["metrics"]
    table = Table(
        title=f"AVA frame AP@0.5 ({results['boxes']} boxes): {m['videos']} videos, {m['keyframes']} keyframes, {m['detections']} boxes"
    )
    table.add_column("class")
    table.add_column("AP", justify="right")
    table.add_column("positives", justify="right")
    for name, ap in m["ap"].items():
        table.add_row(name, fmt_figure(100 * ap) if ap is not None else "-", str(m["positives"][name]))
    mAP = m["frame_mAP"]
    table.caption = f"frame-mAP {fmt_figure(100 * mAP) if mAP is not None else '-'} over {m['classes_with_positives']} classes with positives  ·  model {results['model']['key']}"
    console.print(table)
    if m["missing"]:
        err_console.print(f"[yellow]INCOMPLETE: {len(m['missing'])} videos missing or undecodable[/]", highlight=False)
