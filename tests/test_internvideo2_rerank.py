"""ITM re-ranking in `bench retrieval` (both directions, the official k_test rule) on generated videos."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import videogen
from test_internvideo2_encoder import small_model, write_model  # noqa: F401  (the module fixture)
from typer.testing import CliRunner

from vidsearch.cli import commands  # noqa: F401  (registers the commands)
from vidsearch.cli.main import app
from vidsearch.media.span import read_span
from vidsearch.models import EncoderSpec, open_encoder
from vidsearch.models.internvideo2_itm import NOT_RERANKED

runner = CliRunner()
CAPTIONS = {
    "gradient": ["a red gradient", "red video"],
    "square": ["a green square moving"],
    "noise": ["noise", "blue noise video"],
}


@pytest.mark.slow
def test_bench_retrieval_reports_itc_and_itm(small_model: Path, tmp_path: Path) -> None:  # noqa: F811
    from vidsearch.bench.itm_rerank import itm_matrices
    from vidsearch.metrics import retrieval_metrics

    folder = tmp_path / "videos"
    videogen.write_video(folder / "gradient.mp4", seconds=1, fps=8, pattern="gradient", color=(200, 40, 40))
    videogen.write_video(folder / "square.mp4", seconds=1, fps=8, pattern="moving_square", color=(40, 200, 40))
    videogen.write_video(folder / "noise.mp4", seconds=1, fps=8, pattern="noise")
    ann = tmp_path / "captions.json"
    ann.write_text(json.dumps([{"video": f"{v}.mp4", "caption": c} for v, cs in CAPTIONS.items() for c in cs]))
    args = ["bench", "retrieval", "--dataset", "json", "--annotations", str(ann), "--videos", str(folder)]
    args += ["--model", str(small_model), "--library", str(tmp_path / "cache"), "--json"]
    result = runner.invoke(app, [*args, "--rerank", "itm", "--rerank-k", "2"], catch_exceptions=False)
    assert result.exit_code == 0, result.stdout
    results = json.loads(result.stdout)
    assert set(results["metrics"]) == set(results["metrics_itm"]) == {"t2v", "v2t"}
    assert results["rerank"]["k"] == 2 and results["rerank"]["pairs_scored"] == 5 * 2 + 3 * 2

    # the same numbers from the matrices built here, pair by pair with the model
    enc = open_encoder(EncoderSpec(str(small_model), device="cpu"))
    names = list(CAPTIONS)
    captions = [c for cs in CAPTIONS.values() for c in cs]
    truth = np.array([i for i, cs in enumerate(CAPTIONS.values()) for _ in cs])
    paths = [folder / f"{n}.mp4" for n in names]
    sims = enc.encode_text(captions) @ np.stack([enc.encode_video(read_span(p, 4, 56)[None])[0] for p in paths]).T
    assert results["metrics"] == retrieval_metrics(sims, truth)
    t2v, v2t, _ = itm_matrices(enc, paths, captions, sims, k=2)
    for row in range(len(captions)):  # each caption: its 2 best ITC videos scored, the third not
        top = set(np.argsort(-sims[row])[:2])
        assert {int(j) for j in np.flatnonzero(t2v[row] != NOT_RERANKED)} == top
    for col in range(len(names)):
        assert (v2t[:, col] != NOT_RERANKED).sum() == 2
    states, mask = enc.text_states(captions[:1])
    best = int(np.argmax(sims[0]))
    tokens = enc.video_tokens(read_span(paths[best], 4, 56)[None])
    assert t2v[0, best] == pytest.approx(enc.itm_scores(states, mask, tokens)[0], abs=1e-5)
    assert results["metrics_itm"]["t2v"] == retrieval_metrics(t2v, truth)["t2v"]
    assert results["metrics_itm"]["v2t"] == retrieval_metrics(v2t, truth)["v2t"]
    # the table shows the ITM rows
    result = runner.invoke(app, [*args[:-1], "--rerank", "itm"], catch_exceptions=False)
    assert result.exit_code == 0 and "text->video ITM" in result.stdout


@pytest.mark.slow
def test_serve_reranks_a_text_search(small_model: Path, tmp_path: Path) -> None:  # noqa: F811
    pytest.importorskip("fastapi", reason="vidsearch[serve] is not installed")
    from fastapi.testclient import TestClient

    from vidsearch.serve.app import create_app
    from vidsearch.serve.service import ServeConfig

    folder = tmp_path / "videos"
    videogen.write_video(folder / "gradient.mp4", seconds=1, fps=8, pattern="gradient", color=(200, 40, 40))
    videogen.write_video(folder / "square.mp4", seconds=1, fps=8, pattern="moving_square", color=(40, 200, 40))
    lib = tmp_path / "lib"
    args = ["index", str(folder), "--library", str(lib), "--model", str(small_model), "--workers", "1"]
    assert runner.invoke(app, args, catch_exceptions=False).exit_code == 0
    query = ["query", "a green square", "--library", str(lib), "--json", "--rerank", "itm", "--rerank-k", "2"]
    cli_hits = json.loads(runner.invoke(app, query, catch_exceptions=False).stdout)
    with TestClient(create_app(ServeConfig(library=lib)), base_url="http://127.0.0.1") as client:
        r = client.post("/api/v1/search", json={"query": "a green square", "rerank": "itm", "rerank_k": 2})
        assert r.status_code == 200, r.text
        page = r.json()["results"]
        assert [Path(m["video"]["name"]).name for m in page] == [Path(h["path"]).name for h in cli_hits]
        assert [m["score"] for m in page] == pytest.approx([h["score"] for h in cli_hits], abs=1e-5)
        for body, says in [
            ({"query": "x", "rerank": "itm", "group_by": "moment"}, "one result per video"),
            ({"query": "x", "rerank_k": 3}, "only applies together with"),
            ({"query": "x", "rerank": "bm25"}, "rerank"),
        ]:
            r = client.post("/api/v1/search", json=body)
            assert r.status_code == 400 and says in r.json()["error"], r.text
