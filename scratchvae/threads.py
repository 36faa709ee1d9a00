"""How many threads the BLAS pool may use while a model trains: a policy that survives
a busy machine.

NumPy's matrix products run on OpenBLAS (or MKL), whose worker threads wait for each
other at the end of every product. On a quiet machine with large products that pays;
on a laptop with a browser and three notebooks open, or a shared JupyterHub server,
the other threads are often not running, and every small product waits for one that
is not scheduled: a step can get many times slower than on one thread. The policy:

1. the user's choice wins: ``Trainer(threads=n)``, ``scratchvae train --threads n``,
   ``threads.configure(n)``, or ``SCRATCHVAE_THREADS=n`` (``auto``, the default, lets the
   policy choose);
2. products too small to pay for waking a thread (``SMALL_PRODUCT_FLOPS``) run on one;
3. otherwise the first steps of the run measure: they take turns on 1 and on N threads
   (real training steps, none wasted) and the faster setting is kept;
4. the step time is watched: if it drifts (another program starts or stops beside this
   one), the steps measure again.

The thread count changes rounding nowhere that matters here: a product's sums run in
the same order whatever the number of threads (OpenBLAS splits the output, not the sum),
and the compiled kernels (``scratchvae.kernels``) are serial. The limits are applied with
threadpoolctl, the well-kept library for changing BLAS and OpenMP pools at run time,
only while a Trainer trains (``ThreadPolicy.limits``), and put back afterwards. On a
GPU (CuPy) the policy does nothing: BLAS runs on the device.

Code that trains without a Trainer (a lesson's PCA, EM loops) gets the same policy for
the whole process from one call, ``threads.configure()``: it measures one product of a
typical size on 1 and on N threads and keeps the faster (or applies the user's setting).
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time

ENV = "SCRATCHVAE_THREADS"
SMALL_PRODUCT_FLOPS = 4e6  # about a millisecond's work on one core: a wake-up costs more
TURNS = 4  # steps in a row on one setting while measuring
ROUNDS = 3  # turns of each setting before choosing
WINDOW = 50  # steps whose median step time is compared with the chosen setting's
DRIFT = 1.5  # a median this many times slower (or faster) than measured: measure again


def parse_setting(value) -> int | str:
    """"auto" or a positive thread count, from a CLI string, an int or None (the
    environment variable, else "auto"); ValueError saying what to pass otherwise."""
    if value is None:
        value = os.environ.get(ENV, "auto")
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("", "auto"):
            return "auto"
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"threads must be 'auto' or a positive whole number, got {value!r} "
                             f"(from {ENV} or --threads)") from None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"threads must be 'auto' or a positive whole number, got {value!r}")
    return value


def blas_threads() -> int:
    """How many threads the BLAS pool starts with here (1 where threadpoolctl finds none)."""
    from threadpoolctl import threadpool_info

    counts = [p["num_threads"] for p in threadpool_info() if p.get("user_api") == "blas"]
    return max(counts, default=1)


class ThreadPolicy:
    """The thread count of one training run, chosen and watched step by step.

        policy = ThreadPolicy("auto", largest_product_flops=2 * 128 * 784 * 400)
        with policy.limits():
            for each step:
                n = policy.threads_for_next_step()   # applied before the step
                ... train one step, timing it ...
                policy.record(seconds)
        policy.describe()                            # what was chosen, and why

    Inputs:
    - setting: "auto", a thread count, or None for SCRATCHVAE_THREADS (else "auto").
    - largest_product_flops: 2 M K N of the step's largest matrix product.
    - available: threads the pool may use at most (None: what BLAS starts with).
    - device: "cpu" or "gpu"; on a GPU the policy applies nothing.
    """

    def __init__(self, setting=None, largest_product_flops: float = float("inf"),
                 available: int | None = None, device: str = "cpu"):
        self.setting = parse_setting(setting)
        self.available = available
        self.device = device
        self.flops = float(largest_product_flops)
        self.choice: int | None = None  # the thread count in force once chosen
        self.reason = ""
        self.changes: list = []  # (step, threads, why) for every choice made
        self._step = 0
        self._trial: list = []  # measuring: the settings still to try, a step each
        self._times: dict = {}  # measuring: setting -> step times
        self._recent: list = []  # running: the last WINDOW step times
        self._reference = None  # the chosen setting's median step time
        self._applied = None
        self._originals = None  # inside limits(): each BLAS library's thread count before

    # ---- the decisions ---------------------------------------------------------------

    def start(self) -> None:
        """Decide what can be decided before any step runs."""
        n = self.available if self.available is not None else (blas_threads() if self.device == "cpu" else 1)
        self.available = max(1, int(n))
        if self.device != "cpu":
            self._choose(None, "not applied: the matrix products run on the GPU")
        elif self.setting != "auto":
            self._choose(self.setting, f"set by the user ({ENV} or --threads)")
        elif self.available == 1:
            self._choose(1, "one thread is all BLAS has here")
        elif self.flops < SMALL_PRODUCT_FLOPS:
            self._choose(1, f"products of {self.flops:.2g} flops are too small to share between threads")
        else:
            self._measure("measured at the start")

    @property
    def measuring(self) -> bool:
        """Whether the coming steps still take turns on 1 and N threads."""
        return bool(self._trial)

    def threads_for_next_step(self) -> int | None:
        """The thread count for the coming step (applied to BLAS), or None (the GPU)."""
        n = self._trial[0] if self._trial else self.choice
        self._apply(n)
        return n

    def record(self, seconds: float) -> None:
        """The time the step just taken took."""
        self._step += 1
        if self._trial:
            n = self._trial.pop(0)
            self._times.setdefault(n, []).append(seconds)
            if not self._trial:  # every turn taken: keep the faster setting
                medians = {k: statistics.median(v) for k, v in self._times.items()}
                best = min(medians, key=medians.get)
                self._reference = medians[best]
                detail = ", ".join(f"{k}: {1e3 * v:.3g} ms" for k, v in sorted(medians.items()))
                self._choose(best, f"{self._why}: median {detail}")
            return
        if self._reference is None:  # never measured: a fixed choice, nothing to watch
            return
        self._recent.append(seconds)
        if len(self._recent) == WINDOW:
            now = statistics.median(self._recent)
            self._recent = []
            if now > DRIFT * self._reference or now * DRIFT < self._reference:
                self._measure(f"measured again at step {self._step}: the step time went from "
                              f"{1e3 * self._reference:.3g} to {1e3 * now:.3g} ms")

    def describe(self) -> str:
        """One line: the thread count in force and why."""
        if self.choice is None and self.measuring:
            return f"threads: measuring 1 against {self.available}"
        if self.choice is None:
            return f"threads: {self.reason}"
        return f"threads: {self.choice} ({self.reason})"

    def record_dict(self) -> dict:
        """What was chosen, for config.json and checkpoints."""
        return {"setting": self.setting, "threads": self.choice, "reason": self.reason,
                "changes": [list(c) for c in self.changes]}

    # ---- the machinery ---------------------------------------------------------------

    def _measure(self, why: str) -> None:
        self._why = why
        self._times, self._recent = {}, []
        self._trial = [n for _ in range(ROUNDS) for n in (1, self.available) for _ in range(TURNS)]

    def _choose(self, n, why: str) -> None:
        self.choice, self.reason = n, why
        self.changes.append((self._step, n, why))

    def _apply(self, n) -> None:
        if n is None or n == self._applied or self._originals is None:
            return
        blas = _blas_libraries()  # afresh: a library may have loaded since (numba loads SciPy's)
        for lib in blas.lib_controllers:
            self._originals.setdefault(lib.filepath, lib.num_threads)
        blas.limit(limits=n)
        self._applied = n

    @contextlib.contextmanager
    def limits(self):
        """Apply the policy's thread counts inside, and put every pool back after."""
        if self.device != "cpu":
            yield self
            return
        self._originals = {lib.filepath: lib.num_threads for lib in _blas_libraries().lib_controllers}
        self._applied = None
        try:
            yield self
        finally:
            for lib in _blas_libraries().lib_controllers:
                if lib.filepath in self._originals and lib.num_threads != self._originals[lib.filepath]:
                    lib.set_num_threads(self._originals[lib.filepath])
            self._originals, self._applied = None, None


