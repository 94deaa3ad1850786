"""Tests for jsoftmax.softmax: values, derivatives, edge rows, sharding, dtypes."""

from functools import partial

import chex
import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest
from absl.testing import parameterized
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from jax.test_util import check_grads

import jsoftmax

inf, nan = np.inf, np.nan
settings.register_profile("jsoftmax", derandomize=True, deadline=None, max_examples=60)
settings.load_profile("jsoftmax")

NORMALISERS = {
    "softmax": jsoftmax.softmax,
    "log_softmax": jsoftmax.log_softmax,
    "logsumexp": jsoftmax.logsumexp,
}


# --------------------------------------------------------------------------- #
# mpmath references
# --------------------------------------------------------------------------- #
def _mp_row(row, temperature):
    mpmath.mp.prec = 200
    xs = [mpmath.mpf(float(v)) / mpmath.mpf(float(temperature)) for v in row]
    top = max(xs)
    total = mpmath.fsum(mpmath.exp(v - top) for v in xs)
    lse = top + mpmath.log(total)
    log_p = [v - lse for v in xs]
    return (
        np.array([float(mpmath.exp(v)) for v in log_p]),
        np.array([float(v) for v in log_p]),
        float(lse * mpmath.mpf(float(temperature))),
    )


def _rows(rng, dtype):
    rows, temps = [], []
    for scale in (1.0, 30.0, 1e4):
        for t in (1e-3, 0.5, 1.0, 7.0, 1e3):
            rows.append((rng.standard_normal(12) * scale).astype(dtype))
            temps.append(t)
    return np.stack(rows), np.array(temps)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.slow
def test_accuracy_against_mpmath(dtype):
    rng = np.random.default_rng(0)
    x, temps = _rows(rng, dtype)
    t = jnp.asarray(temps[:, None], dtype)
    p = np.asarray(jsoftmax.softmax(jnp.asarray(x), temperature=t), np.float64)
    lp = np.asarray(jsoftmax.log_softmax(jnp.asarray(x), temperature=t), np.float64)
    lse = np.asarray(jsoftmax.logsumexp(jnp.asarray(x), temperature=t), np.float64)
    eps = np.finfo(dtype).eps
    worst = {"softmax": 0.0, "log_softmax": 0.0, "logsumexp": 0.0}
    for i in range(len(x)):
        # The input row is exact in dtype; T is rounded to dtype, so use that T.
        ref_p, ref_lp, ref_lse = _mp_row(x[i], dtype(temps[i]))
        big = ref_p > np.finfo(dtype).tiny / eps
        rel_p = np.abs(p[i] - ref_p)[big] / ref_p[big]
        # log-probabilities: error relative to the size of the exponent involved
        scale_lp = np.maximum(
            np.abs(x[i].astype(np.float64) / dtype(temps[i])).max(), 1
        )
        worst["softmax"] = max(worst["softmax"], rel_p.max() / eps)
        # exp turns an absolute error in the exponent log p into a relative one:
        # bound the softmax error by the size of that exponent.
        conditioned = rel_p / (1 + np.abs(ref_lp[big]))
        worst["softmax/(1+|log p|)"] = max(
            worst.get("softmax/(1+|log p|)", 0.0), conditioned.max() / eps
        )
        worst["log_softmax"] = max(
            worst["log_softmax"], (np.abs(lp[i] - ref_lp) / scale_lp).max() / eps
        )
        worst["logsumexp"] = max(
            worst["logsumexp"], abs(lse[i] - ref_lse) / max(abs(ref_lse), 1) / eps
        )
    print(f"worst error in eps of {np.dtype(dtype).name}: {worst}")
    # softmax: relative error grows like |x/T|·eps through exp of a rounded
    # difference; the rows here reach |x/T| ~ 1e7, so we bound by that.
    assert worst["softmax/(1+|log p|)"] < 4
    assert worst["log_softmax"] < 8
    assert worst["logsumexp"] < 8


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_relative_accuracy_moderate_rows(dtype):
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((20, 16)) * 3).astype(dtype)
    p = np.asarray(jsoftmax.softmax(jnp.asarray(x)), np.float64)
    worst = 0.0
    for i in range(len(x)):
        ref = _mp_row(x[i], 1.0)[0]
        worst = max(worst, (np.abs(p[i] - ref) / ref).max())
    in_eps = worst / np.finfo(dtype).eps
    print(f"softmax worst relative error, |x| <~ 10: {in_eps:.2f} eps")
    assert worst < 16 * np.finfo(dtype).eps


