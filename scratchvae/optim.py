"""Optimizers over flat dicts of named parameters, updating them in place.

    opt = Adam(lr=1e-3)
    opt.step(model.params, model.grads)    # same keys, e.g. "enc.fc1.W"

Each optimizer's ``update`` is its textbook rule for one parameter, line by line. State
(velocities, moments) starts as ``zeros_like`` of each parameter, so it lives on the
parameter's device in its dtype. ``state_dict()`` returns plain numbers and backend
arrays; ``load_state_dict`` puts them back (see ``scratchvae.checkpoint``).

The Trainer may run a compiled twin of ``Adam.update`` instead (``scratchvae.kernels``):
the same formula in one pass over memory, tested equal to this one.
"""

from __future__ import annotations

from array_api_compat import array_namespace


def _check_keys(params: dict, grads: dict) -> None:
    if params.keys() != grads.keys():
        missing = sorted(set(params) ^ set(grads))
        raise KeyError(f"params and grads must have the same names; these differ: {missing}")


def _copy(a):
    return array_namespace(a).asarray(a, copy=True)


class Optimizer:
    """Base class. A subclass names its state in ``slots`` and implements
    ``update(name, p, g)``: one parameter's rule, reading and writing
    ``self.state[slot][name]``."""

    slots: tuple = ()

    def __init__(self, lr: float):
        if not lr > 0:
            raise ValueError(f"learning rate must be positive, got {lr}")
        self.lr = float(lr)
        self.t = 0  # steps taken
        self.state: dict = {s: {} for s in self.slots}

    def step(self, params: dict, grads: dict) -> None:
        """One update of every parameter, in place."""
        self.begin_step(params, grads)
        for name, p in params.items():
            self.update(name, p, grads[name])

    def begin_step(self, params: dict, grads: dict) -> None:
        """What every step does before the updates: check the arguments (a failed step
        leaves no trace), count the step (t), and start new state at zero."""
        _check_keys(params, grads)
        for name, p in params.items():
            if grads[name].shape != p.shape:  # an in-place update would broadcast it silently
                raise ValueError(f"gradient {name!r} has shape {grads[name].shape} but the parameter has "
                                 f"shape {p.shape}; pass the gradient of each parameter")
        self._check_state(params)
        self.t += 1
        for s in self.slots:
            slot = self.state.setdefault(s, {})  # setdefault: a slot may appear later (SGD momentum)
            for name, p in params.items():
                if name not in slot:
                    slot[name] = array_namespace(p).zeros_like(p)

    def update(self, name: str, p, g) -> None:
        raise NotImplementedError

    def _check_state(self, params: dict) -> None:
        """Raise ValueError if a state array does not match its parameter's shape and
        dtype (an optimizer reused on another model whose parameters have the same names)."""
        for s in self.slots:
            for name, buf in self.state.get(s, {}).items():
                p = params.get(name)
                if p is not None and (buf.shape != p.shape or buf.dtype != p.dtype):
                    raise ValueError(
                        f"parameter {name!r} has shape {p.shape} ({p.dtype}) but the optimizer's "
                        f"{s!r} state for it has shape {buf.shape} ({buf.dtype}): the optimizer was "
                        "used with a differently shaped model; create a fresh optimizer for this model")

    def state_dict(self) -> dict:
        """Flat dict: "t", "lr", and "<slot>/<param name>" -> array.

        The arrays are copies (a snapshot): later steps do not change a state dict
        already taken."""
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
                self.state[s][name] = _copy(asarray(a))  # own arrays: a compiled update writes in place


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

    def update(self, name, p, g):
        if self.momentum:
            v = self.state["velocity"][name] = self.momentum * self.state["velocity"][name] + g
            g = v
        p -= self.lr * g


class Adam(Optimizer):
    """Adam (Kingma and Ba, 2015, Algorithm 1), with bias correction:

        m <- b1 m + (1 - b1) g                 first moment
        v <- b2 v + (1 - b2) g^2               second moment
        m_hat = m / (1 - b1^t),  v_hat = v / (1 - b2^t)
        p <- p - lr m_hat / (sqrt(v_hat) + eps)
    """

    slots = ("m", "v")

    def __init__(self, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8):
        super().__init__(lr)
        self.b1, self.b2 = (float(b) for b in betas)
        if not (0.0 <= self.b1 < 1.0 and 0.0 <= self.b2 < 1.0):
            raise ValueError(f"betas must lie in [0, 1) (the bias correction divides by 1 - b^t), got {betas}")
        if not eps >= 0.0:
            raise ValueError(f"eps must be >= 0, got {eps}")
        self.eps = float(eps)

    def update(self, name, p, g):
        xp = array_namespace(p)
        m = self.state["m"][name] = self.b1 * self.state["m"][name] + (1 - self.b1) * g  # first moment
        v = self.state["v"][name] = self.b2 * self.state["v"][name] + (1 - self.b2) * g**2  # second moment
        m_hat = m / (1 - self.b1**self.t)  # bias corrections: m and v start at 0
        v_hat = v / (1 - self.b2**self.t)
        p -= self.lr * m_hat / (xp.sqrt(v_hat) + self.eps)
