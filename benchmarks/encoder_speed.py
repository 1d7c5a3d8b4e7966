"""Speed of the full-size ViCLIP-B/16 towers (random weights) on this machine's CPU.

Prints clips/s (8 x 224 x 224 frames per clip, preprocessing excluded), captions/s (tokenizing
included and excluded), and the vision tower's achieved GFLOP/s divided by the machine's fp32
matmul GFLOP/s, both measured in this run. The FLOPs are those the port executes (GEMMs and
attention, counted analytically by ``vision_flops``); the matmul figure is the best of several
large square ``torch.mm`` runs, measured before and after the model runs so that load from
other processes shows up as spread rather than as a flattering ratio.

``--official`` also runs an official-layout forward (sequence-first ``nn.MultiheadAttention``,
``Conv3d`` patch embedding, unfused QuickGELU, every token through every block) on the same
weights, for a same-run comparison.

Precisions side by side (``--precisions``, default ``int8,torchao-int8,bf16,onnx-fp32``): clips/s,
captions/s, the ratio to fp32 and the lowest cosine to fp32 of the same inputs, all measured in
this run, fp32 timed again at the end so that drift from other processes' load shows:

* ``int8``: vidsearch's int8 path, ONNX Runtime dynamic quantization of the exported graphs;
* ``torchao-int8``: torchao's int8 dynamic-activation/int8-weight on the ``nn.Linear`` layers,
  eager (the attention ``in_proj`` is a raw parameter, so it stays fp32), for the comparison;
* ``bf16``: CPU autocast, only where the CPU has native bf16 (else reported as skipped);
* ``onnx-fp32``: the exported fp32 graphs in ONNX Runtime.

``--internvideo2`` reports the InternVideo2-Stage2-1B vision tower per clip instead (fp32 and
int8 on this CPU at ``--layers`` of its blocks, extrapolated; the ITM cost per candidate; a GPU
estimate): see ``internvideo2_speed.py``.

Usage: python benchmarks/encoder_speed.py [--batch 2] [--repeats 3] [--threads N] [--official]
       [--precisions int8,bf16] [--layers N (fewer layers per tower, for a quick run)]
       python benchmarks/encoder_speed.py --internvideo2 [--layers 2] [--batch 1] [--gpu-tflops 400]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from vidsearch.models.tokenizer import tokenize
from vidsearch.models.viclip import ViCLIP, ViCLIPConfig, vision_flops

CAPTIONS = [
    "a man is playing a guitar on a stage",
    "two dogs run across a snowy field",
    "someone slices vegetables in a kitchen",
    "a child rides a bicycle down the street at sunset",
]


CPU_TIMES: dict[int, list[float]] = {}  # id(list of wall times) -> process CPU times of the same runs


def timeit(fn: Callable[[], object], repeats: int) -> list[float]:
    """Wall times of ``repeats`` calls after one warm-up call (CPU times kept in CPU_TIMES)."""
    fn()
    times, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    CPU_TIMES[id(times)] = cpu
    return times


def matmul_gflops(repeats: int = 3) -> tuple[float, float]:
    """Best fp32 GFLOP/s of square ``torch.mm`` over a few sizes (the machine's matmul peak).

    Returns:
        (FLOPs per wall second, FLOPs per CPU second of each thread): the second figure leaves
        out the time other processes held the cores, so it stays meaningful on a busy machine.
    """
    best = best_cpu = 0.0
    threads = torch.get_num_threads()
    for n in (1024, 2048, 3072):
        a, b = torch.randn(n, n), torch.randn(n, n)
        wall = timeit(lambda: torch.mm(a, b), repeats)
        best = max(best, 2 * n**3 / min(wall) / 1e9)
        best_cpu = max(best_cpu, 2 * n**3 / (min(CPU_TIMES[id(wall)]) / threads) / 1e9)
    return best, best_cpu


def official_vision(model: ViCLIP) -> Callable[[torch.Tensor], torch.Tensor]:
    """An official-layout forward (InternVideo ``viclip_vision``) sharing ``model``'s weights."""
    v = model.vision_encoder
    D = v.width
    blocks = []
    for blk in v.transformer.resblocks:
        mha = nn.MultiheadAttention(D, blk.attn.heads)
        mha.in_proj_weight, mha.in_proj_bias = blk.attn.in_proj_weight, blk.attn.in_proj_bias
        mha.out_proj = blk.attn.out_proj
        blocks.append((mha.eval(), blk))

    def forward(x: torch.Tensor) -> torch.Tensor:  # [B, T, C, H, W]
        x = v.conv1(x.permute(0, 2, 1, 3, 4))  # [B, D, T, g, g]
        B, C, T, H, W = x.shape
        x = x.permute(0, 2, 3, 4, 1).reshape(B * T, H * W, C)
        x = torch.cat([v.class_embedding + torch.zeros(B * T, 1, C), x], dim=1) + v.positional_embedding
        cls, x = x[:B, :1], x[:, 1:]
        x = x.reshape(B, T, H * W, C).permute(0, 2, 1, 3).reshape(B * H * W, T, C)
        x = (x + v.temporal_positional_embedding).reshape(B, H * W * T, C)
        x = v.ln_pre(torch.cat([cls, x], dim=1)).permute(1, 0, 2)  # BND -> NBD
        for mha, blk in blocks:
            h = blk.ln_1(x)
            x = x + mha(h, h, h, need_weights=False)[0]
            h = blk.mlp.c_fc(blk.ln_2(x))
            x = x + blk.mlp.c_proj(h * torch.sigmoid(1.702 * h))
        return v.ln_post(x)[0] @ v.proj

    return forward


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # The indexer encodes 8 clips per call; 2 already gives the GEMMs and the attention kernel
    # enough rows to reach their steady rate (batch 1 measured ~10% lower), at a quarter of the time.
    parser.add_argument("--batch", type=int, default=2, help="clips per forward")
    parser.add_argument("--text-batch", type=int, default=128, help="captions per forward")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per measurement")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--official", action="store_true", help="also time an official-layout forward")
    parser.add_argument(
        "--precisions",
        default="int8,torchao-int8,bf16,onnx-fp32",
        help="comma list of int8, torchao-int8, bf16, onnx-fp32 ('' for none)",
    )
    parser.add_argument("--layers", type=int, default=0, help="layers per tower (0: the preset's 12)")
    parser.add_argument("--internvideo2", action="store_true", help="the InternVideo2-1B vision tower and ITM instead")
    parser.add_argument("--gpu-tflops", type=float, default=400.0, help="with --internvideo2: assumed GPU rate")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.internvideo2:
        from internvideo2_speed import run

        run(args.layers or 2, args.batch, args.repeats, args.gpu_tflops, timeit, matmul_gflops(args.repeats)[0])
        return
    torch.manual_seed(0)
    cfg = ViCLIPConfig.preset("viclip-b16")
    if args.layers:
        cfg = ViCLIPConfig(**{**cfg.to_dict(), "vision_layers": args.layers, "text_layers": args.layers})
    model = ViCLIP(cfg).eval()
    video = torch.randn(args.batch, cfg.num_frames, 3, cfg.input_resolution, cfg.input_resolution)
    texts = [CAPTIONS[i % len(CAPTIONS)] for i in range(args.text_batch)]
    tokens = tokenize(texts, cfg.context_length)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, ViCLIP-B/16 random weights, fp32 CPU")
    peaks = [matmul_gflops(args.repeats)]
    with torch.inference_mode():
        vis = timeit(lambda: model.encode_video(video), args.repeats)
        peaks.append(matmul_gflops(args.repeats))
        txt = timeit(lambda: model.encode_text(tokens), args.repeats)
        txt_tok = timeit(lambda: model.encode_text(tokenize(texts, cfg.context_length)), args.repeats)
        off = None
        if args.official:
            forward = official_vision(model)
            with torch.no_grad():
                want = forward(video)
            got = model.encode_video(video)
            print(f"official-layout forward agrees to {(got - want).abs().max().item():.2e} max abs")
            off = timeit(lambda: forward(video), args.repeats)
            peaks.append(matmul_gflops(args.repeats))
    peak = max(p for p, _ in peaks)
    peak_cpu = max(c for _, c in peaks)
    threads = torch.get_num_threads()
    executed = vision_flops(cfg, cls_only_last=True) * args.batch
    full = vision_flops(cfg) * args.batch
    t = min(vis)

    def spread(ts: list[float]) -> str:
        return f"min {min(ts):.3f} s, median {statistics.median(ts):.3f} s over {len(ts)} runs"

    print(f"fp32 matmul peak: {peak:.1f} GFLOP/s (measurements: {', '.join(f'{p:.1f}' for p, _ in peaks)})")
    print(f"vision: {args.batch / t:.3f} clips/s ({spread(vis)} per batch of {args.batch})")
    print(
        f"vision: {executed / 1e9 / args.batch:.1f} GFLOP executed per clip "
        f"({full / 1e9 / args.batch:.1f} in the official full forward)"
    )
    print(f"vision: {executed / t / 1e9:.1f} GFLOP/s achieved -> ratio to matmul peak {executed / t / 1e9 / peak:.3f}")
    t_cpu = min(CPU_TIMES[id(vis)]) / threads
    print(
        f"vision, per CPU second (robust to other processes' load): {executed / t_cpu / 1e9:.1f} GFLOP/s vs "
        f"matmul {peak_cpu:.1f} -> ratio {executed / t_cpu / 1e9 / peak_cpu:.3f}"
    )
    print(f"vision: official-equivalent {full / t / 1e9:.1f} GFLOP/s (ratio {full / t / 1e9 / peak:.3f})")
    print(
        f"text: {args.text_batch / min(txt):.0f} captions/s tower only, "
        f"{args.text_batch / min(txt_tok):.0f} captions/s with tokenizing ({spread(txt)})"
    )
    if off is not None:
        off_cpu = min(CPU_TIMES[id(off)]) / threads
        print(
            f"official-layout vision: {args.batch / min(off):.3f} clips/s, ratio to matmul peak "
            f"{full / min(off) / 1e9 / peak:.3f}, per CPU second {full / off_cpu / 1e9 / peak_cpu:.3f} ({spread(off)})"
        )
    precisions = [p for p in args.precisions.split(",") if p]
    if precisions:
        from precisions_bench import compare_precisions

        compare_precisions(
            model, video, tokens, precisions, args.repeats, (min(vis), min(txt)), args.batch, args.text_batch, timeit
        )


if __name__ == "__main__":
    main()
