"""The reference workload in PyTorch eager: the VAE of the PyTorch examples.

    fc1: 784 -> 400, ReLU; fc21, fc22: 400 -> 20 (mu, logvar); fc3: 20 -> 400, ReLU;
    fc4: 400 -> 784 (logits). Loss: BCE with logits (sum over pixels) + analytic KL,
    averaged over the batch (nats per example, as scratchvae's); Adam (lr 1e-3), L = 1.

The training loop mirrors scratchvae's Trainer (and scratchvae.bench.ScratchRun): a
shuffled index per epoch, the batch gathered from device-resident data, losses summed on
the device and read back every ``log_every`` steps. PyTorch is used here only as a
yardstick; it is never a dependency of scratchvae.

    python benchmarks/torch_reference.py --workload mnist --batch-size 128   # an epoch, after 30 warm-up steps
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from scratchvae.bench import EPOCH, PHASES, WORKLOADS, peak_rss_mb, reset_peak_rss, rss_mb, synthetic_images  # noqa: E402


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
    """BCE from logits + KL(q || N(0, I)), per example (mean over the batch)."""
    n = x.shape[0]
    rec = torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="sum") / n
    kl = 0.5 * torch.sum(mu * mu + logvar.exp() - 1.0 - logvar) / n
    return rec + kl


class TorchRun:
    """Same interface as scratchvae.bench.ScratchRun: setup(), steps(n) -> seconds,
    breakdown(n) -> ms per phase, and ``times`` for timed_repeats."""

    def __init__(self, workload, batch: int, fused: bool = False, device: str = "cpu", seed: int = 0,
                 log_every: int = 10, n_examples: int = EPOCH):
        self.workload, self.batch, self.fused, self.device = workload, batch, fused, torch.device(device)
        self.seed, self.log_every, self.n_examples = seed, log_every, n_examples
        self.label = "pytorch eager" + (" fused Adam" if fused else "") + (f" ({device})" if device != "cpu" else "")
        self.times, self.losses = [], []

    def setup(self, data=None) -> "TorchRun":
        w = self.workload
        torch.manual_seed(self.seed)
        host = synthetic_images(self.n_examples, w.x_dim, self.seed) if data is None else data
        self.X = torch.from_numpy(host).to(self.device)  # no copy on the CPU
        self.model = TorchVAE(w.x_dim, w.hidden, w.z_dim).to(self.device)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-3, fused=self.fused)
        self.gen = torch.Generator(device="cpu").manual_seed(self.seed)
        self.perm, self.pos, self.window, self.sums = None, 0, [], None
        return self

    def _sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _next_index(self):
        N, B = self.X.shape[0], self.batch
        if self.perm is None or self.pos + B > N:
            self.perm, self.pos = torch.randperm(N, generator=self.gen).to(self.device), 0
        idx = self.perm[self.pos:self.pos + B]
        self.pos += B
        return idx

    def _read_window(self):
        self.losses.append(float(torch.stack(self.window).sum().item()) / len(self.window))
        self.window = []

    def _step(self, xb):
        self.opt.zero_grad(set_to_none=True)
        logits, mu, logvar = self.model(xb)
        loss = neg_elbo(logits, xb, mu, logvar)
        loss.backward()
        self.opt.step()
        return loss.detach()

    def steps(self, n: int) -> float:
        self._sync()
        t0 = time.perf_counter()
        for _ in range(n):
            xb = self.X.index_select(0, self._next_index())
            loss = self._step(xb)
            self.sums = loss if self.sums is None else self.sums + loss
            self.window.append(loss)
            if len(self.window) == self.log_every:
                self._read_window()
        if self.window:
            self._read_window()
        self._sync()
        return time.perf_counter() - t0

    def breakdown(self, n: int) -> dict:
        acc = dict.fromkeys(PHASES, 0.0)
        for _ in range(n):
            self._sync()
            t0 = time.perf_counter()
            xb = self.X.index_select(0, self._next_index())
            self._sync()
            t1 = time.perf_counter()
            self.opt.zero_grad(set_to_none=True)
            logits, mu, logvar = self.model(xb)
            loss = neg_elbo(logits, xb, mu, logvar)
            self._sync()
            t2 = time.perf_counter()
            loss.backward()
            self._sync()
            t3 = time.perf_counter()
            self.opt.step()
            self._sync()
            t4 = time.perf_counter()
            self.window.append(loss.detach())
            if len(self.window) == self.log_every:
                self._read_window()
            self._sync()
            t5 = time.perf_counter()
            for phase, dt in zip(PHASES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
                acc[phase] += dt
        return {k: 1e3 * v / n for k, v in acc.items()}


def time_matmuls(shapes, device: str = "cpu", reps: int = 20) -> dict:
    """The floor measured with PyTorch's BLAS at the same shapes and layouts."""
    from scratchvae.bench import time_products

    dev = torch.device(device)
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    g = torch.Generator(device="cpu").manual_seed(1)
    return time_products(shapes, lambda shape: torch.randn(shape, generator=g).to(dev), sync, reps)


