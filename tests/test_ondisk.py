"""On-disk IVF lists (``reindex --on-disk``): every result checked against exact search."""

from __future__ import annotations

import shutil
from pathlib import Path

import faiss
import numpy as np
import pytest

from vidsearch.cli.errors import message as cli_message
from vidsearch.errors import InputError, LibraryError
from vidsearch.store.vectors.ondisk import OnDiskVectorIndex, build_ondisk

D_, N, K = 24, 3000, 10


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    centres = rng.standard_normal((30, D_))
    xb = unit(centres[rng.integers(0, 30, N)] + 0.4 * rng.standard_normal((N, D_)))
    xq = unit(xb[rng.choice(N, 40, replace=False)] + 0.1 * rng.standard_normal((40, D_)))
    ids = rng.permutation(N).astype(np.int64) * 5 + 2  # neither contiguous nor sorted
    return ids, xb, xq


def exact(ids: np.ndarray, xb: np.ndarray, xq: np.ndarray, k: int = K) -> tuple[np.ndarray, np.ndarray]:
    D, I = faiss.knn(xq, xb, k, metric=faiss.METRIC_INNER_PRODUCT)
    return D, ids[I]


def chunks(ids: np.ndarray, xb: np.ndarray, size: int = 700):
    return [(ids[s : s + size], xb[s : s + size]) for s in range(0, len(ids), size)]


