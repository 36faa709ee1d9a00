"""Optimizers over flat dicts of named parameters, updating them in place.

    opt = Adam(lr=1e-3)
    opt.step(model.params, model.grads)    # same keys, e.g. "enc.fc1.W"

State (velocities, moments) is created with ``zeros_like`` from each parameter, so it
lives on the parameter's device in its dtype. ``state_dict()`` returns plain numbers
and backend arrays; ``load_state_dict`` puts them back (see ``scratchvae.checkpoint``).
"""

from __future__ import annotations

import math

from array_api_compat import array_namespace

from . import kernels
from .arrays import flush_subnormals, into


def _check_keys(params: dict, grads: dict) -> None:
    if params.keys() != grads.keys():
        missing = sorted(set(params) ^ set(grads))
        raise KeyError(f"params and grads must have the same names; these differ: {missing}")


def _copy(a):
    return array_namespace(a).asarray(a, copy=True)


class Optimizer:
    """Base class. Subclasses implement ``_update(p, g, *buffers)`` for one parameter,
    where ``buffers`` are its state arrays in the order of ``slots`` (saved in the
    state dict), then ``n_scratch`` scratch arrays (working memory, not saved)."""

    slots: tuple = ()
    n_scratch: int = 0

    def __init__(self, lr: float):
        if not lr > 0:
            raise ValueError(f"learning rate must be positive, got {lr}")
        self.lr = float(lr)
        self.t = 0  # steps taken
        self.state: dict = {s: {} for s in self.slots}
        self.scratch: dict = {}  # name -> tuple of scratch arrays

    def _state_of(self, name, p) -> tuple:
        """The state arrays of one parameter, in the order of ``slots`` (zeros at first)."""
        try:  # every step after the first
            return tuple([self.state[s][name] for s in self.slots])
        except KeyError:
            pass
        for s in self.slots:
            slot = self.state.setdefault(s, {})  # setdefault: a slot may appear later (SGD momentum)
            if name not in slot:  # the first step: the state starts at zero
                slot[name] = array_namespace(p).zeros_like(p)
        return tuple(self.state[s][name] for s in self.slots)

    def _buffers(self, name, p) -> tuple:
        """``_state_of`` and then the ``n_scratch`` scratch arrays (made on first use)."""
        work = self.scratch.get(name)
        if self.n_scratch and (work is None or work[0].shape != p.shape or work[0].dtype != p.dtype):
            work = self.scratch[name] = tuple(array_namespace(p).empty_like(p) for _ in range(self.n_scratch))
        return self._state_of(name, p) + (work or ())

    def step(self, params: dict, grads: dict) -> None:
        """One update of every parameter, in place."""
        _check_keys(params, grads)
        for name, p in params.items():
            if grads[name].shape != p.shape:  # an in-place update would broadcast it silently
                raise ValueError(f"gradient {name!r} has shape {grads[name].shape} but the parameter has "
                                 f"shape {p.shape}; pass the gradient of each parameter")
        self._check_state(params)  # before anything changes: a failed step leaves no trace
        self.t += 1
        self._start_step()
        self._update_all(params, grads)

    def _update_all(self, params: dict, grads: dict) -> None:
        """Every parameter's update, one after the other (a subclass may make them one
        compiled call)."""
        for name, p in params.items():
            self._update(p, grads[name], *self._buffers(name, p))

    def _check_state(self, params: dict) -> None:
        """Raise ValueError if a state buffer does not match its parameter's shape and
        dtype (an optimizer reused on another model whose parameters have the same names)."""
        for s in self.slots:
            for name, buf in self.state.get(s, {}).items():
                p = params.get(name)
                if p is not None and (buf.shape != p.shape or buf.dtype != p.dtype):
                    raise ValueError(
                        f"parameter {name!r} has shape {p.shape} ({p.dtype}) but the optimizer's "
                        f"{s!r} state for it has shape {buf.shape} ({buf.dtype}): the optimizer was "
                        "used with a differently shaped model; create a fresh optimizer for this model")

    def _start_step(self) -> None:
        """Once per step, before the updates (numbers shared by every parameter)."""

    def _update(self, p, g, *buffers):
        raise NotImplementedError

    def state_dict(self) -> dict:
        """Flat dict: "t", "lr", and "<slot>/<param name>" -> array.

        The arrays are copies (a snapshot): later steps, which update the state in
        place, do not change a state dict already taken."""
        out = {"t": self.t, "lr": self.lr}
        for s in self.slots:
            out.update({f"{s}/{name}": _copy(a) for name, a in self.state.get(s, {}).items()})
        return out

    def load_state_dict(self, state: dict, asarray=None) -> None:
        """Restore from ``state_dict()`` output. ``asarray`` converts host arrays to the
        backend (``scratchvae.backend.asarray`` is used if None)."""
        if asarray is None:
            from .backend import asarray
        self.t = int(state["t"])
        self.lr = float(state["lr"])
        self.state = {s: {} for s in self.slots}
        for key, a in state.items():
            if "/" in key:
                s, name = key.split("/", 1)
                if s not in self.state:
                    raise KeyError(f"optimizer state has unknown slot {s!r} for {type(self).__name__}")
                self.state[s][name] = _copy(asarray(a))  # own buffers: steps update in place


