"""Fine windows of a video: their default length, and their embeddings cached by content."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import videogen

from vidsearch.enrich.window_cache import WindowCache
from vidsearch.enrich.windows import auto_window, embed_windows


def test_auto_window() -> None:
    assert auto_window(4.0) == 1.0 and auto_window(24.0) == 3.0 and auto_window(600.0) == 8.0


def test_embed_windows_caches_by_content(
    tmp_path: Path, tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vidsearch.models import EncoderSpec, open_encoder

    encoder = open_encoder(EncoderSpec(str(tiny_checkpoint), device="cpu"))
    video = videogen.write_video(tmp_path / "clip.mp4", seconds=4, fps=8, pattern="moving_square")
    cache = WindowCache(tmp_path / "cache")
    emb = embed_windows(video, encoder, window=1.0, stride=0.5, cache=cache)
    assert not emb.cached and len(emb.starts) == 7 and emb.xb.shape == (7, encoder.embed_dim)
    assert emb.starts[0] == 0.0 and emb.ends[-1] == pytest.approx(4.0)
    assert np.allclose(np.linalg.norm(emb.xb, axis=1), 1.0, atol=1e-5)
    # a window equals the same span embedded the way `query --video --start --end` does
    from vidsearch.search import encode_video_file

    assert np.allclose(emb.xb[2], encode_video_file(encoder, video, 1.0, 2.0), atol=1e-5)

    # Renamed file: same content, cache hit, nothing decoded.
    moved = video.rename(tmp_path / "renamed.mp4")
    import vidsearch.media

    def no_decoding(*_a, **_k):
        raise AssertionError("decoded despite a cache hit")

    monkeypatch.setattr(vidsearch.media, "read_frames", no_decoding)
    again = embed_windows(moved, encoder, window=1.0, stride=0.5, cache=cache)
    assert again.cached and np.array_equal(again.xb, emb.xb) and np.array_equal(again.starts, emb.starts)
    # another geometry is another cache entry
    with pytest.raises(AssertionError, match="decoded"):
        embed_windows(moved, encoder, window=2.0, stride=0.5, cache=cache)
