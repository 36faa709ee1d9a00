"""How much does other load on the machine slow each framework? An experiment.

The benchmark's frameworks take turns, so load that comes and goes should hit each of
them alike. This script checks that: it times scratchvae, PyTorch eager and PyTorch with
fused Adam (784-400-20, batch 128, 2 threads each) in turns, first on a quiet machine,
then with a second process spinning on one core (a stand-in for another job on a shared
machine). If the slowdowns differ, medians over a partly loaded run are biased, and each
framework's fastest round is the fairer figure (bench_vae.py reports both).

    python benchmarks/load_experiment.py --out benchmarks/results-cpu-load.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scratchvae import backend  # noqa: E402
from scratchvae import bench as sb  # noqa: E402


def spin(stop) -> None:
    """Keep one core busy until ``stop`` is set."""
    x = 0
    while not stop.is_set():
        for _ in range(100_000):
            x += 1


def rounds(runs: dict, n_rounds: int, steps: int) -> dict:
    """ms per step of each run, ``n_rounds`` turns each (order rotated every round)."""
    times = {k: [] for k in runs}
    keys = list(runs)
    for i in range(n_rounds):
        for k in keys[i % len(keys):] + keys[:i % len(keys)]:
            sb.settle()
            sb.rewarm(runs[k])
            times[k].append(1e3 * runs[k].steps(steps) / steps)
    return times


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--out", help="write the figures to this JSON file")
    args = p.parse_args()

    import torch

    from torch_reference import TorchRun

    sb.set_threads(2)
    torch.set_num_threads(2)
    backend.use("numpy", dtype="float32")
    w = sb.WORKLOADS["mnist"]
    data = sb.synthetic_images(sb.EPOCH, w.x_dim)
    runs = {"scratchvae": sb.ScratchRun(w, 128).setup(data),
            "torch": TorchRun(w, 128, fused=False).setup(data),
            "torch_fused": TorchRun(w, 128, fused=True).setup(data)}
    for r in runs.values():
        r.steps(30)  # warm-up

    out = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "rounds": args.rounds,
           "steps": args.steps, "load_average_before": sb.load_average()}
    out["quiet"] = rounds(runs, args.rounds, args.steps)
    stop = mp.Event()
    spinner = mp.Process(target=spin, args=(stop,), daemon=True)
    spinner.start()
    try:
        out["one_core_busy"] = rounds(runs, args.rounds, args.steps)
    finally:
        stop.set()
        spinner.join()
    out["load_average_after"] = sb.load_average()

    print(f"{'':14s}{'quiet':>10s}{'one core busy':>15s}{'slowdown':>10s}   (ms per step, medians)")
    out["medians"] = {}
    for k in runs:
        q, b = statistics.median(out["quiet"][k]), statistics.median(out["one_core_busy"][k])
        out["medians"][k] = {"quiet": q, "one_core_busy": b, "slowdown": b / q}
        print(f"{k:14s}{q:10.2f}{b:15.2f}{b / q:10.2f}x")
    for key in ("torch", "torch_fused"):
        m, s = out["medians"][key], out["medians"]["scratchvae"]
        print(f"scratchvae over {key}: quiet {s['quiet'] / m['quiet']:.2f}, "
              f"one core busy {s['one_core_busy'] / m['one_core_busy']:.2f}")
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
