"""The decoding worker process: its start-up and its loop (the parent side is
:mod:`vidsearch.media.pool`).

A worker receives ``(seq, job, reader)`` messages on its own pipe and answers ``("start", seq)``,
``("probed", seq, duration)`` and ``("done", seq, result)``; ``None`` asks it to exit.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from multiprocessing import forkserver

from vidsearch.media.jobs import BeforeDecode, decode_job
from vidsearch.media.threads import set_decode_threads

__all__ = ["worker_main"]


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this worker when its parent dies (a SIGKILLed indexer leaves no
    orphan decoding forever, even one stuck in native code); elsewhere the closed pipe ends the
    worker at its next job.

    Under "forkserver" the parent is the fork server, which exits when every holder of its
    "alive" pipe is gone. Each forked child inherits a copy of that pipe (so that it could start
    processes itself); a hung worker holding it would keep the server, and so itself, alive
    forever after the indexer died. Workers start no processes, so they drop their copy.
    """
    try:
        fd = forkserver._forkserver._forkserver_alive_fd  # type: ignore[attr-defined]  # private, the only handle
        if fd is not None:
            forkserver._forkserver._forkserver_alive_fd = None  # type: ignore[attr-defined]
            os.close(fd)
    except (AttributeError, OSError):
        pass
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG = 1
    except Exception:  # noqa: BLE001 -- best effort
        pass


def worker_main(conn, quiet: bool, before_decode: BeforeDecode | None, threads: int = 1) -> None:
    """Worker loop: receive ``(seq, job, reader)``, send ``start``/``probed``/``done``.

    Args:
        conn: this worker's end of its pipe.
        quiet: send fd 2 to /dev/null (decord's C++ logging and FFmpeg write there directly).
        before_decode: called before each decode (tests inject faults through it).
        threads: decoding threads per file (this worker's share of the cores).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    _die_with_parent()
    if os.getppid() == 1:
        os._exit(0)  # the parent died before we could ask to die with it
    if quiet:
        # decord's C++ logging and FFmpeg write to fd 2 directly; keep the progress bar clean
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"
    import torch

    torch.set_num_threads(1)  # the resize runs here; the encoder owns the other cores
    set_decode_threads(threads)
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        seq, job, reader = msg
        try:
            conn.send(("start", seq))
            result = decode_job(
                job,
                reader,
                on_probed=lambda info: conn.send(("probed", seq, info.duration)),  # noqa: B023 (called within this job)
                before_decode=before_decode,
            )
            conn.send(("done", seq, result))
        except (BrokenPipeError, EOFError, OSError):
            return
