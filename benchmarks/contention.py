"""Contention: how much training slows when other programs use the same cores.

    python benchmarks/contention.py                                  # the table of issue 15
    python benchmarks/contention.py --competitors 2 --torch --lesson lessons/05_vae.ipynb \
        --out benchmarks/results-cpu-contention.json

Each figure is measured twice, quiet and beside ``--competitors`` processes that do
ordinary NumPy matrix products (256 x 256, with their own BLAS threads) the whole time.
A competitor stops by itself after ``--max-seconds`` and is stopped when its
measurement ends, so nothing is left running. Measured:

- ``scratchvae train`` as a user runs it (digits, its default model), seconds per epoch
  from its metrics.json; also with ``OPENBLAS_NUM_THREADS=1`` by hand, and with every
  core's thread (``--threads N``: what ran before the thread policy);
- with ``--torch``: PyTorch on the same model shape and batch size, 2 threads
  (benchmarks/torch_reference.py), seconds per epoch of the digits' 1,297 examples;
- with ``--lesson NB``: the wall time of executing a lesson with nbconvert.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
COMPETITOR = """
import sys, time
import numpy as np
a = np.random.default_rng(0).random((256, 256))
stop = time.monotonic() + float(sys.argv[1])
while time.monotonic() < stop:
    a = a @ a
    a /= np.abs(a).max()
"""


@contextlib.contextmanager
def competitors(n: int, max_seconds: float):
    """``n`` processes of BLAS matrix products beside the code inside; stopped on exit."""
    procs = [subprocess.Popen([sys.executable, "-c", COMPETITOR, str(max_seconds)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(n)]
    try:
        time.sleep(0.5 if n else 0.0)  # let them start their products
        yield procs
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


def train_epoch_seconds(epochs: int, extra: list, env: dict | None = None) -> float:
    """``scratchvae train`` into a fresh folder; its seconds per epoch."""
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "scratchvae", "train", "--out", str(Path(out) / "run"),
               "--epochs", str(epochs), *extra]
        subprocess.run(cmd, check=True, capture_output=True, env={**os.environ, **(env or {})})
        return json.loads((Path(out) / "run" / "metrics.json").read_text())["time_per_epoch_s"]


def torch_epoch_seconds(epochs: int, batch: int) -> float:
    out = subprocess.run([sys.executable, str(HERE / "torch_reference.py"), "--workload", "digits",
                          "--batch-size", str(batch), "--examples", "1297", "--epochs", str(epochs),
                          "--threads", "2", "--json"], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["epoch_s"]


def lesson_seconds(notebook: str, env: dict) -> float:
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
                        "--output-dir", out, notebook], check=True, capture_output=True, env={**os.environ, **env})
        return time.perf_counter() - t0


def measure(args) -> dict:
    """Every row, quiet then loaded: {row: {"quiet": s, "loaded": s}}."""
    rows = {
        "scratchvae train (default)": lambda: train_epoch_seconds(args.epochs, args.train_args),
        "scratchvae train --threads 1": lambda: train_epoch_seconds(args.epochs, args.train_args,
                                                                    {"OPENBLAS_NUM_THREADS": "1"}),
        f"scratchvae train --threads {os.cpu_count()} (no policy)": lambda: train_epoch_seconds(
            args.epochs, [*args.train_args, "--threads", str(os.cpu_count())]),
    }
    if args.torch:
        rows["PyTorch, 2 threads"] = lambda: torch_epoch_seconds(args.epochs, 64)
    if args.lesson:
        lesson_env = {"SCRATCHVAE_FAST": "1"} if args.fast_lesson else {}
        rows[f"lesson {Path(args.lesson).name} (s, whole run)"] = lambda: lesson_seconds(args.lesson, lesson_env)
    result = {}
    for name, run in rows.items():
        result[name] = {}
        for label, n in (("quiet", 0), ("loaded", args.competitors)):
            with competitors(n, args.max_seconds):
                result[name][label] = run()
            print(f"{name:42s} {label:7s} {result[name][label]:9.4f} s", flush=True)
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--competitors", type=int, default=2, help="BLAS processes beside the loaded runs (default: 2)")
    p.add_argument("--max-seconds", type=float, default=600, help="a competitor stops by itself after this")
    p.add_argument("--epochs", type=int, default=30, help="epochs of each training run (default: 30)")
    p.add_argument("--train-args", nargs=argparse.REMAINDER, default=[],
                   help="more arguments for scratchvae train (last on the line)")
    p.add_argument("--torch", action="store_true", help="also PyTorch on the same model and batch size")
    p.add_argument("--lesson", default=None, help="also execute this notebook, quiet and loaded")
    p.add_argument("--fast-lesson", action="store_true", help="run the lesson with SCRATCHVAE_FAST=1")
    p.add_argument("--out", default=None, help="also write the figures to this JSON file")
    args = p.parse_args(argv)
    if args.competitors < 0 or args.epochs < 1 or args.max_seconds <= 0:
        p.error("--competitors must be >= 0, --epochs >= 1 and --max-seconds > 0")
    result = {"command": " ".join(["python benchmarks/contention.py", *(argv if argv is not None else sys.argv[1:])]),
              "date": time.strftime("%Y-%m-%dT%H:%M:%S"), "cores": os.cpu_count(),
              "competitors": args.competitors, "rows": measure(args)}
    for name, r in result["rows"].items():
        print(f"{name:42s} loaded / quiet: {r['loaded'] / r['quiet']:.2f}x")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
