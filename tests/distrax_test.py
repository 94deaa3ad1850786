"""Tests for jsoftmax.distrax: the centered softmax as a distrax bijector."""

import os
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

distrax = pytest.importorskip("distrax")

from jsoftmax.distrax import CenteredSoftmax  # noqa: E402


@pytest.fixture
def distrax_broadcasting():
    """distrax's distributions rely on NumPy rank promotion (conftest raises on it).

    Only tests that evaluate distrax distributions use this; the bijector's own
    methods are checked under strict rank promotion.
    """
    with jax.numpy_rank_promotion("allow"):
        yield


def _reference_p(eta, scale):
    """float64 numpy softmax([0, λ·eta]) along the last axis."""
    logits = np.concatenate([np.zeros(eta.shape[:-1] + (1,)), scale * eta], -1)
    logits = logits - logits.max(-1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(-1, keepdims=True)


def _reference_log_det(eta, scale):
    """float64 n·log|λ| + Σ log p_i, from numpy's log-softmax."""
    logits = np.concatenate([np.zeros(eta.shape[:-1] + (1,)), scale * eta], -1)
    top = logits.max(-1, keepdims=True)
    log_p = logits - top - np.log(np.exp(logits - top).sum(-1, keepdims=True))
    return eta.shape[-1] * np.log(abs(scale)) + log_p.sum(-1)


# --------------------------------------------------------------------------- #
# The map, its inverse and the log-determinants
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("scale", [1.0, 0.3, -2.0])
def test_forward_inverse_and_log_dets_against_float64_reference(scale):
    eta = np.random.default_rng(0).standard_normal((4, 5)) * 3
    bijector = CenteredSoftmax(scale)
    p, log_det = bijector.forward_and_log_det(jnp.asarray(eta))
    np.testing.assert_allclose(p, _reference_p(eta, scale), rtol=1e-13)
    np.testing.assert_allclose(log_det, _reference_log_det(eta, scale), rtol=1e-13)
    np.testing.assert_allclose(bijector.forward(eta), p, rtol=0)
    np.testing.assert_allclose(bijector.forward_log_det_jacobian(eta), log_det, rtol=0)
    x, inverse_log_det = bijector.inverse_and_log_det(p)
    np.testing.assert_allclose(x, eta, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(inverse_log_det, -log_det, rtol=1e-13)
    np.testing.assert_allclose(bijector.inverse(p), x, rtol=0)
    np.testing.assert_allclose(
        bijector.inverse_log_det_jacobian(p), inverse_log_det, rtol=0
    )


@pytest.mark.parametrize("n", [1, 2, 5])
@pytest.mark.parametrize("scale", [1.0, -0.4])
@pytest.mark.slow
def test_log_det_equals_autodiff_log_det(n, scale):
    bijector = CenteredSoftmax(scale)
    for seed in range(3):
        eta = jax.random.normal(jax.random.key(seed), (n,)) * 2
        for keep in (slice(1, None), slice(None, -1)):  # any n of the n+1 entries
            jac = jax.jacfwd(lambda e: bijector.forward(e)[keep])(eta)
            _, expected = jnp.linalg.slogdet(jac)
            np.testing.assert_allclose(
                bijector.forward_log_det_jacobian(eta), expected, rtol=1e-12
            )
        # the inverse's log-det from autodiff of the inverse on the chart p_1..p_n
        p = bijector.forward(eta)

        def inverse_on_chart(q):
            return bijector.inverse(jnp.concatenate([1 - jnp.sum(q, keepdims=True), q]))

        _, expected = jnp.linalg.slogdet(jax.jacfwd(inverse_on_chart)(p[1:]))
        np.testing.assert_allclose(
            bijector.inverse_log_det_jacobian(p), expected, rtol=1e-10
        )


def test_log_det_finite_where_p_underflows():
    bijector = CenteredSoftmax()
    eta = jnp.array([800.0, -800.0])  # p = (e^-800, 1, e^-1600): two entries are 0
    _, log_det = bijector.forward_and_log_det(eta)
    np.testing.assert_allclose(log_det, -800.0 + 0.0 - 1600.0, rtol=1e-14)
    # d/d eta_j (Σ_i l_i - 3·logsumexp(l)) with l = [0, eta] is 1 - 3·p_{j+1}
    grad = jax.grad(bijector.forward_log_det_jacobian)(eta)
    np.testing.assert_allclose(grad, [1.0 - 3.0, 1.0], rtol=1e-14)


def test_scale_is_checked():
    for bad in (0.0, np.nan, -np.inf):
        with pytest.raises(ValueError, match="scale"):
            CenteredSoftmax(bad)


# --------------------------------------------------------------------------- #
# As a distribution on the simplex
# --------------------------------------------------------------------------- #
@pytest.mark.slow
def test_logistic_normal_density_integrates_to_one(distrax_broadcasting):
    base = distrax.MultivariateNormalDiag(jnp.array([0.3, -0.2]), jnp.full(2, 1.2))
    prior = distrax.Transformed(base, CenteredSoftmax(0.8))
    assert prior.event_shape == (3,)
    # midpoint rule on the triangle p_1, p_2 > 0, p_1 + p_2 < 1
    m = 400
    h = 1.0 / m
    grid = (np.arange(m) + 0.5) * h
    p1, p2 = np.meshgrid(grid, grid, indexing="ij")
    inside = p1 + p2 < 1 - h / 2
    points = np.stack([1 - p1[inside] - p2[inside], p1[inside], p2[inside]], -1)
    density = np.exp(np.asarray(prior.log_prob(jnp.asarray(points))))
    np.testing.assert_allclose(density.sum() * h * h, 1.0, atol=5e-4)


@pytest.mark.slow
def test_dirichlet_through_the_inverse_and_back_is_the_dirichlet(distrax_broadcasting):
    alpha = jnp.array([0.7, 2.0, 3.5, 1.0])
    bijector = CenteredSoftmax(1.5)
    on_eta = distrax.Transformed(distrax.Dirichlet(alpha), distrax.Inverse(bijector))
    assert on_eta.event_shape == (3,)
    back = distrax.Transformed(on_eta, bijector)
    p = distrax.Dirichlet(alpha).sample(seed=jax.random.key(0), sample_shape=5)
    np.testing.assert_allclose(
        back.log_prob(p), distrax.Dirichlet(alpha).log_prob(p), rtol=1e-11
    )
    by_hand = distrax.Dirichlet(alpha).log_prob(p) + (
        3 * np.log(1.5) + np.sum(np.log(np.asarray(p)), -1)
    )
    np.testing.assert_allclose(
        on_eta.log_prob(bijector.inverse(p)), by_hand, rtol=1e-11
    )


@pytest.mark.slow
def test_sample_and_log_prob(distrax_broadcasting):
    base = distrax.MultivariateNormalDiag(jnp.zeros((2, 3)))
    prior = distrax.Transformed(base, CenteredSoftmax(0.5))
    assert prior.batch_shape == (2,) and prior.event_shape == (4,)
    p, log_prob = prior.sample_and_log_prob(seed=jax.random.key(1), sample_shape=6)
    assert p.shape == (6, 2, 4) and log_prob.shape == (6, 2)
    np.testing.assert_allclose(p.sum(-1), 1.0, rtol=1e-14)
    np.testing.assert_allclose(log_prob, prior.log_prob(p), rtol=1e-10)


@pytest.mark.slow
def test_agrees_with_tfp_softmax_centered_after_conversion(distrax_broadcasting):
    tfp = pytest.importorskip("tensorflow_probability.substrates.jax")
    tfb = tfp.bijectors.SoftmaxCentered()
    scale = 1.7
    bijector = CenteredSoftmax(scale)
    eta = jax.random.normal(jax.random.key(3), (5, 4))
    n = eta.shape[-1]
    p, log_det = bijector.forward_and_log_det(eta)
    # TFP: reference category last, surface measure of the simplex in R^{n+1}
    np.testing.assert_allclose(
        jnp.roll(p, -1, axis=-1), tfb.forward(scale * eta), rtol=1e-12
    )
    fldj = tfb.forward_log_det_jacobian(scale * eta, event_ndims=1)
    np.testing.assert_allclose(
        log_det, fldj - 0.5 * np.log(n + 1) + n * np.log(scale), rtol=1e-12
    )
    # distrax accepts the TFP bijector too; the two densities differ by the constant
    base = distrax.MultivariateNormalDiag(jnp.zeros(n), jnp.full(n, 1 / scale))
    ours = distrax.Transformed(base, bijector)
    theirs = distrax.Transformed(distrax.MultivariateNormalDiag(jnp.zeros(n)), tfb)
    q = ours.sample(seed=jax.random.key(4), sample_shape=3)
    np.testing.assert_allclose(
        ours.log_prob(q),
        theirs.log_prob(jnp.roll(q, -1, axis=-1)) + 0.5 * np.log(n + 1),
        rtol=1e-10,
    )


# --------------------------------------------------------------------------- #
# Shapes, batching, jit
# --------------------------------------------------------------------------- #
@pytest.mark.slow
def test_batched_events_and_scales():
    bijector = CenteredSoftmax(2.0)
    eta = jax.random.normal(jax.random.key(0), (4, 3, 2))
    p, log_det = bijector.forward_and_log_det(eta)
    assert p.shape == (4, 3, 3) and log_det.shape == (4, 3)
    np.testing.assert_allclose(p[2, 1], bijector.forward(eta[2, 1]), rtol=1e-15)
    with pytest.raises(ValueError):
        bijector.forward(jnp.array(1.0))  # no event axis
    scales = jnp.array([0.5, 1.0, 3.0])
    batched = CenteredSoftmax(scales)
    one = jnp.array([0.2, -1.0])
    p, log_det = batched.forward_and_log_det(one)
    assert p.shape == (3, 3) and log_det.shape == (3,)
    for i, s in enumerate([0.5, 1.0, 3.0]):
        np.testing.assert_allclose(p[i], CenteredSoftmax(s).forward(one), rtol=1e-15)
        np.testing.assert_allclose(
            log_det[i], CenteredSoftmax(s).forward_log_det_jacobian(one), rtol=1e-14
        )
    np.testing.assert_allclose(batched.inverse(p), jnp.broadcast_to(one, (3, 2)))


@pytest.mark.slow
def test_jit_takes_the_bijector_as_an_argument():
    eta = jax.random.normal(jax.random.key(0), (3, 4))

    @jax.jit
    @chex.assert_max_traces(n=1)
    def round_trip(bijector, e):
        p, log_det = bijector.forward_and_log_det(e)
        x, inverse_log_det = bijector.inverse_and_log_det(p)
        return p, x, log_det + inverse_log_det

    for scale in (1.0, 0.5, -3.0):  # an array scale is a leaf: one trace
        p, x, zero = round_trip(CenteredSoftmax(jnp.asarray(scale)), eta)
        np.testing.assert_allclose(p, _reference_p(np.asarray(eta), scale), rtol=1e-13)
        np.testing.assert_allclose(x, eta, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(zero, 0.0, atol=1e-12)
    grad = jax.grad(lambda s: CenteredSoftmax(s).forward_log_det_jacobian(eta[0]))(2.0)
    # d/dλ [n log λ + Σ log p_i]; autodiff of the float64 formula
    expected = jax.grad(
        lambda s: (
            4 * jnp.log(s) + jnp.sum(jax.nn.log_softmax(jnp.append(0.0, s * eta[0])))
        )
    )(2.0)
    np.testing.assert_allclose(grad, expected, rtol=1e-13)


def test_same_as():
    assert CenteredSoftmax(2.0).same_as(CenteredSoftmax(2.0))
    assert not CenteredSoftmax(2.0).same_as(CenteredSoftmax(1.0))
    assert not CenteredSoftmax().same_as(distrax.Tanh())


@pytest.mark.slow
def test_missing_distrax_names_the_extra():
    code = (
        "import sys\n"
        "sys.modules['distrax'] = None\n"
        "try:\n"
        "    import jsoftmax.distrax\n"
        "except ImportError as err:\n"
        '    assert "jsoftmax[distrax]" in str(err), err\n'
        "else:\n"
        "    raise AssertionError('no ImportError')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
