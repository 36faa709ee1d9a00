"""Linear latent-variable models: PCA, probabilistic PCA, and principal angles.

- ``subspace_angles``  principal angles between two column spaces (radians, descending)
- ``PCA``              principal component analysis by SVD of the centred data
- ``PPCA``             probabilistic PCA (Tipping & Bishop 1999): closed form or EM
"""

from .angles import subspace_angles
from .pca import PCA
from .ppca import PPCA

__all__ = ["PCA", "PPCA", "subspace_angles"]
