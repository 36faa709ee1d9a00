"""The benchmarks' plumbing: contenders that train in processes of their own, taking turns.

A *contender* is one way to train one workload: scratchvae as installed (its compiled
twins where they run), scratchvae's textbook alone (``Trainer(kernels=False)``), PyTorch
eager, ... Each runs in a process of its own, a *worker*, started with its threads
limited; bench_vae.py asks each worker in turn for one timed epoch and rotates the order
every round, so that whatever else the machine does slows them alike, and no contender
shares its allocator, its caches' contents or its thread pools with another. A worker
reads one JSON command per line on stdin and answers with one JSON line on stdout:

    {"do": "epoch"}                    -> {"seconds": ...}  a few untimed steps, then one epoch
    {"do": "floor", "shapes": [...]}   -> {"ms": ...}       the step's matrix products alone
    {"do": "memory"}                   -> this process's resident memory: before training, peak
    {"do": "quit"}

scratchvae's epoch is ``Trainer.fit``'s own (its clock, its loop: ``Trainer.train_step``
on shuffled batches); torch_reference.py runs the same loop in PyTorch.

    python benchmarks/harness.py --serve '{"contender": "scratchvae", "workload": "digits", "batch": 64}'
"""

from __future__ import annotations

import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # run from a checkout

EPOCH = 60_000  # examples per reported epoch (MNIST's training set)
WORKLOADS = {  # name: (x_dim, hidden, z_dim), default batch sizes
    "mnist": ((784, (400,), 20), (128, 1024)),  # the PyTorch examples' VAE
    "digits": ((64, (256,), 2), (64,)),  # what `scratchvae train` trains by default
}
REWARM_STEPS = 5  # untimed steps before each timed epoch: the turn before evicted this one's arrays
SETTLE_S = 0.25  # pause between two turns: idle BLAS / OpenMP threads spin for about 0.1 s


def layers(workload: str) -> str:
    x_dim, hidden, z_dim = WORKLOADS[workload][0]
    return "-".join(str(n) for n in (x_dim, *hidden, z_dim))


def synthetic_images(n: int, x_dim: int, seed: int = 0, unique: int = 10_000) -> np.ndarray:
    """(n, x_dim) float32 in [0, 1], of MNIST's kind: about 80% zeros, the rest grey
    levels; ``unique`` rows drawn and repeated, written in place (making the data does
    not set a worker's peak memory). Every contender trains on these same numbers."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, x_dim), dtype=np.float32)
    u = min(unique, n)
    for start in range(0, u, 1000):
        block = rng.random((min(1000, u - start), x_dim), dtype=np.float32)
        block[block < 0.8] = 0.0
        block[block > 0] = (block[block > 0] - 0.8) * 5.0
        out[start:start + len(block)] = block
    for start in range(u, n, u):
        out[start:start + u] = out[:min(u, n - start)]
    return out


# ---- the machine and this process's memory ----------------------------------------------


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "numpy": np.__version__}
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        info["numpy_blas"] = f"{blas.get('name')} {blas.get('version')}"
    except Exception:  # an older NumPy
        info["numpy_blas"] = "unknown"
    return info


def load_average():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _status_mb(key: str):
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return None


def rss_mb() -> float:
    return _status_mb("VmRSS") or peak_rss_mb()


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MiB (Linux VmHWM, which reset_peak
    restarts; elsewhere ru_maxrss)."""
    peak = _status_mb("VmHWM")
    if peak:
        return peak
    ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return ru / 2**20 if sys.platform == "darwin" else ru / 1024


def reset_peak() -> None:
    """Restart the peak at the current resident memory (Linux; elsewhere nothing)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


# ---- the worker side ------------------------------------------------------------------------


def serve(contender) -> None:
    """Answer the parent's commands until it says quit (or closes stdin)."""
    out = sys.stdout
    sys.stdout = sys.stderr  # stray prints must not break the protocol
    contender.rss_before_mb = rss_mb()
    reset_peak()  # the peak of training, not of making the data and the model
    out.write(json.dumps({"ready": contender.info()}) + "\n")
    out.flush()
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["do"] == "quit":
            break
        if cmd["do"] == "epoch":
            reply = {"seconds": contender.epoch()}
        elif cmd["do"] == "floor":
            reply = contender.floor(cmd.get("shapes"), cmd.get("reps", 20))
        elif cmd["do"] == "memory":
            reply = {"rss_before_mb": contender.rss_before_mb, "peak_rss_mb": peak_rss_mb()}
        else:
            reply = {"error": f"unknown command {cmd['do']!r}"}
        out.write(json.dumps(reply) + "\n")
        out.flush()