# --------------------------------------------------------------------------- #
# Drop-in equality with jax.nn
# --------------------------------------------------------------------------- #
class DropInTest(parameterized.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters(
        dict(axis=-1), dict(axis=0), dict(axis=1), dict(axis=(0, 2)), dict(axis=None)
    )
    @pytest.mark.slow
    def test_matches_jax_nn(self, axis):
        x = jax.random.normal(jax.random.key(0), (3, 4, 5))
        where = jax.random.bernoulli(jax.random.key(1), 0.8, (3, 4, 5))
        ours = self.variant(lambda x: jsoftmax.softmax(x, axis))(x)
        np.testing.assert_allclose(ours, jax.nn.softmax(x, axis), rtol=1e-14)
        ours = self.variant(lambda x: jsoftmax.log_softmax(x, axis, where))(x)
        theirs = jax.nn.log_softmax(x, axis, where)
        np.testing.assert_allclose(
            np.where(where, ours, 0), np.where(where, theirs, 0), rtol=1e-13, atol=1e-14
        )
        ours = self.variant(lambda x: jsoftmax.logsumexp(x, axis))(x)
        np.testing.assert_allclose(ours, jax.nn.logsumexp(x, axis), rtol=1e-14)
        ours = self.variant(lambda x: jsoftmax.logsumexp(x, axis, where=where))(x)
        np.testing.assert_allclose(
            ours, jax.nn.logsumexp(x, axis, where=where), rtol=1e-14
        )

    def test_integer_input_promotes_like_jax_nn(self):
        x = jnp.array([1, 2, 3])
        np.testing.assert_allclose(jsoftmax.softmax(x), jax.nn.softmax(x), rtol=1e-14)
        assert jsoftmax.softmax(x).dtype == jax.nn.softmax(x).dtype


# --------------------------------------------------------------------------- #
# Derivatives
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("name", list(NORMALISERS))
@pytest.mark.slow
def test_check_grads_in_x_and_temperature(name):
    fn = NORMALISERS[name]
    x = jax.random.normal(jax.random.key(2), (3, 5))
    t = jnp.array([[0.7], [1.3], [2.0]])
    check_grads(
        lambda x, t: fn(x, temperature=t), (x, t), order=2, modes=("fwd", "rev")
    )
    where = jnp.array([[True, False, True, True, True]] * 3)
    check_grads(
        lambda x: fn(x, where=where, temperature=0.9),
        (x,),
        order=2,
        modes=("fwd", "rev"),
    )


@pytest.mark.slow
def test_hessian_of_log_softmax():
    x = jax.random.normal(jax.random.key(3), (6,))
    p = jsoftmax.softmax(x)
    hess = jax.hessian(lambda x: jnp.dot(jnp.arange(6.0), jsoftmax.log_softmax(x)))(x)
    # Each log p_i has Hessian -(diag p - p pᵀ): weighted by c_i it scales by Σc.
    expected = -(jnp.diag(p) - jnp.outer(p, p)) * jnp.sum(jnp.arange(6.0))
    np.testing.assert_allclose(hess, expected, rtol=1e-12, atol=1e-14)
    hess_lse = jax.hessian(jsoftmax.logsumexp)(x)
    np.testing.assert_allclose(hess_lse, jnp.diag(p) - jnp.outer(p, p), atol=1e-14)


@pytest.mark.parametrize("name", list(NORMALISERS))
@pytest.mark.slow
def test_temperature_derivative_against_finite_differences(name):
    fn = NORMALISERS[name]
    x = jnp.array([[0.3, -1.2, 2.5, 0.0], [4.0, 4.0, -3.0, 1.0]])
    t0, h = 1.7, 1e-6
    cot = jnp.ones_like(fn(x, temperature=t0))
    grad = jax.grad(lambda t: jnp.sum(cot * fn(x, temperature=t)))(t0)
    fd = (jnp.sum(fn(x, temperature=t0 + h)) - jnp.sum(fn(x, temperature=t0 - h))) / (
        2 * h
    )
    np.testing.assert_allclose(grad, fd, rtol=1e-7, atol=1e-9)
    tangent = jax.jvp(lambda t: fn(x, temperature=t), (t0,), (1.0,))[1]
    fd_vec = (fn(x, temperature=t0 + h) - fn(x, temperature=t0 - h)) / (2 * h)
    np.testing.assert_allclose(tangent, fd_vec, rtol=1e-6, atol=1e-9)


def test_logsumexp_temperature_derivative_is_entropy():
    x = jnp.array([0.5, 1.5, -0.25])
    p = jsoftmax.softmax(x, temperature=2.0)
    grad = jax.grad(lambda t: jsoftmax.logsumexp(x, temperature=t))(2.0)
    np.testing.assert_allclose(grad, -jnp.sum(p * jnp.log(p)), rtol=1e-13)


@pytest.mark.slow
def test_tail_of_the_jvp_is_kept():
    x = jnp.array([40.0, 0.0])
    tail = np.exp(-40.0) / (1 + np.exp(-40.0))
    for grad in (
        jax.grad(lambda x: jsoftmax.softmax(x)[0])(x),
        jax.jacfwd(jsoftmax.softmax)(x)[0],
        jax.jacrev(jsoftmax.softmax)(x)[0],
    ):
        np.testing.assert_allclose(grad, [tail, -tail], rtol=1e-14)
    # log_softmax's rule is the plain e_i - p (one read of log p less in the
    # backward than a tail-exact rule: 1.14x against 1.46x jax.nn's bytes on
    # H100): at the dominant entry 1 - p_0 rounds to 0, as in jax.nn.
    for grad in (
        jax.grad(lambda x: jsoftmax.log_softmax(x)[0])(x),
        jax.jacfwd(jsoftmax.log_softmax)(x)[0],
        jax.jacrev(jsoftmax.log_softmax)(x)[0],
    ):
        np.testing.assert_allclose(grad, [0, -tail], rtol=1e-14)
        np.testing.assert_array_equal(
            grad, jax.grad(lambda x: jax.nn.log_softmax(x)[0])(x)
        )
    np.testing.assert_allclose(
        jsoftmax.softmax_jacobian(x)[0], [tail, -tail], rtol=1e-14
    )


@pytest.mark.slow
def test_softmax_gradient_rows_sum_to_zero():
    x = jax.random.normal(jax.random.key(4), (4, 7)) * 5
    jac = jax.vmap(jax.jacrev(jsoftmax.softmax))(x)
    np.testing.assert_allclose(jnp.sum(jac, -1), 0, atol=1e-15)


@pytest.mark.slow
def test_softmax_jacobian_closed_form():
    x = jax.random.normal(jax.random.key(5), (2, 3, 5))
    t = jnp.array([[[0.5], [1.0], [2.0]]] * 2)
    expected = jax.vmap(
        jax.vmap(jax.jacfwd(lambda r, t: jsoftmax.softmax(r, temperature=t)))
    )(x, t)
    np.testing.assert_allclose(
        jsoftmax.softmax_jacobian(x, temperature=t), expected, rtol=1e-12, atol=1e-15
    )
    moved = jsoftmax.softmax_jacobian(jnp.moveaxis(x, -1, 0), axis=0)
    np.testing.assert_allclose(moved, jsoftmax.softmax_jacobian(x), rtol=1e-14)


# --------------------------------------------------------------------------- #
# Edge rows (DESIGN.md), values and derivatives
# --------------------------------------------------------------------------- #
EDGE_ROWS = {
    "some -inf": (
        [1.0, -inf, 2.0, -inf],
        [0.2689414213699951, 0, 0.7310585786300049, 0],
    ),
    "all -inf": ([-inf, -inf, -inf, -inf], [0, 0, 0, 0]),
    "two +inf": ([1.0, inf, -inf, inf], [0, 0.5, 0, 0.5]),
    "nan": ([1.0, nan, 2.0, 0.0], [nan] * 4),
}


def _all_derivatives(fn, x):
    """Order-1 and order-2 derivatives by forward and reverse mode."""
    return {
        "jacfwd": jax.jacfwd(fn)(x),
        "jacrev": jax.jacrev(fn)(x),
        "hessian": jax.hessian(
            lambda x: jnp.sum(jnp.where(jnp.isfinite(fn(x)), fn(x), 0))
        )(x),
    }


@pytest.mark.parametrize("case", list(EDGE_ROWS))
@pytest.mark.slow
def test_edge_rows_values_and_derivatives(case):
    row, expected_p = EDGE_ROWS[case]
    x = jnp.array(row)
    p = jsoftmax.softmax(x)
    np.testing.assert_allclose(p, expected_p, rtol=1e-14)
    lp = jsoftmax.log_softmax(x)
    with np.errstate(divide="ignore"):
        expected_lp = np.log(np.array(expected_p))
    np.testing.assert_allclose(lp, expected_lp, rtol=1e-14)
    lse = jsoftmax.logsumexp(x)
    finite = np.asarray(x)[np.isfinite(x)]
    expected_lse = {
        "some -inf": np.log(np.sum(np.exp(finite))) if finite.size else -inf,
        "all -inf": -inf,
        "two +inf": inf,
        "nan": nan,
    }[case]
    np.testing.assert_allclose(lse, expected_lse, rtol=1e-14)
    for fn in (jsoftmax.softmax, jsoftmax.log_softmax, jsoftmax.logsumexp):
        for mode, d in _all_derivatives(fn, x).items():
            if case == "nan":
                assert np.isnan(d).all(), (fn.__name__, mode)
                continue
            assert np.isfinite(d).all(), (fn.__name__, mode, d)
            d = np.asarray(d)
            if case in ("all -inf", "two +inf"):
                np.testing.assert_array_equal(d, 0, err_msg=f"{fn.__name__} {mode}")
            else:  # zero at the -inf entries
                dead = ~np.isfinite(row)
                np.testing.assert_array_equal(
                    d[..., dead], 0, err_msg=f"{fn.__name__} {mode}"
                )
                if fn is not jsoftmax.logsumexp and mode != "hessian":
                    np.testing.assert_array_equal(d[dead], 0)


@pytest.mark.slow
def test_masked_equals_minus_inf_values_and_gradients():
    x = jnp.array([[0.3, 1.0, -2.0, 0.5]])
    where = jnp.array([[True, False, True, False]])
    x_inf = jnp.where(where, x, -inf)
    for fn in (jsoftmax.softmax, jsoftmax.log_softmax, jsoftmax.logsumexp):
        np.testing.assert_array_equal(fn(x, where=where), fn(x_inf))
        g_mask = jax.grad(
            lambda x: jnp.sum(jnp.where(jnp.isfinite(v := fn(x, where=where)), v, 0))
        )(x)
        assert np.isfinite(g_mask).all()
        np.testing.assert_array_equal(g_mask[~where], 0)
    all_masked = jnp.zeros_like(where)
    np.testing.assert_array_equal(jsoftmax.softmax(x, where=all_masked), 0)
    np.testing.assert_array_equal(jsoftmax.log_softmax(x, where=all_masked), -inf)
    np.testing.assert_array_equal(jsoftmax.logsumexp(x, where=all_masked), -inf)
    g = jax.grad(lambda x: jnp.sum(jsoftmax.softmax(x, where=all_masked) * x))(x)
    np.testing.assert_array_equal(g, 0)


# 4096 wide: XLA:CPU's vectorised max can drop a NaN, so the NaN must be
# carried by the row sum (see jsoftmax/_rows.py); at T = 0 too.
@pytest.mark.parametrize("width", [5, 4096])
@pytest.mark.parametrize("temperature", [1.0, 0.0])
@pytest.mark.slow
def test_nan_is_confined_to_its_row(width, temperature):
    x = jax.random.normal(jax.random.key(6), (4, width))
    bad = x.at[2, 3].set(nan)
    w = jax.random.normal(jax.random.key(7), (4, width))
    for fn in (
        partial(jsoftmax.softmax, temperature=temperature),
        partial(jsoftmax.log_softmax, temperature=temperature),
        partial(jsoftmax.logsumexp, temperature=temperature, keepdims=True),
    ):
        out, good = fn(bad), fn(x)
        assert np.isnan(out[2]).all()
        np.testing.assert_array_equal(np.delete(out, 2, 0), np.delete(good, 2, 0))
        g_bad = jax.grad(lambda x: jnp.sum(w * fn(x)))(bad)
        g_good = jax.grad(lambda x: jnp.sum(w * fn(x)))(x)
        assert np.isnan(g_bad[2]).all()
        np.testing.assert_array_equal(np.delete(g_bad, 2, 0), np.delete(g_good, 2, 0))
        jvp = jax.jvp(fn, (bad,), (w,))[1]
        assert np.isnan(jvp[2]).all() and np.isfinite(np.delete(jvp, 2, 0)).all()


# --------------------------------------------------------------------------- #
# Temperature
# --------------------------------------------------------------------------- #
@pytest.mark.slow
def test_zero_temperature_is_hard_max_with_shared_ties():
    x = jnp.array([[1.0, 3.0, 3.0, -inf], [2.0, -1.0, 0.0, 1.0]])
    np.testing.assert_array_equal(
        jsoftmax.softmax(x, temperature=0.0), [[0, 0.5, 0.5, 0], [1, 0, 0, 0]]
    )
    np.testing.assert_allclose(
        jsoftmax.log_softmax(x, temperature=0.0),
        [[-inf, -np.log(2), -np.log(2), -inf], [0, -inf, -inf, -inf]],
    )
    np.testing.assert_array_equal(jsoftmax.logsumexp(x, temperature=0.0), [3.0, 2.0])
    for fn in (jsoftmax.softmax, jsoftmax.log_softmax):
        g = jax.jacrev(lambda x, t: fn(x, temperature=t), argnums=(0, 1))(x, 0.0)
        np.testing.assert_array_equal(g[0], 0)
        np.testing.assert_array_equal(g[1], 0)


def test_infinite_temperature_is_uniform_over_live_entries():
    x = jnp.array([[1.0, 300.0, -inf, -2.0], [-inf, -inf, -inf, -inf]])
    np.testing.assert_allclose(
        jsoftmax.softmax(x, temperature=inf),
        [[1 / 3, 1 / 3, 0, 1 / 3], [0, 0, 0, 0]],
        rtol=1e-15,
    )
    g = jax.jacrev(lambda x, t: jsoftmax.softmax(x, temperature=t), argnums=(0, 1))(
        x, inf
    )
    np.testing.assert_array_equal(g[0], 0)
    np.testing.assert_array_equal(g[1], 0)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("temperature", [1e-30, 1e30])
@pytest.mark.slow
def test_extreme_temperatures_do_not_overflow_into_nan(dtype, temperature):
    x = jnp.array([[1.0, 2.0, -inf, 2.0], [-5.0, 0.0, 1e3, -1e3]], dtype)
    for fn in NORMALISERS.values():
        out = fn(x, temperature=temperature)
        assert not np.isnan(out).any(), fn.__name__
        g = jax.grad(
            lambda x, t: jnp.sum(
                jnp.where(jnp.isfinite(v := fn(x, temperature=t)), v, 0)
            ),
            argnums=(0, 1),
        )(x, jnp.asarray(temperature, dtype))
        assert not np.isnan(g[0]).any() and not np.isnan(g[1]).any(), fn.__name__
    p = jsoftmax.softmax(x, temperature=temperature)
    if temperature < 1:
        np.testing.assert_allclose(p, [[0, 0.5, 0, 0.5], [0, 0, 1, 0]])
    else:
        np.testing.assert_allclose(p, [[1 / 3, 1 / 3, 0, 1 / 3], [0.25] * 4], rtol=1e-6)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.slow
def test_rows_spanning_the_float_range(dtype):
    # x - max is never formed where it overflows: log_softmax([-c, c], T) is
    # [-2c/T, 0] for c = max_float/3 and for c = max_float, where x - max is
    # -inf in floating point, with the gradient of its first entry [1, -1]/T;
    # an extreme T in the same batch changes nothing in the other rows.
    big = float(jnp.finfo(dtype).max)
    c = np.asarray(big / 3, dtype)
    x = jnp.array([[-c, c], [-big, big], [-c, c]], dtype)
    for t_last in (4.0, 0.0, 1e30):
        t = jnp.array([[4.0], [4.0], [t_last]], dtype)
        lp = jsoftmax.log_softmax(x, temperature=t)
        np.testing.assert_array_equal(lp[0], [(-c - c) / 4, 0])
        np.testing.assert_array_equal(lp[1], [-np.asarray(big / 2, dtype), 0])
        g = jax.grad(lambda x: jnp.sum(jsoftmax.log_softmax(x, temperature=t)[:, 0]))(x)  # noqa: B023
        np.testing.assert_array_equal(g[:2], [[0.25, -0.25]] * 2)
    # At large finite T the probabilities are those of (x - max)/T, not [1, 0].
    y = jsoftmax.softmax(jnp.array([3e38, -3e38], jnp.float32), temperature=1e38)
    np.testing.assert_allclose(
        y, [1 / (1 + np.exp(-6)), 1 / (1 + np.exp(6))], rtol=1e-6
    )


@pytest.mark.parametrize("name", sorted(NORMALISERS))
def test_temperature_tangent_of_any_size_at_minus_inf_entries(name):
    # Forward mode in T with |dT| > 1: log p = -inf at a -inf entry must not
    # become -max_float·dT = -inf there and then 0·inf = NaN.
    x = jnp.array([1.0, -inf, 2.0])
    fn = NORMALISERS[name]
    _, unit = jax.jvp(lambda t: fn(x, temperature=t), (0.7,), (1.0,))
    _, big = jax.jvp(lambda t: fn(x, temperature=t), (0.7,), (3.0,))
    assert np.isfinite(unit).all() and not np.isnan(big).any()
    np.testing.assert_allclose(big, 3 * unit, rtol=1e-6)
    if name != "logsumexp":
        assert big[1] == 0


@pytest.mark.parametrize("bad", [-1.0, nan, np.array([[1.0], [-0.5]])])
def test_concrete_bad_temperature_raises(bad):
    x = jnp.ones((2, 3))
    for fn in list(NORMALISERS.values()) + [jsoftmax.softmax_jacobian]:
        with pytest.raises(ValueError, match="temperature"):
            fn(x, temperature=bad)
    with pytest.raises(ValueError, match="temperature"):
        jsoftmax.sample(jax.random.key(0), x, temperature=bad)


def test_traced_bad_temperature_gives_nan_in_that_row_only():
    x = jax.random.normal(jax.random.key(8), (3, 4))
    t = jnp.array([1.0, -1.0, nan])
    for fn in NORMALISERS.values():
        out = jax.jit(lambda x, t: fn(x, temperature=t))(x, t)
        assert np.isfinite(out[0]).all()
        assert np.isnan(out[1]).all() and np.isnan(out[2]).all()


def test_temperature_shapes():
    x = jax.random.normal(jax.random.key(9), (3, 4))
    per_row = jnp.array([0.5, 1.0, 2.0])
    expected = jnp.stack(
        [jsoftmax.softmax(x[i], temperature=float(per_row[i])) for i in range(3)]
    )
    np.testing.assert_allclose(
        jsoftmax.softmax(x, temperature=per_row), expected, rtol=1e-14
    )
    np.testing.assert_allclose(
        jsoftmax.softmax(x, temperature=per_row[:, None]), expected, rtol=1e-14
    )
    with pytest.raises(ValueError, match="temperature"):
        jsoftmax.softmax(x, temperature=jnp.ones(4))


def test_temperature_is_traced_no_retrace():
    x = jax.random.normal(jax.random.key(10), (3, 4))

    @jax.jit
    @chex.assert_max_traces(n=1)
    def f(x, t):
        return jsoftmax.softmax(x, temperature=t), jsoftmax.logsumexp(x, temperature=t)

    for t in (0.5, 1.0, 3.0, 0.0):
        f(x, jnp.float64(t))


def test_bad_arguments_name_themselves():
    x = jnp.ones((2, 3))
    with pytest.raises(ValueError, match="axis"):
        jsoftmax.softmax(x, axis=2)
    with pytest.raises(TypeError, match="where"):
        jsoftmax.softmax(x, where=jnp.ones((2, 3)))
    with pytest.raises(ValueError, match="where"):
        jsoftmax.softmax(x, where=jnp.ones((3, 3), bool))
    with pytest.raises(ValueError, match="where"):
        jsoftmax.softmax(x, where=jnp.ones((2,), bool))  # trailing axis is 3
    with pytest.raises(ValueError, match="where"):
        jsoftmax.softmax(x, where=jnp.ones((1, 2, 3), bool))


@pytest.mark.slow
def test_lower_rank_where_broadcasts_like_jax_nn():
    # NumPy broadcasting, as in jax.nn: a (K,) mask applies to every row.
    x = jax.random.normal(jax.random.key(14), (3, 5))
    mask = jnp.array([True, False, True, True, False])
    full = jnp.broadcast_to(mask, x.shape)
    for name, fn in NORMALISERS.items():
        np.testing.assert_array_equal(fn(x, where=mask), fn(x, where=full), name)
        g = jax.grad(lambda x: jnp.sum(jnp.sin(fn(x, where=mask))))(x)  # noqa: B023
        np.testing.assert_array_equal(g[:, ~mask], 0, name)
    np.testing.assert_allclose(
        jsoftmax.softmax(x, where=mask), jax.nn.softmax(x, where=mask), rtol=1e-6
    )
    # The losses' where masks classes per example and must have the logits'
    # rank: a lower-rank one could mean per-example (see losses_test).
    with pytest.raises(ValueError, match="must have the rank of logits"):
        jsoftmax.softmax_cross_entropy_with_integer_labels(
            x, jnp.array([0, 2, 3]), where=mask
        )
    with pytest.raises(TypeError, match="x must be real"):
        jsoftmax.softmax(jnp.ones(3, jnp.complex64))


# --------------------------------------------------------------------------- #
# Precision
# --------------------------------------------------------------------------- #
@pytest.mark.slow
def test_sixteen_bit_inputs_are_computed_in_float32():
    lp = jsoftmax.log_softmax(jnp.zeros(65536, jnp.float16))
    assert lp.dtype == jnp.float16
    np.testing.assert_allclose(np.asarray(lp, np.float64), -np.log(65536), rtol=1e-3)
    x = jax.random.normal(jax.random.key(11), (8, 1000)) * 4
    for dtype in (jnp.bfloat16, jnp.float16):
        xd = x.astype(dtype)
        ref = jax.nn.softmax(xd.astype(jnp.float64))
        out = jsoftmax.softmax(xd)
        assert out.dtype == dtype
        normal = ref > float(jnp.finfo(dtype).tiny)
        rel = (np.abs(np.asarray(out, np.float64) - ref) / ref)[normal]
        # only the final rounding to 16 bits remains: half an ulp of the format
        assert rel.max() <= float(jnp.finfo(dtype).eps) / 2 * 1.01


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
@pytest.mark.parametrize("name", sorted(NORMALISERS))
@pytest.mark.slow
def test_sixteen_bit_derivatives_match_float64(name, dtype):
    # The cores widen 16-bit x inside; the cotangent comes back in x's dtype,
    # off the float64 derivative of the same (rounded) input by its rounding only.
    key_x, key_g = jax.random.split(jax.random.key(12))
    x = jax.random.normal(key_x, (4, 50)) * 3
    x = x.at[1, 3].set(-inf).at[2, 5].set(inf).astype(dtype)
    fn = NORMALISERS[name]
    g = jax.random.normal(key_g, fn(x).shape).astype(dtype)
    out, pullback = jax.vjp(fn, x)
    grad = pullback(g)[0]
    assert out.dtype == dtype and grad.dtype == dtype
    _, pullback64 = jax.vjp(fn, x.astype(jnp.float64))
    ref = pullback64(g.astype(jnp.float64))[0]
    eps = float(jnp.finfo(dtype).eps)
    grad = np.asarray(grad, np.float64)
    np.testing.assert_allclose(grad, ref, rtol=eps, atol=eps * np.abs(ref).max())
    np.testing.assert_array_equal(grad[2], 0)  # the +inf row
    if name != "logsumexp":
        assert grad[1, 3] == 0  # the -inf entry


def test_float32_stays_float32():
    x = jnp.ones((2, 3), jnp.float32)
    for fn in NORMALISERS.values():
        assert fn(x).dtype == jnp.float32
        assert fn(x, temperature=jnp.float64(2.0)).dtype == jnp.float32


# --------------------------------------------------------------------------- #
# Transformations and sharding
# --------------------------------------------------------------------------- #
@pytest.mark.slow
def test_vmap_matches_batched():
    x = jax.random.normal(jax.random.key(12), (5, 6))
    t = jnp.linspace(0.5, 2.0, 5)
    for fn in NORMALISERS.values():
        batched = fn(x, temperature=t)
        mapped = jax.vmap(lambda r, t: fn(r, temperature=t))(x, t)
        np.testing.assert_allclose(mapped, batched, rtol=1e-14)
        g = jax.vmap(
            jax.grad(lambda r, t: jnp.sum(fn(r, temperature=t) ** 2), argnums=(0, 1))
        )(x, t)
        assert np.isfinite(g[0]).all() and np.isfinite(g[1]).all()


# --------------------------------------------------------------------------- #
# Wide rows (above 32768 entries, where XLA:CPU changes its reduction)
# --------------------------------------------------------------------------- #
def _wide_rows(width):
    """Ordinary rows and every edge row, ``width`` entries each (float32)."""
    rng = np.random.default_rng(8)
    x = rng.standard_normal((6, width)) * 4
    x[1, ::3] = -inf
    x[2] = -inf
    x[3, [5, width - 1]] = inf
    x[4, width // 2] = nan
    x[5] *= 30
    return x.astype(np.float32)


def _float64_log_softmax(x, t):
    z = x.astype(np.float64) / t
    top = np.max(z, -1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        lse = top + np.log(np.sum(np.exp(z - top), -1, keepdims=True))
        return z - lse, lse * t


# Rows wider than 32768 (40000, and 32771, a prime).
@pytest.mark.parametrize("width", [40000, 32771])
@pytest.mark.slow
def test_wide_rows_match_float64_values_and_gradients(width):
    x = _wide_rows(width)
    t = np.array([[1.0], [0.5], [1.0], [2.0], [1.0], [3.0]], np.float32)
    w = np.random.default_rng(9).standard_normal(x.shape).astype(np.float32)
    ordinary = [0, 1, 5]
    ref_lp, ref_lse = _float64_log_softmax(x[ordinary], t[ordinary])
    ref_p = np.exp(ref_lp)
    lp, vjp_lp = jax.vjp(lambda x: jsoftmax.log_softmax(x, temperature=t), x)
    p, vjp_p = jax.vjp(lambda x: jsoftmax.softmax(x, temperature=t), x)
    lse = np.asarray(jsoftmax.logsumexp(x, temperature=t, keepdims=True))
    lp, p = np.asarray(lp), np.asarray(p)
    np.testing.assert_allclose(lp[ordinary], ref_lp, rtol=2e-6, atol=2e-6)
    np.testing.assert_allclose(p[ordinary], ref_p, rtol=2e-5, atol=1e-30)
    np.testing.assert_allclose(lse[ordinary], ref_lse, rtol=1e-6)
    # Edge rows: all -inf; two +inf entries sharing 1/2; NaN confined.
    np.testing.assert_array_equal(lp[2], -inf)
    np.testing.assert_array_equal(p[2], 0)
    assert lse[2, 0] == -inf and lse[3, 0] == inf and np.isnan(lse[4, 0])
    np.testing.assert_array_equal(p[3], np.where(np.isinf(x[3]), 0.5, 0))
    np.testing.assert_array_equal(
        lp[3], np.where(np.isinf(x[3]), np.float32(-np.log(2)), -inf)
    )
    assert np.isnan(lp[4]).all() and np.isnan(p[4]).all()
    # Reverse mode against the float64 formulas (1/T)·(w - p·Σw) and
    # (1/T)·p·(w - <p, w>), zero at -inf entries; 0 on the edge rows but NaN.
    wo = w[ordinary].astype(np.float64)
    alive = np.isfinite(ref_lp)
    ref_g_lp = np.where(alive, wo - ref_p * np.sum(wo * alive, -1, keepdims=True), 0)
    ref_g_p = ref_p * (wo - np.sum(ref_p * wo, -1, keepdims=True))
    g_lp, g_p = np.asarray(vjp_lp(w)[0]), np.asarray(vjp_p(w)[0])
    np.testing.assert_allclose(g_lp[ordinary], ref_g_lp / t[ordinary], atol=1e-4)
    np.testing.assert_allclose(g_p[ordinary], ref_g_p / t[ordinary], atol=1e-6)
    for g in (g_lp, g_p):
        np.testing.assert_array_equal(g[[2, 3]], 0)
        assert np.isnan(g[4]).all()
    # One row at a time (vmap) gives the batch's values, up to the rounding of
    # the row's log Σ (XLA may sum in another order: jax 0.6.2 differs by one
    # ulp of 1 where log p is -0.027).
    mapped = jax.vmap(lambda r, t: jsoftmax.log_softmax(r, temperature=t))(x, t[:, 0])
    np.testing.assert_allclose(mapped, lp, rtol=1e-6, atol=1e-6)


@pytest.mark.slow
def test_wide_rows_at_zero_and_infinite_temperature():
    # T = 0 and T = inf on 40000-wide rows, every edge row.
    x = _wide_rows(40000)
    x[0, [7, 30001]] = 50.0  # a tie for the max far apart in the row
    t = np.array([[0.0], [np.inf], [0.0], [np.inf], [0.0], [np.inf]], np.float32)
    p = np.asarray(jsoftmax.softmax(x, temperature=t))
    lp = np.asarray(jsoftmax.log_softmax(x, temperature=t))
    lse = np.asarray(jsoftmax.logsumexp(x, temperature=t, keepdims=True))
    tie = np.zeros(x.shape[1], np.float32)
    tie[[7, 30001]] = 0.5
    np.testing.assert_array_equal(p[0], tie)
    np.testing.assert_array_equal(lse[0, 0], 50.0)
    live = np.isfinite(x[1])  # T = inf: uniform over the entries above -inf
    np.testing.assert_allclose(p[1], np.where(live, 1 / live.sum(), 0), rtol=1e-6)
    np.testing.assert_array_equal(p[2], 0)
    np.testing.assert_array_equal(lp[2], -inf)
    assert lse[2, 0] == -inf
    np.testing.assert_array_equal(p[3], np.where(np.isinf(x[3]), 0.5, 0))
    assert lse[3, 0] == inf
    assert np.isnan(p[4]).all() and np.isnan(lp[4]).all() and np.isnan(lse[4, 0])
    with np.errstate(divide="ignore"):
        np.testing.assert_array_equal(lp[0], np.log(tie))
    # Zero derivative at T = 0 and T = inf, NaN only in the NaN row.
    w = np.random.default_rng(10).standard_normal(x.shape).astype(np.float32)
    for fn in (jsoftmax.softmax, jsoftmax.log_softmax):
        g = np.asarray(jax.grad(lambda x: jnp.sum(w * fn(x, temperature=t)))(x))
        np.testing.assert_array_equal(np.delete(g, 4, 0), 0)
        assert np.isnan(g[4]).all()


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_wide_sixteen_bit_rows_are_summed_in_float32(dtype):
    x = _wide_rows(40000)[[0, 5]]
    narrow = jnp.asarray(x, dtype)
    wide = np.asarray(narrow.astype(jnp.float32))
    ref_lp, ref_lse = _float64_log_softmax(wide, np.float32(1))
    np.testing.assert_allclose(
        jsoftmax.logsumexp(narrow, keepdims=True).astype(np.float32),
        ref_lse,
        rtol=float(jnp.finfo(dtype).eps),
    )
    lp = np.asarray(jsoftmax.log_softmax(narrow).astype(np.float32))
    np.testing.assert_allclose(lp, ref_lp, rtol=float(jnp.finfo(dtype).eps), atol=0.1)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
@pytest.mark.slow
def test_wide_sixteen_bit_rows_equal_their_float32_copy(dtype):
    # 16-bit rows are widened inside the passes: values agree with the float32
    # copy's on every edge row to one rounding of the 16-bit result (the row
    # sums may add in a different order).
    narrow = jnp.asarray(_wide_rows(40000), dtype)
    wide = narrow.astype(jnp.float32)
    w = jnp.asarray(np.random.default_rng(11).standard_normal(narrow.shape), dtype)
    eps = float(jnp.finfo(dtype).eps)
    for t in (0.7, 0.0):
        for name in ("softmax", "log_softmax"):
            fn = getattr(jsoftmax, name)
            out, pullback = jax.vjp(lambda x: fn(x, temperature=t), narrow)  # noqa: B023
            ref, ref_pullback = jax.vjp(lambda x: fn(x, temperature=t), wide)  # noqa: B023
            grad, ref_grad = pullback(w)[0], ref_pullback(w.astype(jnp.float32))[0]
            # (compared in float32: numpy sees 16-bit NaNs as unequal)
            np.testing.assert_allclose(
                out.astype(jnp.float32),
                ref.astype(dtype).astype(jnp.float32),
                rtol=eps,
                atol=0,
                err_msg=f"{name} value T={t}",
            )
            # The rule reads the 16-bit result (one residual, as jax.nn), so
            # the gradient is within a few roundings of the result's dtype.
            ref_grad = np.asarray(ref_grad.astype(jnp.float32))
            scale = np.max(np.abs(np.nan_to_num(ref_grad)), -1, keepdims=True)
            # ... and of its subnormal spacing (float16: 6e-8).
            spacing = float(np.finfo(np.dtype(dtype)).smallest_subnormal)
            error = np.abs(np.asarray(grad.astype(jnp.float32)) - ref_grad)
            np.testing.assert_array_equal(np.isnan(grad), np.isnan(ref_grad))
            bound = 4 * eps * scale + 2 * spacing
            assert np.all(np.nan_to_num(error) <= bound), f"{name} grad T={t}"


@pytest.mark.parametrize("spec", [P("d", None), P(None, "d")], ids=["batch", "class"])
@pytest.mark.slow
def test_sharded_jit_equals_unsharded(cpu_devices, spec):
    mesh = jax.sharding.Mesh(np.array(cpu_devices), ("d",))
    x = jax.random.normal(jax.random.key(13), (16, 32), dtype=jnp.float32)
    xs = jax.device_put(x, NamedSharding(mesh, spec))
    for fn in NORMALISERS.values():
        f = jax.jit(lambda x: fn(x, temperature=0.7))
        np.testing.assert_allclose(f(xs), f(x), rtol=1e-6)
        g = jax.jit(jax.grad(lambda x: jnp.sum(jnp.sin(fn(x, temperature=0.7)))))
        # Sharding changes the order of the row sums. The cotangent cos(.) is
        # O(1), so float32 gradients are accurate to a few eps in absolute terms
        # (measured against float64, sharded or not: up to 1.6e-6 for
        # log_softmax, whose gradient reaches 2.7; 1.7e-7 for softmax).
        np.testing.assert_allclose(g(xs), g(x), rtol=1e-5, atol=2e-6)


# --------------------------------------------------------------------------- #
# Properties
# --------------------------------------------------------------------------- #
_finite_rows = hnp.arrays(
    np.float64,
    st.tuples(st.integers(1, 4), st.integers(1, 9)),
    elements=st.floats(-1e3, 1e3),
)
_temps = st.floats(1e-2, 1e2)


@given(_finite_rows, _temps)
@pytest.mark.slow
def test_rows_sum_to_one_and_shift_invariance(x, t):
    p = jsoftmax.softmax(x, temperature=t)
    np.testing.assert_allclose(jnp.sum(p, -1), 1, rtol=1e-13)
    shifted = jsoftmax.softmax(x + 123.0, temperature=t)
    np.testing.assert_allclose(shifted, p, rtol=1e-9, atol=1e-300)


@given(_finite_rows, _temps)
@pytest.mark.slow
def test_log_softmax_is_log_of_softmax(x, t):
    p = np.asarray(jsoftmax.softmax(x, temperature=t))
    lp = np.asarray(jsoftmax.log_softmax(x, temperature=t))
    ok = p > 1e-300
    np.testing.assert_allclose(np.log(p[ok]), lp[ok], rtol=1e-12, atol=1e-12)


@given(_finite_rows, _temps)
@pytest.mark.slow
def test_temperature_equals_dividing_logits(x, t):
    np.testing.assert_allclose(
        jsoftmax.softmax(x, temperature=t),
        jsoftmax.softmax(x / t),
        rtol=1e-9,
        atol=1e-300,
    )
    np.testing.assert_allclose(
        jsoftmax.logsumexp(x, temperature=t),
        t * jsoftmax.logsumexp(x / t),
        rtol=1e-12,
        atol=1e-12,
    )


_tangent_y = [0.0, 1.0, 0.25, 0.75, 1e-30, 1e-45, np.nan]
_half = np.float32(0.5)
_tangent_y += [0.5, float(np.nextafter(_half, 1)), float(np.nextafter(_half, 0))]


@given(st.data())
@settings(max_examples=40, deadline=None)
def test_softmax_rule_factor_forms_agree_bit_for_bit(data):
    # The softmax rule's factors are written one way for XLA:CPU with 16-bit
    # input and another elsewhere (jsoftmax._rows.log_softmax_tangent); both
    # must give the same bits, so a row's gradient does not depend on the
    # platform's choice (also with an infinite tangent entry). Rows of softmax
    # outputs (ties, a dominant entry, -inf entries, 16-bit input) and of raw
    # values at and next to 1/2.
    from jsoftmax import _rows

    shape = (
        data.draw(st.integers(1, 3)),
        data.draw(st.sampled_from([1, 2, 3, 17, 4096])),
    )
    source = data.draw(st.sampled_from(["softmax", "bfloat16 softmax", "values"]))
    if source == "values":
        values = st.sampled_from(_tangent_y)
        y = data.draw(hnp.arrays(np.float32, shape, elements=values, fill=values))
    else:
        logits = st.sampled_from([-np.inf, -40.0, -1.0, 0.0, 3.0, 40.0])
        x = data.draw(hnp.arrays(np.float32, shape, elements=logits, fill=logits))
        if source == "bfloat16 softmax":
            x = x.astype(jnp.bfloat16)
        y = np.asarray(jsoftmax.softmax(x), np.float32)
    y = jnp.asarray(y)
    tangents = [jnp.asarray(np.random.default_rng(0).normal(size=shape), jnp.float32)]
    tangents.append(tangents[0].at[:, 0].set(jnp.inf))
    split_factors = partial(_rows._split_factors, axes=(1,))
    shared_factors = partial(_rows._shared_factors, axes=(1,))
    for u in tangents:
        split = _rows._tangent_map(u, y, (1,), split_factors)
        shared = _rows._tangent_map(u, y, (1,), shared_factors)
        np.testing.assert_array_equal(np.asarray(split), np.asarray(shared))


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_the_softmax_rule_reads_every_sixteen_bit_value_as_stored(dtype):
    # Every bit pattern of the dtype (NaNs, infinities, subnormals, -0.0): the
    # rule's widening (through the bits for bfloat16) is the exact float32
    # value, bit for bit, eagerly and under jit.
    from jsoftmax import _cores

    patterns = np.arange(2**16, dtype=np.uint32).astype(np.uint16)
    y = jax.lax.bitcast_convert_type(jnp.asarray(patterns), dtype)
    expected = np.asarray(y.astype(jnp.float32)).view(np.uint32)
    for run in (_cores._as_read, jax.jit(_cores._as_read)):
        widened = np.asarray(run(y))
        assert widened.dtype == np.float32
        np.testing.assert_array_equal(widened.view(np.uint32), expected)
