"""Speed of sparsemax, entmax-1.5 and bisection entmax against softmax at a language model's vocabulary size.

    python benchmarks/sparse_maps.py [--rows 256] [--vocab 32000] [--dtype float32]

Logits are Gaussian with standard deviation ``scale`` (1 and 3 are typical of trained language
models; 0.3 makes the support hundreds of entries wide, the hard case for a top-k search). Reports
the best of five wall times of the forward pass and of forward + backward, the mean support size,
and the ratio to ``torch.softmax``. Uses CUDA when available (and synchronises), else the CPU with
the current thread count. Run by hand; book/probability/softmax-alternatives.md quotes the table.
"""

from __future__ import annotations

import argparse
import time

import torch

from kexue_lite import probability as pr

MAPS = {
    "softmax (torch)": lambda x: torch.softmax(x, dim=-1),
    "sparsemax": pr.sparsemax,
    "entmax15": pr.entmax15,
    "entmax_bisect(1.5)": lambda x: pr.entmax_bisect(x, 1.5),
    "entmax_bisect(1.3)": lambda x: pr.entmax_bisect(x, 1.3),
}


def best_of(fn, device: torch.device, repeat: int = 5) -> float:
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    fn()
    sync()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=256)
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = getattr(torch, args.dtype)
    print(f"# ({args.rows}, {args.vocab}) {args.dtype} on {device}, torch {torch.__version__}, threads {torch.get_num_threads()}\n")
    print("| logit std | map | forward (ms) | × softmax | forward+backward (ms) | × softmax | mean support |")
    print("|---|---|---|---|---|---|---|")
    gen = torch.Generator().manual_seed(0)
    for scale in (1.0, 3.0, 0.3):
        x = (torch.randn(args.rows, args.vocab, generator=gen, dtype=dtype) * scale).to(device)
        w = torch.randn(args.rows, args.vocab, generator=gen, dtype=dtype).to(device)
        base = {}
        for name, f in MAPS.items():
            fwd = best_of(lambda: f(x), device)
            xg = x.clone().requires_grad_(True)

            def both():
                (f(xg) * w).sum().backward()
                xg.grad = None

            fb = best_of(both, device)
            if not base:
                base = {"fwd": fwd, "fb": fb}
            support = float((f(x) > 0).sum(-1).to(torch.float64).mean())
            print(f"| {scale} | {name} | {fwd * 1e3:.1f} | {fwd / base['fwd']:.1f} | {fb * 1e3:.1f} | {fb / base['fb']:.1f} | {support:.0f} |", flush=True)


if __name__ == "__main__":
    main()
