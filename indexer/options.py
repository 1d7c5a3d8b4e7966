"""What an index run is told (:class:`IndexOptions`) and what it reports (:class:`IndexReport`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from vidsearch.media import SamplingConfig

__all__ = [
    "STAGES",
    "IndexOptions",
    "IndexReport",
    "ProgressSink",
    "sampling_dict",
    "decode_options",
    "failure_options",
    "with_options",
    "failed_with_other_options",
]

# The parts of a run IndexReport times: the producer's decoding and encoding, the sink's writes.
STAGES = ("decode", "encode", "commit")


def _default_sampling() -> SamplingConfig:
    from vidsearch.media import SamplingConfig

    return SamplingConfig()


@dataclass
class IndexOptions:
    """How to index: which model, how to sample, how much parallelism."""

    model: str = "viclip-b16"  # preset name, "openclip:<arch>", or a checkpoint path
    checkpoint: str | None = None  # explicit weights for a preset
    model_config: str | None = None  # ViCLIPConfig JSON for a custom size
    device: str = "auto"
    # auto, fp32, int8 (CPU), bf16, fp16 (GPU); part of the space key (vidsearch.precision).
    precision: str = "auto"
    sampling: SamplingConfig = field(default_factory=_default_sampling)
    fast: bool = False  # snap sampled frames to keyframes (see vidsearch.media.read_frames)
    workers: int | None = None  # decoding processes; None = the pool's default
    batch_size: int = 8  # clips per encoder call
    timeout: float | None = None  # per-file decoding timeout in seconds; None = the pool's default
    retry_failed: bool = False
    verify: bool = False  # re-fingerprint unchanged-looking files (see indexer.scan.plan_changes)


@dataclass
class IndexReport:
    """What an index run did; ``stage_seconds`` is the wall time spent in each stage.

    ``decode`` is the time the runner waited for the producer beyond its encoding (decoding
    itself runs in worker processes, overlapped with the other parts), ``encode`` the time in the
    encoder (0 where it runs on a cluster: see its busy seconds), ``commit`` the time in the sink
    (SQLite and the FAISS index, or shards).
    """

    space_key: str
    scanned: int = 0
    unchanged: int = 0
    added: int = 0
    updated: int = 0
    moved: int = 0
    touched: int = 0
    removed: int = 0
    segments: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    failed_unchanged: int = 0
    seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    model_loaded: bool = False
    interrupted: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (for ``--json``)."""
        d = dataclasses.asdict(self)
        d["failed"] = [{"path": p, "reason": r} for p, r in self.failed]
        d["stage_seconds"] = {k: round(v, 3) for k, v in self.stage_seconds.items()}
        return d


class ProgressSink(Protocol):
    """Receives progress; the CLI implements it with a rich progress bar."""

    def start(self, total: int) -> None:
        """``total`` files are going to be decoded and encoded."""

    def advance(self, path: str, ok: bool) -> None:
        """One file is done (committed or failed)."""


def sampling_dict(sampling: SamplingConfig) -> dict[str, Any]:
    """JSON form of a SamplingConfig."""
    return dataclasses.asdict(sampling)


def decode_options(options: IndexOptions) -> str:
    """The options a file's decoding depends on, as the command line spells them (for users)."""
    s = options.sampling
    text = f"--window {s.window:g} --stride {s.stride:g}"
    if options.timeout is not None:
        text += f" --timeout {options.timeout:g}"
    return text + (" --fast" if options.fast else "")


def failure_options(options: IndexOptions) -> dict[str, Any]:
    """The options a file's decoding depends on, as stored with a decode failure (JSON).

    A file that failed because of the run's options (a ``--timeout`` too short for it, a window
    plan it could not take) is tried again when these change, and only then.
    """
    s = options.sampling
    return {"window": float(s.window), "stride": float(s.stride), "timeout": options.timeout, "fast": options.fast}


def with_options(reason: str, options: IndexOptions) -> str:
    """A decode failure's reason as users read it: the options it happened under appended."""
    return f"{reason} (with {decode_options(options)})"


def failed_with_other_options(stored: dict[str, Any] | None, options: IndexOptions) -> bool:
    """Whether a stored failure happened while decoding under options other than ``options``.

    Failures found before decoding (unreadable, vanished files) store none: False.
    """
    return stored is not None and stored != failure_options(options)
