"""``python -m scratchvae.bench`` (also ``scratchvae bench``): how fast does a VAE train here?

For each workload it reports the time per step and per epoch (60,000 examples, MNIST's
size), examples per second, the split of a step into phases (data, forward, backward,
optimizer), the matrix-multiply floor (the step's matmuls alone, timed at the same
shapes on the same backend) and the peak memory of a process that trains it.

    python -m scratchvae.bench                           # NumPy, every workload
    python -m scratchvae.bench --backend cupy            # the same on the GPU
    python -m scratchvae.bench --workloads mnist --batch-sizes 128 --json bench.json

Workloads (the model code timed is the library's own: VAE.loss_and_grads and Adam.step)
    mnist    784-400-20, as in the PyTorch examples: ReLU, Bernoulli decoder from logits,
             analytic KL, Adam (lr 1e-3), L = 1, float32; batch 128 (and 1024)
    digits   64-256-2, what ``scratchvae train`` uses by default; batch 64

The data are synthetic, of MNIST's shape (sparse grey levels in [0, 1]): the data do not
change the arithmetic. An "epoch" is timed as a fixed number of steps (``--steps``,
default a full epoch) and reported per 60,000 examples; each figure is the median over
``--repeats`` such epochs after a warm-up.

This is a host-side tool (it imports numpy for data and statistics; the allow-list in
tests/test_core_imports.py names it). benchmarks/bench_vae.py adds PyTorch beside it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from . import __version__, backend, kernels
from .checks import positive_int

EPOCH = 60_000  # examples per epoch (MNIST's training set)
PHASES = ("data", "forward", "backward", "optimizer", "other")


@dataclass(frozen=True)
class Workload:
    """A model shape and the batch sizes it is timed at."""

    name: str
    x_dim: int
    hidden: tuple
    z_dim: int
    batch_sizes: tuple

    @property
    def layers(self) -> str:
        return "-".join(str(n) for n in (self.x_dim, *self.hidden, self.z_dim))


WORKLOADS = {
    "mnist": Workload("mnist", 784, (400,), 20, (128, 1024)),
    "digits": Workload("digits", 64, (256,), 2, (64,)),
}


# ---- threads, machine, memory ---------------------------------------------------------


def set_threads(n: int | None) -> str:
    """Limit the BLAS (and OpenMP) thread pools to ``n`` threads; returns what was done.

    Uses threadpoolctl where installed (it acts on libraries already loaded); without it
    the environment variables only reach child processes, and the message says so.
    """
    if not n:
        return "threads: library defaults"
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)  # for subprocesses (memory probes)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return (f"threads: threadpoolctl is not installed, so this process keeps its BLAS default; "
                f"set OPENBLAS_NUM_THREADS={n} before starting Python (or pip install threadpoolctl)")
    global _LIMITS
    _LIMITS = threadpool_limits(n)  # applied now; kept for the life of the process
    return f"threads: {n} (threadpoolctl)"


_LIMITS = None


def machine_info() -> dict:
    """CPU model, cores, Python, NumPy and its BLAS (and the GPU where CuPy runs)."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "numpy": np.__version__, "scratchvae": __version__}
    try:
        cfg = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        info["numpy_blas"] = f"{cfg.get('name')} {cfg.get('version')}"
    except Exception:  # older NumPy: no mode="dicts"
        info["numpy_blas"] = "unknown"
    try:
        from threadpoolctl import threadpool_info

        info["threadpools"] = [{k: p.get(k) for k in ("internal_api", "version", "num_threads", "architecture")}
                               for p in threadpool_info()]
    except ImportError:
        pass
    return info


def gpu_info() -> dict:
    try:
        import cupy

        props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
        return {"gpu": props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"]),
                "cupy": cupy.__version__, "cuda_runtime": cupy.cuda.runtime.runtimeGetVersion()}
    except Exception as exc:
        return {"gpu": f"none ({type(exc).__name__})"}


