"""The thread policy's cost on a quiet machine: training steps with ``threads="auto"``
against a fixed thread count, in alternating processes.

    python benchmarks/threads_quiet.py                       # 784-400-20 at 128 and digits at 64, 4 rounds
    python benchmarks/threads_quiet.py --workloads digits --rounds 2 --repeats 2

Each round runs one process per setting; each process warms up one epoch (the policy
measures there) and prints the fastest and the median of ``--repeats`` epochs, in
milliseconds per step, and the thread count the policy chose.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

WORKER = """
import json, statistics, sys
from scratchvae import backend, datasets, profile
from scratchvae.models import VAE
from scratchvae.optim import Adam
from scratchvae.training import Trainer
setting, work, examples, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
backend.use("numpy", dtype="float32")
if work == "mnist":
    x, model, batch = profile.synthetic_images(examples, 784, seed=0), VAE(784, (400,), 20), 128
else:
    x, model, batch = datasets.load("digits").x_train, VAE(64, (256,), 2), 64
t = Trainer(model, Adam(1e-3), batch_size=batch, progress=False, threads=setting)
t.fit(x, epochs=1)
ms = profile.step_ms(t, x, repeats=repeats)
print(json.dumps({"fastest": min(ms), "median": statistics.median(ms), "threads": t.thread_policy.choice}))
"""


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workloads", nargs="+", default=["mnist", "digits"], choices=["mnist", "digits"])
    p.add_argument("--against", default="2", help="the fixed thread count compared with auto (default: 2)")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--repeats", type=int, default=5, help="timed epochs per process")
    p.add_argument("--examples", type=int, default=12800, help="synthetic examples for mnist")
    args = p.parse_args(argv)
    for work in args.workloads:
        runs = {"auto": [], args.against: []}
        for _ in range(args.rounds):
            for setting in runs:
                out = subprocess.run([sys.executable, "-c", WORKER, setting, work, str(args.examples),
                                      str(args.repeats)], check=True, capture_output=True, text=True)
                runs[setting].append(json.loads(out.stdout.strip().splitlines()[-1]))
        for setting, rs in runs.items():
            fastest = statistics.median(r["fastest"] for r in rs)
            print(f"{work:6s} threads={setting:5s} {fastest:7.3f} ms/step (median over rounds of the fastest "
                  f"epoch), chose {sorted({r['threads'] for r in rs})}")
        ratio = statistics.median(r["fastest"] for r in runs["auto"]) / statistics.median(
            r["fastest"] for r in runs[args.against])
        print(f"{work:6s} auto / {args.against}: {ratio:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