def _blas_libraries():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController().select(user_api="blas")


_process_limiter = None  # the limit configure() set for the whole process


def configure(setting=None, shape=(128, 784, 400), repeats: int = 3) -> str:
    """Set the BLAS thread count of the whole process by the policy; returns one line
    saying what was chosen and why (the lessons print it).

    ``setting``: "auto" (measure), a thread count, or None for SCRATCHVAE_THREADS.
    ``shape``: (N, K, M) of the product measured in "auto", float32: N x K times K x M.
    A Trainer still applies its own policy while it trains, and puts this one back after.
    """
    global _process_limiter
    import numpy as np
    from threadpoolctl import ThreadpoolController

    controller = ThreadpoolController()
    restore()  # a second call starts from the pool's own default
    n, k, m = shape
    policy = ThreadPolicy(setting, largest_product_flops=2.0 * n * k * m)
    policy.start()
    rng = np.random.default_rng(0)
    a, b = rng.random((n, k), dtype=np.float32), rng.random((k, m), dtype=np.float32)
    with policy.limits():
        while policy.measuring:  # time the product itself on each setting in turn
            policy.threads_for_next_step()
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                a @ b
                times.append(time.perf_counter() - t0)
            policy.record(min(times))
    _process_limiter = controller.select(user_api="blas").limit(limits=policy.choice)
    return policy.describe()


def restore() -> None:
    """Undo ``configure``: the BLAS pool as it was."""
    global _process_limiter
    if _process_limiter is not None:
        _process_limiter.restore_original_limits()
        _process_limiter = None
