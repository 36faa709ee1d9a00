"""Principal angles between two subspaces (array API only).

For subspaces span(A) and span(B) of R^p with orthonormal bases Qa (p, ka), Qb (p, kb),
the principal angles theta_1 >= ... >= theta_k (k = min(ka, kb)) are given by

    cos theta_i = sigma_i(Qa' Qb)                         (singular values)
    sin theta_i = sigma_i(Qb - Qa Qa' Qb)   if ka >= kb   (the part of Qb outside span(A))
                = sigma_i(Qa - Qb Qb' Qa)   otherwise

(Knyazev & Argentati 2002; the same recipe as scipy.linalg.subspace_angles). arccos is
inaccurate near 0 (cos theta = 1 - theta^2 / 2 loses theta below sqrt(eps) ~ 1e-8) and
arcsin near pi / 2, so each angle is taken from the sine when cos^2 theta >= 1/2 and from
the cosine otherwise.
"""

from __future__ import annotations

from array_api_compat import array_namespace

from .. import backend


def _orth(A):
    """Orthonormal basis (p, k) of the column space of A (p, q), k = numerical rank.

    Through the SVD, like scipy.linalg.orth: singular values below eps * max(p, q) * s_max
    count as zero, so linearly dependent columns do not add a direction.
    """
    xp = array_namespace(A)
    U, s, _ = xp.linalg.svd(A, full_matrices=False)  # A = U diag(s) V'
    cut = xp.finfo(A.dtype).eps * max(A.shape) * xp.max(s) if s.shape[0] else 0.0
    k = int(xp.sum(xp.astype(s > cut, xp.int64)))
    return U[:, :k]


def subspace_angles(A, B):
    """Principal angles between the column spaces of A and B, in radians, descending.

    Inputs:
    - A: (p, q1) any basis of the first subspace (need not be orthonormal).
    - B: (p, q2) any basis of the second subspace.
    Returns:
    - theta: (k,) angles in [0, pi/2], largest first, k = min(rank A, rank B)
      (k = min(q1, q2) for full-rank inputs). theta[0] is the largest angle: 0 only if
      one subspace contains the other. It is the theta_max whose decay, rho^t with
      rho = 1 - 2 eta (lambda_q - lambda_{q+1}), L2 (8) predicts for gradient descent on
      the linear autoencoder (the lesson measures it with this function).
    """
    A, B = backend.asarray(A), backend.asarray(B)  # host data to the backend (no copy if there)
    xp = array_namespace(A, B)
    for M, name, hint in ((A, "A", "(p, q1)"), (B, "B", "(p, q2)")):
        if M.ndim != 2:
            raise ValueError(f"{name} must be a matrix {hint} whose columns span the subspace, "
                             f"got shape {M.shape}; reshape a single vector to (p, 1)")
    if A.shape[0] != B.shape[0]:
        raise ValueError(f"A and B must have the same number of rows (the ambient dimension p), "
                         f"got shapes {A.shape} and {B.shape}")
    if not xp.isdtype(A.dtype, "real floating"):
        A = xp.astype(A, backend.current().dtype)
    if not xp.isdtype(B.dtype, "real floating"):
        B = xp.astype(B, backend.current().dtype)
    if A.dtype != B.dtype:  # compute in the wider of the two
        A, B = xp.astype(A, xp.float64), xp.astype(B, xp.float64)
    for M, name in ((A, "A"), (B, "B")):
        if not bool(xp.all(xp.isfinite(M))):
            raise ValueError(f"{name} contains NaN or infinite values; angles are undefined")

    Qa, Qb = _orth(A), _orth(B)
    C = Qa.T @ Qb                                     # (ka, kb)
    cos = xp.flip(xp.linalg.svdvals(C))               # ascending cosines = descending angles
    if Qa.shape[1] >= Qb.shape[1]:
        R = Qb - Qa @ C                               # Qb minus its projection on span(A)
    else:
        R = Qa - Qb @ C.T
    sin = xp.linalg.svdvals(R)                        # descending sines = descending angles
    cos = xp.clip(cos, 0.0, 1.0)
    sin = xp.clip(sin, 0.0, 1.0)
    return xp.where(cos * cos >= 0.5, xp.asin(sin), xp.acos(cos))
