"""Why Adam flushes subnormal moments to 0: the training step with and without it.

A weight whose gradient stays 0 for many steps (a pixel that is 0 in every image of the
batch, a dead ReLU unit) has its first moment decay as m <- 0.9 m. After some 800 steps
m falls below 1.2e-38, float32's smallest normal number, into the subnormal numbers,
which x86 CPUs compute in microcode, many times slower than normal ones.
scratchvae's Adam sets such moments to 0 (scratchvae.arrays.flush_subnormals; the numba
kernel does the same in its loop). This script trains the 784-400-20 VAE at batch 128
twice, in one process, from the same start:

- "flush": the library as it is;
- "no flush": the same numba kernel told that the smallest normal number is 0, so
  nothing is flushed (Adam as PyTorch computes it without set_flush_denormal);

and prints, for each window of ``--window`` steps, the milliseconds per step, the
optimizer's share measured by ScratchRun.breakdown, and how many entries of Adam's state
are subnormal.

    python benchmarks/subnormal_experiment.py --out benchmarks/results-cpu-subnormals.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from scratchvae import backend, kernels  # noqa: E402
from scratchvae import bench as sb  # noqa: E402


def adam_without_flush(p, g, m, v, b1: float, b2: float, a: float, eps_t: float) -> None:
    """kernels.cpu.adam with both flush thresholds at 0: |m| < 0 never holds."""
    from scratchvae.kernels import cpu

    t = p.dtype.type
    cpu._adam_loop(p.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1),
                   t(b1), t(1.0 - b1), t(b2), t(1.0 - b2), t(a), t(eps_t), t(0.0), t(0.0))


def subnormal_count(opt) -> int:
    n = 0
    for slot in opt.state.values():
        for a in slot.values():
            a = np.abs(backend.to_numpy(a))
            n += int(np.count_nonzero((a > 0) & (a < np.finfo(a.dtype).tiny)))
    return n


def train(flush: bool, windows: int, window: int, batch: int) -> list:
    from scratchvae.kernels import cpu

    flushed = cpu.adam
    cpu.adam = flushed if flush else adam_without_flush
    try:
        run = sb.ScratchRun(sb.WORKLOADS["mnist"], batch).setup()
        rows = []
        for k in range(windows):
            ms = 1e3 * run.steps(window) / window
            bd = run.breakdown(20)
            rows.append({"steps_done": (k + 1) * window + 20 * (k + 1), "step_ms": round(ms, 3),
                         "optimizer_ms": round(bd["optimizer"], 3), "subnormal_entries": subnormal_count(run.opt)})
            print(f"  {'flush' if flush else 'no flush':>8}  after {rows[-1]['steps_done']:>5} steps: "
                  f"{ms:6.3f} ms/step, optimizer {bd['optimizer']:.3f} ms, "
                  f"{rows[-1]['subnormal_entries']:>6} subnormal entries in Adam's state", flush=True)
        return rows
    finally:
        cpu.adam = flushed


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--windows", type=int, default=6)
    p.add_argument("--window", type=int, default=400, help="steps per window")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    note = sb.set_threads(args.threads or None)
    backend.use("numpy", dtype="float32")
    if kernels.find("adam", *[np.zeros(2, np.float32)] * 4) is None:
        print("subnormal_experiment.py: needs the numba kernels (pip install numba)", file=sys.stderr)
        return 2
    sb.ScratchRun(sb.WORKLOADS["mnist"], args.batch_size).setup().steps(5)  # compile first
    result = {"tool": "benchmarks/subnormal_experiment.py", "date": sb.datetime.datetime.now().isoformat(timespec="seconds"),
              "machine": sb.machine_info(), "threads_note": note, "batch_size": args.batch_size,
              "load_average_before": sb.load_average()}
    for flush in (True, False):
        result["flush" if flush else "no_flush"] = train(flush, args.windows, args.window, args.batch_size)
    result["load_average_after"] = sb.load_average()
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
