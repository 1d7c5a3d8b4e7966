"""A real uvicorn server on a free loopback port, in a thread, for tests that need one (browsers, event streams)."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn


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
