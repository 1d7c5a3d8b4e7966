"""Speed of the InternVideo2-Stage2-1B vision tower and ITM head (random weights) on this CPU.

Called by ``encoder_speed.py --internvideo2``. The tower is built at the 1B widths (1408 wide,
1025 tokens of 4 x 224 x 224 frames, MLP 6144) but with ``--layers`` of its 40 blocks (the full
tower needs 5.6 GB in fp32 and ~2.3 TFLOP per clip, minutes per clip on a small shared CPU);
the per-clip time of the full tower is extrapolated by FLOPs (the blocks are identical, patch
embedding and pooling are under 1% of the work). Reports fp32 and int8 (the family's dynamic
int8 ``nn.Linear``, cosine to fp32 measured), the ITM cost per (caption, candidate) pair through
the real 5 fusion layers, the size of one segment's vision tokens, and a GPU estimate from FLOPs
at an assumed sustained rate (``--gpu-tflops``; measure on the GPU to replace it).

Also the agreement of bf16 and fp16 with fp32 (the GPU precisions, through the project's own
autocast, emulated on this CPU): the lowest cosine of the pooled, projected video feature on
the reduced random model of the tests (:func:`precision_agreement`); a GPU computes the same
products in its own kernels, so this bounds the rounding of the precision, not of a GPU's
kernels.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch
from torch import nn

from vidsearch.models.internvideo2_bert import BertConfig, BertTextFusion, fusion_flops
from vidsearch.models.internvideo2_vision import InternVideo2Vision, VisionConfig, vision_flops
from vidsearch.models.precision import autocast_for

# The reduced random tower of the tests (tests/test_internvideo2_encoder.py SMALL): the 1B layout
# (patch 14, tubelet 1, 4 frames, q/k RMSNorm, attention pooling) at a width and depth that run in seconds.
REDUCED = VisionConfig(
    img_size=56, patch_size=14, num_frames=4, width=64, depth=2, heads=4, mlp_hidden=279, pool_heads=4, pool_dim=48
)


def _int8(module: nn.Module) -> nn.Module:
    import warnings

    qconfig = torch.ao.quantization.default_dynamic_qconfig
    spec = {n: qconfig for n, m in module.named_modules() if isinstance(m, nn.Linear) and "clip_projector" not in n}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(module, spec, dtype=torch.qint8, inplace=False)


def precision_agreement(
    tower: nn.Module, video: torch.Tensor, precisions: tuple[str, ...] = ("bf16", "fp16")
) -> dict[str, float]:
    """The lowest cosine to fp32 of ``tower``'s pooled feature at each precision (CPU autocast)."""
    cpu = torch.device("cpu")
    with torch.inference_mode():
        ref = tower(video)[1].float()
        out = {}
        for precision in precisions:
            with autocast_for(cpu, precision):
                got = tower(video)[1].float()
            out[precision] = torch.nn.functional.cosine_similarity(ref, got).min().item()
    return out


def reduced_agreement(clips: int = 8, seed: int = 0) -> dict[str, float]:
    """:func:`precision_agreement` on the tests' reduced random tower, ``clips`` random clips."""
    torch.manual_seed(seed)
    tower = InternVideo2Vision(REDUCED).eval()
    for p in tower.parameters():  # the tests' init: wide enough weights that rounding shows
        nn.init.normal_(p, std=0.2 if p.ndim > 1 else 0.1)
    video = torch.rand(clips, 3, REDUCED.num_frames, REDUCED.img_size, REDUCED.img_size) * 4 - 2
    return precision_agreement(tower, video)


def run(
    layers: int, batch: int, repeats: int, gpu_tflops: float, timeit: Callable[..., list[float]], peak: float
) -> None:
    """Print the 1B vision tower's per-clip CPU times (fp32, int8), the ITM cost and the GPU estimate.

    ``peak``: this machine's fp32 matmul GFLOP/s, measured by the caller, for scale.
    """
    full = VisionConfig()
    cfg = dataclasses.replace(full, depth=layers)
    scale = vision_flops(full) / vision_flops(cfg)
    torch.manual_seed(0)
    tower = InternVideo2Vision(cfg).eval()
    for p in tower.parameters():
        nn.init.normal_(p, std=0.02)
    video = torch.randn(batch, 3, cfg.num_frames, cfg.img_size, cfg.img_size)
    with torch.inference_mode():
        ref = tower(video)[1]
        fp32 = min(timeit(lambda: tower(video), repeats)) / batch
        q = _int8(tower)
        got = q(video)[1]
        int8 = min(timeit(lambda: q(video), repeats)) / batch
    cos = torch.nn.functional.cosine_similarity(ref, got).min().item()
    agreement = reduced_agreement()
    achieved = vision_flops(cfg) / fp32 / 1e9
    print(
        f"CPU: {torch.get_num_threads()} threads, fp32 matmul peak {peak:.0f} GFLOP/s; the tower reached {achieved:.0f}"
    )
    print(
        f"InternVideo2-1B vision tower, {layers} of {full.depth} blocks measured, extrapolated x{scale:.1f} by FLOPs:"
    )
    print(f"  fp32: {fp32 * scale:.1f} s per clip ({fp32:.2f} s measured at {layers} blocks)")
    print(f"  int8: {int8 * scale:.1f} s per clip ({int8:.2f} s measured; ratio {fp32 / int8:.2f}x; cosine {cos:.4f})")
    print(
        "  bf16 / fp16 vs fp32 (CPU autocast, the tests' reduced random tower, lowest cosine of 8 clips): "
        + ", ".join(f"{p} {c:.5f}" for p, c in agreement.items())
    )
    flops = vision_flops(full)
    print(
        f"  {flops / 1e12:.2f} TFLOP per clip; at {gpu_tflops:.0f} TFLOP/s sustained (bf16 GPU): {flops / gpu_tflops / 1e9:.1f} ms"
    )
    tokens = 1 + full.num_frames * full.grid**2
    print(
        f"  vision tokens per segment: {tokens} x {full.width} = {tokens * full.width * 2 / 1e6:.2f} MB fp16, "
        f"{tokens * full.width / 1e6:.2f} MB int8 (the ITC vector: 512 floats, 2 KB)"
    )
    bert = BertConfig()
    small = dataclasses.replace(bert, vocab_size=8, layers=bert.layers - bert.fusion_layer, fusion_layer=0)
    fusion = BertTextFusion(small).eval()
    for p in fusion.parameters():
        nn.init.normal_(p, std=0.02)
    text = torch.randn(batch, 32, bert.hidden)
    mask = torch.ones(batch, 32, dtype=torch.long)
    memory = torch.randn(batch, tokens, full.width)
    with torch.inference_mode():
        itm = min(timeit(lambda: fusion.fusion_states(text, mask, memory), repeats)) / batch
    ff = fusion_flops(bert, 32, tokens)
    print(
        f"ITM: {bert.layers - bert.fusion_layer} fusion layers, {ff / 1e9:.1f} GFLOP per (caption, candidate) pair: "
        f"{itm * 1000:.0f} ms per pair on this CPU (fp32); {ff / gpu_tflops / 1e9:.2f} ms at {gpu_tflops:.0f} TFLOP/s"
    )
