"""Layers: each a forward/backward pair with its gradient rule beside its forward rule.

Contract (every layer and container):

    y  = layer.forward(x)     # keeps what backward needs (never recomputed)
    dx = layer.backward(dy)   # returns dL/dx and WRITES dL/dparam into layer.grads
    layer.params, layer.grads # dicts with the same keys; containers flatten names

A layer is used once per forward pass, so backward writes the gradient of that use
(cs231n's convention: ``dW = x.T @ dy``). Read ``grads`` after backward: a dict taken
before it holds the previous step's arrays.

Batches are rows: x is (N, D), Dense computes y = x W + b with W (D, H) and b (H,).

A layer with parameters also takes ``backward(dy, need_dx=False)``: x is the data, so
nothing needs dL/dx, and the layer skips it (one matrix product less).
"""

from __future__ import annotations

import math
import warnings

from array_api_compat import array_namespace

from . import backend
from .checks import check_columns, check_ndim, check_positive_int


class Layer:
    """Base class: no parameters; subclasses fill ``params`` and ``grads``."""

    def __init__(self):
        self.params: dict = {}
        self.grads: dict = {}

    def forward(self, x):
        raise NotImplementedError

    def backward(self, dy):
        raise NotImplementedError

    def zero_grad(self) -> None:
        for g in self.grads.values():
            g[...] = 0.0  # in place: optimizers and containers hold references

    def __call__(self, x):
        return self.forward(x)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Dense(Layer):
    """Affine layer y = x W + b.

    Inputs (forward):  x: (N, D)
    Returns:           y: (N, H)
    Parameters:        "W": (D, H), "b": (H,)
    init: "glorot" (uniform, limit sqrt(6 / (D + H)); for tanh/sigmoid/linear) or
          "he" (normal, std sqrt(2 / D); for ReLU), as the papers of those names.
    """

    def __init__(self, in_features: int, out_features: int, init: str = "glorot", rng=None):
        super().__init__()
        if init not in ("glorot", "he"):
            raise ValueError(f"unknown init {init!r}: choose 'glorot' or 'he'")
        rng = rng if rng is not None else backend.RNG(0)
        D = check_positive_int(in_features, "in_features")
        H = check_positive_int(out_features, "out_features")
        if init == "glorot":
            limit = math.sqrt(6.0 / (D + H))
            W = rng.uniform((D, H), -limit, limit)
        else:
            W = rng.normal((D, H), 0.0, math.sqrt(2.0 / D))
        xp = array_namespace(W)
        self.in_features, self.out_features, self.init = D, H, init
        self.params = {"W": W, "b": xp.zeros((H,), dtype=W.dtype, device=W.device)}
        self.grads = {k: xp.zeros_like(v) for k, v in self.params.items()}
        self.x = None

    def forward(self, x):
        check_ndim(x, 2, "Dense input", "(N, D)")
        check_columns(x, self.in_features, "Dense input", f"Dense({self.in_features}, {self.out_features})")
        self.x = x  # backward needs x for dW
        y = x @ self.params["W"]  # L1 (1) y = x W + b                    (N, H)
        y += self.params["b"]  # in place: y is our own new array
        return y

    def backward(self, dy, need_dx: bool = True, accumulate=None):
        """dL/dx from dL/dy (N, H); writes dL/dW and dL/db into grads.

        need_dx=False: return None and skip dL/dx, when x is the data (nothing before
        this layer needs a gradient; autograd skips it the same way).
        (accumulate: deprecated, ignored; see _deprecated_accumulate.)
        """
        _deprecated_accumulate(accumulate)
        xp = array_namespace(dy)
        self.grads["W"] = self.x.T @ dy  # L1 (2) dL/dW = x^T dL/dy           (D, H)
        self.grads["b"] = xp.sum(dy, axis=0)  # L1 (2) dL/db = sum of dL/dy rows (H,)
        if not need_dx:
            return None
        return dy @ self.params["W"].T  # L1 (2) dL/dx = dL/dy W^T              (N, D)

    def __repr__(self) -> str:
        return f"Dense({self.in_features}, {self.out_features}, init={self.init!r})"


class ReLU(Layer):
    """y = max(x, 0); dy/dx = 1 where x > 0 else 0. Caches the output y (which the next
    layer keeps anyway as its input): x > 0 exactly where y > 0."""

    def forward(self, x):
        self.y = array_namespace(x).maximum(x, 0.0)
        return self.y

    def backward(self, dy):
        return array_namespace(dy).where(self.y > 0, dy, 0.0)  # dL/dx = dL/dy where x > 0, else 0


class LeakyReLU(Layer):
    """y = x where x > 0 else slope * x; dy/dx = 1 or slope. Caches the input."""

    def __init__(self, slope: float = 0.01):
        super().__init__()
        self.slope = float(slope)

    def forward(self, x):
        self.x = x
        return array_namespace(x).where(x > 0, x, self.slope * x)

    def backward(self, dy):
        return array_namespace(dy).where(self.x > 0, dy, self.slope * dy)  # dL/dx = dL/dy dy/dx

    def __repr__(self) -> str:
        return f"LeakyReLU(slope={self.slope})"


class Tanh(Layer):
    """y = tanh(x); dy/dx = 1 - y^2. Caches the output."""

    def forward(self, x):
        self.y = array_namespace(x).tanh(x)
        return self.y

    def backward(self, dy):
        return dy * (1.0 - self.y * self.y)  # L1 (3) dL/du = dL/da (1 - a^2), a = tanh(u) cached


