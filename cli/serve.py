"""`vidsearch serve`: the web page and HTTP API over a library (see vidsearch.serve)."""

from __future__ import annotations

import socket
import sys
import threading
import webbrowser
from pathlib import Path
from typing import Any

import typer

from vidsearch.cli.app import app
from vidsearch.cli.common import SPACE_HELP, LibraryOption, console
from vidsearch.cli.stop import signal_exit_code
from vidsearch.errors import InputError
from vidsearch.serve.security import check_bind, is_loopback, new_token


def _port_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host.strip("[]"), port))
        except OSError:
            return False
    return True


def _dual_stack_socket(port: int) -> socket.socket:
    """A listening ``[::]:port`` socket that also takes IPv4 (asyncio would make it IPv6-only).

    A wildcard bind is meant to answer on every address of the machine, IPv4 ones included.
    """
    sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    sock.bind(("::", port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


@app.command("serve")
def serve_command(
    library: Path | None = LibraryOption,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind. Anything but loopback needs --token."),
    port: int = typer.Option(8700, "--port", help="TCP port."),
    token: str | None = typer.Option(
        None,
        "--token",
        envvar="VIDSEARCH_TOKEN",
        help='Require this token ("auto": generate one and print the link).',
        show_default=False,
    ),
    open_browser: bool = typer.Option(False, "--open", help="Open the page in your browser."),
    allow_host: list[str] = typer.Option(
        [], "--allow-host", help="Also accept this Host name (e.g. a DNS name of this machine); repeatable."
    ),
    model: str | None = typer.Option(None, "--model", help=SPACE_HELP, show_default=False),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    max_upload_mb: int = typer.Option(200, "--max-upload-mb", help="Largest query clip a client may upload (MB)."),
) -> None:
    """Search, preview and watch moments in your browser (http://127.0.0.1:8700 by default)."""

    if token == "auto":
        token = new_token()
    check_bind(host, token)
    if not 0 < port < 65536:
        raise InputError(f"--port {port} is not a TCP port; give 1-65535")
    if max_upload_mb < 1:
        raise InputError(f"--max-upload-mb must be at least 1 (got {max_upload_mb})")
    if not _port_free(host, port):
        raise InputError(f"--port {port} on {host} is in use (another vidsearch serve?); pass another --port")

    import torch
    import uvicorn

    from vidsearch.serve.app import create_app
    from vidsearch.serve.service import ServeConfig

    # Requests run in parallel threads; one torch thread each keeps them from fighting over cores.
    torch.set_num_threads(1)
    config = ServeConfig(
        library=library,
        host=host,
        port=port,
        token=token,
        allowed_hosts=tuple(allow_host),
        model=model,
        device=device,
        max_upload_bytes=max_upload_mb * 1024 * 1024,
    )
    web = create_app(config)
    stats = web.state.serve.health()["counts"]
    shown = host if is_loopback(host) or host not in ("0.0.0.0", "::") else socket.gethostname()
    url = f"http://{'[' + shown + ']' if ':' in shown else shown}:{port}/"
    link = f"{url}?token={token}" if token else url
    console.print(f"[bold]vidsearch serve[/] {link}  ({stats['videos']} videos; Ctrl-C stops)", highlight=False)
    if not is_loopback(host):
        console.print("reachable from other machines: only clients with the token get in", style="yellow")

    class _Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            web.state.serve.stopping.set()  # event streams end, or shutdown would wait on them
            super().handle_exit(sig, frame)

    server = _Server(
        uvicorn.Config(
            web, host=host.strip("[]"), port=port, log_level="warning", server_header=False, access_log=False
        )
    )
    sockets = [_dual_stack_socket(port)] if host.strip("[]") == "::" else None
    if open_browser:

        def _open_when_up() -> None:
            while not server.started and not server.should_exit:
                threading.Event().wait(0.1)
            if server.started:
                webbrowser.open(link)

        threading.Thread(target=_open_when_up, daemon=True).start()
    stopped_by_signal = False
    try:
        server.run(sockets=sockets)  # on Ctrl-C: finishes the requests in flight, shuts the app down, returns
    except KeyboardInterrupt:  # uvicorn re-raises the signal it caught once it has shut down
        stopped_by_signal = True
    console.print("stopped")
    if stopped_by_signal:
        sys.exit(signal_exit_code())  # 130 or 143, as the README's table says
