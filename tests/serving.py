"""A real ``vidsearch serve`` app under uvicorn in a thread, for the tests that need a socket
(a browser, server-sent events), not Starlette's in-process test transport."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from conftest import default_sigint


class ThreadedServer:
    """uvicorn on a free loopback port, in a thread; ``with`` gives its base URL and stops it after.

    Args:
        app: the ASGI app.
        start_timeout: seconds a busy machine may take to start it.
    """

    def __init__(self, app: Any, start_timeout: float = 60.0) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.app = app
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.start_timeout = start_timeout

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + self.start_timeout
        while not self.server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.05)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc: object) -> None:
        # open event streams end first (what the CLI's signal handler does), or uvicorn waits on them
        serve = getattr(getattr(self.app, "state", None), "serve", None)
        if serve is not None:
            serve.stopping.set()
        self.server.should_exit = True
        self.thread.join(timeout=30)


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_cli(library: Path, port: int, *extra: str) -> subprocess.Popen[str]:
    """``vidsearch serve`` in a child process (default SIGINT handling), answering on ``port`` when this returns.

    Raises:
        AssertionError: the process ended, or did not answer within two minutes (a busy machine).
    """
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "vidsearch.cli", "serve", "--library", str(library), "--port", str(port), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=default_sigint,
    )
    deadline = time.monotonic() + 120
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"vidsearch serve ended: {proc.communicate()}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=5)
            return proc
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                proc.kill()
                raise AssertionError("vidsearch serve did not answer within 120 s") from None
            time.sleep(0.2)
