"""Tests for jsoftmax.simplex: the scale-λ maps, their derivatives, normalisation."""

import chex
import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from absl.testing import parameterized
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from jax.test_util import check_grads

import jsoftmax

settings.register_profile("jsoftmax", derandomize=True, deadline=None, max_examples=60)
settings.load_profile("jsoftmax")
inf, nan = np.inf, np.nan


def _reference_p(eta, scale):
    """float64 numpy softmax([0, λ·eta]) along the last axis."""
    logits = np.concatenate([np.zeros(eta.shape[:-1] + (1,)), scale * eta], -1)
    logits = logits - logits.max(-1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(-1, keepdims=True)


# --------------------------------------------------------------------------- #
# Values
# --------------------------------------------------------------------------- #
class MapsTest(parameterized.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters(dict(scale=1.0), dict(scale=0.3), dict(scale=-2.0))
    @pytest.mark.slow
    def test_against_float64_reference(self, scale):
        eta = np.random.default_rng(0).standard_normal((4, 5)) * 3
        p = self.variant(lambda e: jsoftmax.centered_softmax(e, scale))(eta)
        np.testing.assert_allclose(p, _reference_p(eta, scale), rtol=1e-13)
        log_p = self.variant(lambda e: jsoftmax.log_centered_softmax(e, scale))(eta)
        np.testing.assert_allclose(log_p, np.log(_reference_p(eta, scale)), rtol=1e-13)
        back = self.variant(lambda p: jsoftmax.inverse_softmax(p, scale))(p)
        np.testing.assert_allclose(back, eta, rtol=1e-12, atol=1e-13)

    def test_scale_only_rescales_and_n1_is_sigmoid(self):
        eta = jnp.array([[0.3, -1.2], [2.0, 0.5]])
        np.testing.assert_allclose(
            jsoftmax.centered_softmax(eta, 1.7),
            jsoftmax.centered_softmax(1.7 * eta),
            rtol=1e-15,
        )
        x = jnp.linspace(-5, 5, 11)[:, None]
        p = jsoftmax.centered_softmax(x, 0.5)
        np.testing.assert_allclose(p[:, 1], jax.nn.sigmoid(0.5 * x[:, 0]), rtol=1e-14)
        logit = jnp.log(p[:, 1] / (1 - p[:, 1])) / 0.5
        np.testing.assert_allclose(
            jsoftmax.inverse_softmax(p, 0.5)[:, 0], logit, rtol=1e-12, atol=1e-13
        )

    @pytest.mark.slow
    def test_axis_and_per_vector_scale(self):
        eta = jax.random.normal(jax.random.key(0), (3, 4, 2))
        scale = jnp.array([[0.5, 2.0]] * 3)  # one per vector along axis 1
        p = jsoftmax.centered_softmax(eta, scale, axis=1)
        assert p.shape == (3, 5, 2)
        for j in range(2):
            expected = jsoftmax.centered_softmax(eta[:, :, j], float(scale[0, j]))
            np.testing.assert_allclose(p[:, :, j], expected, rtol=1e-14)
        np.testing.assert_allclose(
            jsoftmax.inverse_softmax(p, scale, axis=1), eta, rtol=1e-12, atol=1e-13
        )

    def test_sixteen_bit_dtypes(self):
        eta = jnp.array([0.5, -1.0, 2.0])
        for dtype in (jnp.bfloat16, jnp.float16):
            p = jsoftmax.centered_softmax(eta.astype(dtype))
            assert p.dtype == dtype
            ref = _reference_p(np.asarray(eta.astype(dtype), np.float64), 1.0)
            np.testing.assert_allclose(
                np.asarray(p, np.float64), ref, rtol=float(jnp.finfo(dtype).eps)
            )


def test_boundary_behaviour():
    eta = jsoftmax.inverse_softmax(
        jnp.array([[0.5, 0.0, 0.5], [0.0, 0.5, 0.5], [0.5, -0.1, 0.6]])
    )
    np.testing.assert_array_equal(eta[0], [-inf, 0.0])
    np.testing.assert_array_equal(eta[1], [inf, inf])
    assert np.isnan(eta[2, 0]) and np.isfinite(eta[2, 1])
    p = jnp.array([0.2, 0.3, 0.5])
    np.testing.assert_allclose(
        jsoftmax.inverse_softmax(7.0 * p), jsoftmax.inverse_softmax(p), rtol=1e-14
    )
    log_p = jnp.log(p)
    np.testing.assert_allclose(
        jsoftmax.inverse_log_softmax(log_p + 3.0),
        jsoftmax.inverse_log_softmax(log_p),
        rtol=1e-14,
    )


def test_bad_scale_and_shapes_raise():
    with pytest.raises(ValueError, match="scale"):
        jsoftmax.inverse_softmax(jnp.ones(3), 0.0)
    with pytest.raises(ValueError, match="scale"):
        jsoftmax.centered_softmax(jnp.ones(3), nan)
    with pytest.raises(ValueError, match="scale"):
        jsoftmax.inverse_log_softmax(jnp.ones(3), inf)
    with pytest.raises(ValueError, match="p needs at least 1"):
        jsoftmax.inverse_softmax(jnp.ones((2, 0)))
    with pytest.raises(ValueError, match="axis"):
        jsoftmax.centered_softmax(jnp.ones(3), axis=1)


# --------------------------------------------------------------------------- #
# Round trips
# --------------------------------------------------------------------------- #
def _ulps_of_max(back, eta, scale):
    """Round-trip error in units of the spacing of max|λ·eta| (per row), over λ."""
    spacing = np.spacing(np.abs(scale * np.asarray(eta)).max(-1, keepdims=True)) / abs(
        scale
    )
    return np.abs(np.asarray(back) - np.asarray(eta)) / spacing


def test_log_space_round_trip_float64_up_to_1e6():
    rng = np.random.default_rng(1)
    eta = rng.standard_normal((50, 6)) * np.logspace(0, 6, 50)[:, None]
    worst = 0.0
    for scale in (1.0, 0.25, 3.0):
        back = jsoftmax.inverse_log_softmax(
            jsoftmax.log_centered_softmax(eta, scale), scale
        )
        worst = max(worst, _ulps_of_max(back, eta, scale).max())
    print(f"float64 round trip, |eta| up to 1e6: worst {worst} ulp of max|scale*eta|")
    assert worst <= 16


@pytest.mark.slow
def test_log_space_round_trip_float32_sigma_30():
    eta = (jax.random.normal(jax.random.key(2), (9000, 4)) * 30).astype(jnp.float32)
    log_p = jsoftmax.log_centered_softmax(eta)
    back = jsoftmax.inverse_log_softmax(log_p)
    assert np.isfinite(log_p).all() and np.isfinite(back).all()
    worst = _ulps_of_max(back, eta, 1.0).max()
    print(f"float32 round trip, eta ~ 30 N(0,1): worst {worst} ulp of max|eta|")
    assert worst <= 16


def test_probability_round_trip_where_representable():
    eta = np.random.default_rng(3).standard_normal((200, 5)) * 20
    p = jsoftmax.centered_softmax(eta)
    ok = (np.asarray(p) > np.finfo(np.float64).tiny).all(-1)
    back = jsoftmax.inverse_softmax(p)
    assert ok.mean() > 0.9
    assert _ulps_of_max(back, eta, 1.0)[ok].max() <= 16


# --------------------------------------------------------------------------- #
# Derivatives
# --------------------------------------------------------------------------- #
@pytest.mark.slow
def test_check_grads_every_map_including_scale():
    eta = jnp.array([[0.3, -0.7, 1.1], [0.0, 2.0, -1.5]])
    p = jsoftmax.centered_softmax(eta, 1.0)
    scale = jnp.array([[0.8], [1.6]])
    for fn, arg in (
        (jsoftmax.centered_softmax, eta),
        (jsoftmax.log_centered_softmax, eta),
        (jsoftmax.inverse_softmax, p),
        (jsoftmax.inverse_log_softmax, jnp.log(p)),
        (jsoftmax.centered_softmax_log_det, eta),
    ):
        # eps 1e-6: the default 1e-4 step leaves finite-difference error of 1e-4
        # relative in the second derivatives of log(p) near small p.
        check_grads(
            lambda a, s: fn(a, s), (arg, scale), order=2, modes=("fwd", "rev"), eps=1e-6
        )


@pytest.mark.slow
def test_jacobian_hessian_log_det_closed_forms():
    eta = jnp.array([[0.4, -1.3, 0.9], [2.0, 0.1, -0.6]])
    for scale in (1.0, -0.7, 2.5):
        jac = jsoftmax.centered_softmax_jacobian(eta, scale)
        auto = jax.vmap(jax.jacfwd(lambda e: jsoftmax.centered_softmax(e, scale)))(eta)
        np.testing.assert_allclose(jac, auto, rtol=1e-13, atol=1e-15)
        hess = jsoftmax.centered_softmax_hessian(eta, scale)
        auto = jax.vmap(jax.hessian(lambda e: jsoftmax.centered_softmax(e, scale)))(eta)
        np.testing.assert_allclose(hess, auto, rtol=1e-12, atol=1e-15)
        log_det = jsoftmax.centered_softmax_log_det(eta, scale)
        sign, slog = jnp.linalg.slogdet(jac[:, 1:, :])
        np.testing.assert_allclose(log_det, slog, rtol=1e-12)
        assert (sign != 0).all()


def test_log_det_stays_finite_where_p_underflows():
    eta = jnp.array([800.0, -800.0])
    log_det = jsoftmax.centered_softmax_log_det(eta)
    np.testing.assert_allclose(log_det, -800.0 + 0.0 - 1600.0, rtol=1e-14)


@pytest.mark.slow
def test_gradients_finite_at_800_in_float64():
    eta = jnp.array([800.0, -800.0, 0.0])
    for fn in (
        lambda e: jnp.sum(jsoftmax.log_centered_softmax(e) * jnp.arange(4.0)),
        lambda e: jsoftmax.centered_softmax_log_det(e),
    ):
        g = jax.grad(fn)(eta)
        h = jax.hessian(fn)(eta)
        assert np.isfinite(g).all() and np.isfinite(h).all()
    # d log p_i / d eta = e_i - q: exact here because q = (1, e^-1600, e^-800)
    g = jax.grad(lambda e: jsoftmax.log_centered_softmax(e)[2])(eta)
    np.testing.assert_allclose(g, [-1.0, 1.0, 0.0], atol=1e-300)
    g = jax.grad(lambda e: jsoftmax.log_centered_softmax(e)[0])(eta)
    np.testing.assert_allclose(g, [-1.0, 0.0, 0.0], atol=1e-300)


@pytest.mark.slow
def test_optax_lbfgs_recovers_multinomial_mle():
    counts = jnp.array([12.0, 30.0, 5.0, 53.0])
    target = counts / counts.sum()

    def nll(eta):
        return -jnp.sum(counts * jsoftmax.log_centered_softmax(eta)) / counts.sum()

    solver = optax.lbfgs()
    eta = jnp.zeros(3)
    state = solver.init(eta)
    value_and_grad = optax.value_and_grad_from_state(nll)

    @jax.jit
    def step(eta, state):
        value, grad = value_and_grad(eta, state=state)
        updates, state = solver.update(
            grad, state, eta, value=value, grad=grad, value_fn=nll
        )
        return optax.apply_updates(eta, updates), state, jnp.linalg.norm(grad)

    for _ in range(100):
        eta, state, gnorm = step(eta, state)
        if gnorm < 1e-12:
            break
    np.testing.assert_allclose(jsoftmax.centered_softmax(eta), target, atol=1e-8)


# --------------------------------------------------------------------------- #
# Properties
# --------------------------------------------------------------------------- #
_etas = hnp.arrays(
    np.float64,
    st.tuples(st.integers(1, 3), st.integers(0, 6)),
    elements=st.floats(-50, 50),
)
_scales = st.floats(0.05, 5.0) | st.floats(-5.0, -0.05)


@given(_etas, _scales)
@pytest.mark.slow
def test_outputs_on_the_simplex(eta, scale):
    p = np.asarray(jsoftmax.centered_softmax(eta, scale))
    assert p.shape == eta.shape[:-1] + (eta.shape[-1] + 1,)
    assert (p >= 0).all()
    np.testing.assert_allclose(p.sum(-1), 1, rtol=1e-13)


@given(_etas, _scales)
@pytest.mark.slow
def test_round_trip_and_scale_equivalence(eta, scale):
    back = jsoftmax.inverse_log_softmax(
        jsoftmax.log_centered_softmax(eta, scale), scale
    )
    bound = 16 * np.spacing(np.abs(scale * eta).max(initial=1.0)) / abs(scale)
    assert (np.abs(np.asarray(back) - eta) <= bound).all()
    np.testing.assert_allclose(
        jsoftmax.log_centered_softmax(eta, scale),
        jsoftmax.log_centered_softmax(scale * eta),
        rtol=1e-13,
        atol=1e-13,
    )


# --------------------------------------------------------------------------- #
# softmax_normalize
# --------------------------------------------------------------------------- #
@pytest.mark.slow
def test_softmax_normalize_against_numpy():
    x = np.random.default_rng(4).standard_normal((20, 3)) * [1.0, 10.0, 0.1] + [
        0.0,
        5.0,
        -2.0,
    ]
    z = (x - x.mean(0)) / x.std(0)
    np.testing.assert_allclose(
        jsoftmax.softmax_normalize(x), 1 / (1 + np.exp(-z)), rtol=1e-13
    )
    np.testing.assert_allclose(
        jsoftmax.softmax_normalize(x, kind="tanh"),
        (1 - np.exp(-z)) / (1 + np.exp(-z)),
        rtol=1e-12,
        atol=1e-15,
    )
    zr = (x - x.mean(1, keepdims=True)) / x.std(1, keepdims=True)
    np.testing.assert_allclose(
        jsoftmax.softmax_normalize(x, axis=1), 1 / (1 + np.exp(-zr)), rtol=1e-13
    )


@pytest.mark.slow
def test_softmax_normalize_where_zero_spread_and_bad_kind():
    x = jnp.array([[1.0, 2.0, 3.0, 100.0]])
    where = jnp.array([[True, True, True, False]])
    out = jsoftmax.softmax_normalize(x, axis=1, where=where)
    kept = np.array([1.0, 2.0, 3.0])
    z = (np.array([1.0, 2.0, 3.0, 100.0]) - kept.mean()) / kept.std()
    np.testing.assert_allclose(out[0], 1 / (1 + np.exp(-z)), rtol=1e-13)
    np.testing.assert_array_equal(
        jsoftmax.softmax_normalize(jnp.full((3, 2), 4.0)), 0.5
    )
    assert np.isnan(jsoftmax.softmax_normalize(jnp.array([1.0, nan]))).all()
    with pytest.raises(ValueError, match="kind"):
        jsoftmax.softmax_normalize(x, kind="softsign")
    g = jax.grad(lambda x: jnp.sum(jsoftmax.softmax_normalize(x, axis=1, where=where)))(
        x
    )
    assert np.isfinite(g).all()
