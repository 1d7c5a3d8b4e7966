"""The `vidsearch` command: one typer app, each command group in its own module."""

from __future__ import annotations

import logging
import re
import signal
import sys

import typer

from vidsearch.cli.app import app
from vidsearch.cli.errors import message
from vidsearch.cli.stop import EXIT_TERMINATED, on_sigterm, signal_exit_code
from vidsearch.errors import VidsearchError

__all__ = ["app", "main"]

EXIT_USAGE = 2  # bad arguments, as a VidsearchError or a click/typer usage error


def _register_commands() -> None:
    """Attach every command module; each keeps its own imports lazy for a fast start."""
    from vidsearch.cli import commands  # noqa: F401  (registers on `app`)


def _interrupted() -> None:
    if signal_exit_code() == EXIT_TERMINATED:
        typer.echo("terminated: what was committed so far is kept; run the command again to resume", err=True)
        sys.exit(EXIT_TERMINATED)
    typer.echo("interrupted: what was committed so far is kept; run the command again to resume", err=True)
    sys.exit(130)


# What may follow `--ray` as its address: auto, local, ray://..., HOST:PORT.
_RAY_ADDRESS = re.compile(r"^(auto|local|ray://\S+|[\w.\-\[\]:]+:\d+)$")
# What may follow `--transcribe` as its backend.
_BACKEND = re.compile(r"^(whisper(:\S+)?|pocketsphinx)$", re.IGNORECASE)


def bare_ray_flag(argv: list[str]) -> list[str]:
    """``--ray`` without an address means ``--ray auto`` (the cluster this machine is part of),
    and ``--transcribe`` without a backend ``--transcribe whisper``.

    typer's options take a value or none, never an optional one, so a bare ``--ray`` (last, or
    before another option or the folder) is spelled out here; what follows it is taken as its
    address only when it looks like one.
    """
    out = list(argv)
    for i, arg in enumerate(out):
        if arg == "--":
            break
        if arg == "--ray" and (i + 1 == len(out) or not _RAY_ADDRESS.match(out[i + 1])):
            out[i] = "--ray=auto"
        # likewise a bare `--transcribe` is the recommended backend
        if arg == "--transcribe" and (i + 1 == len(out) or not _BACKEND.match(out[i + 1])):
            out[i] = "--transcribe=whisper"
    return out


def main() -> None:
    """Console-script entry point: user errors become one line on stderr and exit code 2."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    _register_commands()
    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        # Outside standalone mode click hands back the code of a `typer.Exit` instead of exiting,
        # and typer turns Ctrl-C into a returned 130.
        code = app(args=bare_ray_flag(sys.argv[1:]), standalone_mode=False)
        if code == 130:
            _interrupted()
        if isinstance(code, int) and code:
            sys.exit(code)
    except VidsearchError as exc:
        from vidsearch.cli.format import plain

        # The CLI's wording (its flags, its advice); a hostile file name cannot reach the terminal raw.
        typer.echo(f"error: {plain(message(exc))}", err=True)
        sys.exit(EXIT_USAGE)
    except KeyboardInterrupt:
        _interrupted()
    except typer.Exit as exc:  # raised by commands to set the exit code
        sys.exit(exc.exit_code)
    except SystemExit:
        raise
    except Exception as exc:  # usage errors arrive here in non-standalone mode
        if _is_usage_error(exc):
            _show_usage_error(exc)
            sys.exit(EXIT_USAGE)
        if _is_abort(exc):  # click's (or typer's) form of Ctrl-C
            _interrupted()
        raise


def _click_classes(name: str) -> tuple[type, ...]:
    """``name`` from every click the installed typer may raise: its vendored copy and click itself.

    Older typer releases raised click's own exceptions; recent ones (0.29) vendor click as
    ``typer._click`` and raise their own classes, which ``except click.ClickException`` misses.
    ``typer.TyperException`` is the public base of the vendored ones.
    """
    found: list[type] = []
    if name == "ClickException" and hasattr(typer, "TyperException"):
        found.append(typer.TyperException)
    if name == "Abort":
        found.append(typer.Abort)
    try:
        import click.exceptions as click_exceptions

        found.append(getattr(click_exceptions, name))
    except ImportError:  # typer without a separate click installed
        pass
    return tuple(found)


def _is_usage_error(exc: BaseException) -> bool:
    return isinstance(exc, _click_classes("ClickException"))


def _is_abort(exc: BaseException) -> bool:
    return isinstance(exc, _click_classes("Abort"))


def _show_usage_error(exc: BaseException) -> None:
    """typer's own short block: usage line, the help hint, ``Error: ...`` (or the help page)."""
    show = getattr(exc, "show", None)
    if callable(show):
        show()
    else:
        typer.echo(f"Error: {exc}", err=True)
