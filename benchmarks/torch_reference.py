"""The reference workload in PyTorch eager: the VAE of the PyTorch examples.

    fc1: 784 -> 400, ReLU; fc21, fc22: 400 -> 20 (mu, logvar); fc3: 20 -> 400, ReLU;
    fc4: 400 -> 784 (logits). Loss: BCE with logits (summed over pixels) + analytic KL,
    averaged over the batch (nats per example, as scratchvae's); Adam (lr 1e-3), L = 1.

An epoch runs the loop of scratchvae's ``Trainer.fit``: a shuffled index, the batch
gathered from the data in memory, one step, the losses summed on the device and read
back every 10 steps. PyTorch is a yardstick here, never a dependency of scratchvae.
bench_vae.py starts this script as a worker (harness.py); by hand it times one contender:

    python benchmarks/torch_reference.py --workload mnist --batch-size 128           # eager
    python benchmarks/torch_reference.py --workload mnist --batch-size 128 --fused --flush-denormal
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402

LOG_EVERY = 10  # steps between reading the running loss back, as Trainer.fit


class TorchVAE(torch.nn.Module):
    """The PyTorch examples' VAE, generalized to the workload's sizes."""

    def __init__(self, x_dim: int, hidden: tuple, z_dim: int):
        super().__init__()
        enc, dec = [x_dim, *hidden], [z_dim, *reversed(hidden)]
        self.enc = torch.nn.ModuleList(torch.nn.Linear(a, b) for a, b in zip(enc[:-1], enc[1:]))
        self.mu = torch.nn.Linear(enc[-1], z_dim)
        self.logvar = torch.nn.Linear(enc[-1], z_dim)
        self.dec = torch.nn.ModuleList(torch.nn.Linear(a, b) for a, b in zip(dec[:-1], dec[1:]))
        self.out = torch.nn.Linear(dec[-1], x_dim)

    def forward(self, x):
        h = x
        for layer in self.enc:
            h = torch.relu(layer(h))
        mu, logvar = self.mu(h), self.logvar(h)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)  # z = mu + sigma eps
        for layer in self.dec:
            z = torch.relu(layer(z))
        return self.out(z), mu, logvar


def neg_elbo(logits, x, mu, logvar):
    """BCE from logits + KL(q || N(0, I)), per example (mean over the batch): (loss, rec, kl)."""
    n = x.shape[0]
    rec = torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="sum") / n
    kl = 0.5 * torch.sum(mu * mu + logvar.exp() - 1.0 - logvar) / n
    return rec + kl, rec, kl


class Torch:
    """One PyTorch contender: eager with torch.optim.Adam, ``fused`` for Adam(fused=True),
    ``flush_denormal`` for torch.set_flush_denormal(True) (set before anything runs)."""

    def __init__(self, workload: str, batch: int, examples: int = harness.EPOCH, fused: bool = False,
                 flush_denormal: bool = False, device: str = "cpu", threads: int = 2, warmup: int = 30,
                 seed: int = 0, **_):
        if flush_denormal and not torch.set_flush_denormal(True):
            # x86's flush-to-zero flags belong to a thread, and threads inherit them when they
            # start: set first thing, before PyTorch starts its worker threads
            raise SystemExit("torch.set_flush_denormal is not supported on this CPU")
        if threads:
            torch.set_num_threads(threads)
        torch.manual_seed(seed)
        (x_dim, hidden, z_dim), _ = harness.WORKLOADS[workload]
        self.device, self.batch, self.fused, self.flush_denormal = torch.device(device), batch, fused, flush_denormal
        self.x = torch.from_numpy(harness.synthetic_images(examples, x_dim, seed)).to(self.device)  # no copy on the CPU
        self.model = TorchVAE(x_dim, hidden, z_dim).to(self.device)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-3, fused=fused)
        self.gen = torch.Generator(device="cpu").manual_seed(seed)
        self.last_loss = float("nan")
        if warmup:
            self.run(self.x[:warmup * batch])

    def info(self) -> dict:
        return {"framework": "pytorch", "torch": torch.__version__, "device": str(self.device),
                "threads": torch.get_num_threads(), "fused_adam": self.fused, "flush_denormal": self.flush_denormal,
                "parallel_info": torch.__config__.parallel_info().splitlines()[:6]}

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def run(self, x) -> float:
        """One epoch over ``x`` as Trainer.fit runs it; returns its seconds."""
        self._sync()
        t0 = time.perf_counter()
        n, B = x.shape[0], self.batch
        perm = torch.randperm(n, generator=self.gen).to(self.device)
        sums, window = None, []
        for start in range(0, n, B):
            xb = x.index_select(0, perm[start:start + B])
            self.opt.zero_grad(set_to_none=True)
            logits, mu, logvar = self.model(xb)
            loss, rec, kl = neg_elbo(logits, xb, mu, logvar)
            loss.backward()
            self.opt.step()
            rows = xb.shape[0]  # per-example sums over the epoch, on the device
            terms = torch.stack([loss.detach(), rec.detach(), kl.detach()]) * rows
            sums = terms if sums is None else sums + terms
            window.append(loss.detach())
            if len(window) == LOG_EVERY or start + B >= n:
                self.last_loss = float(torch.stack(window).sum()) / len(window)  # one read per window
                window = []
        float(sums[0])
        self._sync()
        return time.perf_counter() - t0

    def epoch(self) -> float:
        self.run(self.x[:harness.REWARM_STEPS * self.batch])  # untimed
        return self.run(self.x)

    def floor(self, shapes, reps: int = 20) -> dict:
        """The step's matrix products (shapes from the scratchvae worker) with PyTorch's BLAS."""
        g = torch.Generator(device="cpu").manual_seed(1)
        total = 0.0
        for _, m, k, n, layout in shapes:
            a = torch.randn((k, m) if layout == "TN" else (m, k), generator=g).to(self.device)
            c = torch.randn((n, k) if layout == "NT" else (k, n), generator=g).to(self.device)
            a, c = (a.T if layout == "TN" else a), (c.T if layout == "NT" else c)
            a @ c
            times = []
            for _ in range(reps):
                self._sync()
                t0 = time.perf_counter()
                a @ c
                self._sync()
                times.append(time.perf_counter() - t0)
            total += 1e3 * statistics.median(times)
        return {"ms": total}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--serve", default=None, help=argparse.SUPPRESS)  # a worker for bench_vae.py (JSON spec)
    p.add_argument("--workload", default="mnist", choices=sorted(harness.WORKLOADS))
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--examples", type=int, default=harness.EPOCH, help="examples per epoch (default: 60,000)")
    p.add_argument("--fused", action="store_true", help="torch.optim.Adam(fused=True)")
    p.add_argument("--flush-denormal", action="store_true", help="torch.set_flush_denormal(True) first")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--epochs", type=int, default=3, help="timed epochs (the median is printed)")
    p.add_argument("--json", action="store_true", help="end with a JSON line: epoch_s, ms_per_step")
    args = p.parse_args(argv)
    if args.serve:
        spec = json.loads(args.serve)
        harness.serve(Torch(**spec))
        return 0
    run = Torch(args.workload, args.batch_size, args.examples, fused=args.fused, flush_denormal=args.flush_denormal,
                device=args.device, threads=args.threads)
    times = [run.epoch() for _ in range(args.epochs)]
    t = statistics.median(times)
    steps = harness.steps_per_epoch(args.examples, args.batch_size)
    print(f"pytorch {torch.__version__}{' fused Adam' if args.fused else ''}{' +FTZ' if args.flush_denormal else ''}: "
          f"{t:.3f} s per epoch of {args.examples} examples, {1e3 * t / steps:.3f} ms per step "
          f"(median of {args.epochs}), loss {run.last_loss:.2f}")
    if args.json:
        print(json.dumps({"epoch_s": t, "ms_per_step": 1e3 * t / steps}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
