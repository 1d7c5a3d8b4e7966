"""How the command line words the library's errors: its flags for arguments, its advice for remedies.

The library raises :class:`~vidsearch.errors.VidsearchError` with fields (what, path, argument,
hint, remedy) and names no flag; this module turns them into the one line the CLI prints.
"""

from __future__ import annotations

from collections.abc import Callable

from vidsearch.errors import Remedy, VidsearchError

__all__ = ["ADVICE", "flag", "message"]


def flag(argument: str) -> str:
    """The command-line flag of a library argument: ``link_iou`` -> ``--link-iou``; pairs as ``--start/--end``."""
    return "/".join("--" + part.replace("_", "-") for part in argument.split("/"))


def _or(choices: tuple[str, ...]) -> str:
    return " or ".join(choices) if len(choices) < 3 else ", ".join(choices[:-1]) + " or " + choices[-1]


# The CLI's wording of each remedy; where one is missing the error's own hint is printed.
ADVICE: dict[Remedy, Callable[[VidsearchError], str]] = {
    "use_choices": lambda e: f"use {flag(e.argument or '')} {_or(e.choices)}",
    "pass_checkpoint": lambda e: "pass --checkpoint PATH" + (f" or set {e.env}=PATH" if e.env else ""),
    "check_checkpoint": lambda e: "check the --checkpoint path",
    "download_checkpoint": lambda e: (
        f"{e.value} and pass --checkpoint PATH" + (f" or set {e.env}=PATH" if e.env else "")
    ),
    "pass_model_config": lambda e: (
        'pass its config JSON with --model-config (InternVideo2Config.to_dict() fields and "family": "internvideo2")'
    ),
    "pass_model_config_json": lambda e: "pass the model's config JSON with --model-config",
    "pass_config": lambda e: f"pass --model-config PATH or put {e.value} beside it (a ViCLIPConfig JSON)",
    "reindex_space": lambda e: (
        f"restore the old file, or index again with `--model {e.path}` to make a new space for the new weights"
    ),
    "reindex_moved": lambda e: "put the file back there, or index again with --model NEW_PATH",
    "reindex_on_disk": lambda e: "run `vidsearch reindex --on-disk` again",
    "choose_library": lambda e: "pass --library DIR",
    "index_first": lambda e: f"run `vidsearch index DIR --library {e.path}` first",
    "match_antialias": lambda e: (
        f"{'pass' if e.value == 'on' else 'drop'} --antialias to add to it, "
        "or use another --library (one library never mixes both resizes)"
    ),
    "recognize_first": lambda e: f"run `vidsearch enrich recognize --labels {e.value}` first",
    "calibrate_score": lambda e: f"or calibrate it: vidsearch enrich calibrate --score {e.value} ...",
    "detector_weights": lambda e: f"{e.value}, or pass --detector-weights PATH, or use --detector hog (no weights)",
    "detector_weights_file": lambda e: "pass --detector-weights PATH",
    "drop_detector_weights": lambda e: "drop --detector-weights",
    "ivf_index_spec": lambda e: "pass an IVF --index-spec, e.g. --index-spec IVF4096,SQ8",
    "int8_training": lambda e: "train at fp32 (or bf16/fp16 on a GPU), then index with --precision int8",
    "query_usage": lambda e: 'e.g. vidsearch query "a dog catching a frisbee", or vidsearch query --video FILE',
    "span_needs_video": lambda e: "add --video FILE",
    "label_with_set": lambda e: "use --label-set with --label",
    "space_precision": lambda e: (
        f"leave --precision out or pass {_or(e.choices)}, or index with --precision {e.value} first"
    ),
    "head_space": lambda e: (
        f"pick that space with --model, or train a head for {e.value} with `vidsearch enrich train-head`"
    ),
    "replace_empty_library": lambda e: (
        f"move it away, or run `vidsearch index DIR --library {e.path}` to make a new library there"
    ),
    "confirm_remove": lambda e: "pass --yes to remove them, or --dry-run to list them",
    "localize_usage": lambda e: 'say what to find, e.g. vidsearch localize clip.mp4 "a person jumps" --boxes',
}


def message(exc: VidsearchError) -> str:
    """The one line the CLI prints for ``exc``: flags for its argument, the CLI's advice for its remedy."""
    head = f"{flag(exc.argument)} {exc.what}" if exc.argument else exc.what
    advice = ADVICE.get(exc.remedy) if exc.remedy else None
    tail = advice(exc) if advice is not None else exc.hint
    return f"{head}; {tail}" if tail else head
