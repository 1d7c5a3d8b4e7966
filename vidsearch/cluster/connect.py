"""Start or join a Ray cluster for one run, and keep Ray Data's own output off the terminal."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

from vidsearch.cluster.options import ClusterError, RayOptions, require_ray

__all__ = ["connected", "cluster_gpus", "gpu_has_bf16"]

LOG = logging.getLogger(__name__)


def _quiet_ray_data() -> None:
    """The CLI draws its own progress bar; Ray Data's bars and plan printouts would tear it."""
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    ctx.enable_auto_log_stats = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)


@contextmanager
def connected(options: RayOptions) -> Iterator[None]:
    """Connected to the cluster ``options.address`` names for the ``with`` block.

    A session that is already connected (``ray.init`` called by the caller, as tests do) is
    used as it is and left connected; otherwise the connection is closed at the end, and a
    ``"local"`` cluster started here stops with it.

    Raises:
        ClusterError: Ray is missing or the cluster cannot be reached.
    """
    require_ray()
    import ray

    if ray.is_initialized():
        _quiet_ray_data()
        yield
        return
    kwargs: dict[str, object] = {"log_to_driver": False}
    if options.address == "local":
        # A cluster of our own for this run: no dashboard, no usage report leaving the machine.
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        kwargs.update(address="local", include_dashboard=False)
        if options.local_cpus is not None:
            kwargs["num_cpus"] = options.local_cpus
        if options.object_store_bytes is not None:
            kwargs["object_store_memory"] = options.object_store_bytes
    else:
        kwargs["address"] = options.address
    try:
        ray.init(**kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ClusterError(
            f"cannot reach a Ray cluster at --ray {options.address} ({first[:120]}); "
            "start one with `ray start --head`, or use --ray local"
        ) from None
    try:
        _quiet_ray_data()
        yield
    finally:
        ray.shutdown()


def cluster_gpus() -> float:
    """GPUs the connected cluster has (0.0 without any)."""
    import ray

    return float(ray.cluster_resources().get("GPU", 0.0))


def _cuda_bf16() -> bool:
    import torch

    return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())


def gpu_has_bf16(gpus: float) -> bool:
    """Whether the cluster's GPUs run bf16, asked of one (a task holding ``gpus`` of a GPU).

    ``--precision auto`` on GPU encoders means bf16 where the GPU has it, else fp16, as on a
    local GPU; the driver may have no GPU to ask, so one of the encoders' GPUs answers.

    Raises:
        ClusterError: no GPU became free for the question within 300 s.
    """
    import ray

    ref = ray.remote(num_gpus=gpus, num_cpus=0, max_retries=1)(_cuda_bf16).remote()
    try:
        return bool(ray.get(ref, timeout=300))
    except ray.exceptions.GetTimeoutError:
        ray.cancel(ref, force=True)
        raise ClusterError(
            "no GPU of the cluster answered within 300 s; check `ray status` or pass --precision"
        ) from None
