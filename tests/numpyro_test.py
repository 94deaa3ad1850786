"""Tests for jsoftmax.numpyro: the centered softmax as a numpyro transform."""

import os
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

numpyro = pytest.importorskip("numpyro")

import numpyro.distributions as dist  # noqa: E402
from numpyro.distributions import constraints  # noqa: E402
from numpyro.distributions.transforms import StickBreakingTransform  # noqa: E402

from jsoftmax.numpyro import CenteredSoftmaxTransform  # noqa: E402


@pytest.fixture
def numpyro_broadcasting():
    """numpyro's distributions rely on NumPy rank promotion (conftest raises on it).

    Only tests that evaluate numpyro distributions use this; the transform's own
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


def _autodiff_log_det(transform, eta, keep):
    """slogdet of jacfwd of the map eta -> p[keep] (n of the n+1 coordinates)."""
    jac = jax.jacfwd(lambda e: transform(e)[keep])(eta)
    sign, log_det = jnp.linalg.slogdet(jac)
    assert sign != 0
    return log_det


# --------------------------------------------------------------------------- #
# The map and its inverse
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("scale", [1.0, 0.3, -2.0])
def test_forward_and_inverse_against_float64_reference(scale):
    eta = np.random.default_rng(0).standard_normal((4, 5)) * 3
    t = CenteredSoftmaxTransform(scale)
    p = t(jnp.asarray(eta))
    np.testing.assert_allclose(p, _reference_p(eta, scale), rtol=1e-13)
    np.testing.assert_allclose(t.inv(p), eta, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(t._inverse(p), eta, rtol=1e-12, atol=1e-13)
    assert bool(jnp.all(t.codomain(p)))
    assert bool(jnp.all(t.domain(t.inv(p))))


def test_round_trip_far_from_the_centre():
    # float64 p keeps every entry representable up to |eta| ~ 700
    eta = jnp.array([[300.0, -300.0, 0.0], [-650.0, -640.0, -660.0]])
    t = CenteredSoftmaxTransform()
    np.testing.assert_allclose(t.inv(t(eta)), eta, rtol=1e-13)
    np.testing.assert_allclose(
        t.log_abs_det_jacobian(eta, t(eta)),
        [300.0 - 300.0 - 600.0 - 300.0 - 300.0, -640.0 - 650.0 - 660.0],
        rtol=1e-12,
    )


def test_boundary_of_the_simplex_has_infinite_coordinates():
    t = CenteredSoftmaxTransform()
    eta = t.inv(jnp.array([0.5, 0.0, 0.5]))
    np.testing.assert_array_equal(eta, [-np.inf, 0.0])


def test_scale_is_checked():
    for bad in (0.0, np.nan, np.inf):
        with pytest.raises(ValueError, match="scale"):
            CenteredSoftmaxTransform(bad)
    with pytest.raises(TypeError, match="scale"):
        CenteredSoftmaxTransform(jnp.array(1 + 1j))


# --------------------------------------------------------------------------- #
# Log-determinant and its base measure
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("n", [1, 2, 5])
@pytest.mark.parametrize("scale", [1.0, 0.3, -2.0])
@pytest.mark.slow
def test_log_det_equals_autodiff_log_det(n, scale):
    t = CenteredSoftmaxTransform(scale)
    for seed in range(3):
        eta = jax.random.normal(jax.random.key(seed), (n,)) * 2
        got = t.log_abs_det_jacobian(eta, t(eta))
        # any n of the n+1 coordinates carry the same Lebesgue measure
        first = _autodiff_log_det(t, eta, slice(1, None))
        last = _autodiff_log_det(t, eta, slice(None, -1))
        np.testing.assert_allclose(got, first, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(got, last, rtol=1e-12, atol=1e-12)


@pytest.mark.slow
def test_same_base_measure_as_stick_breaking():
    # eta = ours^-1(stick(x)) is a map R^n -> R^n whose log-det is the difference
    # of the two transforms' log-dets only if both refer to one measure on p.
    ours, stick = CenteredSoftmaxTransform(0.7), StickBreakingTransform()
    for seed in range(3):
        x = jax.random.normal(jax.random.key(seed), (4,))
        y = stick(x)
        eta = ours.inv(y)
        composed = jax.jacfwd(lambda v: ours.inv(stick(v)))(x)
        _, expected = jnp.linalg.slogdet(composed)
        got = stick.log_abs_det_jacobian(x, y) - ours.log_abs_det_jacobian(eta, y)
        np.testing.assert_allclose(got, expected, rtol=1e-10)


@pytest.mark.parametrize("scale", [0.5, 1.0])
@pytest.mark.slow
def test_logistic_normal_density_integrates_to_one(scale, numpyro_broadcasting):
    t = CenteredSoftmaxTransform(scale)
    base = dist.Normal(jnp.array([0.3, -0.2]), 1.2).to_event(1)
    prior = dist.TransformedDistribution(base, t)
    # midpoint rule on the triangle p_1, p_2 > 0, p_1 + p_2 < 1 (p_0 = 1 - p_1 - p_2)
    # (larger scales push the mass against the edges, beyond this grid)
    m = 400
    h = 1.0 / m
    grid = (np.arange(m) + 0.5) * h
    p1, p2 = np.meshgrid(grid, grid, indexing="ij")
    inside = p1 + p2 < 1 - h / 2
    points = np.stack([1 - p1[inside] - p2[inside], p1[inside], p2[inside]], -1)
    density = np.exp(np.asarray(prior.log_prob(jnp.asarray(points))))
    assert np.all(np.isfinite(density))
    np.testing.assert_allclose(density.sum() * h * h, 1.0, atol=5e-4)


@pytest.mark.slow
def test_dirichlet_through_the_inverse_and_back_is_the_dirichlet(numpyro_broadcasting):
    alpha = jnp.array([0.7, 2.0, 3.5, 1.0])
    t = CenteredSoftmaxTransform(1.5)
    on_eta = dist.TransformedDistribution(dist.Dirichlet(alpha), t.inv)
    assert on_eta.support == constraints.real_vector and on_eta.event_shape == (3,)
    back = dist.TransformedDistribution(on_eta, t)
    p = dist.Dirichlet(alpha).sample(jax.random.key(0), (5,))
    np.testing.assert_allclose(
        back.log_prob(p), dist.Dirichlet(alpha).log_prob(p), rtol=1e-11
    )
    # the density on eta is Dirichlet(p) · |det ∂p/∂eta|, written out by hand
    eta = t.inv(p)
    by_hand = dist.Dirichlet(alpha).log_prob(p) + (
        3 * np.log(1.5) + np.sum(np.log(np.asarray(p)), -1)
    )
    np.testing.assert_allclose(on_eta.log_prob(eta), by_hand, rtol=1e-11)


@pytest.mark.slow
def test_agrees_with_tfp_softmax_centered_after_conversion():
    tfp = pytest.importorskip("tensorflow_probability.substrates.jax")
    tfb = tfp.bijectors.SoftmaxCentered()
    scale = 0.8
    t = CenteredSoftmaxTransform(scale)
    eta = jax.random.normal(jax.random.key(1), (6, 3)) * 2
    n = eta.shape[-1]
    p_tfp = tfb.forward(scale * eta)  # reference category last
    np.testing.assert_allclose(jnp.roll(t(eta), -1, axis=-1), p_tfp, rtol=1e-12)
    np.testing.assert_allclose(tfb.inverse(p_tfp) / scale, eta, rtol=1e-10)
    # TFP measures the simplex by its surface in R^{n+1}: + ½·log(n+1); the scale
    # enters as n·log|λ|.
    fldj = tfb.forward_log_det_jacobian(scale * eta, event_ndims=1)
    expected = fldj - 0.5 * np.log(n + 1) + n * np.log(abs(scale))
    np.testing.assert_allclose(
        t.log_abs_det_jacobian(eta, t(eta)), expected, rtol=1e-12
    )


# --------------------------------------------------------------------------- #
# Shapes, batching, jit
# --------------------------------------------------------------------------- #
@pytest.mark.slow
def test_shapes_and_batched_events(numpyro_broadcasting):
    t = CenteredSoftmaxTransform(2.0)
    assert t.forward_shape((4, 3, 2)) == (4, 3, 3)
    assert t.inverse_shape((4, 3, 3)) == (4, 3, 2)
    eta = jax.random.normal(jax.random.key(0), (4, 3, 2))
    p = t(eta)
    assert p.shape == (4, 3, 3)
    assert t.log_abs_det_jacobian(eta, p).shape == (4, 3)
    for i in range(4):
        np.testing.assert_allclose(p[i], t(eta[i]), rtol=1e-15)
    with pytest.raises(ValueError):
        t.inverse_shape((3, 0))
    prior = dist.TransformedDistribution(
        dist.Normal(jnp.zeros((5, 2)), 1.0).to_event(1), t
    )
    assert prior.batch_shape == (5,) and prior.event_shape == (3,)
    assert prior.sample(jax.random.key(0), (7,)).shape == (7, 5, 3)


@pytest.mark.slow
def test_batched_scale_broadcasts_against_events():
    scale = jnp.array([0.5, 1.0, 3.0])
    t = CenteredSoftmaxTransform(scale)
    eta = jnp.array([0.2, -1.0])  # one event, three transforms
    p = t(eta)
    assert t.forward_shape((2,)) == (3, 3) == p.shape
    assert t.inverse_shape((3,)) == (3, 2)
    for i, s in enumerate([0.5, 1.0, 3.0]):
        single = CenteredSoftmaxTransform(s)
        np.testing.assert_allclose(p[i], single(eta), rtol=1e-15)
        np.testing.assert_allclose(
            t.log_abs_det_jacobian(eta, p)[i],
            single.log_abs_det_jacobian(eta, p[i]),
            rtol=1e-14,
        )
    np.testing.assert_allclose(t.inv(p), jnp.broadcast_to(eta, (3, 2)), rtol=1e-13)
    # samples x batch: events of shape (4, 3, 2) against scale (3,)
    etas = jax.random.normal(jax.random.key(2), (4, 3, 2))
    assert t(etas).shape == (4, 3, 3)


@pytest.mark.slow
def test_jit_and_vmap_take_the_transform_as_an_argument():
    eta = jax.random.normal(jax.random.key(0), (3, 4))

    @jax.jit
    @chex.assert_max_traces(n=1)
    def forward_and_log_det(t, e):
        p = t(e)
        return p, t.inv(p), t.log_abs_det_jacobian(e, p)

    for scale in (1.0, 0.5, -3.0):
        p, back, log_det = forward_and_log_det(CenteredSoftmaxTransform(scale), eta)
        t = CenteredSoftmaxTransform(scale)
        np.testing.assert_allclose(p, _reference_p(np.asarray(eta), scale), rtol=1e-13)
        np.testing.assert_allclose(back, eta, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(log_det, t.log_abs_det_jacobian(eta, p), rtol=1e-14)
    scales = jnp.array([0.5, 1.0, 2.0])
    batched = jax.vmap(lambda s: CenteredSoftmaxTransform(s)(eta[0]))(scales)
    for i in range(3):
        np.testing.assert_allclose(
            batched[i], CenteredSoftmaxTransform(scales[i])(eta[0]), rtol=1e-15
        )
    # the scale is differentiable
    grad = jax.grad(lambda s: CenteredSoftmaxTransform(s)(eta[0])[1])(1.0)
    expected = jax.grad(lambda s: jax.nn.softmax(jnp.append(0.0, s * eta[0]))[1])(1.0)
    np.testing.assert_allclose(grad, expected, rtol=1e-13)


def test_equality():
    assert CenteredSoftmaxTransform(2.0) == CenteredSoftmaxTransform(2.0)
    assert CenteredSoftmaxTransform(2.0) != CenteredSoftmaxTransform(1.0)
    assert CenteredSoftmaxTransform() != StickBreakingTransform()
    leaves, treedef = jax.tree_util.tree_flatten(CenteredSoftmaxTransform(2.0))
    assert leaves == [2.0]
    rebuilt = jax.tree_util.tree_unflatten(treedef, leaves)
    assert isinstance(rebuilt, CenteredSoftmaxTransform) and rebuilt.scale == 2.0
    # under jit the scales are traced: eq gives a traced boolean
    same = jax.jit(lambda a, b: jnp.asarray(a.eq(b)))
    assert bool(same(CenteredSoftmaxTransform(2.0), CenteredSoftmaxTransform(2.0)))
    assert not bool(same(CenteredSoftmaxTransform(2.0), CenteredSoftmaxTransform(3.0)))


# --------------------------------------------------------------------------- #
# A whole model: NUTS recovers the conjugate Dirichlet posterior
# --------------------------------------------------------------------------- #
_ALPHA = np.array([1.5, 2.0, 0.7, 3.0])
_COUNTS = np.array([2.0, 5.0, 0.0, 3.0])


def _model_transformed_distribution(alpha, counts, t):
    # a Dirichlet prior on p, written as a distribution on eta = t^-1(p)
    eta = numpyro.sample(
        "eta", dist.TransformedDistribution(dist.Dirichlet(alpha), t.inv)
    )
    p = numpyro.deterministic("p", t(eta))
    numpyro.sample("counts", dist.Multinomial(counts.sum(), p), obs=counts)


def _model_improper_uniform(alpha, counts, t):
    # the same prior by hand: flat eta, plus log Dirichlet(p) + log|det ∂p/∂eta|
    n = alpha.shape[-1] - 1
    eta = numpyro.sample("eta", dist.ImproperUniform(constraints.real_vector, (), (n,)))
    p = numpyro.deterministic("p", t(eta))
    numpyro.factor(
        "prior", dist.Dirichlet(alpha).log_prob(p) + t.log_abs_det_jacobian(eta, p)
    )
    numpyro.sample("counts", dist.Multinomial(counts.sum(), p), obs=counts)


@pytest.mark.slow
@pytest.mark.parametrize(
    "model", [_model_transformed_distribution, _model_improper_uniform]
)
def test_nuts_recovers_the_dirichlet_posterior(model, numpyro_broadcasting):
    from numpyro.diagnostics import effective_sample_size
    from numpyro.infer import MCMC
    from numpyro.infer import NUTS

    t = CenteredSoftmaxTransform(0.5)
    mcmc = MCMC(NUTS(model), num_warmup=500, num_samples=1000, progress_bar=False)
    mcmc.run(jax.random.key(0), jnp.asarray(_ALPHA), jnp.asarray(_COUNTS), t)
    p = np.asarray(mcmc.get_samples()["p"])
    posterior = _ALPHA + _COUNTS  # conjugacy: Dirichlet(alpha + counts)
    total = posterior.sum()
    mean = posterior / total
    sd = np.sqrt(mean * (1 - mean) / (total + 1))
    ess = np.asarray(effective_sample_size(p[None]))
    assert np.all(ess > 200), ess
    np.testing.assert_array_less(np.abs(p.mean(0) - mean), 5 * sd / np.sqrt(ess))
    # the spread too (a wrong log-det changes the shape, not only the centre)
    np.testing.assert_allclose(p.std(0), sd, rtol=0.15)


# --------------------------------------------------------------------------- #
# Imports
# --------------------------------------------------------------------------- #
@pytest.mark.slow
def test_import_jsoftmax_does_not_import_the_extras():
    code = (
        "import sys, jsoftmax\n"
        "bad = [m for m in ('numpyro', 'distrax', 'jsoftmax.numpyro', "
        "'jsoftmax.distrax', 'tensorflow_probability') if m in sys.modules]\n"
        "assert not bad, bad\n"
        # a missing library gives an ImportError that names the extra
        "sys.modules['numpyro'] = None\n"
        "try:\n"
        "    import jsoftmax.numpyro\n"
        "except ImportError as err:\n"
        '    assert "jsoftmax[numpyro]" in str(err), err\n'
        "else:\n"
        "    raise AssertionError('no ImportError')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