class SGD(Optimizer):
    """Stochastic gradient descent with optional (heavy-ball) momentum:

        v <- momentum v + g
        p <- p - lr v              (plain SGD when momentum = 0: p <- p - lr g)
    """

    def __init__(self, lr: float = 0.01, momentum: float = 0.0):
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        self.momentum = float(momentum)
        super().__init__(lr)

    @property
    def slots(self) -> tuple:
        """A velocity only with momentum. A property, so it follows ``momentum`` when a
        checkpoint sets it on a fresh SGD() before loading the saved velocity."""
        return ("velocity",) if self.momentum else ()

    def _update(self, p, g, v=None):
        if self.momentum:
            v *= self.momentum
            v += g  # v <- momentum v + g
            flush_subnormals(v)  # a velocity decaying without gradient (see Adam)
            g = v
        p -= self.lr * g


class Adam(Optimizer):
    """Adam (Kingma and Ba, 2015), with bias correction, as PyTorch computes it:

        m <- b1 m + (1 - b1) g                 first moment
        v <- b2 v + (1 - b2) g^2               second moment
        m_hat = m / (1 - b1^t),  v_hat = v / (1 - b2^t)
        p <- p - lr m_hat / (sqrt(v_hat) + eps)

    The bias corrections are folded into two scalars (multiply the fraction's top and
    bottom by sqrt(1 - b2^t)), so the update touches each array as few times as it can:

        p <- p - a m / (sqrt(v) + eps_t),  a = lr sqrt(1 - b2^t) / (1 - b1^t),
                                           eps_t = eps sqrt(1 - b2^t)

    A moment that falls below float's smallest normal number (1.2e-38 in float32) is
    set to 0: a weight whose gradient stays 0 for many steps would otherwise make the
    CPU compute on subnormal numbers, many times slower (see ``arrays.flush_subnormals``).
    PyTorch's Adam does not do this, and slows down. v is flushed only when eps > 0: with
    eps = 0, m / sqrt(v) would divide by a v flushed to 0.

    Every step is in place, with one scratch array per parameter (``buf``, not part of
    the state). The lines below are twelve passes over memory per parameter, and the
    flush two more per moment (it makes a mask: the reference's only new arrays). Where
    a compiler is at hand (numba for NumPy, CuPy's ElementwiseKernel on a GPU)
    ``scratchvae.kernels`` runs the same formula as
    one loop, one pass, like PyTorch's fused=True (on NumPy, one call for all the
    parameters: ``_update_all``); the lines below are the reference it is tested
    against, and what runs everywhere else.
    """

    slots = ("m", "v")
    n_scratch = 1

    def __init__(self, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8):
        super().__init__(lr)
        self.b1, self.b2 = (float(b) for b in betas)
        if not (0.0 <= self.b1 < 1.0 and 0.0 <= self.b2 < 1.0):
            raise ValueError(f"betas must lie in [0, 1) (the bias correction divides by 1 - b^t), got {betas}")
        if not eps >= 0.0:
            raise ValueError(f"eps must be >= 0, got {eps}")
        self.eps = float(eps)

    def _start_step(self) -> None:
        """The bias corrections of step t, folded into a and eps_t (see above)."""
        c2 = math.sqrt(1.0 - self.b2 ** self.t)  # sqrt(1 - b2^t)
        self._a = self.lr * c2 / (1.0 - self.b1 ** self.t)
        self._eps_t = self.eps * c2

    def _update_all(self, params: dict, grads: dict) -> None:
        """Where the kernels allow, every parameter in one compiled call: the same loop
        as ``_update``'s kernel, without ten trips through Python (on the digits model
        those cost four times the arithmetic). Otherwise one parameter at a time."""
        ps = list(params.values())
        gs = [grads[name] for name in params]
        ms, vs = zip(*(self._state_of(name, p) for name, p in params.items())) if ps else ((), ())
        fused = kernels.find_each("adam_all", ps, gs, ms, vs)
        if fused is None:
            super()._update_all(params, grads)
            return
        fused(ps, gs, ms, vs, b1=self.b1, b2=self.b2, a=self._a, eps_t=self._eps_t)

    def _update(self, p, g, m, v, buf):
        a, eps_t = self._a, self._eps_t  # from _start_step: the same for every parameter
        fused = kernels.find("adam", p, g, m, v)
        if fused is not None:  # the same formula in one compiled pass
            fused(p, g, m, v, b1=self.b1, b2=self.b2, a=a, eps_t=eps_t)
            return
        xp = array_namespace(p)
        into(buf, xp.multiply, g, 1.0 - self.b1)  # buf = (1 - b1) g
        m *= self.b1
        m += buf  # m <- b1 m + (1 - b1) g
        flush_subnormals(m)  # |m| < 1.2e-38 -> 0 (see arrays.flush_subnormals)
        into(buf, xp.square, g)
        buf *= 1.0 - self.b2  # buf = (1 - b2) g^2
        v *= self.b2
        v += buf  # v <- b2 v + (1 - b2) g^2
        if eps_t > 0:  # with eps = 0, a v flushed under a nonzero m would divide by zero
            flush_subnormals(v, nonnegative=True)
        into(buf, xp.sqrt, v)
        buf += eps_t  # buf = sqrt(v) + eps_t
        into(buf, xp.divide, m, buf)
        buf *= a  # buf = a m / (sqrt(v) + eps_t) = lr m_hat / (sqrt(v_hat) + eps)
        p -= buf
