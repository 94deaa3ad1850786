"""Tests for jsoftmax.binary: optax equality, ±inf logits, derivatives, re-export."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.test_util import check_grads

import jsoftmax
import jsoftmax.losses

inf = np.inf


def _both_modes(fn, x):
    return jax.jacfwd(fn)(x), jax.jacrev(fn)(x)


def test_reexported_from_losses():
    assert jsoftmax.losses.sigmoid_binary_cross_entropy is (
        jsoftmax.sigmoid_binary_cross_entropy
    )
    assert "sigmoid_binary_cross_entropy" in jsoftmax.losses.__all__


@pytest.mark.slow
def test_sigmoid_matches_optax():
    logits = jax.random.normal(jax.random.key(3), (10,)) * 3
    labels = jax.random.uniform(jax.random.key(4), (10,))
    np.testing.assert_allclose(
        jsoftmax.sigmoid_binary_cross_entropy(logits, labels),
        optax.sigmoid_binary_cross_entropy(logits, labels),
        rtol=1e-12,
    )
    g = jax.grad(lambda x: jnp.sum(jsoftmax.sigmoid_binary_cross_entropy(x, labels)))(
        logits
    )
    np.testing.assert_allclose(
        g, jax.nn.sigmoid(logits) - labels, rtol=1e-12, atol=1e-15
    )


@pytest.mark.slow
def test_sigmoid_at_infinite_logits():
    logits = jnp.array([inf, -inf, inf, -inf, 0.0])
    labels = jnp.array([1.0, 0.0, 0.0, 1.0, 0.5])
    loss = jsoftmax.sigmoid_binary_cross_entropy(logits, labels)
    np.testing.assert_array_equal(loss[:4], [0, 0, inf, inf])
    for d in _both_modes(
        lambda x: jsoftmax.sigmoid_binary_cross_entropy(x, labels), logits
    ):
        np.testing.assert_array_equal(np.diag(d)[:2], 0)
        assert not np.isnan(d).any()
    for d in _both_modes(
        lambda y: jsoftmax.sigmoid_binary_cross_entropy(logits, y), labels
    ):
        assert not np.isnan(d).any()


@pytest.mark.slow
def test_check_grads():
    logits = jax.random.normal(jax.random.key(10), (3, 5))
    labels = jax.nn.softmax(jax.random.normal(jax.random.key(11), (3, 5)))
    check_grads(
        lambda x, y: jsoftmax.sigmoid_binary_cross_entropy(x, y),
        (logits, jax.nn.sigmoid(labels)),
        order=2,
        modes=("fwd", "rev"),
    )
