"""How to run on a cluster (:class:`RayOptions`), its errors, and the check that Ray is there."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vidsearch.errors import VidsearchError

__all__ = ["RAY_MIN_VERSION", "ClusterError", "RayOptions", "require_ray"]

# The oldest Ray the cluster tests ran against (pyproject's `ray` extra says the same).
RAY_MIN_VERSION = "2.60.0"


class ClusterError(VidsearchError):
    """The cluster cannot run the job: Ray missing, a node that cannot see the files, a mismatch."""


@dataclass
class RayOptions:
    """Where and how wide the Ray pipeline runs.

    Attributes:
        address: ``"auto"`` (the cluster this machine belongs to), ``"local"`` (start a
            one-machine cluster for this run) or a cluster address (``host:port``, ``ray://...``).
        decode_workers: decode actors (each holds a one-process crash-contained decode pool).
        encode_workers: encode actors (each loads the model once).
        gpus_per_encoder: GPUs reserved by each encode actor (fractions share a GPU); ``None``:
            one when the cluster has GPUs, none (CPU encoding) otherwise.
        decode_cpus: CPUs reserved by each decode actor.
        encode_cpus: CPUs reserved by each encode actor.
        videos_per_batch: decoded videos an encode actor takes per call (and per shard with ``stage_dir``).
        path_map: ``(LOCAL, REMOTE)`` prefixes: a path under LOCAL on the driver is under REMOTE
            on the workers (mounts that differ between machines).
        stage_dir: the driver writes encoded shards there (``--stage``) instead of committing them.
        preflight_sample: paths each node checks it can read before the run.
        local_cpus: CPUs of a ``"local"`` cluster (default: all).
        object_store_bytes: object store size of a ``"local"`` cluster (default: Ray's).
    """

    address: str = "auto"
    decode_workers: int = 1
    encode_workers: int = 1
    gpus_per_encoder: float | None = None
    decode_cpus: float = 1.0
    encode_cpus: float = 1.0
    videos_per_batch: int = 4
    path_map: tuple[str, str] | None = None
    stage_dir: Path | None = None
    preflight_sample: int = 8
    local_cpus: int | None = None
    object_store_bytes: int | None = None

    def __post_init__(self) -> None:
        if self.decode_workers < 1 or self.encode_workers < 1:
            raise ClusterError("--decode-workers and --encode-workers must be at least 1")
        if self.gpus_per_encoder is not None and self.gpus_per_encoder < 0:
            raise ClusterError(f"--gpus-per-encoder must be 0 or more, got {self.gpus_per_encoder}")
        if self.videos_per_batch < 1:
            raise ClusterError("videos per encode batch must be at least 1")


def require_ray() -> None:
    """Import Ray Data or say how to install it.

    Raises:
        ClusterError: Ray (with its Data library) is not installed.
    """
    try:
        import ray  # noqa: F401
        import ray.data  # noqa: F401
    except ImportError:
        raise ClusterError("--ray needs Ray Data, which is not installed: pip install 'vidsearch[ray]'") from None
