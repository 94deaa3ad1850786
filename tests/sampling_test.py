"""Tests for jsoftmax.sample: frequencies, greedy ties, masks, shapes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jsoftmax

inf = np.inf


def _chi_square(counts, probs):
    expected = probs * counts.sum()
    live = expected > 0
    assert counts[~live].sum() == 0, "drew a category of probability 0"
    return float(np.sum((counts[live] - expected[live]) ** 2 / expected[live])), int(
        live.sum() - 1
    )


@pytest.mark.parametrize("temperature", [0.5, 1.0, 3.0])
def test_frequencies_match_softmax(temperature):
    logits = jnp.array([1.0, 0.0, -1.0, 2.0, -inf, 0.5])
    n = 40000
    draws = jsoftmax.sample(
        jax.random.key(0), logits, temperature=temperature, shape=(n,)
    )
    counts = np.bincount(np.asarray(draws), minlength=6)
    probs = np.asarray(jsoftmax.softmax(logits, temperature=temperature))
    stat, dof = _chi_square(counts, probs)
    # 99.9% quantile of chi-square with 4 degrees of freedom is 18.47
    assert dof == 4 and stat < 18.47, stat


def test_greedy_breaks_ties_at_random_and_never_draws_masked():
    logits = jnp.array([3.0, 1.0, 3.0, 3.0, 2.0])
    where = jnp.array([True, True, False, True, True])
    draws = np.asarray(
        jsoftmax.sample(
            jax.random.key(1), logits, where=where, temperature=0.0, shape=(3000,)
        )
    )
    counts = np.bincount(draws, minlength=5)
    assert counts[1] == counts[2] == counts[4] == 0
    assert abs(counts[0] - 1500) < 150 and abs(counts[3] - 1500) < 150


@pytest.mark.slow
def test_edge_rows():
    logits = jnp.array(
        [
            [-inf, -inf, -inf],  # nothing to draw
            [0.0, inf, inf],  # +inf entries only
            [1.0, jnp.nan, 0.0],  # NaN row
            [5.0, -inf, 1.0],  # -inf never drawn, even at T = inf
        ]
    )
    draws = np.asarray(
        jsoftmax.sample(jax.random.key(2), logits, temperature=jnp.inf, shape=(500, 4))
    )
    assert (draws[:, 0] == -1).all()
    assert set(draws[:, 1]) == {1, 2}
    assert (draws[:, 2] == -1).all()
    assert set(draws[:, 3]) == {0, 2}


@pytest.mark.parametrize("temperature", [1.0, 0.0])
def test_nan_in_a_wide_row_draws_nothing(temperature):
    # 4096 entries: XLA:CPU's fused max skips a NaN there.
    logits = jnp.zeros((2, 4096)).at[1, 4095].set(jnp.nan)
    draws = jsoftmax.sample(jax.random.key(5), logits, temperature=temperature)
    assert draws[1] == -1 and 0 <= draws[0] < 4096


@pytest.mark.slow
def test_axis_shape_and_per_row_temperature():
    logits = jax.random.normal(jax.random.key(3), (4, 7, 3))
    out = jsoftmax.sample(jax.random.key(4), logits, axis=1)
    assert out.shape == (4, 3) and out.dtype == jnp.int32
    assert ((out >= 0) & (out < 7)).all()
    out = jsoftmax.sample(
        jax.random.key(4),
        logits,
        axis=1,
        shape=(5, 4, 3),
        temperature=jnp.zeros((4, 3)),
    )
    greedy = jnp.argmax(logits, axis=1)
    assert (out == greedy[None]).all()
    with pytest.raises(ValueError, match="shape"):
        jsoftmax.sample(jax.random.key(4), logits, axis=1, shape=(4, 7))


@pytest.mark.slow
def test_jit_and_vmap():
    logits = jax.random.normal(jax.random.key(5), (6, 5))
    keys = jax.random.split(jax.random.key(6), 6)
    f = jax.jit(jax.vmap(lambda k, row: jsoftmax.sample(k, row, temperature=0.0)))
    np.testing.assert_array_equal(f(keys, logits), jnp.argmax(logits, -1))
