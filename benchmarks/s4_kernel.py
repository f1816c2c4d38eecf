"""Benchmark of the three ways to compute the S4 convolution kernel (book/ssm/s4-kernel.md).

    python benchmarks/s4_kernel.py [--quick] [--torch]

For each state size N and length L: the best of three wall times of ``kernel_loop`` (L
matrix-vector products, O(L N^2)), ``kernel_doubling`` (repeated squaring of the Krylov block)
and ``kernel_s4`` (NPLR + Cauchy sums + inverse FFT, O(L N)), and two reference costs of S4's method:
the (L/2 x N) by (N x 4) product of the four Cauchy sums, alone ("product", the table given) and
with the (L/2 x N) Cauchy table formed first by complex reciprocals, as ``ssm.cauchy`` does
("table + product"; ``kernel_s4`` forms the same entries in real arithmetic, so this is a reference,
not a lower bound). ``kernel_s4`` and the two references are timed in interleaved rounds, so that a
change in the machine's load affects all three alike. With the LegS matrix, bilinear
step ``dt = 4 / L`` and a random C; the kernels are also checked against each other. With
``--torch``, ``kernel_s4`` is timed in torch as well, on CUDA when available. Run by hand; the
notebook quotes the table (it is not a timed test). Numbers depend on the machine: set
``OMP_NUM_THREADS``/``OPENBLAS_NUM_THREADS`` to compare like with like.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable

import numpy as np
import torch

from kexue_lite import ssm


def best_of(fn: Callable[[], object], repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def best_of_each(fns: dict[str, Callable[[], object]], repeat: int = 3) -> dict[str, float]:
    """Best of ``repeat`` rounds for each function, every round timing all of them in turn."""
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeat):
        for name, fn in fns.items():
            best[name] = min(best[name], best_of(fn, repeat=1))
    return best


def setup(N: int, L: int, seed: int = 0):
    """Discrete LegS system (S4's B_n = sqrt(2n+1)) and its NPLR inputs for kernel_s4."""
    dt = 4 / L
    A, B = ssm.hippo_legs(N, convention="paper")
    Ab, Bb = ssm.discretize(A, B, dt)
    C = np.random.default_rng(seed).normal(size=N)
    Lam, P, V = ssm.nplr_legs(N)
    Vh = V.conj().T
    Ct = Vh @ ((np.eye(N) - np.linalg.matrix_power(Ab, L)).T @ C)
    return (Ab, Bb, C), (Lam, Vh @ P, Vh @ B, Ct), dt


def torch_time(nplr, dt: float, L: int, device: torch.device) -> float:
    args = [torch.from_numpy(v).to(device) for v in nplr]
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def run():
        ssm.kernel_s4(*args, dt, L)
        sync()

    run()  # warm-up (CUDA context, FFT plans)
    return best_of(run)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N in {16, 64}, L up to 4096")
    parser.add_argument("--torch", action="store_true", help="also time kernel_s4 in torch (CUDA if available)")
    args = parser.parse_args()
    Ns = [16, 64] if args.quick else [16, 64, 256]
    Ls = [256, 1024, 4096] if args.quick else [256, 1024, 4096, 16384]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    print(f"# {platform.processor() or platform.machine()}, numpy {np.__version__}, torch {torch.__version__}, "
          f"torch threads {torch.get_num_threads()}{', torch on ' + str(device) if args.torch else ''}\n")
    head = ("| N | L | loop (ms) | doubling (ms) | S4 (ms) | loop/S4 | doubling/S4 | product (ms) | table + product (ms) "
            "| S4/product | S4/(table + product) | max rel. diff |")
    if args.torch:
        head += f" S4 torch {device.type} (ms) |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    results = {}
    for N in Ns:
        for L in Ls:
            (Ab, Bb, C), nplr, dt = setup(N, L)
            K = ssm.kernel_loop(Ab, Bb, C, L)
            scale = np.abs(K).max()
            diff = max(np.abs(ssm.kernel_doubling(Ab, Bb, C, L) - K).max(), np.abs(ssm.kernel_s4(*nplr, dt, L) - K).max()) / scale
            g = 1j * (2 / dt) * np.tan(np.pi * np.arange(L // 2) / L)  # g_l at the roots of unity
            weights = np.stack([nplr[1]] * 4, axis=1)  # (N, 4): four Cauchy weight vectors
            table = 1 / (g[:, None] - nplr[0][None, :])  # (L/2, N)
            t = {
                "loop": best_of(lambda: ssm.kernel_loop(Ab, Bb, C, L)),
                "doubling": best_of(lambda: ssm.kernel_doubling(Ab, Bb, C, L)),
                **best_of_each({
                    "s4": lambda: ssm.kernel_s4(*nplr, dt, L),
                    "product": lambda: table @ weights,
                    "table": lambda: (1 / (g[:, None] - nplr[0][None, :])) @ weights,
                }),
            }
            results[N, L] = t
            row = (f"| {N} | {L} | {t['loop'] * 1e3:.2f} | {t['doubling'] * 1e3:.2f} | {t['s4'] * 1e3:.2f} | "
                   f"{t['loop'] / t['s4']:.1f}× | {t['doubling'] / t['s4']:.1f}× | {t['product'] * 1e3:.2f} | "
                   f"{t['table'] * 1e3:.2f} | {t['s4'] / t['product']:.1f} | {t['s4'] / t['table']:.2f} | {diff:.1e} |")
            if args.torch:
                row += f" {torch_time(nplr, dt, L, device) * 1e3:.2f} |"
            print(row, flush=True)
    print("\nGrowth exponents (slope of log time against log L, largest two L):")
    for N in Ns:
        slopes = {m: np.log(results[N, Ls[-1]][m] / results[N, Ls[-2]][m]) / np.log(Ls[-1] / Ls[-2]) for m in ("loop", "doubling", "s4")}
        print(f"  N = {N}: " + ", ".join(f"{m} {v:.2f}" for m, v in slopes.items()))
    print(f"Growth exponents in N (largest two N, L = {Ls[-1]}):")
    slopes = {m: np.log(results[Ns[-1], Ls[-1]][m] / results[Ns[-2], Ls[-1]][m]) / np.log(Ns[-1] / Ns[-2]) for m in ("loop", "doubling", "s4")}
    print("  " + ", ".join(f"{m} {v:.2f}" for m, v in slopes.items()))


if __name__ == "__main__":
    main()
