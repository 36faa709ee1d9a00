"""The shared input checks of scratchvae.checks: how data enters a model, and the
messages a user reads when it cannot (issue 16, items 7 and 8)."""

import math
import re

import numpy as np
import pytest

from conftest import host
from scratchvae import backend
from scratchvae.checks import (UNIT_SCALE_RMS, as_data, check_beta, check_data,
                               check_magnitude, check_unit_interval, check_unit_scale)


def test_as_data_accepts_array_likes_and_gives_backend_floats(bk):
    rows = [[0.0, 1.0], [2.0, 3.0]]
    for x in (rows, np.array(rows), np.array(rows, dtype=np.float32), np.array(rows, dtype=np.uint8),
              np.array(rows, dtype=np.int64), backend.asarray(np.array(rows))):
        X = as_data(x)
        assert X.dtype == bk.dtype and X.shape == (2, 2)
        np.testing.assert_array_equal(host(X), rows)
    X = as_data(np.array([[True, False]]))  # a 0/1 mask: floats
    assert X.dtype == bk.dtype and host(X).tolist() == [[1.0, 0.0]]
    A = backend.asarray(np.array(rows))
    assert as_data(A) is A  # a backend array in the backend's dtype passes as it is


@pytest.mark.parametrize("x, dtype, fix", [
    (np.ones((2, 2), dtype=np.complex128), "complex128", r"pass x_train\.real \(or abs\(x_train\)\)"),
    ([[1j, 2.0]], "complex128", r"pass x_train\.real"),
    (np.array([["a", "b"]]), "<U1", r"convert it to numbers first, e\.g\. x_train\.astype\(float\)"),
    (np.array([[1.0, None]], dtype=object), "object", r"convert it to numbers first, e\.g\. x_train\.astype"),
])
def test_as_data_refuses_what_is_not_real_numbers(bk, x, dtype, fix):
    with pytest.raises(ValueError, match=rf"^x_train must hold real numbers \(float\), got {dtype}; {fix}"):
        as_data(x, "x_train")


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
def test_as_data_says_when_float32_cannot_hold_the_values():
    """1e39 fits float64 but not float32: the cast would make it inf, and 'NaN or infinite'
    would be false. NaN in the data itself is still the finite check's to report."""
    with backend.using("numpy", dtype="float32"):
        with pytest.raises(ValueError, match=r"^X holds values as large as 1e\+39, beyond the largest float32 "
                                             r"\(3\.4e\+38\).*X / abs\(X\)\.max\(\) \(or use float64"):
            as_data(np.full((3, 2), 1e39), "X")
        with pytest.raises(ValueError, match=r"values as large as 1e\+200.*abs\(X\)\.max\(\)$"):
            as_data(np.full((3, 2), 1e200), "X")  # too large for float64's squares too: no float64 advice
        x = np.full((3, 2), 1e39)
        x[0, 0] = np.nan
        assert not np.isfinite(host(as_data(x))).all()  # left for check_finite


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
def test_as_data_float32_check_on_a_strict_device():
    with backend.using("array_api_strict", dtype="float32", device="device1"), \
            pytest.raises(ValueError, match=r"beyond the largest float32"):
        as_data(np.full((3, 2), -1e39), "X")


def test_check_data_names_huge_values_instead_of_calling_them_infinite(bk):
    big = 1e200 if bk.dtype_name == "float64" else 1e30
    x = backend.asarray(np.full((4, 3), big))
    with pytest.raises(ValueError, match=rf"^x holds values as large as {re.escape(f'{big:.3g}')}, whose squares overflow "
                                         rf"{bk.dtype_name} \(largest .*\); scale the data first: x / abs\(x\)\.max\(\)$"):
        check_data(x, 3, "the model", unit_interval=False)
    check_magnitude(backend.asarray(np.full((4, 3), 1e15)), "x")  # squares 1e30 fit float32
    with pytest.raises(ValueError, match=r"summed 48 at a time \(as in a variance\), can overflow"):
        check_magnitude(backend.asarray(np.full((4, 3), 1e154 if bk.dtype_name == "float64" else 1e19)),
                        "x", terms=48)


def test_check_unit_scale_refuses_8bit_pixels_with_the_fix(bk):
    x = backend.asarray(np.tile([0.0, 255.0], (5, 2)))
    with pytest.raises(ValueError, match=r"^x has root-mean-square 180 \(values up to 255\), too far from unit "
                                         r"scale for a Gaussian VAE.*x / 255 for 8-bit images, else standardize: "
                                         r"\(x - x\.mean\(0\)\) / \(x\.std\(0\) \+ 1e-8\)$"):
        check_unit_scale(x, "x")
    check_unit_scale(x / 255.0, "x")
    check_unit_scale(backend.asarray(np.zeros((2, 2))), "x")
    z = np.zeros((100, 4))  # standardized data with a rare large value: rms 1, max 36
    z[0, 0] = 36.0
    check_unit_scale(backend.asarray(z), "x")
    check_unit_scale(backend.asarray(np.full((2, 2), UNIT_SCALE_RMS)), "x")  # the limit itself passes


def test_check_unit_interval_says_exactly_what_to_do(bk):
    with pytest.raises(ValueError, match=r"run from 0 to 255; scale pixels to \[0, 1\] \(e\.g\. divide 8-bit images "
                                         r"by 255\): pass x_val / 255, or \(x_val - x_val\.min\(\)\) / "
                                         r"\(x_val\.max\(\) - x_val\.min\(\)\) for data that are not 8-bit$"):
        check_unit_interval(backend.asarray(np.array([[0.0, 255.0]])), "x_val")


def test_check_beta():
    """One check, one message, for the Trainer and VAE.loss_and_grads alike."""
    assert check_beta(0) == 0.0 and check_beta(np.float32(0.5)) == 0.5 and check_beta(2) == 2.0
    for bad in (-1.0, math.nan, math.inf, "1", True, None):
        with pytest.raises(ValueError, match=rf"^beta must be a finite number >= 0 \(the KL weight; 1 is the "
                                             rf"ELBO\), got {re.escape(repr(bad))}$"):
            check_beta(bad)


def test_as_data_names_rows_of_different_lengths(bk):
    with pytest.raises(ValueError, match=r"^x_train cannot be made an array of numbers \(.*\); pass one example per "
                                         r"row, all rows of the same length$"):
        as_data([[1.0, 2.0], [3.0]], "x_train")
