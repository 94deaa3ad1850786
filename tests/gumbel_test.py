"""Tests for jsoftmax.gumbel_softmax: the relaxed sample, its arg-max law, the
straight-through form, edge rows and transformations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import jsoftmax

inf, nan = np.inf, np.nan


def _chi_square(counts, probs):
    expected = probs * counts.sum()
    live = expected > 0
    assert counts[~live].sum() == 0, "chose a category of probability 0"
    stat = float(np.sum((counts[live] - expected[live]) ** 2 / expected[live]))
    return stat, int(live.sum() - 1)


LOGITS = jnp.array([1.0, 0.0, -1.0, 2.0, -inf, 0.5])
N_DRAWS = 20000
KEYS = jax.random.split(jax.random.key(0), N_DRAWS)


@pytest.mark.parametrize("temperature", [0.0, 0.5, 3.0])
@pytest.mark.parametrize("hard", [False, True])
@pytest.mark.slow
def test_arg_max_frequencies_match_softmax(temperature, hard):
    draw = jax.jit(
        jax.vmap(
            lambda k: jsoftmax.gumbel_softmax(
                k, LOGITS, temperature=temperature, hard=hard
            )
        )
    )
    y = np.asarray(draw(KEYS))
    assert y.shape == (N_DRAWS, 6)
    np.testing.assert_allclose(y.sum(-1), 1, rtol=1e-12)
    counts = np.bincount(y.argmax(-1), minlength=6)
    # The temperature relaxes the draw; the arg-max law is softmax(logits).
    stat, dof = _chi_square(counts, np.asarray(jax.nn.softmax(LOGITS)))
    # 99.9% quantile of chi-square with 4 degrees of freedom is 18.47
    assert dof == 4 and stat < 18.47, stat
    if hard or temperature == 0.0:
        np.testing.assert_array_equal(np.sort(y, -1)[:, -1], 1)
        np.testing.assert_array_equal(np.sort(y, -1)[:, :-1], 0)


@pytest.mark.slow
def test_hard_draw_is_the_index_sample_draws():
    # Same key, same noise: the one-hot sits at jsoftmax.sample's index (the
    # scores are rounded differently, x + g against (x - max) + g).
    logits = jax.random.normal(jax.random.key(1), (2000, 7), jnp.float64) * 2
    where = jax.random.bernoulli(jax.random.key(2), 0.7, logits.shape)
    key = jax.random.key(3)
    hard = jsoftmax.gumbel_softmax(key, logits, where=where, hard=True)
    index = jsoftmax.sample(key, logits, where=where)
    found = np.asarray(hard).argmax(-1)
    picked = np.asarray(index) >= 0
    assert (found[picked] == np.asarray(index)[picked]).mean() > 0.999
    np.testing.assert_array_equal(np.asarray(hard).sum(-1), picked)
    assert not np.asarray(hard)[~np.asarray(where)].any()


@pytest.mark.slow
def test_relaxed_sample_equals_the_hand_written_form_in_float64():
    logits = jax.random.normal(jax.random.key(4), (5, 9), jnp.float64)
    key = jax.random.key(5)
    ours = jsoftmax.gumbel_softmax(key, logits, temperature=0.7)
    noise = jax.random.gumbel(key, logits.shape, jnp.float64)
    np.testing.assert_allclose(
        ours, jax.nn.softmax((logits + noise) / 0.7), rtol=1e-13, atol=1e-300
    )
    # axis=0: the noise follows the category axis
    moved = jsoftmax.gumbel_softmax(key, logits.T, axis=0, temperature=0.7)
    np.testing.assert_array_equal(moved, ours.T)


@pytest.mark.slow
def test_straight_through_gradient_equals_the_relaxed_one():
    logits = jax.random.normal(jax.random.key(6), (4, 6), jnp.float64)
    w = jax.random.normal(jax.random.key(7), (4, 6), jnp.float64)
    key = jax.random.key(8)

    def loss(hard):
        return lambda x, t: jnp.sum(
            w * jsoftmax.gumbel_softmax(key, x, temperature=t, hard=hard)
        )

    relaxed = jax.grad(loss(False), (0, 1))(logits, 0.8)
    straight = jax.grad(loss(True), (0, 1))(logits, 0.8)
    np.testing.assert_array_equal(straight[0], relaxed[0])
    np.testing.assert_array_equal(straight[1], relaxed[1])
    assert np.abs(relaxed[0]).max() > 0.01
    tangent = jax.jvp(loss(True), (logits, 0.8), (w, 0.3))[1]
    np.testing.assert_array_equal(
        tangent, jax.jvp(loss(False), (logits, 0.8), (w, 0.3))[1]
    )
    # the forward value is an exact one-hot
    hard = jsoftmax.gumbel_softmax(key, logits, temperature=0.8, hard=True)
    np.testing.assert_array_equal(np.sort(hard, -1)[:, :-1], 0)
    np.testing.assert_array_equal(np.max(hard, -1), 1)


@pytest.mark.slow
def test_check_grads_in_logits_and_temperature():
    logits = jax.random.normal(jax.random.key(9), (3, 5), jnp.float64)
    t = jnp.array([[0.6], [1.0], [2.5]])
    key = jax.random.key(10)
    check_grads(
        jax.jit(lambda x, t: jsoftmax.gumbel_softmax(key, x, temperature=t)),
        (logits, t),
        order=2,
        modes=("fwd", "rev"),
    )


@pytest.mark.slow
def test_edge_rows_values_and_derivatives():
    logits = jnp.array(
        [
            [1.0, -inf, 2.0, 0.5],  # -inf never chosen
            [0.3, 1.0, -2.0, 4.0],  # masked below (entries 1 and 3)
            [-inf, -inf, -inf, -inf],  # nothing to choose
            [0.0, inf, -inf, inf],  # +inf entries only
            [1.0, nan, 0.0, 2.0],  # NaN row
        ]
    )
    where = jnp.ones((5, 4), bool).at[1, 1].set(False).at[1, 3].set(False)
    keys = jax.random.split(jax.random.key(11), 400)
    dead = ~np.asarray(where) | ~np.isfinite(np.asarray(logits))
    dead[3] = np.asarray(logits[3]) != inf
    for hard in (False, True):
        for t in (0.0, 0.5, inf):
            draw = jax.vmap(
                lambda k: jsoftmax.gumbel_softmax(
                    k,
                    logits,
                    where=where,
                    temperature=t,
                    hard=hard,  # noqa: B023
                )
            )
            y = np.asarray(draw(keys))
            assert np.isnan(y[:, 4]).all() and not np.isnan(y[:, :4]).any()
            np.testing.assert_array_equal(y[:, :4][:, dead[:4]], 0)
            np.testing.assert_array_equal(y[:, 2], 0)
            # the +inf row draws among its +inf entries, evenly
            if hard or t == 0.0:
                counts = y[:, 3].sum(0)
                assert counts[1] + counts[3] == 400 and 140 < counts[1] < 260
            jac = jax.jacrev(
                lambda x: jsoftmax.gumbel_softmax(
                    keys[0],
                    x,
                    where=where,
                    temperature=0.5,
                    hard=hard,  # noqa: B023
                )
            )(logits)
            jac = np.asarray(jac)
            # rows do not mix; the NaN row's inputs take its NaN in reverse mode
            assert np.isfinite(jac[:4, :, :4]).all()
            np.testing.assert_array_equal(jac[:4, :, :4][..., dead[:4]], 0)
            np.testing.assert_array_equal(jac[[2, 3]][:, :, :4], 0)


@pytest.mark.slow
def test_temperature_zero_has_zero_derivative():
    logits = jax.random.normal(jax.random.key(12), (3, 5), jnp.float64)
    for hard in (False, True):
        g = jax.grad(
            lambda x, t: jnp.sum(
                jnp.arange(15.0).reshape(3, 5)
                * jsoftmax.gumbel_softmax(
                    jax.random.key(13),
                    x,
                    temperature=t,
                    hard=hard,  # noqa: B023
                )
            ),
            (0, 1),
        )(logits, 0.0)
        np.testing.assert_array_equal(g[0], 0)
        assert g[1] == 0


def test_nan_in_a_wide_row():
    # 4096 entries: XLA:CPU's vectorised max can skip a NaN.
    logits = jnp.zeros((2, 4096)).at[1, 4095].set(nan)
    for hard in (False, True):
        y = jsoftmax.gumbel_softmax(jax.random.key(14), logits, hard=hard)
        assert np.isnan(y[1]).all() and np.isfinite(y[0]).all()


@pytest.mark.slow
def test_shapes_vmap_over_keys_and_per_row_temperature():
    logits = jax.random.normal(jax.random.key(15), (4, 7, 3))
    keys = jax.random.split(jax.random.key(16), 5)
    t = jnp.linspace(0.5, 2.0, 12).reshape(4, 3)
    out = jax.vmap(lambda k: jsoftmax.gumbel_softmax(k, logits, axis=1, temperature=t))(
        keys
    )
    assert out.shape == (5, 4, 7, 3)
    np.testing.assert_allclose(out.sum(2), 1, rtol=1e-5)
    assert not np.allclose(out[0], out[1])
    raw = jax.random.PRNGKey(0)
    assert jsoftmax.gumbel_softmax(raw, logits, hard=True).shape == logits.shape


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
@pytest.mark.slow
def test_sixteen_bit_computed_in_float32(dtype):
    logits = jax.random.normal(jax.random.key(17), (3, 6)).astype(dtype)
    key = jax.random.key(18)
    for hard in (False, True):
        y = jsoftmax.gumbel_softmax(key, logits, temperature=0.5, hard=hard)
        assert y.dtype == dtype
        wide = jsoftmax.gumbel_softmax(
            key, logits.astype(jnp.float32), temperature=0.5, hard=hard
        )
        np.testing.assert_array_equal(y, wide.astype(dtype))


def test_argument_errors():
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="temperature"):
        jsoftmax.gumbel_softmax(key, jnp.zeros(3), temperature=-1.0)
    with pytest.raises(TypeError, match="hard"):
        jsoftmax.gumbel_softmax(key, jnp.zeros(3), hard="yes")
    with pytest.raises(ValueError, match="axis"):
        jsoftmax.gumbel_softmax(key, jnp.zeros(3), axis=1)
    with pytest.raises(ValueError, match="at least one axis"):
        jsoftmax.gumbel_softmax(key, jnp.float32(0.0))
