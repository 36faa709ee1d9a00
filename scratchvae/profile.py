"""Where a training step's time goes: time a Trainer's steps, phase by phase.

    trainer = Trainer(VAE(784, hidden=(400,), z_dim=20), Adam(), batch_size=128, progress=False)
    x = profile.synthetic_images(2048, 784)             # MNIST's shape, on the backend
    profile.step_ms(trainer, x, repeats=3)               # ms per step in each of 3 epochs of Trainer.fit
    profile.phases(trainer, x, steps=20)                 # ms per step: data, forward, backward, optimizer
    profile.matmul_floor(trainer.model, 128)             # ms: the step's matrix products alone

Everything is timed through public calls, as the Trainer makes them: whole epochs of
``trainer.fit``; ``model.loss`` (the forward pass and the loss), ``model.loss_and_grads``
(forward and backward) and ``trainer.update`` (the optimizer's update, its compiled twin
where the kernels run). Each phase waits for the device before its clock stops (it reads
one number back), so on a GPU the phases do not overlap as they do in training.
Timing changes the model: every timed step is a training step.
"""

from __future__ import annotations

import math
import statistics
import time

from array_api_compat import array_namespace

from . import backend


def _wait(a) -> None:
    """Block until ``a`` is computed: reading one entry back waits for the device."""
    xp = array_namespace(a)
    float(xp.reshape(a, (-1,))[0] if a.ndim else a)


def synthetic_images(n: int, x_dim: int, seed: int = 0, unique: int = 4096):
    """(n, x_dim) images of MNIST's kind on the current backend, in its dtype: about 80%
    of pixels 0, the rest grey levels in (0, 1]. The data do not change a step's
    arithmetic. ``unique`` rows are drawn and repeated to n rows (cheap to make)."""
    xp = backend.current().xp
    u = backend.RNG(seed).uniform((min(n, unique), x_dim))
    x = xp.where(u < 0.8, xp.zeros_like(u), (u - 0.8) * 5.0)
    reps = math.ceil(n / x.shape[0])
    return x if reps == 1 else xp.tile(x, (reps, 1))[:n, ...]


def _options(trainer, forward_only: bool = False) -> dict:
    """The keywords the trainer passes to the model (without beta for ``model.loss``)."""
    kw = trainer.model_options()
    if forward_only:
        kw.pop("beta", None)
    return kw


def step_ms(trainer, x, repeats: int = 1) -> list:
    """Milliseconds per step of each of ``repeats`` epochs of ``trainer.fit(x)``
    (the Trainer's own clock: shuffling, batches, steps and its loss read-backs)."""
    out = []
    steps = math.ceil(x.shape[0] / trainer.batch_size)
    for _ in range(repeats):
        trainer.fit(x, epochs=1)
        out.append(1e3 * trainer.history["time"][-1] / steps)
    return out


def phases(trainer, x, steps: int = 20, seed: int = 0) -> dict:
    """Milliseconds per step in each phase, the mean over ``steps`` training steps:

    data       the batch gathered from ``x`` (a shuffled index and ``take``)
    forward    ``model.loss``: the forward pass and the loss
    backward   ``model.loss_and_grads`` less the forward pass: the backward pass
    optimizer  ``trainer.update``: the update of every parameter
    """
    model, xp = trainer.model, array_namespace(x)
    order = backend.RNG(seed).permutation(x.shape[0])
    n = trainer.batch_size
    total = dict.fromkeys(("data", "forward", "backward", "optimizer"), 0.0)
    for i in range(steps):
        start = (i * n) % max(1, x.shape[0] - n + 1)
        t0 = time.perf_counter()
        xb = xp.take(x, order[start:start + n], axis=0)
        _wait(xb)
        t1 = time.perf_counter()
        _wait(model.loss(xb, **_options(trainer, forward_only=True))[0])
        t2 = time.perf_counter()
        _wait(model.loss_and_grads(xb, **_options(trainer))[0])
        t3 = time.perf_counter()
        trainer.update(model.params, model.grads)
        _wait(next(reversed(model.params.values())))
        t4 = time.perf_counter()
        total["data"] += t1 - t0
        total["forward"] += t2 - t1
        total["backward"] += max(0.0, (t3 - t2) - (t2 - t1))
        total["optimizer"] += t4 - t3
    return {k: 1e3 * v / steps for k, v in total.items()}


def matmul_shapes(model, batch: int) -> list:
    """The matrix products of one training step of a stack of Dense layers:
    (what, m, k, n, layout) with layout "NN" (x W), "TN" (x^T dy) or "NT" (dy W^T).

    Every 2-D parameter is taken as one Dense layer's W, of shape (fan_in, fan_out),
    applied to ``batch`` rows: forward x W, the weight gradient x^T dy, and dx = dy W^T
    for all but the first (it reads the data, whose gradient nobody needs). With
    n_samples L > 1 a VAE's decoder sees L * batch rows: pass that for a closer count."""
    shapes = []
    weights = [(k, p.shape) for k, p in model.params.items() if p.ndim == 2]
    for i, (name, (fan_in, fan_out)) in enumerate(weights):
        shapes.append((f"{name}: x W", batch, fan_in, fan_out, "NN"))
        shapes.append((f"{name}: x^T dy", fan_in, batch, fan_out, "TN"))
        if i > 0:
            shapes.append((f"{name}: dy W^T", batch, fan_out, fan_in, "NT"))
    return shapes


def matmul_floor(model, batch: int, reps: int = 20, seed: int = 1) -> dict:
    """The step's matrix products alone (``matmul_shapes``), each timed ``reps`` times on
    the current backend with its operands laid out as in the step: the time no
    rewriting of the elementwise code can go below. Returns {"ms": the sum of each
    product's median, "gflops", "products": [(what, ms), ...]}."""
    rng, per, flops = backend.RNG(seed), [], 0
    for what, m, k, n, layout in matmul_shapes(model, batch):
        a = rng.normal((k, m)).T if layout == "TN" else rng.normal((m, k))
        c = rng.normal((n, k)).T if layout == "NT" else rng.normal((k, n))
        _wait(a @ c)  # warm-up
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            _wait(a @ c)
            times.append(time.perf_counter() - t0)
        per.append((what, 1e3 * statistics.median(times)))
        flops += 2 * m * k * n
    ms = sum(t for _, t in per)
    return {"ms": ms, "gflops": flops / ms / 1e6 if ms > 0 else math.inf, "products": per}


__all__ = ["matmul_floor", "matmul_shapes", "phases", "step_ms", "synthetic_images"]
