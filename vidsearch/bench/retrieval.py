"""Text-video retrieval benchmark: embed, compare, score both directions, write the evidence.

The run: resolve the annotation's video names to files -> embed the videos whole through the
bench library (cached per model) -> encode the captions in batches -> cosine similarity matrix
``[captions, videos]`` -> :func:`vidsearch.metrics.retrieval_metrics` (and the DSL variant on
request). The similarity matrix can be saved with its row and column orders, so anyone can
recompute every number without the model (:func:`load_similarity`).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vidsearch.bench.common import BenchOptions, embed_named_videos, encode_texts, run_info, timing_info, utc_now
from vidsearch.bench.datasets import RetrievalSet
from vidsearch.errors import InputError
from vidsearch.fileio import atomic_write, atomic_write_text
from vidsearch.metrics import DSL_TEMPERATURE, retrieval_metrics

__all__ = [
    "RetrievalRun",
    "run_retrieval",
    "save_similarity",
    "load_similarity",
    "recompute_metrics",
    "orders_path",
    "TIE_CONVENTION",
]

LOG = logging.getLogger(__name__)

TIE_CONVENTION = "pessimistic: a wrong item scoring equal to the correct one is ranked ahead of it"


@dataclass
class RetrievalRun:
    """A finished retrieval benchmark.

    Attributes:
        results: the JSON-ready results (see :func:`run_retrieval`).
        sims: ``[captions, videos]`` cosine similarities of the evaluated set.
        evaluated: the benchmark restricted to the videos that were evaluated.
    """

    results: dict[str, Any]
    sims: np.ndarray
    evaluated: RetrievalSet


def orders_path(sims_path: Path | str) -> Path:
    """Where the row/column orders of a saved similarity matrix go: ``sims.npy`` -> ``sims.orders.json``."""
    p = Path(sims_path)
    stem = p.name[: -len(".npy")] if p.name.endswith(".npy") else p.name
    return p.with_name(stem + ".orders.json")


def save_similarity(
    path: Path | str, sims: np.ndarray, rs: RetrievalSet, extra: dict[str, Any] | None = None
) -> tuple[Path, Path]:
    """Write ``sims`` (``.npy``, exactly at ``path``) and its orders (``<stem>.orders.json``).

    The orders file holds ``videos`` (column order), ``captions`` (row order, annotation order)
    and ``caption_video`` (each row's column), which is all :mod:`vidsearch.metrics` needs.

    Returns:
        ``(matrix path, orders path)``.
    """
    path = Path(path)
    if sims.shape != (len(rs.captions), len(rs.videos)):
        raise ValueError(f"sims has shape {sims.shape}, expected ({len(rs.captions)}, {len(rs.videos)})")
    atomic_write(path, lambda fh: np.save(fh, np.asarray(sims, np.float32)))
    orders = {
        "rows": "captions",
        "columns": "videos",
        "dataset": rs.name,
        "paragraph": rs.paragraph,
        "videos": list(rs.videos),
        "captions": list(rs.captions),
        "caption_video": rs.caption_video.tolist(),
        **(extra or {}),
    }
    opath = orders_path(path)
    atomic_write_text(opath, json.dumps(orders, ensure_ascii=False, indent=1))
    return path, opath


def load_similarity(path: Path | str) -> tuple[np.ndarray, RetrievalSet]:
    """Read a matrix written by :func:`save_similarity` and its orders.

    Raises:
        InputError: the matrix or its orders file is missing or does not match.
    """
    path = Path(path)
    opath = orders_path(path)
    try:
        sims = np.load(path, allow_pickle=False)
        orders = json.loads(opath.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InputError(f"cannot read saved similarity: {exc.filename} does not exist") from None
    except ValueError as exc:
        raise InputError(f"cannot read saved similarity {path}: {exc}") from None
    rs = RetrievalSet(
        videos=orders["videos"],
        captions=orders["captions"],
        caption_video=np.asarray(orders["caption_video"], np.int64),
        name=orders.get("dataset", "json"),
        paragraph=bool(orders.get("paragraph", False)),
    )
    if sims.shape != (len(rs.captions), len(rs.videos)):
        raise InputError(
            f"{path} has shape {sims.shape} but {opath} lists {len(rs.captions)} captions and {len(rs.videos)} videos"
        )
    return sims, rs


def run_retrieval(
    rs: RetrievalSet,
    videos_dir: Path | str,
    options: BenchOptions | None = None,
    *,
    dsl: bool = False,
    dsl_temperature: float = DSL_TEMPERATURE,
    save_similarity_to: Path | str | None = None,
    annotations: Path | str | None = None,
    progress: Any | None = None,
    encoder: Any | None = None,
    rerank_k: int | None = None,
) -> RetrievalRun:
    """Run the retrieval benchmark ``rs`` on the videos in ``videos_dir``.

    Args:
        rs: the benchmark (from :func:`vidsearch.bench.datasets.read_annotations`).
        videos_dir: where the video files are.
        options: model, cache and tolerance settings.
        dsl: also report metrics of the dual-softmax re-weighted similarities.
        dsl_temperature: DSL softmax temperature (applied to cosine similarities).
        save_similarity_to: write the ``[captions, videos]`` matrix there (``.npy``) with its orders.
        annotations: the annotation file, recorded in the results.
        progress: an indexer progress sink for the video stage.
        encoder: an already loaded encoder (else loaded from ``options``).
        rerank_k: also report ITM re-ranked metrics, each row's ``rerank_k`` best ITC
            candidates re-scored (models with a matching head; the official evaluation uses 128).

    Returns:
        The run. ``results`` holds ``metrics`` (``t2v``/``v2t`` R@1/5/10, MdR, MnR, count),
        ``metrics_dsl`` with ``dsl``, ``metrics_itm`` and ``rerank`` with ``rerank_k``, the model (key, checkpoint hash), dataset, counts,
        missing/undecodable videos, sampling, package versions, timing and throughput.

    Raises:
        InputError: missing or undecodable videos without ``allow_missing``, or nothing left to evaluate.
    """
    options = options or BenchOptions()
    t0 = time.perf_counter()
    ne = embed_named_videos(rs.videos, videos_dir, options, progress=progress, encoder=encoder)
    evaluated = rs.subset(ne.rows)
    if not evaluated.captions:
        raise InputError("no captions left to evaluate: every video with a caption is missing or undecodable")

    t_text = time.perf_counter()
    text_emb = encode_texts(ne.encoder, evaluated.captions, options.text_batch_size)
    text_seconds = time.perf_counter() - t_text
    sims = text_emb @ ne.embeddings.T  # [captions, videos] cosine: both sides L2-normalized

    results: dict[str, Any] = {
        "task": "retrieval",
        "dataset": rs.name,
        "paragraph": rs.paragraph,
        "annotations": str(annotations) if annotations is not None else (rs.source or None),
        **run_info(ne, options, videos_dir),
        "counts": {
            "videos": len(evaluated.videos),
            "captions": len(evaluated.captions),
            "videos_in_annotations": len(rs.videos),
            "captions_in_annotations": len(rs.captions),
            "missing": len(ne.missing),
            "undecodable": len(ne.undecodable),
        },
        "metrics": retrieval_metrics(sims, evaluated.caption_video),
        "tie_convention": TIE_CONVENTION,
    }
    if dsl:
        results["metrics_dsl"] = retrieval_metrics(sims, evaluated.caption_video, dsl=True, temperature=dsl_temperature)
        results["dsl_temperature"] = dsl_temperature
    if rerank_k is not None:
        from vidsearch.bench.datasets import resolve_videos
        from vidsearch.bench.itm_rerank import itm_matrices

        paths = [p for p in resolve_videos(evaluated.videos, videos_dir) if p is not None]
        t2v, v2t, info = itm_matrices(ne.encoder, paths, evaluated.captions, sims, rerank_k)
        results["metrics_itm"] = {
            "t2v": retrieval_metrics(t2v, evaluated.caption_video)["t2v"],
            "v2t": retrieval_metrics(v2t, evaluated.caption_video)["v2t"],
        }
        results["rerank"] = info
    if save_similarity_to is not None:
        mpath, opath = save_similarity(save_similarity_to, sims, evaluated, {"model_key": ne.encoder.key})
        results["similarity"] = {"matrix": str(mpath), "orders": str(opath)}
    results["timing"] = timing_info(ne, time.perf_counter() - t0, text_seconds, len(evaluated.captions), "captions")
    results["created"] = utc_now()
    if not results["complete"]:
        LOG.warning(
            "evaluated %d of %d videos (%d missing, %d undecodable)",
            len(evaluated.videos),
            len(rs.videos),
            len(ne.missing),
            len(ne.undecodable),
        )
    return RetrievalRun(results, sims, evaluated)


def recompute_metrics(
    sims_path: Path | str, dsl: bool = False, dsl_temperature: float = DSL_TEMPERATURE
) -> dict[str, Any]:
    """Metrics of a saved similarity matrix (what :func:`run_retrieval` reported, from the file alone)."""
    sims, rs = load_similarity(sims_path)
    return retrieval_metrics(sims, rs.caption_video, dsl=dsl, temperature=dsl_temperature)
