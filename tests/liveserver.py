"""A real uvicorn server on a free loopback port, in a thread, for tests that need one (browsers, event streams)."""

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


class LiveServer:
    """``with LiveServer(app) as url:`` serves ``app`` at ``url`` until the block ends.

    On exit the app's open event streams are told to end (``ServeState.stopping``, what the CLI's
    signal handler does), then uvicorn is asked to stop and its thread is joined.
    """

    def __init__(self, app: Any) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.app = app
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 60  # a shared, busy machine
        while not self.server.started:
            assert time.monotonic() < deadline, "server did not start"
            assert self.thread.is_alive(), "server thread ended before it started"
            time.sleep(0.05)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc: object) -> None:
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
