"""`scratchvae bench`: time a training step here, per epoch, per phase, against the matmul floor."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

from .. import __version__, backend
from ..checks import positive_int
from .common import chosen_dtype, training_path

EPOCH = 60_000  # examples per reported epoch (MNIST's training set)
WORKLOADS = {  # name: (x_dim, hidden, z_dim), batch sizes
    "mnist": ((784, (400,), 20), (128, 1024)),  # the PyTorch examples' VAE
    "digits": ((64, (256,), 2), (64,)),  # what `scratchvae train` trains by default
}


def bench(args) -> int:
    """Time training steps of each workload through the Trainer (scratchvae.profile)."""
    import contextlib
    import datetime

    if args.no_memory:
        print("scratchvae bench: --no-memory is deprecated and does nothing: the command no longer "
              "measures memory (benchmarks/bench_vae.py does, in processes of their own)", file=sys.stderr)
    if args.json:
        check_writable(args.json)  # now, not after minutes of timing
    if args.retain_freed_memory:
        backend.retain_freed_memory()
    b = backend.use(args.backend, dtype=chosen_dtype(args) or "float32")
    limits, threads = thread_limits(args.threads)
    result = {"tool": "scratchvae bench", "version": __version__,
              "date": datetime.datetime.now().isoformat(timespec="seconds"), "command": " ".join(sys.argv),
              "backend": b.name, "device": str(b.device), "threads": threads,
              "training": "the textbook (--no-kernels)" if args.no_kernels else training_path(b), "runs": []}
    with limits or contextlib.nullcontext():
        for name in args.workloads:
            (x_dim, hidden, z_dim), sizes = WORKLOADS[name]
            for B in (args.batch_sizes or sizes) if name == "mnist" else (args.digits_batch_size,):
                result["runs"].append(bench_one(args, name, x_dim, hidden, z_dim, B))
    print(f"scratchvae {__version__} on {b.name} ({b.device}), {b.dtype_name}; BLAS threads: {threads}; "
          f"training runs {result['training']}")
    print(bench_table(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
        print(f"wrote {args.json}")
    return 0


def bench_one(args, name: str, x_dim: int, hidden: tuple, z_dim: int, B: int) -> dict:
    """One workload at batch B: Trainer.fit's epochs, the phases, the matmul floor."""
    from .. import profile
    from ..models import VAE
    from ..optim import Adam
    from ..training import Trainer

    steps = args.steps or -(-EPOCH // B)
    rows = EPOCH if args.steps is None else steps * B
    layers = "-".join(str(n) for n in (x_dim, *hidden, z_dim))
    print(f"{name} {layers} batch {B}: {args.repeats} x {steps} steps ...", file=sys.stderr, flush=True)
    x = profile.synthetic_images(rows, x_dim)
    model = VAE(x_dim, hidden=hidden, z_dim=z_dim, seed=0)
    trainer = Trainer(model, Adam(lr=1e-3), batch_size=B, progress=False,
                      kernels=False if args.no_kernels else None)
    if args.warmup:  # numba compiles on first use; caches fill
        profile.step_ms(trainer, x[:min(args.warmup * B, rows), ...])
    ms = profile.step_ms(trainer, x, args.repeats)
    phases = profile.phases(trainer, x, steps=min(steps, 20))
    floor = profile.matmul_floor(model, B)
    step = statistics.median(ms)
    return {"workload": name, "layers": layers, "batch_size": B, "steps": steps, "repeats": args.repeats,
            "swapped": trainer.swapped, "step_ms": step, "step_ms_best": min(ms), "step_ms_all": ms,
            "epoch_s": step / 1e3 * EPOCH / B, "examples_per_s": 1e3 * B / step, "phases_ms": phases,
            "floor_ms": floor["ms"], "floor_gflops": floor["gflops"], "over_floor": step / floor["ms"]}


def bench_table(result: dict) -> str:
    head = (f"{'workload':<18}{'batch':>6}{'ms/step':>10}{'best':>9}{'s/epoch':>9}{'ex/s':>9}"
            f"{'floor ms':>10}{'x floor':>9}")
    lines = [head, "-" * len(head)]
    for r in result["runs"]:
        lines.append(f"{r['workload'] + ' ' + r['layers']:<18}{r['batch_size']:>6}{r['step_ms']:>10.3f}"
                     f"{r['step_ms_best']:>9.3f}{r['epoch_s']:>9.2f}{r['examples_per_s']:>9.0f}"
                     f"{r['floor_ms']:>10.3f}{r['over_floor']:>9.2f}")
        total = sum(r["phases_ms"].values()) or 1.0
        lines.append(" " * 24 + "phases, ms/step: " + ", ".join(
            f"{k} {v:.3f} ({100 * v / total:.0f}%)" for k, v in r["phases_ms"].items()))
    lines.append(f"(an epoch is {EPOCH:,} examples; ms/step is the median of the timed epochs, best the fastest; "
                 "the floor is the step's matrix products alone)")
    return "\n".join(lines)


def thread_limits(n: int):
    """(a context manager that limits the BLAS threads to n, or None; what it does)."""
    if not n:
        return None, "the library's default"
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return None, (f"the library's default (threadpoolctl is not installed: pip install threadpoolctl, "
                      f"or set OPENBLAS_NUM_THREADS={n} before starting)")
    return threadpool_limits(n), str(n)


def check_writable(path: str) -> None:
    """Raise OSError (IsADirectoryError, PermissionError, ...) unless ``path`` can be written;
    a file it had to create for the test is removed again."""
    existed = os.path.lexists(path)
    with open(path, "a"):  # "a": an existing file keeps its contents
        pass
    if not existed:
        os.remove(path)


def batch_size_type(text: str) -> int:
    """An ``argparse`` type: a batch size from 1 to EPOCH (the examples an epoch holds)."""
    B = positive_int(text)
    if B > EPOCH:
        raise argparse.ArgumentTypeError(f"a batch cannot hold more than the {EPOCH} examples of the data set, "
                                         f"got {text!r}")
    return B
