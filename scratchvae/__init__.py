"""scratchvae: the variational autoencoder from scratch in array code.

Modules, in the order the course meets them:

- ``backend``    which array namespace (NumPy, CuPy, array-api-strict), device and dtype
- ``layers``     Dense and activations, forward/backward pairs
- ``losses``     Bernoulli and Gaussian log-likelihoods, KL to N(0, I), squared error
- ``reparam``    z = mu + exp(logvar / 2) * eps and its backward
- ``optim``      SGD (with momentum) and Adam
- ``gradcheck``  numerical gradients and readable gradient-check reports
- ``models``     the VAE and the autoencoders, on the contract of ``model.Model``
- ``kernels``    the engine room: compiled twins the Trainer switches on

Importing the package imports ``models``, so every model class is in
``Model.registry``, where checkpoints find it by name.
"""

from . import backend, gradcheck, layers, losses, models, optim, reparam

__version__ = "0.1.0"

__all__ = ["backend", "gradcheck", "layers", "losses", "models", "optim", "reparam", "__version__"]
