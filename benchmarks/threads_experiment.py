"""Would threads help the elementwise work? An experiment, not part of the library.

scratchvae's numba kernels (scratchvae/kernels/cpu.py) are serial. On 2 cores the second
core idles while they run, so a ``parallel=True`` (prange) version of each looks like a
free 2x. This script measures whether it is, in a training step, because NumPy's
OpenBLAS keeps its own threads spinning between products and a second thread pool must
share the cores with them.

Each configuration runs in a fresh process (the environment variables below are read when
OpenBLAS, OpenMP or numba start):

- serial kernels (the library as it is);
- serial, with ``OPENBLAS_THREAD_TIMEOUT=4`` (OpenBLAS's idle threads sleep at once);
- prange kernels, numba's default threading layer (OpenMP here);
- prange, ``OPENBLAS_THREAD_TIMEOUT=4``;
- prange, the timeout and ``OMP_WAIT_POLICY=passive`` (OpenMP's idle threads sleep too);
- prange, the timeout and numba's ``workqueue`` layer (no OpenMP);
- only Adam in prange, the timeout and passive OpenMP.

Each process times the 784-400-20 VAE (``scratchvae.bench.ScratchRun``, the Trainer's
loop) at batch 128 and 1024, and Adam's kernel alone, right after a matrix product.

    python benchmarks/threads_experiment.py --out benchmarks/results-cpu-threads.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

CONFIGS = {
    "serial": ({}, ""),
    "serial, blas timeout": ({"OPENBLAS_THREAD_TIMEOUT": "4"}, ""),
    "prange": ({}, "adam,relu,bernoulli"),
    "prange, blas timeout": ({"OPENBLAS_THREAD_TIMEOUT": "4"}, "adam,relu,bernoulli"),
    "prange, timeout, omp passive": (
        {"OPENBLAS_THREAD_TIMEOUT": "4", "OMP_WAIT_POLICY": "passive"}, "adam,relu,bernoulli"),
    "prange, timeout, workqueue": (
        {"OPENBLAS_THREAD_TIMEOUT": "4", "NUMBA_THREADING_LAYER": "workqueue"}, "adam,relu,bernoulli"),
    "prange adam only, timeout, passive": (
        {"OPENBLAS_THREAD_TIMEOUT": "4", "OMP_WAIT_POLICY": "passive"}, "adam"),
}


def use_prange_kernels(which: set) -> None:
    """Swap the loops of scratchvae.kernels.cpu for prange copies (same formulas)."""
    import math

    import numba
    from numba import prange

    from scratchvae.kernels import cpu

    pjit = numba.njit(nogil=True, error_model="numpy", parallel=True)

    @pjit
    def adam_loop(p, g, m, v, b1, c1, b2, c2, a, eps_t):
        for i in prange(p.size):
            gi = g[i]
            mi = b1 * m[i] + c1 * gi
            vi = b2 * v[i] + c2 * (gi * gi)
            m[i] = mi
            v[i] = vi
            p[i] -= (mi / (math.sqrt(vi) + eps_t)) * a

    @pjit
    def relu_backward_loop(y, dy, dx):
        zero, one = y.dtype.type(0.0), y.dtype.type(1.0)
        for i in prange(y.size):
            dx[i] = (one if y[i] > zero else zero) * dy[i]

    @pjit
    def neg_abs(l, out):
        for i in prange(l.size):
            out[i] = -abs(l[i])

    @pjit
    def bernoulli_rest(l, x, e, per_entry, dl, n):
        zero, one = l.dtype.type(0.0), l.dtype.type(1.0)
        for i in prange(l.size):
            li, xi, ei = l[i], x[i], e[i]
            per_entry[i] = (max(li, zero) - xi * li) + per_entry[i]
            s = (one if li >= zero else ei) / (one + ei)
            dl[i] = (s - xi) / n

    if "adam" in which:
        cpu._adam_loop = adam_loop
    if "relu" in which:
        cpu._relu_backward_loop = relu_backward_loop
    if "bernoulli" in which:
        cpu._neg_abs, cpu._bernoulli_rest = neg_abs, bernoulli_rest


def child(prange_kernels: str, steps: int, repeats: int) -> dict:
    import numpy as np

    from scratchvae import bench
    from scratchvae.kernels import cpu

    bench.set_threads(2)
    if prange_kernels:
        use_prange_kernels(set(prange_kernels.split(",")))
    out = {}
    # Adam's kernel alone, right after a product (when OpenBLAS's threads have just worked)
    n = 630_000  # about the 784-400-20 VAE's 652,824 parameters (the run recorded used this)
    p, g, m, v = (np.random.default_rng(i).random(n, dtype=np.float32) for i in range(4))
    a, b = np.ones((128, 784), np.float32), np.ones((784, 400), np.float32)
    f32 = np.float32
    args = (f32(0.9), f32(0.1), f32(0.999), f32(0.001), f32(1e-3), f32(1e-8))
    cpu._adam_loop(p, g, m, v, *args)
    after = []
    for _ in range(200):
        a @ b
        t0 = time.perf_counter()
        cpu._adam_loop(p, g, m, v, *args)
        after.append(time.perf_counter() - t0)
    out["adam_kernel_after_matmul_ms"] = 1e3 * statistics.median(after)
    for batch in (128, 1024):
        run = bench.ScratchRun(bench.WORKLOADS["mnist"], batch).setup()
        run.steps(10)
        k = min(steps, bench.EPOCH // batch)
        out[f"ms_per_step_{batch}"] = 1e3 * statistics.median(run.steps(k) / k for _ in range(repeats))
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=2, help="times each configuration runs (interleaved)")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", help="write the figures to this JSON file")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.child, args.steps, args.repeats)))
        return 0
    rows = {name: [] for name in CONFIGS}
    for _ in range(args.rounds):
        for name, (env, which) in CONFIGS.items():
            cmd = [sys.executable, __file__, "--child", which, "--steps", str(args.steps),
                   "--repeats", str(args.repeats)]
            done = subprocess.run(cmd, env={**os.environ, **env}, capture_output=True, text=True, check=True)
            rows[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"{name:38s} {rows[name][-1]}", flush=True)
    keys = ("ms_per_step_128", "ms_per_step_1024", "adam_kernel_after_matmul_ms")
    medians = {name: {k: statistics.median(r[k] for r in runs) for k in keys} for name, runs in rows.items()}
    print(f"\n{'configuration':38s} {'batch 128':>10s} {'batch 1024':>11s} {'Adam kernel':>12s}  (ms, medians)")
    for name, m in medians.items():
        print(f"{name:38s} {m[keys[0]]:10.2f} {m[keys[1]]:11.2f} {m[keys[2]]:12.3f}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"configs": {k: {"env": e, "prange": w} for k, (e, w) in CONFIGS.items()},
                       "rounds": rows, "medians": medians,
                       "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
