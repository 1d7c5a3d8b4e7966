"""Shared fixtures: an isolated environment and a tiny random-weight ViCLIP checkpoint.

The checkpoint is made with the project's own code (``ViCLIP`` + ``save_checkpoint``), so the
suite runs anywhere, with no downloaded weights and no network.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent
if str(TESTS_DIR) not in sys.path:  # `import videogen` from any test module
    sys.path.insert(0, str(TESTS_DIR))

# Small enough that encoding is instant on a CPU, large enough to exercise every code path
# (2 layers, several heads, 8 frames like the published models).
TINY_CONFIG = dict(
    input_resolution=32,
    patch_size=16,
    vision_width=64,
    vision_layers=2,
    vision_heads=4,
    embed_dim=32,
    num_frames=8,
    text_width=32,
    text_layers=2,
    text_heads=4,
)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No test reads the user's library, caches or weights, or touches the network."""
    cache = tmp_path_factory.getbasetemp() / "vidsearch-cache"
    monkeypatch.setenv("VIDSEARCH_CACHE_DIR", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path_factory.getbasetemp() / "hf-home"))
    for var in ("VIDSEARCH_LIBRARY", "VIDSEARCH_CHECKPOINT", "VIDSEARCH_FAULT_INJECT"):
        monkeypatch.delenv(var, raising=False)


def make_tiny_checkpoint(path: Path, seed: int = 0, **overrides: int) -> Path:
    """Write a random-weight ViCLIP checkpoint (+ its config JSON) with the project's code."""
    import torch

    from vidsearch.models.viclip import ViCLIP, ViCLIPConfig
    from vidsearch.models.weights import save_checkpoint

    torch.manual_seed(seed)
    config = ViCLIPConfig(**{**TINY_CONFIG, **overrides})
    return save_checkpoint(ViCLIP(config), path, config)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of a tiny random-weight ViCLIP checkpoint shared by the session."""
    return make_tiny_checkpoint(tmp_path_factory.mktemp("weights") / "tiny-viclip.pth")


def default_sigint() -> None:
    """``preexec_fn`` of a child that a test stops with SIGINT: Ctrl-C as in a terminal.

    A test run started in the background of a non-interactive shell (``cmd &``) inherits SIGINT
    ignored, and Python then installs no KeyboardInterrupt handler in its children; restoring
    the default disposition before exec makes the child behave as it does for a user.
    """
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
