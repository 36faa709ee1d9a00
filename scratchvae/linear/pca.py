"""Principal component analysis by the SVD of the centred data.

The problem (lesson 2): find A (D, q) with orthonormal columns (A'A = I) minimizing the
total reconstruction error of the centred data xc_n = x_n - mean (the lesson's x~_n),

    E(A) = sum_n || xc_n - A A' xc_n ||^2                                   L2 (1)
         = sum_n ||xc_n||^2 - N tr(A' S A),   S = Xc'Xc / N                 L2 (2)

so the best A keeps the most variance: its columns solve S u = lambda u, L2 (3), and
A = U_q, the top-q eigenvectors, with E(U_q) = N sum_{j > q} lambda_j, L2 (4).

The code never forms S. With the thin SVD Xc = U diag(s) V' (Xc: (N, D), s descending),
the right singular vectors are the eigenvectors of S, so A = V[:, :q], and the minimum is
the sum of the discarded squared singular values,

    E_min = sum_{j > q} s_j^2 = (N - 1) sum_{j > q} lambda_j,   lambda_j = s_j^2 / (N - 1),

here with scikit-learn's unbiased lambda_j (the lesson's S divides by N: its lambda_j are
these times (N - 1) / N, and both give the same E_min).

Conventions follow scikit-learn: ``components_`` is A' (q, D), one unit-length direction
per row; ``explained_variance_`` uses the unbiased (N - 1) normalisation; each row's sign
is fixed so that its entry of largest magnitude is positive.
"""

from __future__ import annotations

from array_api_compat import array_namespace

from .. import checks
from ..checks import check_columns, check_finite, check_magnitude, check_ndim, check_positive_int


def as_data(X, name: str = "X"):
    """Host data (a NumPy array, a list of rows) or a backend array -> a real floating
    (N, D) backend array, checked finite and small enough that its variances (sums of
    N D squares of centred values, each at most (2 max|x|)^2) fit the dtype."""
    X = checks.as_data(X, name)
    check_ndim(X, 2, name, "(N, D)")
    check_finite(X, name)
    check_magnitude(X, name, terms=4 * X.shape[0] * X.shape[1])
    return X


def fix_signs(V):
    """Flip each row of V (q, p) so that its entry of largest magnitude is positive.

    A singular vector is defined up to sign; this makes the output deterministic (the
    same rule as scikit-learn's svd_flip(u_based_decision=False)).
    """
    xp = array_namespace(V)
    idx = xp.argmax(xp.abs(V), axis=1)                                 # (q,)
    cols = xp.arange(V.shape[1], device=V.device)
    onehot = cols[None, :] == idx[:, None]                             # (q, p)
    sign = xp.sign(xp.sum(xp.where(onehot, V, xp.zeros_like(V)), axis=1))
    return V * sign[:, None]


