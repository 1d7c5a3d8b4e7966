"""The frame-resize choice: torchvision 0.15.2's bicubic without antialias by default, the
antialiased one on request, recorded per embedding space so that one library never mixes both."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import videogen
from typer.testing import CliRunner

from vidsearch.cli import commands  # noqa: F401  (registers the commands)
from vidsearch.cli.errors import message as cli_message
from vidsearch.cli.main import app
from vidsearch.errors import InputError
from vidsearch.media import SamplingConfig, read_frames
from vidsearch.media.resize import resize_frames
from vidsearch.media.sampling import recorded_antialias, resolve_antialias

runner = CliRunner()


def _reference(frames: np.ndarray, res: int, antialias: bool) -> np.ndarray:
    """torchvision's uint8 tensor path, restated: float bicubic, clamp, round, uint8."""
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
    x = F.interpolate(x, size=(res, res), mode="bicubic", align_corners=False, antialias=antialias)
    return x.clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def test_default_resize_is_bicubic_without_antialias() -> None:
    frames = np.random.default_rng(0).integers(0, 256, (3, 90, 120, 3), dtype=np.uint8)
    np.testing.assert_array_equal(resize_frames(frames, 32), _reference(frames, 32, False))
    np.testing.assert_array_equal(resize_frames(frames, 32, antialias=True), _reference(frames, 32, True))
    # noise downscaled ~3x: the choice changes most pixels
    assert (resize_frames(frames, 32) != resize_frames(frames, 32, antialias=True)).mean() > 0.5


@pytest.mark.parametrize("reader", ["decord", "pyav"])
def test_readers_resize_as_asked(tmp_path: Path, reader: str) -> None:
    import av

    path = str(videogen.write_video(tmp_path / "v.mp4", seconds=2, fps=10, pattern="noise"))
    with av.open(path) as c:
        full = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    for antialias in (False, True):
        got, _ = read_frames(path, [3, 12], 24, reader=reader, antialias=antialias)
        want = resize_frames(full[[3, 12]], 24, antialias=antialias)
        # decord and PyAV share FFmpeg's colour conversion up to rounding
        assert np.abs(got.astype(int) - want.astype(int)).max() <= 2


def test_resolve_antialias_follows_or_guards_the_space() -> None:
    unset, on, off = SamplingConfig(), SamplingConfig(antialias=True), SamplingConfig(antialias=False)
    assert recorded_antialias({"window": 8.0}) is True  # records older than the choice: antialiased
    assert recorded_antialias({"antialias": False}) is False
    assert resolve_antialias(unset, {"antialias": False}).antialias is False
    assert resolve_antialias(unset, {}).antialias is True
    assert resolve_antialias(off, {"antialias": False}) == off
    with pytest.raises(InputError, match="ask for the antialiased resize") as err:
        resolve_antialias(off, {}, "space x")
    assert "pass --antialias" in cli_message(err.value)
    with pytest.raises(InputError, match="turn off the antialiased resize") as err:
        resolve_antialias(on, {"antialias": False}, "space x")
    assert "drop --antialias" in cli_message(err.value)
    assert unset.resize_antialias is False and on.resize_antialias is True


def _index(folder: Path, lib: Path, ckpt: Path, *extra: str) -> dict:
    result = runner.invoke(
        app,
        ["index", str(folder), "--library", str(lib), "--model", str(ckpt), "--workers", "1", "--json", *extra],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.stdout
    return json.loads(result.stdout)


def _space_vectors(lib: Path) -> tuple[dict, np.ndarray]:
    from vidsearch.store.library import Library

    with Library.open(lib, create=False) as library:
        (space,) = library.spaces()
        _, xb = library.load_vectors(space.id)
        return space.sampling, xb


def test_the_choice_is_recorded_and_never_mixed(tmp_path: Path, tiny_checkpoint: Path) -> None:
    from vidsearch.indexer.pipeline import IndexOptions, index_folder
    from vidsearch.store.library import Library

    folder = tmp_path / "videos"
    video = videogen.write_video(folder / "noise.mp4", seconds=2, fps=10, pattern="noise", size=(320, 240))
    _index(folder, tmp_path / "off", tiny_checkpoint)
    _index(folder, tmp_path / "on", tiny_checkpoint, "--antialias")
    off, xb_off = _space_vectors(tmp_path / "off")
    on, xb_on = _space_vectors(tmp_path / "on")
    assert off["antialias"] is False and on["antialias"] is True
    assert float((xb_off * xb_on).sum(-1).min()) < 1 - 1e-5  # the choice moves the embeddings

    # adding to a library with the other choice is refused before anything is decoded
    videogen.write_video(folder / "second.mp4", seconds=2, fps=10, pattern="gradient", size=(320, 240))
    with Library.open(tmp_path / "on", create=False) as library:
        with pytest.raises(InputError, match="with the antialiased resize; ask for the antialiased resize"):
            index_folder(
                library,
                folder,
                IndexOptions(model=str(tiny_checkpoint), workers=1, sampling=SamplingConfig(antialias=False)),
            )
    # unset follows the library's record
    report = _index(folder, tmp_path / "on", tiny_checkpoint)
    assert report["added"] == 1
    assert _space_vectors(tmp_path / "on")[0]["antialias"] is True

    # a query by video is resized as the space was: the file finds itself with score ~1
    for lib in ("on", "off"):
        result = runner.invoke(
            app, ["query", "--video", str(video), "--library", str(tmp_path / lib), "--json"], catch_exceptions=False
        )
        hits = json.loads(result.stdout)
        assert Path(hits[0]["path"]).name == "noise.mp4"
        assert hits[0]["score"] == pytest.approx(1.0, abs=1e-4)
