"""Options and output shared by the actor commands (`enrich actors`, `bench ava`, `localize --boxes`, `labels`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from vidsearch.cli.common import console
from vidsearch.cli.format import fmt_time

__all__ = [
    "DetectorOption",
    "DetectorWeightsOption",
    "DetectorThresholdOption",
    "MarginOption",
    "ClipOption",
    "DetectSizeOption",
    "TemplatesOption",
    "actor_config",
    "print_actor_scans",
    "print_actor_hits",
]

DetectorOption = typer.Option(
    "torchvision:fasterrcnn_resnet50_fpn_v2",
    "--detector",
    help="Person detector: torchvision:NAME (a torchvision COCO detection model) or hog (OpenCV, no weights).",
)
DetectorWeightsOption = typer.Option(
    None,
    "--detector-weights",
    help="State dict file of a torchvision detector (default: torchvision's weights, from its cache or downloaded).",
    show_default=False,
)
DetectorThresholdOption = typer.Option(
    None, "--detector-threshold", help="Least detection score kept (default 0.5).", show_default=False
)
MarginOption = typer.Option(0.25, "--margin", help="Context around a tube's boxes, as a share of their longer side.")
ClipOption = typer.Option(2.0, "--clip", help="Seconds of video around each keyframe in a tube clip.")
DetectSizeOption = typer.Option(
    512, "--detect-size", help="Decoded keyframe size (longer side, pixels) for detection and crops."
)
TemplatesOption = typer.Option(
    None,
    "--templates",
    help="Prompt templates file, one a line with {} for the class name (default: 'a video of a person {}.' and 7 more).",
    show_default=False,
)


def actor_config(
    detector: str,
    weights: Path | None,
    threshold: float | None,
    margin: float,
    clip: float,
    detect_size: int,
    top: int = 5,
) -> Any:
    """The :class:`~vidsearch.enrich.actors.ActorConfig` of the actor commands' options."""
    from vidsearch.enrich.actors import ActorConfig

    return ActorConfig(
        detector=detector,
        detector_weights=str(weights) if weights else None,
        detector_threshold=threshold,
        margin=margin,
        clip=clip,
        detect_size=detect_size,
        top=top,
    )


def print_actor_scans(info: dict[str, Any]) -> None:
    """The tubes of ``video_actors`` as lines under ``vidsearch labels``."""
    for scan in info["scans"]:
        console.print(
            f"actors, {scan['label_set']} ({scan['space']}, {scan['detector']}): {len(scan['tubes'])} tubes over {scan['keyframes']} keyframes",
            highlight=False,
            soft_wrap=True,
        )
        for tb in scan["tubes"]:
            best = ", ".join(f"{lab['label']} {lab['score']:.3f}" for lab in tb["labels"][:3])
            mid = tb["boxes"][len(tb["boxes"]) // 2]["box"] if tb["boxes"] else []
            where = "(" + ", ".join(f"{v:.2f}" for v in mid) + ")" if mid else ""
            console.print(
                f"  tube {tb['track']}  {fmt_time(tb['start'])}-{fmt_time(tb['end'])}  {where}  {best}", highlight=False
            )


def print_actor_hits(video: Path, text: str, hits: list[Any]) -> None:
    """The tubes of ``localize --boxes``, best first."""
    table = Table(title=f"{text!r}: people in {video.name}")
    for col in ("#", "span", "score", "best at", "box there (x1, y1, x2, y2)"):
        table.add_column(col, justify="left" if col.startswith(("span", "box")) else "right")
    for i, h in enumerate(hits, 1):
        box = next((b[1:5] for b in h.boxes if abs(b[0] - h.best_time) < 1e-6), h.boxes[0][1:5])
        table.add_row(
            str(i),
            f"{fmt_time(h.start)}-{fmt_time(h.end)}",
            f"{h.score:.3f}",
            fmt_time(h.best_time),
            ", ".join(f"{v:.2f}" for v in box),
        )
    console.print(table)