class Scratch:
    """scratchvae's VAE and Adam, trained by Trainer.fit. kernels: None follows
    SCRATCHVAE_KERNELS (the compiled twins where they run), False the textbook."""

    def __init__(self, workload: str, batch: int, examples: int = EPOCH, kernels=None, backend_name="numpy",
                 warmup: int = 30, seed: int = 0, **_):
        from scratchvae import backend, kernels as engine, profile
        from scratchvae.models import VAE
        from scratchvae.optim import Adam
        from scratchvae.training import Trainer

        self.b = backend.use(backend_name, dtype="float32")
        (x_dim, hidden, z_dim), _ = WORKLOADS[workload]
        self.x = backend.asarray(synthetic_images(examples, x_dim, seed))
        self.model = VAE(x_dim, hidden=hidden, z_dim=z_dim, seed=seed)
        self.trainer = Trainer(self.model, Adam(lr=1e-3), batch_size=batch, seed=seed, progress=False, kernels=kernels)
        self.batch, self.profile, self.engine, self.kernels = batch, profile, engine, kernels
        self.rewarm = self.x[:REWARM_STEPS * batch, ...]
        if warmup:  # numba compiles on first use; caches and the allocator settle
            self.trainer.fit(self.x[:warmup * batch, ...], epochs=1)

    def info(self) -> dict:
        swapped = self.trainer.swapped  # [] where the textbook runs (kernels off, or none for this backend)
        what = self.engine.status().get(self.b.name, "?") if swapped else "the textbook"
        return {"framework": "scratchvae", "backend": self.b.name, "device": str(self.b.device),
                "kernels": what, "swapped": self.trainer.swapped,
                "dtypes": sorted({str(a.dtype) for a in (*self.model.params.values(), *self.model.grads.values())})}

    def epoch(self) -> float:
        self.trainer.fit(self.rewarm, epochs=1)  # untimed
        self.trainer.fit(self.x, epochs=1)
        return self.trainer.history["time"][-1]  # the Trainer's own clock

    def floor(self, shapes=None, reps: int = 20) -> dict:
        got = self.profile.matmul_floor(self.model, self.batch, reps=reps)
        return {"ms": got["ms"], "shapes": self.profile.matmul_shapes(self.model, self.batch)}


# ---- the parent side --------------------------------------------------------------------------


class WorkerError(RuntimeError):
    pass


class Worker:
    """A contender in a process of its own: ``ask(command) -> reply``."""

    def __init__(self, script: Path, spec: dict, threads: int = 2, retain_freed_memory: bool = False,
                 timeout: float = 3600):
        env = dict(os.environ)
        if threads:  # read when the libraries start, so set before the process does
            env.update({v: str(threads) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")})
        if retain_freed_memory:  # glibc keeps freed memory (as scratchvae.backend.retain_freed_memory)
            env.update(MALLOC_TRIM_THRESHOLD_=str(512 << 20), MALLOC_MMAP_THRESHOLD_=str(32 << 20))
        self.stderr = tempfile.TemporaryFile(mode="w+")
        self.label = spec.get("label", spec["contender"])
        self.proc = subprocess.Popen([sys.executable, str(script), "--serve", json.dumps(spec)], env=env, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr)
        self.info = self._read()["ready"]

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            self.stderr.seek(0)
            lines = self.stderr.read().strip().splitlines() or [f"exit status {self.proc.returncode}"]
            raise WorkerError(f"{self.label}: {lines[-1]}")
        return json.loads(line)

    def ask(self, command: dict) -> dict:
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                self.proc.stdin.write('{"do": "quit"}\n')
                self.proc.stdin.close()
                self.proc.wait(timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
        self.stderr.close()


def take_turns(workers: dict, rounds: int, progress=None) -> dict:
    """Each worker's epoch seconds, ``rounds`` each, the workers taking turns in an
    order rotated every round. A worker that fails drops out with its error."""
    times = {k: [] for k in workers}
    errors = {}
    for r in range(rounds):
        keys = [k for k in workers if k not in errors]
        if not keys:
            break
        for key in keys[r % len(keys):] + keys[:r % len(keys)]:
            time.sleep(SETTLE_S)
            try:
                times[key].append(workers[key].ask({"do": "epoch"})["seconds"])
            except (WorkerError, OSError, KeyError) as exc:
                errors[key] = str(exc)
        if progress:
            progress(f"  round {r + 1}/{rounds}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items() if v))
    return {"times": times, "errors": errors}


def steps_per_epoch(examples: int, batch: int) -> int:
    return math.ceil(examples / batch)


def main(argv=None) -> int:
    import argparse

    p = argparse.ArgumentParser(description="a scratchvae worker for bench_vae.py (see the module docstring)")
    p.add_argument("--serve", required=True, help="JSON: contender, workload, batch, examples, kernels, ...")
    spec = json.loads(p.parse_args(argv).serve)
    kernels = {"scratchvae": None, "textbook": False}[spec["contender"]]
    serve(Scratch(spec["workload"], spec["batch"], spec.get("examples", EPOCH), kernels=kernels,
                  backend_name=spec.get("backend", "numpy"), warmup=spec.get("warmup", 30)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
