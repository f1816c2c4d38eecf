"""The RoPE base table of book/positional/rope-base-bound.md: ``python tools/rope_base_table.py [--max-L 1048576] [--d 128]``.

Computes the smallest base ``b*(L)`` with ``sum_i cos(m b^(-2i/d)) >= 0`` for all ``m < L``, for
``L = 1024, 2048, ..., max-L``, by the certified sweep ``kexue_lite.positional.base_lower_bound``, and
checks every value independently by direct cosines: feasible at ``b* (1 + 1e-9)``, infeasible at
``b* (1 - 1e-6)`` (the binding ``m`` is the first violation there). Prints a markdown table and the
wall time; on the 2-core CPU that builds the book the full run (to 1M) takes several minutes.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # small GEMMs: threads only add overhead
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402

from kexue_lite import positional as pos  # noqa: E402

ARTICLE = {1024: 4.3e3, 2048: 1.2e4, 4096: 2.7e4, 8192: 8.4e4, 16384: 2.3e5, 32768: 6.3e5, 65536: 2.1e6,
           131072: 4.9e6, 262144: 2.4e7, 524288: 5.8e7, 1048576: 6.5e7}


def direct_min(base: float, L: int, d: int) -> tuple[float, int]:
    """min_{m < L} f_b(m) and its argmin, by direct cosines in chunks (independent of the GEMM scanner)."""
    theta = pos.rope_freqs(d, base)
    best, where = np.inf, -1
    for start in range(0, L, 8192):
        m = np.arange(start, min(L, start + 8192))
        f = np.cos(np.outer(m, theta)).sum(1)
        i = int(np.argmin(f))
        if f[i] < best:
            best, where = float(f[i]), int(m[i])
    return best, where


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-L", type=int, default=1 << 20)
    parser.add_argument("--d", type=int, default=128)
    args = parser.parse_args()
    Ls = [1024 << k for k in range(20) if (1024 << k) <= args.max_L]
    start = time.perf_counter()
    table, stats = pos.base_lower_bound(Ls, d=args.d, return_stats=True)
    print(f"# d = {args.d}; sweep: {stats['seconds']:.1f} s, {stats['full_scans']} full scans, {stats['jumps']} jumps, "
          f"{stats['steps']} certified steps\n")
    print("| L | b* | article | b* (2 s.f.) = article? | min f at b*(1+1e-9) | min f at b*(1-1e-6) | binding m | b*/L |")
    print("|---|---|---|---|---|---|---|---|")
    for L in Ls:
        b = table[L]
        above, _ = direct_min(b * (1 + 1e-9), L, args.d)
        below, binding = direct_min(b * (1 - 1e-6), L, args.d)
        same = L in ARTICLE and f"{b:.1e}" == f"{ARTICLE[L]:.1e}"
        print(f"| {L} | {b:.10g} | {ARTICLE.get(L, float('nan')):.1e} | {'yes' if same else 'NO'} | {above:.2e} | {below:.2e} | "
              f"{binding} | {b / L:.2f} |", flush=True)
    print(f"\ntotal wall time (sweep and checks): {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
