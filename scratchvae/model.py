"""The model contract: what the Trainer, checkpoints and the CLI may rely on.

Every model (the VAE, both autoencoders) subclasses ``Model``:

    model.params                      dict name -> array, the live parameters
    model.grads                       dict with the same keys
    model.config                      JSON-able dict: type(model)(**model.config) rebuilds it
    model.rng                         scratchvae.backend.RNG: weights, then the model's noise
    model.options                     the keywords loss_and_grads accepts besides x and
                                      check, e.g. ("n_samples", "eps", "beta", "objective",
                                      "y"); loss takes those of them that a forward pass needs
    loss, stats = model.loss_and_grads(x, check=True, **options)
                                      WRITES d loss / d param into model.grads (never adds)
    loss, stats = model.loss(x, check=True, **options)     forward only, no gradients
    model.check_data(x, name="x")     every check of a data set (shape, NaN, range), once;
                                      a model whose options list "y" (labels, one per row
                                      of x) takes check_data(x, name, y=labels) and checks
                                      both (the Trainer passes y_train and y_val there)

``loss`` is a 0-d array in nats per example; ``stats`` a dict of 0-d arrays (its parts).
Data ``x`` may be a backend array or host data (a NumPy array of any real dtype, a list of
rows): every method that takes data converts it with ``scratchvae.checks.as_data``.
Checkpoints find a model's class by name in ``Model.registry``, filled as each concrete
subclass is defined, so this module and scratchvae.checkpoint need not import the models.
"""

from __future__ import annotations

import abc
import inspect


class Model(abc.ABC):
    """Base class of every model; see the module docstring for the contract."""

    registry: dict = {}  # class name -> class, for checkpoints
    options: tuple = ()
    params: dict
    grads: dict
    config: dict

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if not inspect.isabstract(cls):
            Model.registry[cls.__name__] = cls

    @abc.abstractmethod
    def loss_and_grads(self, x, check: bool = True, **options):
        """(loss, stats) on the batch x, and d loss / d param written into ``grads``."""

    @abc.abstractmethod
    def loss(self, x, check: bool = True, **options):
        """(loss, stats) on the batch x, forward only."""

    @abc.abstractmethod
    def check_data(self, x, name: str = "x") -> None:
        """Raise ValueError, saying what to do, unless x is data this model can train on."""

    def zero_grad(self) -> None:
        """Set every gradient to 0 (loss_and_grads writes them, so training never needs it)."""
        for g in self.grads.values():
            g[...] = 0.0
