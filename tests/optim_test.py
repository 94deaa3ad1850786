"""Tests for jsoftmax.optim: natural gradient = exponentiated gradient; minimize."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jsoftmax
from jsoftmax.optim import minimize
from jsoftmax.optim import natural_gradient


def _objective(p):
    # a smooth convex function of p with an interior minimum
    target = jnp.array([0.1, 0.2, 0.3, 0.4])
    return jnp.sum((p - target) ** 2 * jnp.array([1.0, 2.0, 3.0, 4.0])) + jnp.sum(p**3)


@pytest.mark.parametrize("scale", [1.0, 0.3, 2.5])
@pytest.mark.slow
def test_natural_gradient_sgd_is_exponentiated_gradient(scale):
    alpha, steps = 0.05, 40
    p = jnp.array([0.4, 0.3, 0.2, 0.1])
    eta = jsoftmax.inverse_softmax(p, scale)
    tx = optax.chain(natural_gradient(scale), optax.sgd(alpha))
    state = tx.init(eta)
    grad = jax.grad(lambda e: _objective(jsoftmax.centered_softmax(e, scale)))
    for _ in range(steps):
        updates, state = tx.update(grad(eta), state, eta)
        eta = optax.apply_updates(eta, updates)
        h = jax.grad(_objective)(p)
        p = p * jnp.exp(-alpha * h)
        p = p / jnp.sum(p)
        np.testing.assert_allclose(
            jsoftmax.centered_softmax(eta, scale), p, rtol=1e-10, atol=1e-12
        )


def test_natural_gradient_needs_params_and_batches():
    tx = natural_gradient()
    with pytest.raises(ValueError, match="params"):
        tx.update(jnp.ones(2), tx.init(jnp.zeros(2)))
    eta = jnp.array([[0.0, 1.0], [2.0, -1.0]])
    g = jnp.array([[1.0, 0.5], [-0.2, 0.3]])
    out, _ = tx.update(g, tx.init(eta), eta)
    for i in range(2):
        row, _ = tx.update(g[i], tx.init(eta[i]), eta[i])
        np.testing.assert_allclose(out[i], row, rtol=1e-14)
    moved, _ = natural_gradient(axis=0).update(g.T, tx.init(eta.T), eta.T)
    np.testing.assert_allclose(moved.T, out, rtol=1e-14)


@pytest.mark.slow
def test_minimize_stops_on_gtol_and_reports_steps():
    counts = jnp.array([3.0, 1.0, 6.0, 10.0])
    nll = lambda eta: (
        -jnp.sum(counts * jsoftmax.log_centered_softmax(eta)) / counts.sum()
    )
    result = minimize(nll, jnp.zeros(3), optax.lbfgs(), max_steps=200, gtol=1e-10)
    assert 0 < int(result.steps) < 200
    assert result.grad_norm <= 1e-10
    np.testing.assert_allclose(
        jsoftmax.centered_softmax(result.params), counts / counts.sum(), atol=1e-9
    )
    # a looser tolerance stops earlier; the bound is honoured
    loose = minimize(nll, jnp.zeros(3), optax.sgd(0.5), max_steps=500, gtol=1e-3)
    assert loose.grad_norm <= 1e-3 and int(loose.steps) < 500
    capped = minimize(nll, jnp.zeros(3), optax.sgd(0.01), max_steps=7, gtol=0.0)
    assert int(capped.steps) == 7
    done = minimize(nll, result.params, optax.sgd(0.1), max_steps=10, gtol=1e-6)
    assert int(done.steps) == 0


def test_minimize_rejects_bad_arguments():
    with pytest.raises(ValueError, match="max_steps"):
        minimize(jnp.sum, jnp.zeros(2), optax.sgd(0.1), max_steps=-1, gtol=0.0)
    with pytest.raises(ValueError, match="gtol"):
        minimize(jnp.sum, jnp.zeros(2), optax.sgd(0.1), max_steps=1, gtol=float("nan"))
