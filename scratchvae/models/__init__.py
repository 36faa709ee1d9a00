"""Models: the VAE, and autoencoders (tied and untied, plain and denoising).

- ``VAE``               the variational autoencoder (Kingma and Welling, 2014)
- ``Autoencoder``       untied deep autoencoder built from ``scratchvae.layers``
- ``TiedAutoencoder``   x_hat = g(x W + b_enc) W^T + b_dec; linear g and no bias = PCA
- ``corrupt``           corruption for denoising: "gaussian", "masking", "blur"
- ``objectives``        the VAE's Monte-Carlo ELBO and importance-weighted (IWAE) objectives
- ``labels``            class labels as network input, for the conditional VAE
- ``collapse``          posterior collapse, measured: ``kl_per_dimension``, ``active_units``
"""

from .autoencoder import Autoencoder, AutoencoderBase
from .collapse import active_units, kl_per_dimension
from .corrupt import corrupt, gaussian_blur, gaussian_noise, masking_noise
from .tied import TiedAutoencoder
from .objectives import OBJECTIVES
from .vae import VAE

__all__ = [
    "OBJECTIVES",
    "Autoencoder",
    "AutoencoderBase",
    "TiedAutoencoder",
    "VAE",
    "active_units",
    "corrupt",
    "gaussian_blur",
    "gaussian_noise",
    "kl_per_dimension",
    "masking_noise",
]