def probe(workload: str, batch: int, fused: bool, device: str, steps: int) -> dict:
    """Resident memory before and at the peak of ``steps`` training steps (this process)."""
    run = TorchRun(WORKLOADS[workload], batch, fused=fused, device=device).setup()
    run.steps(2)
    before = rss_mb()
    reset_peak_rss()
    run.steps(steps)
    out = {"rss_before_mb": before, "peak_rss_mb": peak_rss_mb()}
    out["train_increment_mb"] = out["peak_rss_mb"] - before
    if run.device.type == "cuda":
        out["gpu_max_allocated_mb"] = torch.cuda.max_memory_allocated(run.device) / 2**20
        out["gpu_max_reserved_mb"] = torch.cuda.max_memory_reserved(run.device) / 2**20
    return out


def flush_denormals_from_now_on() -> None:
    """torch.set_flush_denormal(True), first thing in a process: x86's flush-to-zero
    flags, PyTorch's remedy for subnormal numbers (which its Adam lets its moments decay
    into, and which x86 computes many times slower; scratchvae's Adam sets them to 0).
    The flags belong to a thread, and threads inherit them when they start, so this must
    come before PyTorch starts its worker threads, and it changes NumPy's arithmetic in
    this thread too: bench_vae.py measures PyTorch with it in a process of its own."""
    if not torch.set_flush_denormal(True):
        raise SystemExit("torch.set_flush_denormal is not supported on this CPU")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workload", default="mnist", choices=sorted(WORKLOADS))
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--fused", action="store_true", help="torch.optim.Adam(fused=True)")
    p.add_argument("--flush-denormal", action="store_true",
                   help="torch.set_flush_denormal(True) before anything runs (see flush_denormals_from_now_on)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=0, help="steps per timed round (0: a whole epoch, 60,000 / batch)")
    p.add_argument("--rounds", type=int, default=1, help="timed rounds (the median is printed)")
    p.add_argument("--warmup", type=int, default=30, help="untimed steps first")
    p.add_argument("--json", action="store_true", help="print the seconds per step of every round as JSON")
    p.add_argument("--probe-memory", action="store_true", help="print peak memory as JSON (used by bench_vae.py)")
    p.add_argument("--retain-freed-memory", action="store_true", help="glibc keeps freed memory (as bench_vae.py)")
    args = p.parse_args(argv)
    if args.flush_denormal:
        flush_denormals_from_now_on()
    if args.retain_freed_memory:
        from scratchvae.backend import retain_freed_memory

        retain_freed_memory()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.probe_memory:
        print(json.dumps(probe(args.workload, args.batch_size, args.fused, args.device, args.steps or 100)))
        return 0
    run = TorchRun(WORKLOADS[args.workload], args.batch_size, fused=args.fused, device=args.device).setup()
    if args.flush_denormal:
        run.label += " +FTZ"
    steps = args.steps or math.ceil(EPOCH / args.batch_size)
    run.steps(args.warmup)
    times = [run.steps(steps) / steps for _ in range(args.rounds)]
    if args.json:
        print(json.dumps({"label": run.label, "steps": steps, "step_seconds": times}))
    else:
        t = sorted(times)[len(times) // 2]
        print(f"{run.label}: {1e3 * t:.3f} ms/step, {t * EPOCH / args.batch_size:.2f} s/epoch "
              f"(median of {args.rounds} rounds of {steps} steps)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
