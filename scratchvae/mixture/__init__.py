"""Mixture models fitted by EM.

- ``GaussianMixture``  K Gaussians (full, diag or spherical covariances), EM as coordinate
                       ascent on the ELBO, k-means++ initialization
- ``kmeans``, ``kmeans_plusplus``  Lloyd's k-means and its seeding
"""

from .gmm import GaussianMixture
from .kmeans import kmeans, kmeans_plusplus

__all__ = ["GaussianMixture", "kmeans", "kmeans_plusplus"]