class PCA:
    """Principal component analysis: the q-dimensional subspace that keeps most variance.

    >>> pca = PCA(2).fit(X)              # X: (N, D) host data or a backend array
    >>> Z = pca.transform(X)             # (N, 2) coordinates in the subspace
    >>> Xhat = pca.inverse_transform(Z)  # (N, D) projections back in data space

    Attributes after fit (backend arrays):
    - mean_: (D,) the data mean.
    - components_: (q, D) orthonormal rows, the principal directions (A' in L2 (1)).
    - singular_values_: (q,) the top-q singular values of the centred data.
    - explained_variance_: (q,) variances along the directions, s^2 / (N - 1).
    - explained_variance_ratio_: (q,) their fractions of the total variance; the
      cumulative sum is rho(q) of L2 (5).
    - noise_variance_: 0-d, mean of the discarded variances (0 if nothing is discarded),
      as in scikit-learn (see PPCA for the maximum-likelihood version, normalised by N).
    """

    def __init__(self, n_components: int, whiten: bool = False):
        n_components = check_positive_int(n_components, "n_components")
        self.n_components = n_components
        self.whiten = whiten

    def fit(self, X):
        """Fit the principal subspace of X.

        Inputs:
        - X: (N, D) data, N >= 2, one example per row (host data or a backend array).
        Returns:
        - self, fitted.
        Raises ValueError for NaN/inf, for n_components > min(N, D), and when whiten=True
        but a kept direction has zero variance (whitening would divide by zero).
        """
        X = as_data(X)
        xp = array_namespace(X)
        N, D = X.shape
        q = self.n_components
        if N < 2:
            raise ValueError(f"PCA needs at least 2 examples to estimate a variance, got N={N}")
        if q > min(N, D):
            raise ValueError(
                f"n_components={q} is more than min(n_samples, n_features) = min({N}, {D}); "
                f"a {N} x {D} data matrix has at most {min(N, D)} principal directions: "
                "lower n_components"
            )
        mean = xp.mean(X, axis=0)                            # (D,)
        # L2 (3): the rows of V' are the eigenvectors of S, S u = lambda u, found without forming S
        _, s, Vt = xp.linalg.svd(X - mean, full_matrices=False)  # centred Xc = U diag(s) V'
        var = s * s / (N - 1)                                # lambda_j, unbiased (module docstring)
        if self.whiten:  # checked before any attribute is set: a failed fit leaves none
            tiny = xp.finfo(X.dtype).eps * max(N, D) * float(var[0])
            if float(xp.min(var[:q])) <= tiny:
                raise ValueError(
                    f"whiten=True divides by the standard deviation of each component, but the "
                    f"data have fewer than n_components={q} directions of nonzero variance; "
                    "lower n_components or use whiten=False"
                )
        total = xp.sum(var)
        self.mean_ = mean
        self.components_ = fix_signs(Vt[:q, :])              # L2 (4): A* = U_q, A' = top-q rows of V'
        self.singular_values_ = s[:q]
        self.explained_variance_ = var[:q]
        # L2 (5): lambda_j / sum_j lambda_j; rho(q) is the cumulative sum of these
        self.explained_variance_ratio_ = var[:q] / total if float(total) > 0 else xp.zeros_like(var[:q])
        rest = var[q:]
        self.noise_variance_ = xp.mean(rest) if rest.shape[0] > 0 else xp.sum(rest)
        self.n_samples_, self.n_features_in_ = N, D
        return self

    def _check_fitted(self, Y, name: str = "X"):
        if not hasattr(self, "components_"):
            raise ValueError("this PCA is not fitted yet: call fit(X) first")
        Y = as_data(Y, name)
        if name == "X":
            check_columns(Y, self.n_features_in_, "X", "this fitted PCA")
        else:
            check_columns(Y, self.n_components, name, "the number of components")
        return Y

    def transform(self, X):
        """Coordinates in the principal subspace: z = U_q'(x - mean), L2 (6) (whitened: / sqrt(lambda)).

        Inputs:
        - X: (N, D).
        Returns:
        - Z: (N, q).
        """
        X = self._check_fitted(X)
        Z = (X - self.mean_) @ self.components_.T
        if self.whiten:
            Z = Z / (array_namespace(Z).sqrt(self.explained_variance_))
        return Z

    def fit_transform(self, X):
        """fit(X) then transform(X); returns Z: (N, q)."""
        return self.fit(X).transform(X)

    def inverse_transform(self, Z):
        """Back to data space: x_hat = mean + U_q z, L2 (6) (un-whitened first if whiten=True).

        Inputs:
        - Z: (N, q).
        Returns:
        - Xhat: (N, D), the orthogonal projection of x onto the affine principal subspace
          when Z = transform(X).
        """
        Z = self._check_fitted(Z, "Z")
        if self.whiten:
            Z = Z * array_namespace(Z).sqrt(self.explained_variance_)
        return Z @ self.components_ + self.mean_

    def reconstruction_error(self, X):
        """Total squared reconstruction error E(A), L2 (1): sum_n ||x_n - x_hat_n||^2.

        Inputs:
        - X: (N, D).
        Returns:
        - 0-d array: the TOTAL over examples (not the mean). On the training data it equals
          the variance not kept, by L2 (2) and (4): the sum of the discarded squared
          singular values, (N - 1) * sum_{j>q} lambda_j.
        """
        X = self._check_fitted(X)
        xp = array_namespace(X)
        Xc = X - self.mean_
        R = Xc - (Xc @ self.components_.T) @ self.components_  # L2 (1): (I - A A') xc_n per row
        return xp.sum(R * R)