def turn_off_kernels() -> None:
    """Time the array-API reference alone: no fused kernels in this process, nor in the
    memory probes it starts (they read SCRATCHVAE_KERNELS)."""
    os.environ["SCRATCHVAE_KERNELS"] = "off"
    kernels.enable(False)


def fused_kernels(backend_name: str) -> str:
    """What runs the fused kernels on this backend (``scratchvae.kernels.status``)."""
    return kernels.status().get(backend_name, "array-API reference: no kernels for this backend")


def load_average() -> list | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def rss_mb() -> float:
    """Resident memory now, in MiB (Linux /proc; elsewhere the peak so far)."""
    return _proc_status_mb("VmRSS") or peak_rss_mb()


def peak_rss_mb() -> float:
    """Peak resident memory of this process, in MiB.

    Linux: VmHWM, which ``reset_peak_rss`` can restart (and which, unlike getrusage's
    ru_maxrss, is not inherited from the parent across exec). Elsewhere ru_maxrss."""
    hwm = _proc_status_mb("VmHWM")
    if hwm:
        return hwm
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux


def reset_peak_rss() -> bool:
    """Restart the peak (Linux: write 5 to /proc/self/clear_refs). False if unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _proc_status_mb(key: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 2**10  # kB
    except OSError:
        pass
    return None


# ---- data and the floor ------------------------------------------------------------------


def synthetic_images(n: int, x_dim: int, seed: int = 0, unique: int = 10_000) -> np.ndarray:
    """(n, x_dim) float32 in [0, 1], MNIST-like: about 80% zeros, the rest grey levels.

    ``unique`` distinct rows are drawn and tiled to n rows, written straight into the
    result (no float64 or full-size temporaries, so data creation does not set the
    process's peak memory)."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, x_dim), dtype=np.float32)
    u = min(unique, n)
    for start in range(0, u, 1000):
        rows = slice(start, min(start + 1000, u))
        block = rng.random((rows.stop - rows.start, x_dim), dtype=np.float32)
        block[block < 0.8] = 0.0
        block[block > 0] = (block[block > 0] - 0.8) * 5.0  # the rest spread over (0, 1]
        out[rows] = block
    for start in range(u, n, u):
        out[start:start + u] = out[:min(u, n - start)]
    return out


def matmul_shapes(w: Workload, batch: int) -> list:
    """The matrix products of one training step: (what, m, k, n, layout).

    layout: "NN" a @ b, "TN" a.T @ b (a weight gradient x^T dy), "NT" a @ b.T (dx = dy W^T).
    Forward: every Dense. Backward: every dW, and every dx except the encoder's first
    layer (x is the data: nothing needs dL/dx, and scratchvae skips it as autograd does).
    """
    B, D, K = batch, w.x_dim, w.z_dim
    dense = []
    enc = [D, *w.hidden]
    dense += [(f"enc.fc{i + 1}", enc[i], enc[i + 1], i == 0) for i in range(len(enc) - 1)]
    dense += [("enc.mu", enc[-1], K, False), ("enc.logvar", enc[-1], K, False)]
    dec = [K, *reversed(w.hidden)]
    dense += [(f"dec.fc{i + 1}", dec[i], dec[i + 1], False) for i in range(len(dec) - 1)]
    dense += [("dec.out", dec[-1], D, False)]
    shapes = []
    for name, fan_in, fan_out, first in dense:
        shapes.append((f"{name} y = x W", B, fan_in, fan_out, "NN"))
        shapes.append((f"{name} dW = x^T dy", fan_in, B, fan_out, "TN"))
        if not first:
            shapes.append((f"{name} dx = dy W^T", B, fan_out, fan_in, "NT"))
    return shapes


def flops(shapes) -> int:
    return sum(2 * m * k * n for _, m, k, n, _ in shapes)


def _sync(b) -> None:
    if b.name == "cupy":
        import cupy

        cupy.cuda.Device().synchronize()


def time_products(shapes, normal, sync, reps: int = 20) -> dict:
    """Median seconds of each product a @ c of ``shapes``, laid out as in the training
    step ("TN": x^T dy, "NT": dy W^T), for any framework: ``normal(shape)`` makes an
    operand and ``sync()`` waits for the device. Returns {"per_shape_ms": [...],
    "matmul_ms": their sum, "flops", "gflops"}."""
    per = []
    settle()
    for what, m, k, n, layout in shapes:
        a = normal((k, m) if layout == "TN" else (m, k))
        c = normal((n, k) if layout == "NT" else (k, n))
        a = a.T if layout == "TN" else a
        c = c.T if layout == "NT" else c
        for _ in range(3):
            a @ c
        times = []
        for _ in range(reps):
            sync()
            t0 = time.perf_counter()
            a @ c
            sync()
            times.append(time.perf_counter() - t0)
        t = statistics.median(times)
        per.append({"what": what, "m": m, "k": k, "n": n, "ms": 1e3 * t, "gflops": 2 * m * k * n / t / 1e9})
    ms = sum(p["ms"] for p in per)
    total_flops = flops(shapes)
    return {"per_shape_ms": per, "matmul_ms": ms, "flops": total_flops, "gflops": total_flops / ms / 1e6}


def time_matmuls(shapes, reps: int = 20) -> dict:
    """time_products on the active backend, in its dtype (float32 for the benchmark)."""
    b = backend.current()
    return time_products(shapes, backend.RNG(1).normal, lambda: _sync(b), reps)


# ---- the scratchvae training loop, timed ------------------------------------------------------


@dataclass
class ScratchRun:
    """A VAE, Adam and device-resident data, trained by the Trainer's inner loop.

    ``steps(n)`` runs n steps as ``Trainer.fit`` does (batch by a shuffled index and
    xp.take, loss_and_grads with check=False, Adam.step, losses summed on the device and
    read back every ``log_every`` steps) and returns the seconds they took. One
    difference: every batch is full (an epoch's short last batch is skipped; figures are
    scaled to EPOCH / batch steps per epoch instead).
    """

    workload: Workload
    batch: int
    seed: int = 0
    log_every: int = 10
    n_examples: int = EPOCH
    label: str = "scratchvae"
    times: list = field(default_factory=list)

    def setup(self, data=None) -> "ScratchRun":
        from .models import VAE
        from .optim import Adam

        w = self.workload
        self.b = backend.current()
        host = synthetic_images(self.n_examples, w.x_dim, self.seed) if data is None else data
        self.X = backend.asarray(host)
        self.model = VAE(w.x_dim, hidden=w.hidden, z_dim=w.z_dim, likelihood="bernoulli",
                         activation="relu", seed=self.seed)
        self.opt = Adam(lr=1e-3)
        self.rng = backend.RNG(self.seed)
        self.perm, self.pos = None, 0
        self.window, self.sums, self.losses = [], None, []
        return self

    def _next_index(self):
        N, B = self.X.shape[0], self.batch
        if self.perm is None or self.pos + B > N:  # a new epoch: reshuffle
            self.perm, self.pos = self.rng.permutation(N), 0
        idx = self.perm[self.pos:self.pos + B]
        self.pos += B
        return idx

    def _read_window(self) -> None:
        xp = self.b.xp
        self.losses.append(float(xp.sum(xp.stack(self.window))) / len(self.window))  # one read per window
        self.window = []

    def steps(self, n: int) -> float:
        xp, model, opt = self.b.xp, self.model, self.opt
        _sync(self.b)
        t0 = time.perf_counter()
        for _ in range(n):
            xb = xp.take(self.X, self._next_index(), axis=0)
            loss, stats = model.loss_and_grads(xb, check=False)
            opt.step(model.params, model.grads)
            terms = {k: v * xb.shape[0] for k, v in {"loss": loss, **stats}.items()}  # per-example sums
            self.sums = terms if self.sums is None else {k: self.sums[k] + v for k, v in terms.items()}
            self.window.append(loss)
            if len(self.window) == self.log_every:
                self._read_window()
        if self.window:
            self._read_window()
        _sync(self.b)
        return time.perf_counter() - t0

    def breakdown(self, n: int) -> dict:
        """Milliseconds per step in each phase, over n steps. The backend is synchronized
        at every phase boundary (on a GPU this hides the overlap a normal step has)."""
        xp, model, opt, b = self.b.xp, self.model, self.opt, self.b
        split = hasattr(model, "_forward_loss")  # older versions: forward and backward as one
        acc = dict.fromkeys(PHASES, 0.0)
        _sync(b)
        for _ in range(n):
            t0 = time.perf_counter()
            xb = xp.take(self.X, self._next_index(), axis=0)
            _sync(b)
            t1 = time.perf_counter()
            if split:
                loss, stats, cache = model._forward_loss(xb, model._noise(xb, 1))
                _sync(b)
                t2 = time.perf_counter()
                model._backward(cache)
            else:
                loss, stats = model.loss_and_grads(xb, check=False)
                t2 = time.perf_counter()
            _sync(b)
            t3 = time.perf_counter()
            opt.step(model.params, model.grads)
            _sync(b)
            t4 = time.perf_counter()
            self.window.append(loss)
            if len(self.window) == self.log_every:
                self._read_window()
            _sync(b)
            t5 = time.perf_counter()
            for phase, dt in zip(PHASES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
                acc[phase] += dt
        out = {k: 1e3 * v / n for k, v in acc.items()}
        if not split:  # one call did both: say so
            out = {"data": out["data"], "forward+backward": out["forward"] + out["backward"],
                   "optimizer": out["optimizer"], "other": out["other"]}
        return out

    def dtypes(self) -> set:
        """The dtypes of every parameter, gradient and optimizer state (float32 throughout?)."""
        arrays = [*self.model.params.values(), *self.model.grads.values(),
                  *(a for slot in self.opt.state.values() for a in slot.values())]
        return {str(a.dtype) for a in arrays}


def epoch_figures(step_seconds: list, batch: int) -> dict:
    """Step times of the timed rounds -> per-epoch and per-second figures.

    ``step_ms`` is the median round; ``step_ms_best`` the fastest round, which is what a
    quiet machine gives (on a shared one, load slows some frameworks more than others,
    so the best round is the fairer comparison). An epoch is EPOCH / batch steps of this
    time (58.6 at batch 1024: the last, short batch costs in proportion to its rows)."""
    step = statistics.median(step_seconds)
    return {"step_ms": 1e3 * step, "step_ms_best": 1e3 * min(step_seconds),
            "step_ms_all": [round(1e3 * s, 4) for s in step_seconds],
            "epoch_s": step * EPOCH / batch, "examples_per_s": batch / step}


SETTLE_S = 0.25  # pause between two runs (see settle)
REWARM_STEPS = 5  # untimed steps after each switch (see rewarm)


def settle() -> None:
    """Pause so that idle worker threads of the run before stop spinning: OpenBLAS's
    spin for about 0.1 s after a call, OpenMP's (PyTorch's) a little; a run started at
    once would share the cores with them and pay for its predecessor."""
    time.sleep(SETTLE_S)


def rewarm(run) -> None:
    """A few untimed steps before each timed round: the run before it (another
    framework's, and the pause) left this run's arrays out of the caches, and training
    does not pause. (Interleaved with PyTorch, scratchvae's optimizer phase at batch 128
    reads 0.57 ms, as in a process that trains alone. Most of the 0.8 to 1.4 ms it read
    before Adam flushed subnormal moments to 0 came from those, not from the turns.)"""
    run.steps(REWARM_STEPS)


def timed_repeats(runs: list, steps: int, repeats: int, warmup: int) -> None:
    """Warm every run up, then time ``repeats`` rounds of ``steps`` steps each, the runs
    interleaved (and their order rotated each round) so that a busy machine slows them
    alike. Appends seconds per step to each run's ``times``."""
    for r in runs:
        r.steps(warmup)
    for i in range(repeats):
        k = i % len(runs)
        for r in runs[k:] + runs[:k]:
            settle()
            rewarm(r)
            r.times.append(r.steps(steps) / steps)


def timed_breakdowns(runs: list, steps: int, rounds: int = 5) -> list:
    """Each run's phase times (ms per step), the median over ``rounds`` rounds of
    ``steps`` steps, the runs interleaved as in ``timed_repeats``."""
    got = [[] for _ in runs]
    for i in range(rounds):
        k = i % len(runs)
        for j in list(range(k, len(runs))) + list(range(k)):
            settle()
            rewarm(runs[j])
            got[j].append(runs[j].breakdown(steps))
    return [{phase: statistics.median(bd[phase] for bd in bds) for phase in bds[0]} for bds in got]


# ---- memory, measured in a fresh process ---------------------------------------------------


def probe_memory(workload: str, batch: int, steps: int, backend_name: str, threads: int | None,
                 retain_memory: bool = False) -> dict:
    """Train ``steps`` steps in a child process; return its resident memory before
    training (after data and model were made) and at its peak, in MiB (and the GPU
    memory pool's size on CuPy)."""
    cmd = [sys.executable, "-m", "scratchvae.bench", "--probe-memory", "--workloads", workload,
           "--batch-sizes", str(batch), "--steps", str(steps), "--backend", backend_name]
    if threads:
        cmd += ["--threads", str(threads)]
    if retain_memory:
        cmd.append("--retain-freed-memory")
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def _probe(w: Workload, batch: int, steps: int) -> dict:
    run = ScratchRun(w, batch).setup()
    run.steps(2)  # every buffer made once
    before = rss_mb()
    reset_peak_rss()  # the peak of training, not of making the data
    run.steps(steps)
    out = {"rss_before_mb": before, "peak_rss_mb": peak_rss_mb()}
    out["train_increment_mb"] = out["peak_rss_mb"] - before
    if run.b.name == "cupy":
        import cupy

        out["gpu_pool_mb"] = cupy.get_default_memory_pool().total_bytes() / 2**20
    return out


# ---- the whole run ----------------------------------------------------------------------------


def bench(workloads=("mnist", "digits"), batch_sizes=None, backend_name: str | None = "numpy", steps: int | None = None,
          repeats: int = 5, warmup: int = 20, breakdown_steps: int = 100, floor_reps: int = 20,
          memory: bool = True, threads: int | None = 2, digits_batch_size: int = 64, n_examples: int = EPOCH,
          retain_memory: bool = False, progress=print) -> dict:
    """Time every workload; returns the figures as a JSON-able dict (see ``table``).

    Inputs:
    - workloads: names from WORKLOADS.
    - batch_sizes: batch sizes of "mnist" (default 128 and 1024); "digits" uses
      ``digits_batch_size`` (64, the CLI's default).
    - steps: steps per timed epoch (None: a full epoch, 60,000 examples); the figures
      are scaled to 60,000 examples either way.
    - repeats, warmup: timed epochs (the median is reported) and warm-up steps.
    - memory: also measure peak memory in a child process per run.
    - threads: BLAS threads (2 here, as for PyTorch's set_num_threads); None keeps the default.
    - retain_memory: call backend.retain_freed_memory() first (glibc keeps freed memory).
    """
    plan = [(WORKLOADS[name], B) for name in workloads
            for B in ((batch_sizes or WORKLOADS[name].batch_sizes) if name == "mnist" else (digits_batch_size,))]
    for w, B in plan:  # a batch is a slice of the data: a larger one would be cut short, unreported
        if B > n_examples:
            raise ValueError(f"batch size {B} of workload {w.name} is larger than the data set "
                             f"({n_examples} examples); choose at most {n_examples}")
    thread_note = set_threads(threads)
    retained = backend.retain_freed_memory() if retain_memory else False
    b = backend.use(backend_name, dtype="float32")
    result = {"tool": "scratchvae.bench", "date": datetime.datetime.now().isoformat(timespec="seconds"),
              "command": " ".join(sys.argv), "machine": machine_info(), "backend": b.name,
              "device": str(b.device), "threads": threads, "threads_note": thread_note,
              "kernels": fused_kernels(b.name),
              "retain_freed_memory": retained, "load_average_before": load_average(), "runs": []}
    if b.name == "cupy":
        result["machine"].update(gpu_info())
    for w, B in plan:
        n_steps = steps or math.ceil(n_examples / B)
        progress(f"{w.name} {w.layers} batch {B}: {repeats} x {n_steps} steps on {b.name} ...")
        run = ScratchRun(w, B, n_examples=n_examples).setup()
        timed_repeats([run], n_steps, repeats, warmup)
        rec = {"workload": w.name, "layers": w.layers, "batch_size": B, "steps_timed": n_steps,
               "repeats": repeats, "scratchvae": epoch_figures(run.times, B)}
        rec["scratchvae"]["breakdown_ms"] = timed_breakdowns([run], max(1, breakdown_steps // 5))[0]
        rec["scratchvae"]["dtypes"] = sorted(run.dtypes())
        rec["scratchvae"]["final_loss"] = run.losses[-1]
        shapes = matmul_shapes(w, B)
        fl = time_matmuls(shapes, floor_reps)
        fl["epoch_s"] = fl["matmul_ms"] / 1e3 * EPOCH / B
        rec["floor"] = fl
        rec["scratchvae"]["over_floor"] = rec["scratchvae"]["step_ms"] / fl["matmul_ms"]
        if memory:
            rec["scratchvae"]["memory"] = probe_memory(w.name, B, min(n_steps, 200), b.name, threads, retained)
        result["runs"].append(rec)
    result["load_average_after"] = load_average()
    return result


def table(result: dict, columns=("scratchvae",)) -> str:
    """The figures as a plain-text table: one row per (workload, batch, framework)."""
    head = (f"{'workload':<18}{'batch':>6} {'who':<22}{'ms/step':>9}{'s/epoch':>9}{'ex/s':>10}"
            f"{'xfloor':>8}{'peak MiB':>10}{'train MiB':>10}")
    lines = [head, "-" * len(head)]
    for rec in result["runs"]:
        fl = rec["floor"]
        for who in columns + ("floor",):
            if who == "floor":
                lines.append(f"{rec['workload'] + ' ' + rec['layers']:<18}{rec['batch_size']:>6} "
                             f"{'matmul floor':<22}{fl['matmul_ms']:>9.3f}{fl['epoch_s']:>9.2f}"
                             f"{rec['batch_size'] / fl['matmul_ms'] * 1e3:>10.0f}{1.0:>8.2f}")
                continue
            f = rec.get(who)
            if not f or "step_ms" not in f:
                continue
            mem = f.get("memory") or {}
            peak = f"{mem['peak_rss_mb']:>10.0f}" if "peak_rss_mb" in mem else f"{'-':>10}"
            inc = f"{mem['train_increment_mb']:>10.0f}" if "train_increment_mb" in mem else f"{'-':>10}"
            lines.append(f"{rec['workload'] + ' ' + rec['layers']:<18}{rec['batch_size']:>6} {who:<22}"
                         f"{f['step_ms']:>9.3f}{f['epoch_s']:>9.2f}{f['examples_per_s']:>10.0f}"
                         f"{f['step_ms'] / fl['matmul_ms']:>8.2f}{peak}{inc}")
        bd = rec.get("scratchvae", {}).get("breakdown_ms")
        if bd:
            total = sum(bd.values())
            parts = ", ".join(f"{k} {v:.3f} ms ({100 * v / total:.0f}%)" for k, v in bd.items())
            lines.append(f"{'':<25}scratchvae phases: {parts}")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m scratchvae.bench", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    p.add_argument("--probe-memory", action="store_true", help=argparse.SUPPRESS)
    return p


def batch_size(text: str) -> int:
    """An ``argparse`` type: a batch size from 1 to EPOCH (the examples a run holds)."""
    B = positive_int(text)
    if B > EPOCH:
        raise argparse.ArgumentTypeError(f"a batch cannot hold more than the {EPOCH} examples of the data set, "
                                         f"got {text!r}")
    return B


def add_arguments(p: argparse.ArgumentParser, with_backend: bool = True) -> None:
    """The bench options (shared by ``scratchvae bench``)."""
    if with_backend:
        p.add_argument("--backend", default="numpy", choices=["numpy", "cupy", "auto", "array_api_strict"],
                       help="array backend to time (default: numpy)")
    p.add_argument("--workloads", nargs="+", default=["mnist", "digits"], choices=sorted(WORKLOADS),
                   help="what to time (default: mnist digits)")
    p.add_argument("--batch-sizes", type=batch_size, nargs="+", default=None,
                   help="batch sizes of the mnist workload (default: 128 1024)")
    p.add_argument("--digits-batch-size", type=batch_size, default=64, help="batch size of the digits workload (default: 64)")
    p.add_argument("--steps", type=positive_int, default=None,
                   help="steps per timed epoch (default: a full epoch of 60,000 examples); figures are scaled to 60,000")
    p.add_argument("--repeats", type=positive_int, default=5, help="timed epochs; the median is reported (default: 5)")
    p.add_argument("--warmup", type=int, default=20, help="warm-up steps (default: 20)")
    p.add_argument("--threads", type=int, default=2, help="BLAS threads, 0 for the library default (default: 2)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory probes (child processes)")
    p.add_argument("--retain-freed-memory", action="store_true",
                   help="glibc keeps freed memory for reuse (scratchvae.backend.retain_freed_memory): "
                        "no page faults from re-made arrays")
    p.add_argument("--no-kernels", action="store_true",
                   help="time the array-API reference alone, without scratchvae.kernels "
                        "(as SCRATCHVAE_KERNELS=off)")
    p.add_argument("--json", type=os.path.expanduser, default=None, help="also write the figures to this JSON file")


def run_from_args(args) -> int:
    """Run with parsed options (``python -m scratchvae.bench`` and ``scratchvae bench``)."""
    if args.no_kernels:
        turn_off_kernels()
    if getattr(args, "probe_memory", False):
        set_threads(args.threads or None)
        if args.retain_freed_memory:
            backend.retain_freed_memory()
        backend.use(args.backend or "numpy", dtype="float32")
        w = WORKLOADS[args.workloads[0]]
        B = args.batch_sizes[0] if args.batch_sizes else (w.batch_sizes[0] if w.name == "mnist"
                                                          else args.digits_batch_size)
        print(json.dumps(_probe(w, B, args.steps or 50)))
        return 0
    if args.json:
        _check_writable(args.json)  # now, not after minutes of timing
    result = bench(args.workloads, args.batch_sizes, args.backend, args.steps, args.repeats,
                   args.warmup, memory=not args.no_memory, threads=args.threads or None,
                   digits_batch_size=args.digits_batch_size, retain_memory=args.retain_freed_memory,
                   progress=lambda s: print(s, file=sys.stderr, flush=True))
    print(f"scratchvae {__version__} on {result['backend']} ({result['device']}); {result['machine']['cpu']}, "
          f"{result['machine']['cores']} cores; {result['threads_note']}; kernels: {result['kernels']}; "
          f"{'glibc keeps freed memory; ' if result['retain_freed_memory'] else ''}"
          f"load average {result['load_average_before']} -> {result['load_average_after']}")
    print(table(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
        print(f"wrote {args.json}")
    return 0


def _check_writable(path: str) -> None:
    """Raise OSError (IsADirectoryError, PermissionError, ...) unless ``path`` can be written;
    a file it had to create for the test is removed again."""
    existed = os.path.lexists(path)
    with open(path, "a"):  # "a": an existing file keeps its contents
        pass
    if not existed:
        os.remove(path)


def main(argv=None) -> int:
    try:
        return run_from_args(_parser().parse_args(argv))
    except (OSError, ValueError) as exc:  # e.g. --json naming a folder: one line, as from `scratchvae bench`
        print(f"python -m scratchvae.bench: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