def test_all_probes_with_flat_codes_is_exact(data, tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    ids, xb, xq = data
    idx = build_ondisk(tmp_path / "v.index", D_, "IVF32,Flat", xb[:2000], chunks(ids, xb), nprobe=32)
    D, I = idx.search(xq, K)
    D0, I0 = exact(ids, xb, xq)
    assert idx.ntotal == N and np.array_equal(I, I0) and np.allclose(D, D0, atol=1e-5)
    assert capfd.readouterr().out == ""  # faiss's progress printfs stay off stdout (--json)


def test_compressed_codes_keep_recall(data, tmp_path: Path) -> None:
    ids, xb, xq = data
    idx = build_ondisk(tmp_path / "v.index", D_, "IVF32,SQ8", xb[:2000], chunks(ids, xb), nprobe=8)
    _, I = idx.search(xq, K)
    _, I0 = exact(ids, xb, xq)
    recall = np.mean([len(set(a) & set(b)) / K for a, b in zip(I, I0, strict=False)])
    assert recall >= 0.9, recall
    assert idx.describe()["disk_bytes"] < xb.nbytes  # 1 byte per dimension plus ids


def test_delta_and_removals_match_exact_over_the_live_set(data, tmp_path: Path) -> None:
    ids, xb, xq = data
    base_n = 2500
    build_ondisk(tmp_path / "a" / "v.index", D_, "IVF32,Flat", xb[:2000], chunks(ids[:base_n], xb[:base_n]), nprobe=32)
    idx = OnDiskVectorIndex.load(tmp_path / "a" / "v.index")
    idx.add(ids[base_n:], xb[base_n:])  # committed after the build: the delta
    rng = np.random.default_rng(0)
    gone = np.concatenate([rng.choice(ids[20:base_n], 200, replace=False), ids[base_n : base_n + 50]])
    assert idx.remove(gone) == 250 and idx.remove(gone) == 0
    replaced = ids[10:20]
    new_xb = unit(rng.standard_normal((10, D_)))
    idx.add(replaced, new_xb)  # re-encoded videos: same ids, new vectors
    ref = {int(i): x for i, x in zip(ids, xb, strict=False) if i not in set(gone.tolist())}
    ref.update({int(i): x for i, x in zip(replaced, new_xb, strict=False)})
    ref_ids, ref_xb = np.array(list(ref), dtype=np.int64), np.stack(list(ref.values()))
    assert idx.ntotal == len(ref_ids) and np.array_equal(idx.ids(), np.sort(ref_ids))
    D, I = idx.search(xq, K)
    D0, I0 = exact(ref_ids, ref_xb, xq)
    assert np.array_equal(I, I0) and np.allclose(D, D0, atol=1e-5)
    idx.meta["generation"] = 7
    idx.save()
    shutil.move(str(tmp_path / "a"), str(tmp_path / "b"))  # the library folder moved
    again = OnDiskVectorIndex.load(tmp_path / "b" / "v.index")
    D2, I2 = again.search(xq, K)
    assert np.array_equal(I2, I) and np.allclose(D2, D) and again.meta["generation"] == 7


def test_errors_name_the_fix(data, tmp_path: Path) -> None:
    ids, xb, _ = data
    with pytest.raises(InputError, match="needs an IVF index spec"):
        build_ondisk(tmp_path / "v.index", D_, "HNSW32", xb, chunks(ids, xb))
    with pytest.raises(InputError, match="needs at least 64 vectors"):
        build_ondisk(tmp_path / "v.index", D_, "IVF64,Flat", xb[:10], chunks(ids, xb))
    with pytest.raises(LibraryError, match="rebuild the on-disk index") as err:
        OnDiskVectorIndex.load(tmp_path / "missing.index")
    assert "run `vidsearch reindex --on-disk` again" in cli_message(err.value)  # the CLI's own advice


def assert_same_hits(got: list, want: list) -> None:
    """Same videos, spans and order; scores to float32 rounding (numpy and faiss sum differently)."""
    for g, w in zip(got, want, strict=True):
        assert [(h["path"], h["segment_id"], h["start"], h["end"]) for h in g] == [
            (h["path"], h["segment_id"], h["start"], h["end"]) for h in w
        ]
        np.testing.assert_allclose([h["score"] for h in g], [h["score"] for h in w], atol=1e-5)


def test_reindex_on_disk_answers_like_exact(tmp_path: Path, tiny_checkpoint: Path) -> None:
    """Through the CLI: index, `reindex --on-disk`, index more (the delta), query == exact."""
    import json

    import videogen
    from typer.testing import CliRunner

    from vidsearch.cli import commands  # noqa: F401
    from vidsearch.cli.main import app

    runner = CliRunner()

    def run(*args: str) -> object:
        res = runner.invoke(app, [*args, "--json"], catch_exceptions=False)
        assert res.exit_code == 0, res.stdout
        return json.loads(res.stdout)

    folder, lib = tmp_path / "videos", str(tmp_path / "lib")
    for i in range(4):
        videogen.write_video(folder / f"v{i}.mp4", seconds=2, fps=8, pattern="moving_square", color=(50 * i, 90, 200))
    videogen.write_video(folder / "long.mkv", seconds=16, fps=4, pattern="noise", gop=16)
    index = ["index", str(folder), "--library", lib, "--model", str(tiny_checkpoint), "--workers", "1"]
    run(*index)
    queries = ["a square moving", "noise", "a blue thing"]
    before = [run("query", q, "--library", lib, "-k", "10") for q in queries]
    (rebuilt,) = run("reindex", "--library", lib, "--index-spec", "IVF2,Flat", "--on-disk")
    assert rebuilt["index_spec"] == "IVF2,Flat" and rebuilt["vectors"] == 8
    assert not (tmp_path / "lib" / "indexes" / "space-1.faiss").exists()
    (info,) = run("info", "--library", lib)["spaces"]
    assert (
        info["index_on_disk"]
        and info["index_spec"] == "IVF2,Flat"
        and info["index_vectors"] == 8
        and info["index_up_to_date"]
    )
    assert_same_hits([run("query", q, "--library", lib, "-k", "10") for q in queries], before)
    # Videos indexed after the build land in the delta and are found as an exact index finds them.
    videogen.write_video(folder / "later.mp4", seconds=2, fps=8, pattern="gradient", color=(10, 200, 10))
    (folder / "v0.mp4").unlink()
    run(*index)
    after = [run("query", q, "--library", lib, "-k", "10") for q in queries]
    run("reindex", "--library", lib)  # back to the exact in-RAM index
    assert_same_hits([run("query", q, "--library", lib, "-k", "10") for q in queries], after)
    assert any(h["path"].endswith("later.mp4") for h in after[0]) and not any(
        h["path"].endswith("v0.mp4") for h in after[0]
    )
