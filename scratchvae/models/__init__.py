"""Models: the VAE, and autoencoders (tied and untied, plain and denoising).

- ``VAE``               the variational autoencoder (Kingma and Welling, 2014)
- ``Autoencoder``       untied deep autoencoder built from ``scratchvae.layers``
- ``TiedAutoencoder``   x_hat = g(x W + b_enc) W^T + b_dec; linear g and no bias = PCA
- ``corrupt``           corruption for denoising: "gaussian", "masking", "blur"
"""

from .autoencoder import Autoencoder, AutoencoderBase
from .corrupt import corrupt, gaussian_blur, gaussian_noise, masking_noise
from .tied import TiedAutoencoder
from .vae import VAE

__all__ = [
    "Autoencoder",
    "AutoencoderBase",
    "TiedAutoencoder",
    "VAE",
    "corrupt",
    "gaussian_blur",
    "gaussian_noise",
    "masking_noise",
]
