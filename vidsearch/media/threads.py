"""How many threads a reader decodes one file with (FFmpeg frame/slice threading).

A process that decodes on its own (a query by video, enrichment) lets FFmpeg pick (0: as many
threads as cores); each decode-pool worker is told its share of the cores when it starts
(:func:`set_decode_threads`), so that the workers together do not oversubscribe the machine.
"""

from __future__ import annotations

__all__ = ["decode_threads", "set_decode_threads"]

_THREADS = 0  # 0: FFmpeg/decord choose (one per core)


def decode_threads() -> int:
    """Threads per decoded file (0: the decoder's automatic choice)."""
    return _THREADS


def set_decode_threads(threads: int) -> None:
    """Set the threads each file is decoded with in this process (0: automatic).

    Raises:
        ValueError: ``threads`` is negative.
    """
    global _THREADS
    if threads < 0:
        raise ValueError(f"decode threads must be >= 0, got {threads}")
    _THREADS = int(threads)
