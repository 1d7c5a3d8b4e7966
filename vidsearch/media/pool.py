"""The crash-contained decoding pool: probe, plan and decode videos in processes that may
crash or hang (the parent side; the worker is :mod:`vidsearch.media.worker`).

decord is unmaintained and has known segfaults, native hangs (dmlc/decord#373: an infinite
loop holding the GIL, so no Python timeout can stop it) and leaks. Every file is therefore
decoded in a worker process that the parent can kill:

* a worker that dies by a signal gives ``DecodeFailure(reason="decoder crashed (signal 11)")``
  for the file it was decoding, is replaced, and the run continues;
* a worker past the per-file time limit is killed (``"timed out after 120 s"``), likewise;
* an exception inside the worker is a failure of that file only; the worker carries on;
* workers are recycled after ``max_files_per_worker`` files, so decord's leaks stay bounded;
* a file whose decoder crashed or hung is retried once with PyAV alone (it is decord that
  crashes and hangs in practice); only if that fails too is the file reported as failed.

The per-file time limit is ``timeout + timeout_per_second * duration``: the worker reports the
duration as soon as it has probed the file, so long videos get proportionally more time while
a file that hangs in the probe is stopped after ``timeout`` seconds.

Workers run with one torch thread each and decode with their share of the cores (threaded
FFmpeg/decord decoding, ``cores // workers`` threads), so that decoding overlaps with batched
encoding. They are started with the "forkserver" method (a clean
server process imports torch/decord/PyAV once and forks workers from it: fast to replace, and
never a fork of the parent, whose torch threads make ``fork`` unsafe); "spawn" works as well.
Results travel over one pipe per worker (a crash cannot corrupt another worker's channel, unlike
a shared queue), and a thread in the parent drains the pipes so that workers never block on a
busy consumer. At most ``prefetch`` results are dispatched-but-not-consumed at any time, so
memory stays bounded however slow the consumer (the encoder) is.

Fault injection (for tests): the ``before_decode`` parameter, a picklable callable sent to every
worker when it starts and called there before each file, lets the crash-containment tests make
the worker that decodes a given file crash, hang or raise (``tests/faults.py``).
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import multiprocessing
import multiprocessing.connection as mpc
import os
import queue
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from multiprocessing import forkserver

from vidsearch.media.jobs import BeforeDecode, DecodedVideo, DecodeFailure, DecodeJob, one_line
from vidsearch.media.worker import worker_main

__all__ = ["DecodePool", "default_workers", "prestart"]

LOG = logging.getLogger(__name__)

_PER_WORKER_QUEUE = 2  # jobs a worker holds: the one it decodes and the next one
# what decoding needs, imported once by the fork server and inherited by every worker it forks
_PRELOAD = ("vidsearch.media.worker", "vidsearch.media.resize", "torch", "decord", "av")


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_workers() -> int:
    """One worker per core except one, left for the encoder (at least one)."""
    return max(1, _cores() - 1)


def prestart() -> threading.Thread | None:
    """Start the fork server in the background, so that its imports (torch, decord, PyAV) run
    while this process does something else (the indexer loads the model meanwhile); a
    :class:`DecodePool` made later forks its workers from it at once. No-op without forkserver.

    Returns:
        The thread starting the server (None when there is nothing to start).
    """
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return None

    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(list(_PRELOAD))
    thread = threading.Thread(target=forkserver.ensure_running, name="vidsearch-forkserver", daemon=True)
    thread.start()
    return thread


@dataclass
class _Task:
    seq: int
    job: DecodeJob
    reader: str = "auto"
    first_failure: str | None = None  # reason of the attempt before a PyAV retry


@dataclass
class _Worker:
    proc: multiprocessing.process.BaseProcess
    conn: mpc.Connection
    tasks: collections.deque = field(default_factory=collections.deque)  # in the worker, in order
    started: float | None = None  # when tasks[0] started
    deadline: float | None = None
    dispatched: int = 0
    done: int = 0


_DONE = object()


class _PumpError:
    def __init__(self, exc: BaseException):
        self.exc = exc


class DecodePool:
    """A pool of decoding processes that contains decoder crashes, hangs and leaks.

    Use as a context manager; :meth:`run` yields results as they complete (in any order).

    Args:
        workers: worker processes (default: cores - 1, at least 1).
        timeout: seconds a file may take before its worker is killed, plus
            ``timeout_per_second`` per second of video once the probe knows the duration.
        timeout_per_second: extra seconds allowed per second of video (3.0: 4K HEVC decodes
            slower than real time on one core; a hang still ends after a bounded time).
        max_files_per_worker: files after which a worker is replaced (decord leaks memory).
        prefetch: results dispatched but not yet consumed, at most (default ``2 * workers``).
        retry_with_pyav: after a crash or a timeout, try the file once more with PyAV only.
        quiet: silence the workers' stderr (decord and FFmpeg log there directly).
        start_method: ``"forkserver"`` (default where available) or ``"spawn"``.
        before_decode: called in the worker with ``(path, reader)`` before each file (tests
            inject faults through it; default none).
    """

    def __init__(
        self,
        workers: int | None = None,
        timeout: float = 120.0,
        timeout_per_second: float = 3.0,
        max_files_per_worker: int = 50,
        prefetch: int | None = None,
        retry_with_pyav: bool = True,
        quiet: bool = True,
        start_method: str | None = None,
        before_decode: BeforeDecode | None = None,
    ):
        self.workers = workers if workers is not None else default_workers()
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if timeout <= 0 or max_files_per_worker < 1:
            raise ValueError("timeout must be > 0 and max_files_per_worker >= 1")
        self.timeout = float(timeout)
        self.timeout_per_second = float(timeout_per_second)
        self.max_files_per_worker = int(max_files_per_worker)
        self.prefetch = max(1, prefetch if prefetch is not None else 2 * self.workers)
        self.retry_with_pyav = retry_with_pyav
        self.quiet = quiet
        self.before_decode = before_decode
        # each worker decodes with its share of the cores (threaded FFmpeg/decord decoding)
        self.decode_threads = max(1, _cores() // self.workers)
        if start_method is None:
            start_method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
        if start_method not in ("forkserver", "spawn"):
            raise ValueError(
                f"start_method must be 'forkserver' or 'spawn' (fork is unsafe with torch), got {start_method!r}"
            )
        self._ctx = multiprocessing.get_context(start_method)
        if start_method == "forkserver":
            # imported once by the server, inherited by every worker it forks
            self._ctx.set_forkserver_preload(list(_PRELOAD))
        self._pool: list[_Worker] = []
        self._lock = threading.Lock()
        self._outstanding = 0
        self._stop = threading.Event()
        self._running = False
        self._closed = False
        self._seq = 0
        self._startup_failures = 0
        self._pump_thread: threading.Thread | None = None
        self._wake_w = None
        self.started_workers = 0  # workers started so far (replacements included): for tests/stats

    # -- lifecycle

    def __enter__(self) -> DecodePool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _spawn(self) -> _Worker:
        parent_conn, child_conn = self._ctx.Pipe(duplex=True)
        proc = self._ctx.Process(
            target=worker_main,
            args=(child_conn, self.quiet, self.before_decode, self.decode_threads),
            daemon=True,
            name="vidsearch-decode",
        )
        proc.start()
        child_conn.close()  # so the parent sees EOF when the worker dies
        self.started_workers += 1
        return _Worker(proc, parent_conn)

    def _reap(self, w: _Worker, kill: bool) -> int | None:
        """Stop a worker for good (no zombie); returns its exit code."""
        if kill and w.proc.is_alive():
            w.proc.kill()
        w.proc.join(timeout=5)
        if w.proc.is_alive():  # did not exit after its stop message: no more patience
            w.proc.kill()
            w.proc.join(timeout=5)
        w.conn.close()
        return w.proc.exitcode

    def _stop_pump(self) -> None:
        self._stop.set()
        if self._wake_w is not None:
            try:
                self._wake_w.send_bytes(b"\0")
            except OSError:
                pass
        if self._pump_thread is not None and self._pump_thread is not threading.current_thread():
            self._pump_thread.join()

    def close(self) -> None:
        """Stop every worker now (running jobs are abandoned). Idempotent."""
        self._stop_pump()
        for w in self._pool:
            if not w.tasks:
                try:
                    w.conn.send(None)  # idle: let it exit cleanly
                except OSError:
                    pass
            else:
                w.proc.kill()
        for w in self._pool:
            w.proc.join(timeout=2)
            self._reap(w, kill=True)
        self._pool = []
        self._closed = True

    # -- the run

    def run(self, jobs: Iterable[DecodeJob]) -> Iterator[DecodedVideo | DecodeFailure]:
        """Decode ``jobs`` in the workers, yielding each result as it completes.

        Every job yields exactly one :class:`DecodedVideo` or :class:`DecodeFailure`. Stopping
        the iteration early (or Ctrl-C) kills the workers still decoding abandoned jobs.
        """
        if self._closed:
            raise RuntimeError("DecodePool is closed")
        if self._running:
            raise RuntimeError("DecodePool.run is already in progress")
        self._running = True
        self._stop.clear()
        self._outstanding = 0
        out: queue.Queue = queue.Queue()
        wake_r, wake_w = multiprocessing.Pipe(duplex=False)
        self._wake_w = wake_w
        pump = threading.Thread(
            target=self._pump, args=(iter(jobs), out, wake_r), name="vidsearch-decode-pump", daemon=True
        )
        self._pump_thread = pump
        pump.start()
        finished = False
        try:
            while True:
                item = out.get()
                if item is _DONE:
                    finished = True
                    return
                if isinstance(item, _PumpError):
                    raise item.exc
                with self._lock:
                    self._outstanding -= 1
                wake_w.send_bytes(b"\0")  # a slot is free: the pump may dispatch again
                yield item
        finally:
            self._stop_pump()
            self._wake_w = self._pump_thread = None
            wake_r.close()
            wake_w.close()
            if not finished:  # abandoned jobs: their workers are killed, replaced on the next run
                for w in [w for w in self._pool if w.tasks]:
                    self._pool.remove(w)
                    self._reap(w, kill=True)
            self._running = False

    def _pump(self, jobs: Iterator[DecodeJob], out: queue.Queue, wake_r) -> None:
        try:
            self._pump_loop(jobs, out, wake_r)
        except BaseException as exc:  # noqa: BLE001 -- hand every error to the consumer
            out.put(_PumpError(exc))

    def _pump_loop(self, jobs: Iterator[DecodeJob], out: queue.Queue, wake_r) -> None:
        pending: collections.deque[_Task] = collections.deque()  # retries and requeued jobs first
        exhausted = False
        while not self._stop.is_set():
            if len(self._pool) < self.workers and not pending and not exhausted:
                # look one job ahead, so a worker is not started (or replaced) for nothing
                try:
                    job = next(jobs)
                except StopIteration:
                    exhausted = True
                else:
                    self._seq += 1
                    pending.append(_Task(self._seq, job))
            while len(self._pool) < self.workers and pending:
                self._pool.append(self._spawn())
            # dispatch while there is room in the prefetch budget
            while True:
                with self._lock:
                    if self._outstanding >= self.prefetch:
                        break
                free = [
                    w
                    for w in self._pool
                    if len(w.tasks) < _PER_WORKER_QUEUE and w.dispatched < self.max_files_per_worker
                ]
                if not free:
                    break
                if pending:
                    task = pending.popleft()
                elif not exhausted:
                    try:
                        job = next(jobs)
                    except StopIteration:
                        exhausted = True
                        continue
                    self._seq += 1
                    task = _Task(self._seq, job)
                else:
                    break
                w = min(free, key=lambda w: len(w.tasks))
                try:
                    w.conn.send((task.seq, task.job, task.reader))
                except OSError:  # it died just now: the job goes back, the death is handled
                    pending.appendleft(task)
                    self._lost(w, self._death_reason(w), out, pending, kill=True)
                    continue
                w.tasks.append(task)
                w.dispatched += 1
                with self._lock:
                    self._outstanding += 1
            if exhausted and not pending and not any(w.tasks for w in self._pool):
                out.put(_DONE)
                return
            # wait for messages, deaths, the consumer, or the nearest deadline
            now = time.monotonic()
            deadlines = [w.deadline for w in self._pool if w.deadline is not None]
            wait_for = max(0.0, min(deadlines) - now) if deadlines else 1.0
            objs = [wake_r] + [w.conn for w in self._pool] + [w.proc.sentinel for w in self._pool]
            ready = set(mpc.wait(objs, timeout=min(wait_for, 1.0)))
            if wake_r in ready:
                while wake_r.poll():
                    wake_r.recv_bytes()
            for w in list(self._pool):
                died = False
                if w.conn in ready or w.proc.sentinel in ready:
                    died = self._drain(w, out, pending)
                if died or (w.proc.sentinel in ready and not w.proc.is_alive()):
                    self._lost(w, self._death_reason(w), out, pending, kill=False)
                elif w.deadline is not None and time.monotonic() > w.deadline:
                    limit = w.deadline - (w.started or w.deadline)
                    self._lost(w, f"timed out after {limit:.0f} s", out, pending, kill=True)
                elif not w.tasks and w.done >= self.max_files_per_worker:
                    # recycle: decord leaks; a fresh process starts from a clean heap
                    self._pool.remove(w)
                    try:
                        w.conn.send(None)
                    except OSError:
                        pass
                    self._reap(w, kill=False)
                    LOG.debug("recycled a decoding worker after %d files", w.done)

    def _drain(self, w: _Worker, out: queue.Queue, pending: collections.deque) -> bool:
        """Handle every message a worker has sent; True if its pipe is closed (it died)."""
        try:
            while w.conn.poll():
                msg = w.conn.recv()
                kind, seq = msg[0], msg[1]
                if not w.tasks or w.tasks[0].seq != seq:
                    LOG.warning("decoding worker sent an unexpected message %r", kind)
                    continue
                task = w.tasks[0]
                if kind == "start":
                    self._startup_failures = 0
                    w.started = time.monotonic()
                    w.deadline = w.started + self.timeout
                elif kind == "probed":
                    w.deadline = (
                        (w.started or time.monotonic())
                        + self.timeout
                        + self.timeout_per_second * max(0.0, float(msg[2]))
                    )
                elif kind == "done":
                    w.tasks.popleft()
                    w.done += 1
                    w.started = w.deadline = None
                    result = msg[2]
                    if task.first_failure is not None:
                        if isinstance(result, DecodeFailure):
                            result.reason = one_line(f"{task.first_failure}; PyAV retry: {result.reason}")
                        else:
                            LOG.info("%s: decoded by PyAV after: %s", task.job.path, task.first_failure)
                    out.put(result)
        except (EOFError, OSError):
            return True
        return False

    def _death_reason(self, w: _Worker) -> str:
        w.proc.join(timeout=2)
        code = w.proc.exitcode
        if code is None:
            return "decoder stopped responding"
        if code < 0:
            return f"decoder crashed (signal {-code})"
        return f"decoder exited unexpectedly (code {code})"

    def _lost(self, w: _Worker, reason: str, out: queue.Queue, pending: collections.deque, kill: bool) -> None:
        """A worker died or was killed: fail (or retry) its current job, requeue the rest."""
        self._pool.remove(w)
        self._reap(w, kill=kill)
        if w.started is None and w.done == 0:
            # died before starting anything: a broken environment, not a bad file
            self._startup_failures += 1
            if self._startup_failures >= 3:
                raise RuntimeError(f"decoding workers die at start-up ({reason}); see their stderr with quiet=False")
        if not w.tasks:
            LOG.warning("a decoding worker exited while idle: %s", reason)
            return
        current = w.tasks.popleft() if w.started is not None else None
        with self._lock:
            self._outstanding -= len(w.tasks) + (current is not None)
        for task in reversed(w.tasks):  # not started: run them elsewhere, in their order
            pending.appendleft(task)
        if current is None:
            return
        LOG.warning("%s: %s", current.job.path, reason)
        if self.retry_with_pyav and current.reader != "pyav":
            pending.appendleft(dataclasses.replace(current, reader="pyav", first_failure=reason))
            return
        if current.first_failure is not None:
            reason = f"{current.first_failure}; PyAV retry: {reason}"
        with self._lock:
            self._outstanding += 1  # the failure is a result waiting for the consumer
        out.put(DecodeFailure(current.job.job_id, current.job.path, one_line(reason)))
