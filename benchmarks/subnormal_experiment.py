"""Why the fused Adam sets subnormal moments to 0: one long run with it, one without.

A weight whose gradient stays 0 for many steps (into a hidden unit whose ReLU never fires
any more, from a pixel that is blank in every batch) has its first moment decay as
m <- 0.9 m, and some 800 steps later m is below float32's smallest normal number,
1.2e-38: a subnormal number, which x86 CPUs compute in microcode, many times slower.
The fused Adam of scratchvae.kernels sets such moments to 0; the textbook's optim.Adam,
like PyTorch's, keeps them. This script trains the 784-400-20 VAE at batch 128 twice from
the same start, the two runs taking turns window by window:

- "fused": the Trainer as it comes (its compiled twins, the fused Adam);
- "textbook Adam": the same Trainer, its update set to the textbook's ``optimizer.step``
  (``trainer.update`` is public); every other part of the step is the same.

For each window of ``--window`` steps it prints the milliseconds per step (Trainer.fit),
the optimizer phase (scratchvae.profile.phases) and how many entries of Adam's state are
subnormal.

    python benchmarks/subnormal_experiment.py --out benchmarks/results-cpu-subnormals.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
from scratchvae import backend, kernels, profile  # noqa: E402
from scratchvae.models import VAE  # noqa: E402
from scratchvae.optim import Adam  # noqa: E402
from scratchvae.training import Trainer  # noqa: E402


def subnormal_count(opt) -> int:
    """Entries of the optimizer's state strictly between 0 and the smallest normal number."""
    n = 0
    for slot in opt.state.values():
        for a in slot.values():
            a = np.abs(backend.to_numpy(a))
            n += int(np.count_nonzero((a > 0) & (a < np.finfo(a.dtype).tiny)))
    return n


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workload", default="mnist", choices=sorted(harness.WORKLOADS))
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--windows", type=int, default=6)
    p.add_argument("--window", type=int, default=400, help="steps per window (default: 400)")
    p.add_argument("--examples", type=int, default=harness.EPOCH, help="size of the synthetic data set")
    p.add_argument("--threads", type=int, default=2, help="BLAS threads, 0 for the default (needs threadpoolctl)")
    p.add_argument("--out", default=None, help="also write the figures to this JSON file")
    args = p.parse_args(argv)
    if args.threads:
        try:
            from threadpoolctl import threadpool_limits

            threadpool_limits(args.threads)
        except ImportError:
            print(f"threadpoolctl is not installed: the BLAS default threads run (set OPENBLAS_NUM_THREADS="
                  f"{args.threads} to limit them)", file=sys.stderr)
    b = backend.use("numpy", dtype="float32")
    if not kernels.status()["numpy"].startswith("numba"):
        print(f"subnormal_experiment.py: needs the compiled twins; here {kernels.status()['numpy']}", file=sys.stderr)
        return 2
    (x_dim, hidden, z_dim), _ = harness.WORKLOADS[args.workload]
    x = backend.asarray(harness.synthetic_images(args.examples, x_dim))
    B = args.batch_size
    arms = {}
    for name in ("fused", "textbook Adam"):
        trainer = Trainer(VAE(x_dim, hidden=hidden, z_dim=z_dim, seed=0), Adam(lr=1e-3), batch_size=B, progress=False)
        if name == "textbook Adam":
            trainer.update = trainer.optimizer.step  # the textbook's update; the rest of the step unchanged
        arms[name] = trainer
    result = {"tool": "benchmarks/subnormal_experiment.py",
              "date": datetime.datetime.now().isoformat(timespec="seconds"),
              "command": " ".join([Path(sys.executable).name, *sys.argv]), "machine": harness.machine(),
              "workload": args.workload, "batch_size": B, "backend": b.name, "kernels": kernels.status()["numpy"],
              "load_average_before": harness.load_average(), "rows": {name: [] for name in arms}}
    rows_per_window = args.window * B
    start = 0
    for k in range(args.windows):
        chunk = x[start:start + rows_per_window, ...]  # consecutive slices of the data set, wrapping round
        start = 0 if start + 2 * rows_per_window > x.shape[0] else start + rows_per_window
        for name, trainer in arms.items():
            ms = profile.step_ms(trainer, chunk)[0]
            optimizer_ms = profile.phases(trainer, chunk, steps=20, seed=k)["optimizer"]
            row = {"steps_done": trainer.optimizer.t, "step_ms": round(ms, 3), "optimizer_ms": round(optimizer_ms, 3),
                   "subnormal_entries": subnormal_count(trainer.optimizer)}
            result["rows"][name].append(row)
            print(f"  {name:>13}  after {row['steps_done']:>5} steps: {ms:7.3f} ms/step, optimizer "
                  f"{optimizer_ms:.3f} ms, {row['subnormal_entries']:>7} subnormal entries in Adam's state", flush=True)
    result["load_average_after"] = harness.load_average()
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
