"""The `vidsearch` command: one typer app, each command group in its own module."""

from __future__ import annotations

import logging
import sys

import typer

from vidsearch.cli.app import app
from vidsearch.errors import VidsearchError

__all__ = ["app", "main"]


def _register_commands() -> None:
    """Attach every command module; each keeps its own imports lazy for a fast start."""
    from vidsearch.cli import commands  # noqa: F401  (registers on `app`)


def _interrupted() -> None:
    typer.echo("interrupted: what was committed so far is kept; run the command again to resume", err=True)
    sys.exit(130)


def main() -> None:
    """Console-script entry point: user errors become one line on stderr and exit code 2."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    _register_commands()
    try:
        # Outside standalone mode click hands back the code of a `typer.Exit` instead of exiting,
        # and typer turns Ctrl-C into a returned 130.
        code = app(standalone_mode=False)
        if code == 130:
            _interrupted()
        if isinstance(code, int) and code:
            sys.exit(code)
    except VidsearchError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        _interrupted()
    except typer.Exit as exc:  # raised by commands to set the exit code
        sys.exit(exc.exit_code)
    except SystemExit:
        raise
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, click.exceptions.Abort):  # click's form of Ctrl-C
            _interrupted()
        raise