def sigmoid(x):
    """1 / (1 + exp(-x)), written so that nothing overflows: with e = exp(-|x|) <= 1,
    sigmoid(x) = 1 / (1 + e) for x >= 0 and e / (1 + e) for x < 0, that is
    exp(min(x, 0)) / (1 + e) for every x."""
    xp = array_namespace(x)
    return xp.exp(xp.minimum(x, 0.0)) / (1.0 + xp.exp(-xp.abs(x)))


def softplus(x):
    """log(1 + exp(x)) without overflow: max(x, 0) + log1p(exp(-|x|))."""
    xp = array_namespace(x)
    return xp.maximum(x, 0.0) + xp.log1p(xp.exp(-xp.abs(x)))


class Sigmoid(Layer):
    """y = sigmoid(x); dy/dx = y (1 - y). Caches the output."""

    def forward(self, x):
        self.y = sigmoid(x)
        return self.y

    def backward(self, dy):
        return dy * self.y * (1.0 - self.y)


class Softplus(Layer):
    """y = log(1 + exp(x)); dy/dx = sigmoid(x) = 1 - exp(-y). Caches the output."""

    def forward(self, x):
        self.y = softplus(x)
        return self.y

    def backward(self, dy):
        xp = array_namespace(dy)
        return dy * -xp.expm1(-self.y)  # 1 - exp(-y), accurate when y is tiny


class Identity(Layer):
    """y = x; dy/dx = 1."""

    def forward(self, x):
        return x

    def backward(self, dy):
        return dy


ACTIVATIONS = {
    "relu": ReLU,
    "leaky_relu": LeakyReLU,
    "tanh": Tanh,
    "sigmoid": Sigmoid,
    "softplus": Softplus,
    "identity": Identity,
    "linear": Identity,
}


def activation(name: str) -> Layer:
    """An activation layer by name: relu, leaky_relu, tanh, sigmoid, softplus, identity."""
    try:
        return ACTIVATIONS[name.lower()]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r}: choose one of {sorted(ACTIVATIONS)}") from None


class Sequential(Layer):
    """Layers applied in order. Parameters are flattened as "<layer name>.<param>".

    >>> net = Sequential(Dense(4, 8), ReLU(), Dense(8, 2))       # names "0.W", "2.b", ...
    >>> net = Sequential({"fc1": Dense(4, 8), "act": ReLU()})    # names "fc1.W", ...
    """

    def __init__(self, *layers):  # no Layer.__init__: params and grads come from the layers
        if len(layers) == 1 and isinstance(layers[0], dict):
            self.layers = dict(layers[0])
        else:
            self.layers = {str(i): layer for i, layer in enumerate(layers)}

    @property
    def params(self) -> dict:
        return flatten({k: l.params for k, l in self.layers.items()})

    @property
    def grads(self) -> dict:
        return flatten({k: l.grads for k, l in self.layers.items()})

    def forward(self, x):
        for layer in self.layers.values():
            x = layer.forward(x)
        return x

    def backward(self, dy, need_dx: bool = True, accumulate=None):
        """Chain rule, last layer first, L1 (4). With need_dx=False (x is the data) the pass
        stops at the first layer with parameters, which skips its dL/dx, and returns None."""
        _deprecated_accumulate(accumulate)
        layers = list(self.layers.values())
        if not need_dx:  # x is the data: nothing before the first layer with parameters needs dy
            layers = layers[next((i for i, l in enumerate(layers) if l.params), len(layers)):]
        for i, layer in reversed(list(enumerate(layers))):
            dy = layer.backward(dy) if need_dx or i > 0 else layer.backward(dy, need_dx=False)
        return dy if need_dx else None

    def zero_grad(self) -> None:
        for layer in self.layers.values():
            layer.zero_grad()

    def __getitem__(self, name):
        return self.layers[str(name)]

    def __len__(self) -> int:
        return len(self.layers)

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.layers.items())
        return f"Sequential({inner})"


def _deprecated_accumulate(accumulate) -> None:
    """``backward(dy, accumulate=...)`` went in 0.2, when every backward came to write its
    gradients; the argument is ignored, with a warning, until 0.3."""
    if accumulate is not None:
        warnings.warn("backward(..., accumulate=...) is deprecated and ignored: backward always writes "
                      "the gradients of this call now (goes in scratchvae 0.3)", DeprecationWarning, stacklevel=3)


def flatten(named: dict) -> dict:
    """{"enc": {"0.W": a}} -> {"enc.0.W": a}: one flat dict of named arrays (the same
    array objects, not copies, so in-place updates reach the layers)."""
    return {f"{outer}.{inner}": v for outer, d in named.items() for inner, v in d.items()}


def mlp(sizes, activation_name: str = "relu", out_activation: str | None = None, rng=None) -> Sequential:
    """Multi-layer perceptron: Dense(sizes[0], sizes[1]), act, ..., Dense(sizes[-2], sizes[-1]).

    Hidden layers use ``activation_name`` (He init for ReLU-like, Glorot otherwise);
    the last Dense is followed by ``out_activation`` if given. Layer names are
    "fc1", "act1", "fc2", ... so parameters read "fc1.W", "fc2.b".
    """
    if len(sizes) < 2:
        raise ValueError(f"mlp needs at least an input and an output size, got {sizes}")
    rng = rng if rng is not None else backend.RNG(0)
    activation(activation_name)  # fail early on an unknown name
    init = "he" if activation_name.lower() in ("relu", "leaky_relu") else "glorot"
    layers = {}
    n = len(sizes) - 1
    for i in range(n):
        last = i == n - 1
        layers[f"fc{i + 1}"] = Dense(sizes[i], sizes[i + 1], init="glorot" if last else init, rng=rng)
        if not last:
            layers[f"act{i + 1}"] = activation(activation_name)
        elif out_activation is not None:
            layers[f"act{i + 1}"] = activation(out_activation)
    return Sequential(layers)
