"""Where the use cases get a space's encoders: the one place that loads them, and query embedders.

Every flow that needs a space's model (search, localize, the web server) comes through
:func:`space_encoder` / :func:`text_encoder`: the space's :class:`~vidsearch.models.spec.EncoderSpec`
handed to :func:`vidsearch.models.opener.open_encoder`, the one opener.
A :class:`QueryEmbedder` turns a query into a vector of a space; :class:`LocalEmbedder` is the
command line's (models loaded in this process on first use); the web server brings its own
(memoized, batched text, a crash-contained decoder for uploads).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from vidsearch.models.opener import open_encoder
from vidsearch.models.spec import EncoderSpec
from vidsearch.search import VideoHit, embed_text, encode_video_file
from vidsearch.store.library import SpaceInfo

__all__ = ["space_encoder", "text_encoder", "QueryEmbedder", "LocalEmbedder"]


def space_encoder(space: SpaceInfo, device: str = "auto") -> Any:
    """The model that made ``space``'s vectors, at the space's precision (its weights checked).

    Raises:
        CheckpointError: the weights are gone or changed since the space was indexed.
    """
    return open_encoder(EncoderSpec.for_space(space, device=device))


def text_encoder(space: SpaceInfo, device: str = "auto", *, one_shot: bool = False, threads: int | None = None) -> Any:
    """A text-only encoder into ``space`` (ONNX Runtime without torch when its graph is cached).

    ``one_shot``: it answers a single query (faster to load, slower per query). ``threads``: ONNX
    Runtime threads (None: one, best for a single caption on a busy machine).
    """
    spec = EncoderSpec.for_space(space, device=device, towers="text", one_shot=one_shot, threads=threads)
    return open_encoder(spec)


class QueryEmbedder(Protocol):
    """Turns a query into a vector of a space."""

    def embed_text(self, space: SpaceInfo, text: str) -> np.ndarray:
        """``[D]`` vector of a caption."""
        ...

    def embed_file(self, space: SpaceInfo, path: Path, start: float | None, end: float | None) -> np.ndarray:
        """``[D]`` vector of a video file (or its ``[start, end]`` span), or of an image (a still clip)."""
        ...

    def rerank(self, space: SpaceInfo, text: str, hits: list[VideoHit], k: int) -> list[VideoHit]:
        """``hits`` with their first ``k`` re-ranked by the space model's ITM head (:func:`vidsearch.rerank.rerank_top`)."""
        ...


class LocalEmbedder:
    """Loads the space's encoders in this process on first use and keeps them for later queries.

    ``one_shot``: text queries get the encoder fastest to load for one query (a command answers
    one query and exits).
    """

    def __init__(self, device: str = "auto", *, one_shot: bool = True, reader: str = "auto") -> None:
        self.device = device
        self.one_shot = one_shot
        self.reader = reader
        self._text: dict[str, Any] = {}
        self._video: dict[str, Any] = {}

    def embed_text(self, space: SpaceInfo, text: str) -> np.ndarray:
        """``[D]`` vector of a caption; only the text tower is loaded (without torch where it can)."""
        if space.key not in self._text:
            self._text[space.key] = text_encoder(space, self.device, one_shot=self.one_shot)
        return embed_text(self._text[space.key], text)

    def embed_file(self, space: SpaceInfo, path: Path, start: float | None, end: float | None) -> np.ndarray:
        """``[D]`` vector of a file sampled as the indexer samples a whole video (an image: its frame repeated).

        Raises:
            InputError: no such file, or the span is empty or outside the video.
            MediaError: the file cannot be decoded.
        """
        return encode_video_file(self._space_encoder(space), path, start, end, reader=self.reader)

    def rerank(self, space: SpaceInfo, text: str, hits: list[VideoHit], k: int) -> list[VideoHit]:
        """The first ``k`` hits re-ranked by ITM with the space's full model (one-line error without an ITM head)."""
        from vidsearch.rerank import check_itm, rerank_top

        encoder = self._space_encoder(space)
        check_itm(encoder, space.key)
        return rerank_top(encoder, text, hits, k, reader=self.reader)

    def _space_encoder(self, space: SpaceInfo) -> Any:
        if space.key not in self._video:
            self._video[space.key] = space_encoder(space, self.device)
        return self._video[space.key]
