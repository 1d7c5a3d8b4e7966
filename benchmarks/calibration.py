"""The machine's fp32 matmul throughput, printed beside every timing a benchmark reports.

Absolute times are not comparable across machines (CPU models differ, other jobs take cores);
a time read next to the GFLOP/s measured in the same run is.
"""

from __future__ import annotations

import time


def matmul_gflops(threads: int | None = None, n: int = 1024, seconds: float = 1.0) -> float:
    """Best fp32 GFLOP/s of an ``n x n`` ``torch.mm`` over ``seconds`` of short repeats.

    Args:
        threads: torch threads for the measurement (None: torch's current setting); restored.
    """
    import torch

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        a, b = torch.randn(n, n), torch.randn(n, n)
        torch.mm(a, b)  # warm-up
        best, end = 0.0, time.perf_counter() + seconds
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            for _ in range(4):
                torch.mm(a, b)
            best = max(best, 4 * 2 * n**3 / (time.perf_counter() - t0) / 1e9)
        return best
    finally:
        torch.set_num_threads(before)
