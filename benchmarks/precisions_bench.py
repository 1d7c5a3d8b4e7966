"""Every encoder precision against fp32 in one run (used by ``encoder_speed.py``).

Each runner gets the fp32 model, normalized clips ``[B, T, 3, H, W]`` and token ids, and returns
(vision call, text call); both are timed like fp32 (best of ``repeats`` after a warm-up) and
their outputs compared with fp32's by cosine per clip / per caption.
"""

from __future__ import annotations

import copy
import os
import tempfile
import time
from collections.abc import Callable

import numpy as np
import torch

from vidsearch.precision import cpu_has_native_bf16


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(((a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))).min())


def _onnx(model, video, tokens, precision: str):
    os.environ.setdefault("VIDSEARCH_CACHE_DIR", tempfile.mkdtemp(prefix="vidsearch-bench-"))
    from vidsearch.models.onnx_export import ensure_graph
    from vidsearch.models.onnx_text import make_session

    key = f"bench-{model.config.vision_layers}l@{os.getpid():012d}"
    threads = torch.get_num_threads()
    t0 = time.perf_counter()
    sv = make_session(ensure_graph(model, key, "vision", precision), threads)
    st = make_session(ensure_graph(model, key, "text", precision), threads)
    print(f"#   {precision} graphs exported, checked and loaded in {time.perf_counter() - t0:.0f} s (once per space)")
    xv, xt = video.numpy(), tokens[:, : int(tokens.argmax(-1).max()) + 1].numpy()
    return (lambda: sv.run(None, {"frames": xv})[0]), (lambda: st.run(None, {"tokens": xt})[0])


def _torchao(model, video, tokens):
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

    q = copy.deepcopy(model)
    quantize_(q, Int8DynamicActivationInt8WeightConfig())
    q.requires_grad_(False)

    # Autograd on (no parameter needs a gradient, so nothing is recorded) routes the towers
    # through their functional path: the in-place path reads Linear.weight as a plain tensor.
    def vision():
        with torch.enable_grad():
            return q.encode_video(video).numpy()

    def text():
        with torch.enable_grad():
            return q.encode_text(tokens).numpy()

    return vision, text


def _bf16(model, video, tokens):
    def vision():
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            return model.encode_video(video).float().numpy()

    def text():
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            return model.encode_text(tokens).float().numpy()

    return vision, text


def compare_precisions(
    model,
    video,
    tokens,
    precisions: list[str],
    repeats: int,
    fp32_times: tuple[float, float],
    batch: int,
    text_batch: int,
    timeit: Callable[[Callable[[], object], int], list[float]],
) -> None:
    """Print clips/s, captions/s, ratio and cosine to fp32 for each precision, then fp32 again.

    ``timeit(fn, repeats)`` is encoder_speed's timer (wall times after a warm-up call).
    """

    def _best(fn: Callable[[], object], n: int) -> float:
        return min(timeit(fn, n))

    with torch.inference_mode():
        ref_v, ref_t = model.encode_video(video).numpy(), model.encode_text(tokens).numpy()
    rows = [("fp32 (PyTorch eager)", fp32_times[0], fp32_times[1], 1.0, 1.0)]
    for p in precisions:
        if p == "bf16" and not cpu_has_native_bf16():
            print("#   bf16 skipped: this CPU has no native bf16 (autocast would be ~5x slower than fp32)")
            continue
        try:
            if p in ("int8", "onnx-fp32"):
                fv, ft = _onnx(model, video, tokens, "int8" if p == "int8" else "fp32")
            elif p == "torchao-int8":
                fv, ft = _torchao(model, video, tokens)
            elif p == "bf16":
                fv, ft = _bf16(model, video, tokens)
            else:
                print(f"#   unknown precision {p!r} skipped")
                continue
        except ImportError as exc:
            print(f"#   {p} skipped: {exc}")
            continue
        tv, tt = _best(fv, repeats), _best(ft, repeats)
        rows.append((p, tv, tt, _cos(fv(), ref_v), _cos(ft(), ref_t)))
    with torch.inference_mode():
        again = _best(lambda: model.encode_video(video), repeats), _best(lambda: model.encode_text(tokens), repeats)
    rows.append(("fp32 again (drift check)", again[0], again[1], 1.0, 1.0))
    fp32_v = min(fp32_times[0], again[0])
    fp32_t = min(fp32_times[1], again[1])
    print(
        f"\n{'precision':26s} {'clips/s':>8s} {'x fp32':>7s} {'cos min':>9s} {'captions/s':>11s} {'x fp32':>7s} {'cos min':>9s}"
    )
    for name, tv, tt, cv, ct in rows:
        print(
            f"{name:26s} {batch / tv:8.3f} {fp32_v / tv:7.2f} {cv:9.6f} {text_batch / tt:11.0f} {fp32_t / tt:7.2f} {ct:9.6f}"
        )
    int8 = next((r for r in rows if r[0] == "int8"), None)
    if int8 is not None:
        ratio = fp32_v / int8[1]
        print(
            f"goal CPU int8 clips/s >= 1.6x fp32 (same run, best fp32 of both timings): {ratio:.2f}x -> "
            f"{'MET' if ratio >= 1.6 else 'not met'}{' (moonshot 2x met)' if ratio >= 2 else ''}"
        )
