"""What one machine holds: SQLite per segment, index RAM and build time, in RAM and on disk.

Three measurements on synthetic, clustered, L2-normalized vectors (the generator of
``search_scale.py``: a Gaussian mixture with Zipf-like topic sizes), then a check of the linear
model they imply:

    sqlite   bytes per segment of a real library (the store's own insert path, ``VACUUM``-ed),
             for videos of 1 whole-video segment + windows, 512-d float32 vectors
    ram      the policy's in-RAM index at ``--n`` (``VectorIndex.build``: train, add, tune):
             build time, serialized size (what faiss keeps in memory), qps@1, recall@10
    ondisk   one fixed IVF spec (``--ondisk-spec``) built with :mod:`vidsearch.store.vectors.ondisk`
             (train on a sample, add shard by shard, merge the lists into one mapped file) at
             ``--n`` and at ``--check-n``: build time, resident bytes (quantizer, codebooks and
             list offsets), disk bytes, ms per query, recall@10 against exact search (ground
             truth kept in a running top-k heap while the shards are generated, so 10M vectors
             never sit in RAM)

The check: sizes and build time measured at ``--n`` are scaled linearly to ``--check-n`` and
compared with what was measured there; the same model then predicts 100M (printed).

Usage:
    python benchmarks/index_scale.py                      # 1M, checked at 10M (~5 min on 2 cores)
    python benchmarks/index_scale.py --n 200000 --check-n 1000000 --skip-ram
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from search_scale import K, clustered, draw, fmt_bytes, qps_batch1, rss  # noqa: E402

from vidsearch.store.vectors import VectorIndex, choose_spec, recall_at_k  # noqa: E402
from vidsearch.store.vectors.ondisk import build_ondisk  # noqa: E402

CHUNK = 250_000  # vectors per generated (and on-disk: added) shard


def sqlite_bytes_per_segment(videos: int, d: int, windows: int) -> dict:
    """A library with ``videos`` videos of ``1 + windows`` segments each, through the store."""
    from vidsearch.media import VideoInfo
    from vidsearch.store import segments as stored_segments
    from vidsearch.store import spaces as stored_spaces
    from vidsearch.store import videos as stored_videos
    from vidsearch.store.library import Library

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp, Library.open(Path(tmp) / "lib", create=True) as lib:
        space = lib.ensure_space("bench-space", d, {"name": "bench"}, {})
        info = VideoInfo(path="", duration=40.0, fps=30.0, num_frames=1200, width=640, height=360)
        t0 = time.perf_counter()
        per_tx = 200
        for start in range(0, videos, per_tx):
            with lib.session() as s:
                for v in range(start, min(videos, start + per_tx)):
                    path = f"/archive/collection-{v // 1000:04d}/video-{v:07d}.mp4"
                    vid, _ = stored_videos.mark_indexed(
                        s,
                        path,
                        size=50_000_000 + v,
                        mtime_ns=1_700_000_000_000_000_000 + v,
                        fingerprint=f"{v:016x}{v:016x}",
                        reader="decord",
                        info=info,
                    )
                    spans = [stored_segments.SpanRow("video", 0.0, 40.0)] + [
                        stored_segments.SpanRow("window", 4.0 * w, 4.0 * w + 8.0) for w in range(windows)
                    ]
                    xb = rng.standard_normal((len(spans), d), dtype=np.float32)
                    xb /= np.linalg.norm(xb, axis=1, keepdims=True)
                    stored_segments.add_segments(s, vid, space.id, spans, xb)
                stored_spaces.bump_generation(s, [space.id])
        t_insert = time.perf_counter() - t0
        db = Path(tmp) / "lib" / "library.sqlite"
        import sqlite3

        con = sqlite3.connect(db)
        page = con.execute("PRAGMA page_size").fetchone()[0]
        con.execute("VACUUM")
        con.close()
        size = db.stat().st_size
        # A 2 KB vector row does not fit twice in a 4 KB page: what larger pages would save.
        big = db.with_name("big.sqlite")
        shutil.copy(db, big)
        con = sqlite3.connect(big)
        con.execute("PRAGMA journal_mode=DELETE")
        con.execute("PRAGMA page_size=65536")
        con.execute("VACUUM")
        con.close()
        size_big = big.stat().st_size
    segs = videos * (1 + windows)
    return {
        "videos": videos,
        "segments": segs,
        "bytes": size,
        "per_segment": size / segs,
        "page_size": page,
        "per_segment_64k": size_big / segs,
        "vector_bytes": 4 * d,
        "insert_s": t_insert,
    }


def ram_index(n: int, d: int, nq: int) -> dict:
    centers, params = clustered(n, d, 1000, seed=d)
    xb = draw(centers, params, n, seed=n + d)
    xq = draw(centers, params, nq, seed=n + d + 1)
    ids = np.arange(n, dtype=np.int64) * 3 + 1
    _, gt = faiss.knn(xq, xb, K, metric=faiss.METRIC_INNER_PRODUCT)
    spec = choose_spec(n, d)
    gc.collect()
    m0 = rss()
    t0 = time.perf_counter()
    idx = VectorIndex.build(ids, xb, spec=None)
    t_build = time.perf_counter() - t0
    grew = rss() - m0
    q1 = qps_batch1(idx, xq, min(200, nq), 1)
    _, I = idx.search(xq, K)
    row = {
        "n": n,
        "spec": spec,
        "build_s": t_build,
        "bytes": idx.nbytes(),
        "rss_delta": grew,
        "qps1": q1,
        "recall": recall_at_k(I, ids[gt], K),
        "vectors_bytes": xb.nbytes,
    }
    del idx, xb
    gc.collect()
    return row


def ondisk_index(n: int, d: int, spec: str, nq: int, nprobe: int, folder: Path) -> dict:
    """Build ``spec`` on disk over ``n`` generated vectors; exact top-k kept on the side."""
    centers, params = clustered(n, d, 1000, seed=d)
    xq = draw(centers, params, nq, seed=d + 99)
    heap = faiss.ResultHeap(nq, K, keep_max=True)  # inner product: keep the largest
    train = draw(centers, params, min(n, 65_536), seed=d + 98)
    t_gen = 0.0

    def chunks():
        nonlocal t_gen
        for s in range(0, n, CHUNK):
            t = time.perf_counter()
            m = min(CHUNK, n - s)
            x = draw(centers, params, m, seed=1_000_003 * d + s)
            ids = np.arange(s, s + m, dtype=np.int64)
            D, I = faiss.knn(xq, x, K, metric=faiss.METRIC_INNER_PRODUCT)
            heap.add_result(D, I + s)
            t_gen += time.perf_counter() - t
            yield ids, x

    path = folder / f"ondisk-{n}.index"
    t0 = time.perf_counter()
    idx = build_ondisk(path, d, spec, train, chunks(), nprobe=nprobe)
    t_build = time.perf_counter() - t0 - t_gen  # without generating data and ground truth
    heap.finalize()
    idx.search(xq[:1], K)
    t0 = time.perf_counter()
    _, I = idx.search(xq, K)  # batch: page-in dominated on a cold cache
    ms_batch = 1000 * (time.perf_counter() - t0) / nq
    t0 = time.perf_counter()
    for i in range(min(100, nq)):
        idx.search(xq[i : i + 1], K)
    ms1 = 1000 * (time.perf_counter() - t0) / min(100, nq)
    row = {
        "n": n,
        "spec": spec,
        "nprobe": nprobe,
        "build_s": t_build,
        "resident": idx.resident_bytes(),
        "disk": idx.disk_bytes(),
        "ms1": ms1,
        "ms_batch": ms_batch,
        "recall": recall_at_k(I, heap.I, K),
    }
    del idx
    path.unlink()
    path.with_name(path.name + ".ivfdata").unlink()
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=1_000_000, help="vectors of the measured size")
    p.add_argument("--check-n", type=int, default=10_000_000, help="size the linear model is checked at (on disk)")
    p.add_argument("--dim", type=int, default=512, help="512: ViCLIP B/16; 768: L/14")
    p.add_argument("--ondisk-spec", default="IVF1024,SQ8", help="IVF spec for the on-disk rows")
    p.add_argument("--nprobe", type=int, default=32)
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--sqlite-videos", type=int, default=5000)
    p.add_argument("--skip-ram", action="store_true", help="skip the in-RAM policy index")
    p.add_argument("--skip-sqlite", action="store_true")
    p.add_argument("--dir", type=Path, default=None, help="where the on-disk index is written (default: a temp dir)")
    args = p.parse_args(argv)
    d = args.dim
    print(
        f"# faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads, load avg {os.getloadavg()[0]:.1f}, d={d}",
        flush=True,
    )

    if not args.skip_sqlite:
        sq = sqlite_bytes_per_segment(args.sqlite_videos, d, windows=9)
        print(
            f"sqlite: {sq['segments']:,} segments in {fmt_bytes(sq['bytes'])}: {sq['per_segment']:.0f} B/segment "
            f"({sq['vector_bytes']} B of it the float32 vector) with {sq['page_size']} B pages, {sq['per_segment_64k']:.0f} B/segment "
            f"with 64 KB pages; insert {sq['segments'] / sq['insert_s']:.0f} segments/s",
            flush=True,
        )
    if not args.skip_ram:
        r = ram_index(args.n, d, args.queries)
        print(
            f"ram {r['n']:,}: {r['spec']} build {r['build_s']:.1f}s, index {fmt_bytes(r['bytes'])} "
            f"({r['bytes'] / r['n']:.0f} B/vector; rss +{fmt_bytes(r['rss_delta'])}), qps@1 {r['qps1']:.0f}, "
            f"recall@10 {r['recall']:.3f}",
            flush=True,
        )
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        rows = []
        for n in (args.n, args.check_n):
            o = ondisk_index(n, d, args.ondisk_spec, args.queries, args.nprobe, Path(tmp))
            rows.append(o)
            print(
                f"ondisk {o['n']:,}: {o['spec']} nprobe {o['nprobe']} build {o['build_s']:.1f}s, resident "
                f"{fmt_bytes(o['resident'])}, disk {fmt_bytes(o['disk'])} ({o['disk'] / o['n']:.1f} B/vector), "
                f"{o['ms1']:.2f} ms/query (batch {o['ms_batch']:.2f}), recall@10 {o['recall']:.3f}",
                flush=True,
            )
    a, b = rows
    f = b["n"] / a["n"]
    print(f"\n# linear model from {a['n']:,} checked at {b['n']:,} (x{f:.0f}): predicted / measured")
    for key in ("disk", "build_s"):
        print(f"  {key:8s} {a[key] * f:14.1f} / {b[key]:14.1f}  ratio {a[key] * f / b[key]:.2f}")
    print(
        f"  resident {fmt_bytes(a['resident'])} -> {fmt_bytes(b['resident'])} (the quantizer is fixed; list offsets grow with nlist only)"
    )
    f100 = 100_000_000 / b["n"]
    print(
        f"\n# 100M vectors predicted from {b['n']:,}: on disk {fmt_bytes(b['disk'] * f100)}, build "
        f"{b['build_s'] * f100 / 60:.0f} min on this machine"
    )
    if not args.skip_sqlite:
        print(
            f"  sqlite at 100M segments: {fmt_bytes(sq['per_segment'] * 1e8)} ({fmt_bytes(sq['per_segment_64k'] * 1e8)} with 64 KB pages), "
            f"inserting them {sq['insert_s'] / sq['segments'] * 1e8 / 3600:.0f} h at this rate"
        )
    if not args.skip_ram:
        print(
            f"  in-RAM {r['spec']} at 100M: {fmt_bytes(r['bytes'] / r['n'] * 1e8)} (policy at 100M: {choose_spec(100_000_000, d)})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
