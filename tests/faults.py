"""Fault injection for the crash-safety tests: decoders that crash or hang, a run killed after N
commits, an encode actor that dies once. None of it is in the product's options.

- :class:`FaultPlan`: path substring -> fault, called in a decode worker before it reads a file
  (the pool's ``before_decode`` hook). Kinds: ``crash`` (SIGSEGV), ``abort`` (SIGABRT), ``hang``
  (sleeps forever), ``raise`` (a Python exception), ``exit`` (``os._exit(3)``), and
  ``decordcrash`` (SIGSEGV unless the attempt is the PyAV-only retry, as when decord crashes).
- ``VIDSEARCH_FAULT_INJECT="crash:bad_one,hang:stuck"``: read by the test-only plugin
  ``tests/faultplugin/sitecustomize.py`` in `vidsearch` processes that tests start with that
  folder on ``PYTHONPATH`` (:func:`plugin_env`), and by :func:`install` in-process.
- :func:`crash_after_commits`: a sink factory that SIGKILLs the process right after its N-th
  batch commit, before the FAISS file is saved (as faiss contrib's resumable jobs take one).
- :class:`DyingEncodeActor`: a Ray encode actor whose first call exits its process.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FAULT_ENV = "VIDSEARCH_FAULT_INJECT"
FAULT_KINDS = ("crash", "abort", "hang", "raise", "exit", "decordcrash")
PLUGIN_DIR = Path(__file__).resolve().parent / "faultplugin"


@dataclass(frozen=True)
class FaultPlan:
    """Faults to inject while decoding: path substring -> fault kind (see the module docstring)."""

    faults: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        bad = sorted(k for k in self.faults.values() if k not in FAULT_KINDS)
        if bad:
            raise ValueError(f"unknown fault kind(s) {bad}; choose from {', '.join(FAULT_KINDS)}")
        if any(not needle for needle in self.faults):
            raise ValueError("a fault's path substring must not be empty")
        object.__setattr__(self, "faults", dict(self.faults))  # picklable, and not shared

    @classmethod
    def parse(cls, spec: str) -> FaultPlan:
        """A plan from ``"<kind>:<substring>,..."`` (the ``VIDSEARCH_FAULT_INJECT`` syntax)."""
        faults: dict[str, str] = {}
        for item in filter(None, (s.strip() for s in spec.split(","))):
            kind, _, needle = item.partition(":")  # the substring may hold ":" itself
            if not needle:
                raise ValueError(f"{FAULT_ENV}: {item!r} is not '<kind>:<path substring>'")
            faults[needle] = kind
        return cls(faults)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> FaultPlan:
        """The plan ``VIDSEARCH_FAULT_INJECT`` names (empty when unset)."""
        return cls.parse((os.environ if environ is None else environ).get(FAULT_ENV, ""))

    def __bool__(self) -> bool:
        return bool(self.faults)

    def __call__(self, path: str, reader: str) -> None:
        """Misbehave as planned for ``path`` (``reader`` is the attempt's reader)."""
        for needle, kind in self.faults.items():
            if needle not in path:
                continue
            if kind == "crash" or (kind == "decordcrash" and reader != "pyav"):
                os.kill(os.getpid(), signal.SIGSEGV)
            elif kind == "abort":
                os.abort()
            elif kind == "hang":
                while True:
                    time.sleep(3600)
            elif kind == "raise":
                raise RuntimeError(f"injected fault for {needle!r}")
            elif kind == "exit":
                os._exit(3)


def injecting_init(plan: FaultPlan) -> Any:
    """A ``DecodePool.__init__`` that gives every pool ``plan`` (unless given a hook of its own).

    In-process tests set it with ``monkeypatch.setattr(DecodePool, "__init__", injecting_init(plan))``.
    """
    from vidsearch.media import pool

    original = pool.DecodePool.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("before_decode", plan)
        original(self, *args, **kwargs)

    return init


@contextlib.contextmanager
def injected(plan: FaultPlan) -> Iterator[None]:
    """Within the block, every decode pool of this process injects ``plan`` (CliRunner tests)."""
    from vidsearch.media import pool

    original = pool.DecodePool.__init__
    pool.DecodePool.__init__ = injecting_init(plan)  # type: ignore[method-assign]
    try:
        yield
    finally:
        pool.DecodePool.__init__ = original  # type: ignore[method-assign]


def install(plan: FaultPlan) -> None:
    """Make every decode pool of this process inject ``plan`` (the plugin's way)."""
    from vidsearch.media import pool

    pool.DecodePool.__init__ = injecting_init(plan)  # type: ignore[method-assign]


def plugin_env(environ: Mapping[str, str] | None = None, **extra: str) -> dict[str, str]:
    """An environment whose Python processes load the fault plugin (``extra`` set too)."""
    env = dict(os.environ if environ is None else environ)
    env.update(extra)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PLUGIN_DIR), env.get("PYTHONPATH", "")) if p)
    return env


def crash_after_commits(n: int) -> Any:
    """A sink factory (``Stages(sink=...)``): the library's sink, SIGKILLing this process after ``n`` commits."""
    from vidsearch.indexer.stages import library_sink

    def factory(library: Any, space: Any, plan: Any, options: Any) -> Any:
        sink = library_sink(library, space, plan, options)
        add, commits = sink.add, [0]

        def add_then_maybe_die(batch: Any) -> None:
            add(batch)
            commits[0] += 1
            if commits[0] >= n:
                os.kill(os.getpid(), signal.SIGKILL)

        sink.add = add_then_maybe_die  # type: ignore[method-assign]
        return sink

    return factory


def dying_actor(base: type, marker: str) -> type:
    """A subclass of the actor class ``base`` whose first call (the one that finds ``marker`` missing) exits its process."""

    class DyingActor(base):  # type: ignore[misc,valid-type]
        def __call__(self, batch: Any) -> Any:
            if not os.path.exists(marker):
                with open(marker, "w", encoding="utf-8") as fh:
                    fh.write(str(os.getpid()))
                os._exit(1)
            return super().__call__(batch)

    DyingActor.__name__ = f"Dying{base.__name__}"
    return DyingActor


def dying_encode_actor(marker: str) -> type:
    """An encode actor class whose first call exits its process (see :func:`dying_actor`)."""
    from vidsearch.cluster.actors import EncodeActor

    return dying_actor(EncodeActor, marker)


def dying_transcribe_actor(marker: str) -> type:
    """A transcription actor class whose first call exits its process (see :func:`dying_actor`)."""
    from vidsearch.cluster.transcripts import TranscribeActor

    return dying_actor(TranscribeActor, marker)
