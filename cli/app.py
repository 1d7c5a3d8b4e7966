"""The typer app objects every command module registers on (kept apart from the entry point).

``vidsearch.cli.main`` imports the command modules to register them, and each command module
needs the app: holding the apps here keeps that an import tree instead of a cycle.
"""

from __future__ import annotations

import typer

__all__ = ["app"]

app = typer.Typer(
    name="vidsearch",
    help="Find moments in a folder of videos by typing what you want to see.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
