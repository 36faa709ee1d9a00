"""Principal angles: agreement with scipy, known angles, accuracy at tiny angles."""

import math

import numpy as np
import pytest

from scratchvae import backend
from scratchvae.linear import subspace_angles

from conftest import host, tol


def _angles(A, B):
    return host(subspace_angles(backend.asarray(A), backend.asarray(B)))


@pytest.mark.parametrize("q1,q2", [(3, 2), (2, 3), (4, 4), (1, 5)])
def test_matches_scipy(bk, hrng, q1, q2):
    sl = pytest.importorskip("scipy.linalg")
    A = hrng.normal(size=(9, q1)) * np.array([1.0, 10.0, 0.1, 3.0, 2.0])[:q1]  # not orthonormal
    B = hrng.normal(size=(9, q2))
    got = _angles(A, B)
    want = sl.subspace_angles(A, B)
    assert got.shape == (min(q1, q2),)
    np.testing.assert_allclose(got, want, rtol=0, atol=tol(bk, 1e-12, 1e-5))
    assert np.all(np.diff(got) <= 0)  # descending, like scipy


def test_known_angles_and_symmetry(bk, hrng):
    # span(A) = span(e1, e2); B's columns tilt e1 towards e3 by 0.3 rad and e2 towards e4 by 1.2
    Q, _ = np.linalg.qr(hrng.normal(size=(6, 6)))     # a random rotation of R^6
    t1, t2 = 0.3, 1.2
    A = Q[:, :2] @ np.array([[2.0, 1.0], [0.0, 0.5]])  # same span, non-orthonormal basis
    B = np.stack([math.cos(t1) * Q[:, 0] + math.sin(t1) * Q[:, 2],
                  math.cos(t2) * Q[:, 1] + math.sin(t2) * Q[:, 3]], axis=1)
    np.testing.assert_allclose(_angles(A, B), [t2, t1], atol=tol(bk, 1e-12, 1e-5))
    np.testing.assert_allclose(_angles(B, A), [t2, t1], atol=tol(bk, 1e-12, 1e-5))


def test_same_and_orthogonal_subspaces(bk, hrng):
    A = hrng.normal(size=(7, 3))
    R = hrng.normal(size=(3, 3))                       # invertible change of basis
    np.testing.assert_allclose(_angles(A, A @ R), 0.0, atol=tol(bk, 1e-12, 1e-5))
    Q, _ = np.linalg.qr(hrng.normal(size=(7, 7)))
    np.testing.assert_allclose(_angles(Q[:, :3], Q[:, 3:5]), math.pi / 2, atol=tol(bk, 1e-12, 1e-5))
    # a subspace inside another: all angles 0
    np.testing.assert_allclose(_angles(Q[:, :4], Q[:, 1:3] @ R[:2, :2]), 0.0, atol=tol(bk, 1e-12, 1e-5))


def test_tiny_angle_uses_the_sine(bk64):
    # cos(1e-9) rounds to 1 exactly in float64: arccos would return 0, the sine keeps 1e-9
    t = 1e-9
    A = np.eye(5)[:, :2]
    B = np.stack([np.eye(5)[:, 0] * math.cos(t) + np.eye(5)[:, 2] * math.sin(t), np.eye(5)[:, 4]], axis=1)
    got = _angles(A, B)
    np.testing.assert_allclose(got, [math.pi / 2, t], rtol=1e-12)


def test_rank_deficient_columns_are_dropped(bk64, hrng):
    sl = pytest.importorskip("scipy.linalg")
    A = hrng.normal(size=(8, 2))
    A = np.concatenate([A, A @ np.array([[1.0], [2.0]])], axis=1)  # third column dependent
    B = hrng.normal(size=(8, 3))
    got = _angles(A, B)
    assert got.shape == (2,)
    np.testing.assert_allclose(got, sl.subspace_angles(A, B), atol=1e-12)


def test_bad_input(bk, hrng):
    A = backend.asarray(hrng.normal(size=(5, 2)))
    with pytest.raises(ValueError, match="same number of rows"):
        subspace_angles(A, backend.asarray(hrng.normal(size=(6, 2))))
    with pytest.raises(ValueError, match=r"\(p, 1\)"):
        subspace_angles(A, backend.asarray(hrng.normal(size=(5,))))
    bad = hrng.normal(size=(5, 2))
    bad[1, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        subspace_angles(A, backend.asarray(bad))


def test_numpy_input_is_computed_on_the_active_backend(bk, hrng):
    # host (NumPy) matrices come back as the backend's arrays, as from every fit
    A, B = hrng.normal(size=(6, 2)), hrng.normal(size=(6, 3))
    theta = subspace_angles(A, B)
    assert type(theta) is type(backend.asarray(np.zeros(1)))
    assert theta.dtype == backend.asarray(np.zeros(1)).dtype
    np.testing.assert_allclose(host(theta), _angles(A, B), rtol=0, atol=tol(bk, 1e-12, 1e-5))
