"""`vidsearch enrich train-head`: an evidential (or cross-entropy) head on the library's stored embeddings."""

from __future__ import annotations

from pathlib import Path

import typer

from vidsearch.cli.checks import check_number
from vidsearch.cli.common import (
    JsonOption,
    LibraryOption,
    PrecisionOption,
    RichProgress,
    SpaceOption,
    console,
    err_console,
    open_library,
    print_json,
)
from vidsearch.cli.enrich import AnnotatedCacheOption, UnknownVideosOption, enrich_app
from vidsearch.cli.format import fmt_figure, shown


@enrich_app.command("train-head")
def train_head_command(
    labels: str = typer.Option(
        ...,
        "--labels",
        help="The head's classes: a label file (one class a line) or a shipped set.",
        show_default=False,
    ),
    annotations: Path = typer.Option(
        ...,
        "--annotations",
        help="Labelled clips: CSV video,label, or lines 'path label' / 'class/file.avi' (UCF-101/HMDB-51 lists).",
        show_default=False,
    ),
    videos: Path = typer.Option(..., "--videos", help="Folder of the annotated videos.", show_default=False),
    unknown: Path | None = typer.Option(
        None,
        "--unknown",
        help="Clips of none of the classes (CSV video[,label] or one a line): the threshold then maximizes TPR - FPR.",
        show_default=False,
    ),
    unknown_videos: Path | None = UnknownVideosOption,
    loss: str = typer.Option(
        "edl", "--loss", help="edl (evidential, KL annealed in), edl-nokl, or ce (cross-entropy)."
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Head file to write (default: ./<labels>-<loss>.head.safetensors).", show_default=False
    ),
    library: Path | None = LibraryOption,
    model: str | None = SpaceOption,
    precision: str = PrecisionOption,
    hidden: int = typer.Option(256, "--hidden", help="Hidden layer width; 0: a linear head."),
    head_kind: str = typer.Option(
        "cosine",
        "--head-kind",
        help="Output layer: cosine (scale x cosine to each class prototype: bounded evidence, the open-set default) "
        "or dense (affine).",
    ),
    scale: float = typer.Option(10.0, "--scale", help="The cosine layer's fixed logit scale."),
    epochs: int = typer.Option(60, "--epochs", help="Passes over the training clips."),
    lr: float = typer.Option(2e-3, "--lr", help="AdamW learning rate."),
    evidence: str = typer.Option("exp", "--evidence", help="Evidence function of the EDL losses: exp, softplus, relu."),
    edl_form: str = typer.Option("log", "--edl-form", help="EDL data term: log, digamma or mse (the EDL paper's)."),
    holdout: float = typer.Option(0.2, "--holdout", help="Share of each class held out to choose the threshold."),
    keep: float = typer.Option(0.95, "--keep", help="Without --unknown: held-out known clips kept by the threshold."),
    seed: int = typer.Option(0, "--seed", help="Seed of the split, initialization and batch order."),
    bench_library: Path | None = AnnotatedCacheOption,
    allow_missing: bool = typer.Option(False, "--allow-missing", help="Train on the clips that exist and decode."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N (encoding clips not indexed)."),
    json_out: bool = JsonOption,
) -> None:
    """Train a head for your own classes on the library's stored embeddings (only clips not indexed are decoded).

    Apply it with `vidsearch enrich recognize --head HEAD`; compare heads with `vidsearch bench open-set --head`.
    """
    from vidsearch.bench.head_data import train_library_head
    from vidsearch.bench.openset import read_video_list
    from vidsearch.bench.recognition import read_recognition_annotations
    from vidsearch.cli.format import check_output
    from vidsearch.enrich.head import HeadConfig
    from vidsearch.labels import load_label_set
    from vidsearch.usecases.spaces import resolve_space

    check_number("--keep", keep, low=0, high=1, above=True)
    config = HeadConfig(
        loss=loss, hidden=hidden, epochs=epochs, lr=lr, evidence=evidence, form=edl_form, holdout=holdout,
        keep=keep, seed=seed, kind=head_kind, scale=scale,
    )  # fmt: skip
    classes = load_label_set(labels)
    out = out or Path(f"{Path(labels).stem}-{loss}.head.safetensors")
    check_output("--out", out)
    rec = read_recognition_annotations(annotations, classes)
    unknown_list = read_video_list(unknown) if unknown is not None else None
    with (
        open_library(library) as lib,
        RichProgress("encoding clips not in the library", enabled=not json_out and err_console.is_terminal) as progress,
    ):
        head, summary = train_library_head(
            lib, classes, rec, videos, out, config, unknown_list, unknown_videos,
            space_key=resolve_space(lib, model, precision).key, device=device,
            bench_library=str(bench_library) if bench_library else None, allow_missing=allow_missing, progress=progress,
        )  # fmt: skip
    if json_out:
        print_json(summary)
        return
    cal, tr = summary["calibration"], summary["training"]
    console.print(
        f"trained a {loss} head ({shown(str(config.hidden or 'linear'))} hidden) on {tr['clips']} clips of "
        f"{summary['classes']} classes in {tr['seconds']:.1f} s; wrote {shown(summary['head'])}",
        highlight=False,
    )
    console.print(
        f"clips: {summary['from_library']} from the library's stored vectors, {summary['encoded']} encoded; "
        f"space {shown(summary['space'])}",
        highlight=False,
    )
    auroc = f", AUROC {fmt_figure(100 * cal['auroc'])}" if cal["auroc"] is not None else ""
    fpr = f", unknown kept {fmt_figure(100 * cal['fpr'])}%" if cal["fpr"] is not None else ""
    console.print(
        f"open set: {cal['score']} score, unknown below {cal['threshold']:.4g} ({cal['threshold_method']} on "
        f"{cal['known_videos']} held-out known and {cal['unknown_videos']} unknown clips): held-out top-1 "
        f"{fmt_figure(cal['heldout_top1'])}%, known kept {fmt_figure(100 * cal['tpr'])}%{fpr}{auroc}",
        highlight=False,
    )
