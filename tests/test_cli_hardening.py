"""The CLI as a hostile or careless user meets it: usage errors, hostile names, bad numbers.

Each test reproduces one finding of the adversarial pass of issue 12 and runs the real entry
point (``python -m vidsearch.cli``: the installed typer, not a test runner) where the finding was
about what a shell user sees.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``python -m vidsearch.cli ARGS`` as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "vidsearch.cli", *args], capture_output=True, text=True, cwd=cwd,
        env={**os.environ, **(env or {})}, timeout=timeout,
    )  # fmt: skip


@pytest.mark.parametrize(
    "args, says",
    [
        (["index"], "Missing argument"),
        (["query", "red", "--bogus"], "No such option: --bogus"),
        (["query", "red", "-k", "2.5"], "'-k'"),
        (["bogus"], "No such command 'bogus'"),
        (["index", ".", "--window", "abc"], "'--window'"),
    ],
)
def test_usage_errors_are_short_and_exit_2(args: list[str], says: str, tmp_path: Path) -> None:
    res = cli(*args, cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr and says in res.stderr
    assert len(res.stderr.strip().splitlines()) <= 4  # usage, hint, blank, error


def test_typer_range_is_pinned() -> None:
    import importlib.metadata

    text = (ROOT / "pyproject.toml").read_text()
    assert '"typer>=0.12,<0.30"' in text
    major, minor = (int(x) for x in importlib.metadata.version("typer").split(".")[:2])
    assert (0, 12) <= (major, minor) < (0, 30)
