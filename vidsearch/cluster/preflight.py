"""Before a cluster run: every node runs the same vidsearch, has the same weights, sees the files.

One small task is pinned to each alive node (``NodeAffinitySchedulingStrategy``, zero CPUs so
it never waits behind actors); the run starts its pipeline while the checks run and collects them
before it trusts a result. Each reports the vidsearch version, the model key the node
computes for the run's model (name + checkpoint hash, so the same weights everywhere), whether
its CPU runs the precision of CPU encoders (bf16 needs native support), and which of a sample
of the run's paths it cannot read. The driver turns the first problem into a
one-line :class:`~vidsearch.cluster.options.ClusterError` that says what to do.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from vidsearch.cluster.options import ClusterError
from vidsearch.errors import VidsearchError
from vidsearch.models import model_key
from vidsearch.precision import choose_precision, split_key

__all__ = ["PendingPreflight", "check_node", "check_preflight", "sample_paths", "start_preflight", "vidsearch_version"]

LOG = logging.getLogger(__name__)


def vidsearch_version() -> str:
    """The installed vidsearch's version (the package metadata: the same on driver and workers)."""

    try:
        return version("vidsearch")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "unknown"


def _readable(path: str) -> bool:
    try:
        with open(path, "rb") as fh:
            fh.read(1)
        return True
    except OSError:
        return False


def check_node(
    paths: Sequence[str], model: str, checkpoint: str | None, config: str | None, precision: str | None = None
) -> dict[str, Any]:
    """What one node sees: its vidsearch version, its model key, whether its CPU runs
    ``precision`` (None: not asked) and the paths it cannot read."""

    try:
        key, key_error = model_key(model, checkpoint=checkpoint, config=config), None
        if precision is not None:
            choose_precision(precision, "cpu")
    except VidsearchError as exc:
        key, key_error = None, str(exc)
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "version": vidsearch_version(),
        "key": key,
        "key_error": key_error,
        "unreadable": [p for p in paths if not _readable(p)],
    }


def sample_paths(paths: Sequence[str], n: int) -> list[str]:
    """Up to ``n`` paths spread evenly over ``paths`` (deterministic)."""
    if n <= 0 or not paths:
        return []
    step = max(1, len(paths) // n)
    return list(paths[::step][:n])


@dataclass(frozen=True)
class PendingPreflight:
    """The checks submitted to every alive node, not yet collected (see :func:`start_preflight`)."""

    nodes: list[dict[str, Any]]
    refs: list[Any]


def start_preflight(
    paths: Sequence[str], model: str, checkpoint: str | None, config: str | None, precision: str | None = None
) -> PendingPreflight:
    """Submit :func:`check_node` to every alive node of the connected cluster and return at once.

    The caller starts the pipeline meanwhile (the checks take a worker start and a model hash per
    node, seconds a run should not wait for) and calls :func:`check_preflight` before it trusts
    any result.

    Args:
        paths: sample paths as the workers see them (after ``--path-map``).
        model, checkpoint, config: the model as the workers see it.
        precision: the precision of CPU encoders, for each node to check (None: GPU encoders).
    """
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    task = ray.remote(num_cpus=0, max_retries=1)(check_node)
    refs = [
        task.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(
            list(paths), model, checkpoint, config, precision
        )
        for n in nodes
    ]
    return PendingPreflight(nodes, refs)


def check_preflight(pending: PendingPreflight, expected_key: str, hint: str = "") -> list[dict[str, Any]]:
    """Wait for the checks of :func:`start_preflight` and turn the first problem into an error.

    Args:
        expected_key: the driver's embedding space key (its precision suffix is the actors' to match).
        hint: added to an unreadable-path error (e.g. which ``--path-map`` was applied).

    Returns:
        One report per node.

    Raises:
        ClusterError: a node runs another version, computes another model key, or cannot read a path.
    """
    import ray

    weights = split_key(expected_key)[0]  # the nodes compute the weights' key, without a precision
    try:
        reports = ray.get(pending.refs, timeout=300)
    except ray.exceptions.GetTimeoutError:
        raise ClusterError(
            "the preflight check did not finish on every node within 300 s; check `ray status`"
        ) from None
    for node, rep in zip(pending.nodes, reports, strict=False):
        where = f"node {rep['host']} ({node.get('NodeManagerAddress', '?')})"
        if rep["version"] != vidsearch_version():
            raise ClusterError(
                f"{where} runs vidsearch {rep['version']}, the driver {vidsearch_version()}: install the same version on every node"
            )
        if rep["key"] is None:
            raise ClusterError(f"{where} cannot run the model: {rep['key_error']}")
        if rep["key"] != weights:
            raise ClusterError(
                f"{where} has model {rep['key']}, the driver {weights}: install the same weights on every node"
            )
        if rep["unreadable"]:
            raise ClusterError(
                f"{where} cannot read {rep['unreadable'][0]}{hint}: mount the videos on every node, "
                "or pass --path-map LOCAL=REMOTE where the mount point differs"
            )
    LOG.info("preflight passed on %d node(s)", len(reports))
    return reports
