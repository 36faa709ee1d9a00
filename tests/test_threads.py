"""scratchvae.threads: the thread policy's decisions, none of which depends on timing
here (the step times are fed in), and that what it records is what ran."""

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from scratchvae import threads
from scratchvae.threads import DRIFT, ROUNDS, SMALL_PRODUCT_FLOPS, TURNS, WINDOW, ThreadPolicy, parse_setting

BIG = 2 * 128 * 784 * 400  # the 784-400-20 VAE's largest product at batch 128


def blas_now() -> set:
    """The thread counts of every BLAS library loaded (NumPy's, SciPy's, ...)."""
    return {p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"}


def run(policy, steps_and_time) -> list:
    """Take ``steps`` steps, each "taking" ``time(n)`` seconds on n threads; returns the
    thread counts the steps ran on."""
    steps, time = steps_and_time
    ran = []
    for _ in range(steps):
        ran.append(policy.threads_for_next_step())
        policy.record(time(ran[-1]))
    return ran


def test_settings_parse_and_bad_ones_say_what_to_pass(monkeypatch):
    monkeypatch.delenv(threads.ENV, raising=False)
    assert parse_setting(None) == "auto" and parse_setting("AUTO") == "auto" and parse_setting(" 3 ") == 3
    monkeypatch.setenv(threads.ENV, "1")
    assert parse_setting(None) == 1
    for bad in ("many", "0", -2, 1.5, True):
        with pytest.raises(ValueError, match="'auto' or a positive whole number"):
            parse_setting(bad)


@pytest.mark.parametrize("flops", [10.0, BIG])
def test_the_users_choice_wins(flops):
    for n in (1, 2, 3):
        p = ThreadPolicy(n, largest_product_flops=flops, available=2)
        p.start()
        assert run(p, (3 * WINDOW, lambda k: 1.0 if k == n else 1e-6)) == [n] * (3 * WINDOW)  # never re-measured
        assert p.choice == n and "set by the user" in p.reason


def test_a_product_too_small_never_gets_more_than_one_thread():
    p = ThreadPolicy("auto", largest_product_flops=SMALL_PRODUCT_FLOPS / 2, available=8)
    p.start()
    ran = run(p, (4 * WINDOW, lambda k: 1.0 if k == 1 else 1e-6))  # even if 1 thread looked slow
    assert set(ran) == {1} and p.changes == [(0, 1, p.reason)] and "too small" in p.reason


@pytest.mark.parametrize("faster", [1, 2])
def test_the_first_steps_take_turns_and_the_faster_setting_is_kept(faster):
    p = ThreadPolicy("auto", largest_product_flops=BIG, available=2)
    p.start()
    trial = 2 * TURNS * ROUNDS
    ran = run(p, (trial + 10, lambda k: 1e-3 if k == faster else 2e-3))
    assert ran[:trial] == ([1] * TURNS + [2] * TURNS) * ROUNDS  # real steps, taking turns
    assert ran[trial:] == [faster] * 10 and p.choice == faster and "measured at the start" in p.reason


def test_a_drifting_step_time_measures_again():
    p = ThreadPolicy("auto", largest_product_flops=BIG, available=2)
    p.start()
    trial = 2 * TURNS * ROUNDS
    run(p, (trial, lambda k: 1e-3 if k == 2 else 2e-3))  # quiet: 2 threads win
    assert p.choice == 2
    run(p, (WINDOW - 1, lambda k: 1e-3 * DRIFT * 0.9))  # slower, but not by DRIFT: kept
    run(p, (1, lambda k: 1e-3 * DRIFT * 0.9))
    assert p.threads_for_next_step() == 2
    busy = run(p, (WINDOW + trial, lambda k: 1e-3 if k == 1 else 2e-2))  # another program starts
    assert busy[WINDOW:] == ([1] * TURNS + [2] * TURNS) * ROUNDS
    assert p.choice == 1 and "measured again" in p.reason and len(p.changes) == 2
    assert p.record_dict()["changes"][-1][1] == 1


def test_what_is_recorded_is_what_runs_and_the_pool_is_put_back():
    import scipy.linalg  # noqa: F401  (a second BLAS library: the limits must reach both)

    before = blas_now()
    p = ThreadPolicy("auto", largest_product_flops=BIG, available=2)
    p.start()
    a = np.ones((64, 64), np.float32)
    with p.limits():
        for _ in range(2 * TURNS * ROUNDS + 3):
            n = p.threads_for_next_step()
            assert blas_now() == {n}
            a @ a
            p.record(1e-3 if n == 1 else 2e-3)
        assert blas_now() == {1} == {p.choice}
    assert blas_now() == before


def test_on_a_gpu_nothing_is_applied():
    before = blas_now()
    p = ThreadPolicy(1, device="gpu")
    p.start()
    with p.limits():
        assert p.threads_for_next_step() is None and blas_now() == before
    assert "GPU" in p.describe()


def test_configure_sets_the_whole_process_and_restore_puts_it_back():
    before = blas_now()
    try:
        line = threads.configure(1)
        assert blas_now() == {1} and "set by the user" in line
        line = threads.configure("auto", shape=(8, 8, 8))  # a small product: one thread, no measuring
        assert blas_now() == {1} and "too small" in line
        line = threads.configure("auto")
        assert blas_now() == {int(line.split()[1])} and ("measured" in line or "all BLAS has" in line)
    finally:
        threads.restore()
    assert blas_now() == before
