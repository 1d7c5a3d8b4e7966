"""How a command a signal stopped exits: SIGTERM unwinds like Ctrl-C, then exits 143, not 130."""

from __future__ import annotations

import signal

__all__ = ["EXIT_TERMINATED", "on_sigterm", "signal_exit_code"]

# Exit status of a run stopped by SIGTERM (128 + 15, what shells and supervisors expect).
EXIT_TERMINATED = 128 + signal.SIGTERM
_terminated = False


def on_sigterm(signum: int, _frame: object) -> None:
    """SIGTERM's handler: unwind as for Ctrl-C, and remember it for the exit status."""
    # Containers and systemd stop jobs with SIGTERM: unwind exactly as for Ctrl-C (the index run
    # saves what it committed), then exit 143 instead of 130.
    global _terminated
    _terminated = True
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM kills at once
    raise KeyboardInterrupt


def signal_exit_code() -> int:
    """The exit status of a command a signal stopped: 143 after SIGTERM, 130 after Ctrl-C."""
    return EXIT_TERMINATED if _terminated else 130
