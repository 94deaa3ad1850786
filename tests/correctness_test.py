"""The classes of wrong numbers an independent review found, pinned across functions.

Each test names the class it pins (ties, NaN confinement at every size, width-one
rows, temperature corners, class-axis order, 64-bit labels, softmax_normalize,
empty axes, dtype promotion, logsumexp parity, per-example masks, the small
corners). References are float64 formulas or jax.nn/optax on inputs where those
are exact, never jsoftmax itself.
"""

import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

import jsoftmax

inf, nan = np.inf, np.nan
settings.register_profile("jsoftmax", derandomize=True, deadline=None, max_examples=60)
settings.load_profile("jsoftmax")

ROW_FUNCTIONS = {
    "softmax": lambda x, axis=-1, **k: jsoftmax.softmax(x, axis, **k),
    "log_softmax": lambda x, axis=-1, **k: jsoftmax.log_softmax(x, axis, **k),
    "logsumexp": lambda x, axis=-1, **k: jsoftmax.logsumexp(
        x, axis, keepdims=True, **k
    ),
}


def _float64_log_softmax(x, t=1.0):
    x = np.asarray(x, np.float64) / t
    m = np.max(x, -1, keepdims=True)
    return x - m - np.log(np.sum(np.exp(x - m), -1, keepdims=True))


# --------------------------------------------------------------------------- #
# 1. Ties of the largest entries: derivatives of the smooth function
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("t", [1.0, 0.5, 3.0])
@pytest.mark.parametrize(
    "row",
    [[0.0, 0.0], [2.0, 2.0, -inf], [1.0, 1.0, 1.0, 0.5], [5.0, -3.0, 5.0, 5.0]],
)
@pytest.mark.slow
def test_ties_give_the_smooth_derivative(row, t):
    x = jnp.array(row)
    p = np.exp(_float64_log_softmax(x[None], t))[0]
    live = np.isfinite(row)
    expected = (np.eye(len(row)) - p[None, :]) / t  # ∂ log p_i / ∂ x_j
    expected[~live] = 0
    expected[:, ~live] = 0
    fn = lambda x: jsoftmax.log_softmax(x, temperature=t)  # noqa: E731
    for jac in (jax.jacfwd(fn)(x), jax.jacrev(fn)(x), jax.jit(jax.jacrev(fn))(x)):
        np.testing.assert_allclose(jac, expected, rtol=1e-12, atol=1e-15)
    soft = jax.jacrev(lambda x: jsoftmax.softmax(x, temperature=t))(x)
    np.testing.assert_allclose(soft, p[:, None] * expected, rtol=1e-12, atol=1e-15)
    # Second order: the Hessian of log p_0 is -(diag p - p pᵀ)/T² on live entries.
    hess = jax.hessian(lambda x: jsoftmax.log_softmax(x, temperature=t)[0])(x)
    want = -(np.diag(p) - np.outer(p, p)) / t**2
    want[~live] = 0
    want[:, ~live] = 0
    np.testing.assert_allclose(hess, want, rtol=1e-12, atol=1e-15)


@pytest.mark.slow
def test_log_centered_softmax_derivative_at_zero():
    # eta = 0: every entry of [0, eta] ties; ∂ log p_i/∂eta_j = δ_{i,j+1} - p_{j+1}.
    for n in (1, 2, 5):
        jac = jax.jacfwd(jsoftmax.log_centered_softmax)(jnp.zeros(n))
        expected = np.eye(n + 1)[:, 1:] - 1 / (n + 1)
        np.testing.assert_allclose(jac, expected, rtol=1e-14, atol=1e-15)
        np.testing.assert_allclose(
            jax.jacrev(jsoftmax.log_centered_softmax)(jnp.zeros(n)),
            expected,
            atol=1e-15,
        )


@given(
    width=st.sampled_from([2, 7, 4096, 5000]),
    ties=st.integers(2, 6),
    seed=st.integers(0, 2**16),
)
@settings(max_examples=12)
@pytest.mark.slow
def test_ties_property_large_rows(width, ties, seed):
    # Integer logits with several copies of the max, rows of up to 5000 entries:
    # the VJP of log_softmax against a cotangent equals (g - p·Σg)/T.
    rng = np.random.default_rng(seed)
    x = rng.integers(-8, 3, (3, width)).astype(np.float64)
    x[:, rng.choice(width, min(ties, width), replace=False)] = 3.0
    g = rng.standard_normal(x.shape)
    _, pullback = jax.vjp(lambda x: jsoftmax.log_softmax(x, temperature=0.8), x)
    p = np.exp(_float64_log_softmax(x, 0.8))
    expected = (g - p * g.sum(-1, keepdims=True)) / 0.8
    np.testing.assert_allclose(pullback(jnp.asarray(g))[0], expected, atol=1e-12)


# --------------------------------------------------------------------------- #
# 2. A NaN anywhere makes the whole row NaN, at every size, axis and function
# --------------------------------------------------------------------------- #
def _nan_row_case(rows, width, where_nan, dtype):
    rng = np.random.default_rng(width + where_nan)
    x = rng.standard_normal((rows, width)).astype(dtype) * 3
    x[1, where_nan % width] = nan
    return x


def _check_nan_rows(out, clean, bad_row):
    out, clean = np.asarray(out, np.float64), np.asarray(clean, np.float64)
    assert np.isnan(out[bad_row]).all()
    others = np.delete(np.arange(out.shape[0]), bad_row)
    np.testing.assert_array_equal(out[others], clean[others])


@given(
    width=st.sampled_from([1, 3, 2048, 4096, 4099, 40000]),
    position=st.integers(0, 2**20),
    dtype=st.sampled_from([np.float32, np.float64]),
)
@settings(max_examples=20)
@pytest.mark.slow
def test_nan_poisons_its_whole_row_only(width, position, dtype):
    x = _nan_row_case(4, width, position, dtype)
    clean = x.copy()
    clean[1] = 0
    labels = jnp.array([0, width - 1, width // 2, 0])
    probs = np.full(x.shape, 1 / width, dtype)
    functions = dict(ROW_FUNCTIONS)
    functions["integer CE"] = lambda x: (
        jsoftmax.softmax_cross_entropy_with_integer_labels(x, labels)
    )
    functions["probability CE"] = lambda x: jsoftmax.softmax_cross_entropy(x, probs)
    functions["softmax T=0"] = lambda x: jsoftmax.softmax(x, temperature=0.0)
    functions["log_softmax T=inf"] = lambda x: jsoftmax.log_softmax(x, temperature=inf)
    for fn in functions.values():
        _check_nan_rows(fn(jnp.asarray(x)), fn(jnp.asarray(clean)), 1)
        # ... and the gradient of a sum over rows is NaN in that row only.
        g = jax.grad(lambda v: jnp.sum(jnp.where(jnp.isinf(fn(v)), 0, fn(v))))  # noqa: B023
        _check_nan_rows(g(jnp.asarray(x)), g(jnp.asarray(clean)), 1)
    draw = jsoftmax.sample(jax.random.key(0), jnp.asarray(x))
    assert draw[1] == -1 and (np.asarray(draw)[[0, 2, 3]] >= 0).all()


def test_nan_row_under_vmap_leaves_the_other_rows_alone():
    # vmap over rows: the NaN row is NaN, the others keep the bits of the
    # unbatched call, values and gradients (on CPU the batch shares one
    # program choice, see _rows.with_logits).
    x = _nan_row_case(4, 4096, 9, np.float32)
    labels = jnp.array([3, 5, 7, 11])
    functions = dict(ROW_FUNCTIONS)
    functions["integer CE"] = jsoftmax.softmax_cross_entropy_with_integer_labels
    for name, fn in functions.items():
        one = (lambda v, k: fn(v, k)) if name == "integer CE" else fn
        args = (jnp.asarray(x), labels) if name == "integer CE" else (jnp.asarray(x),)
        batched = np.asarray(jax.vmap(one)(*args))
        for row in (0, 2, 3):
            row_args = [a[row] for a in args]
            np.testing.assert_array_equal(batched[row], one(*row_args), name)
        assert np.isnan(batched[1]).all(), name

        def total(v, *rest, one=one):
            return jnp.sum(jnp.where(jnp.isinf(one(v, *rest)), 0, one(v, *rest)))

        grads = np.asarray(jax.vmap(jax.grad(total))(*args))
        for row in (0, 2, 3):
            row_args = [a[row] for a in args]
            np.testing.assert_array_equal(grads[row], jax.grad(total)(*row_args), name)
        assert np.isnan(grads[1]).all(), name


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_edge_rows_leave_the_other_rows_bits_alone(dtype):
    # A batch holding edge rows (NaN, +inf, all -inf, tied maxima) against the
    # same batch with those rows made ordinary: every other row keeps its
    # bits, values and gradients, in every function (on CPU the edge rows
    # send the batch to the general program, whose outputs are taken in the
    # flagged rows only; the 16-bit and wider programs read different
    # witnesses, see _cores._flag_rows).
    rng = np.random.default_rng(7)
    clean = (rng.standard_normal((6, 4096)) * 3).astype(np.float32)
    clean[4, :3] = clean[4].max() + 1  # a three-way tie at the max
    edge = clean.copy()
    edge[1, 5] = nan
    edge[2, [3, 9]] = inf
    edge[3] = -inf
    clean, edge = jnp.asarray(clean, dtype), jnp.asarray(edge, dtype)
    labels = jnp.array([3, 5, 7, 11, 1, 0])
    functions = dict(ROW_FUNCTIONS)
    functions["integer CE"] = lambda x: (
        jsoftmax.softmax_cross_entropy_with_integer_labels(x, labels)
    )
    probs = jnp.full(clean.shape, 1 / 4096, dtype)
    functions["probability CE"] = lambda x: jsoftmax.softmax_cross_entropy(x, probs)
    others = [0, 4, 5]
    for name, fn in functions.items():
        np.testing.assert_array_equal(
            np.asarray(fn(edge), np.float64)[others],
            np.asarray(fn(clean), np.float64)[others],
            name,
        )

        def total(v, fn=fn):
            return jnp.sum(jnp.where(jnp.isinf(fn(v)), 0, fn(v)).astype(jnp.float32))

        np.testing.assert_array_equal(
            np.asarray(jax.grad(total)(edge), np.float64)[others],
            np.asarray(jax.grad(total)(clean), np.float64)[others],
            name,
        )


def test_nan_rows_along_other_axes():
    x = _nan_row_case(4, 4096, 77, np.float32).T  # rows along axis 0 now
    for name, fn in ROW_FUNCTIONS.items():
        out = np.asarray(fn(jnp.asarray(x), axis=0))
        assert np.isnan(out[:, 1]).all(), name
        assert not np.isnan(np.delete(out, 1, axis=1)).any(), name
    cube = _nan_row_case(6, 4096, 5, np.float32).reshape(6, 64, 64)
    out = np.asarray(jsoftmax.softmax(jnp.asarray(cube), axis=(2, 1)))
    assert np.isnan(out[1]).all() and not np.isnan(np.delete(out, 1, 0)).any()


# --------------------------------------------------------------------------- #
# 3. Width-one rows, all -inf or masked
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.slow
def test_width_one_dead_rows(masked):
    x = jnp.array([[-inf], [2.0]]) if not masked else jnp.array([[5.0], [2.0]])
    where = None if not masked else jnp.array([[False], [True]])
    np.testing.assert_array_equal(jsoftmax.softmax(x, where=where), [[0.0], [1.0]])
    np.testing.assert_array_equal(jsoftmax.log_softmax(x, where=where), [[-inf], [0]])
    np.testing.assert_array_equal(jsoftmax.logsumexp(x, where=where), [-inf, 2.0])
    for name in ("softmax", "log_softmax", "logsumexp"):
        fn = getattr(jsoftmax, name)
        g = jax.grad(
            lambda x: jnp.sum(
                jnp.where(jnp.isinf(fn(x, where=where)), 0, fn(x, where=where))
            )
        )(x)  # noqa: B023, E501
        np.testing.assert_array_equal(g, [[0.0], [1.0 if name == "logsumexp" else 0]])
    sample = jsoftmax.sample(jax.random.key(1), x, where=where)
    np.testing.assert_array_equal(sample, [-1, 0])


# --------------------------------------------------------------------------- #
# 4. Temperature corners
# --------------------------------------------------------------------------- #
def test_negative_zero_temperature_is_the_hard_max():
    x = jnp.array([[1.0, 3.0, 3.0, -inf], [0.0, 1e-30, 0.0, 0.0]])
    for t in (0.0, -0.0, jnp.array(-0.0), jnp.array([[-0.0], [0.0]])):
        np.testing.assert_array_equal(
            jsoftmax.softmax(x, temperature=t), [[0, 0.5, 0.5, 0], [0, 1, 0, 0]]
        )
        traced = jax.jit(lambda x, t: jsoftmax.softmax(x, temperature=t))(x, t)
        np.testing.assert_array_equal(traced, [[0, 0.5, 0.5, 0], [0, 1, 0, 0]])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tiny_gap_at_zero_temperature_is_minus_inf(dtype):
    top = np.asarray(1.0, dtype)
    below = np.nextafter(top, np.asarray(0, dtype))
    x = jnp.array([top, below, top], dtype)
    lp = jsoftmax.log_softmax(x, temperature=0.0)
    np.testing.assert_array_equal(lp, np.array([-np.log(2), -inf, -np.log(2)], dtype))
    assert jsoftmax.softmax(x, temperature=0.0)[1] == 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_zero_temperature_below_the_max_whatever_the_gap(dtype):
    # Halved, 4·tiny and 3·tiny are normal but their gap is subnormal (0 where
    # the backend flushes), and 0·(1/0) is NaN: still the hard max, -inf
    # below the max, per-row T traced included, with zero derivatives.
    tiny = np.finfo(dtype).tiny
    x = jnp.array([[4 * tiny, 3 * tiny, -inf, 2 * tiny], [0, 4 * tiny, 0, 3 * tiny]])
    x = x.astype(dtype)
    expected_p = np.array([[1, 0, 0, 0], [0, 1, 0, 0]], dtype)
    for t in (0.0, jnp.array([[0.0], [-0.0]], dtype)):
        for run in (lambda f, *a: f(*a), lambda f, *a: jax.jit(f)(*a)):
            p = run(lambda x, t: jsoftmax.softmax(x, temperature=t), x, t)
            lp = run(lambda x, t: jsoftmax.log_softmax(x, temperature=t), x, t)
            np.testing.assert_array_equal(p, expected_p)
            np.testing.assert_array_equal(lp, np.where(expected_p == 1, 0, -inf))
            loss = run(
                lambda x, t: jsoftmax.softmax_cross_entropy_with_integer_labels(
                    x, jnp.array([0, 1]), temperature=t
                ),
                x,
                t,
            )
            np.testing.assert_array_equal(loss, [0, 0])
            for fn in (jsoftmax.softmax, jsoftmax.log_softmax):
                g = jax.grad(lambda x: jnp.sum(fn(x, temperature=t)[..., :2]))(x)  # noqa: B023
                np.testing.assert_array_equal(g, np.zeros_like(x))
            g = jax.grad(lambda x: jnp.sum(jsoftmax.logsumexp(x, temperature=t)))(x)  # noqa: B023
            np.testing.assert_array_equal(g, expected_p)


@pytest.mark.parametrize("t", [1e30, 1e37, 1e38, 3e38])
def test_large_temperature_with_a_span_beyond_the_float_range(t):
    x = jnp.array([3e38, -3e38, 0.0], jnp.float32)
    z = np.array([3e38, -3e38, 0.0]) / t
    expected = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    np.testing.assert_allclose(jsoftmax.softmax(x, temperature=t), expected, rtol=2e-6)
    # (float64 reference rounded to float32: 3e38 + T·log Σ overflows there)
    lse = np.float32(3e38 + t * np.log(np.exp(z - z.max()).sum()))
    np.testing.assert_allclose(jsoftmax.logsumexp(x, temperature=t), lse, rtol=2e-6)


# --------------------------------------------------------------------------- #
# 5-6. Integer labels: class axes in the order given, labels at their own width
# --------------------------------------------------------------------------- #
@pytest.mark.slow
def test_unsorted_class_axes_read_the_classes_as_optax():
    x = jax.random.normal(jax.random.key(2), (3, 4, 5))
    labels = jnp.array([0, 7, 19])
    for axis in ((2, 1), (1, 2), (-1, -2)):
        ours = jsoftmax.softmax_cross_entropy_with_integer_labels(x, labels, axis=axis)
        theirs = optax.softmax_cross_entropy_with_integer_labels(x, labels, axis=axis)
        np.testing.assert_allclose(ours, theirs, rtol=1e-6)


@pytest.mark.slow
def test_sixty_four_bit_labels_are_checked_at_their_width():
    x = jnp.zeros((4, 3))
    labels = jnp.array([2**32 + 1, -(2**32) + 2, 1, 2**40], jnp.int64)
    loss = np.asarray(jsoftmax.softmax_cross_entropy_with_integer_labels(x, labels))
    assert np.isnan(loss[[0, 1, 3]]).all()
    np.testing.assert_allclose(loss[2], np.log(3))
    g = np.asarray(
        jax.grad(
            lambda x: jnp.sum(
                jsoftmax.softmax_cross_entropy_with_integer_labels(x, labels)
            )
        )(x)
    )
    assert np.isnan(g[[0, 1, 3]]).all() and np.isfinite(g[2]).all()
    small = jnp.array([1, 200], jnp.uint8)  # ignore_index -100 fits no uint8
    out = jsoftmax.softmax_cross_entropy_with_integer_labels(
        x[:2], small, ignore_index=-100
    )
    assert np.isfinite(out[0]) and np.isnan(out[1])


# --------------------------------------------------------------------------- #
# 7. softmax_normalize
# --------------------------------------------------------------------------- #
def test_softmax_normalize_excluded_nan_and_huge_values():
    x = jnp.array([1.0, 2.0, 3.0, nan])
    out = jsoftmax.softmax_normalize(x, where=jnp.array([True, True, True, False]))
    np.testing.assert_allclose(out[:3], jsoftmax.softmax_normalize(x[:3]))
    assert np.isnan(out[3])
    big = jnp.array([1e20, 2e20, 3e20, -4e30], jnp.float32)
    z = np.array([1e20, 2e20, 3e20, -4e30])
    z = (z - z.mean()) / z.std()
    np.testing.assert_allclose(
        jsoftmax.softmax_normalize(big), 1 / (1 + np.exp(-z)), rtol=1e-6
    )


# --------------------------------------------------------------------------- #
# 8-9. Empty axes, dtype promotion
# --------------------------------------------------------------------------- #
def test_empty_axes_behave_as_jax_nn():
    x = jnp.zeros((3, 0))
    assert jsoftmax.softmax(x).shape == (3, 0)
    assert jsoftmax.log_softmax(x).shape == (3, 0)
    np.testing.assert_array_equal(jsoftmax.logsumexp(x), [-inf] * 3)
    assert jsoftmax.sample(jax.random.key(0), x).tolist() == [-1, -1, -1]
    batch = jnp.zeros((0, 5))
    none = jsoftmax.softmax_cross_entropy_with_integer_labels(batch, jnp.zeros(0, int))
    assert none.shape == (0,)
    for fn, labels in (
        (jsoftmax.softmax_cross_entropy_with_integer_labels, jnp.zeros(0, int)),
        (jsoftmax.softmax_cross_entropy, batch),
    ):
        assert float(fn(batch, labels, reduction="sum")) == 0
        assert np.isnan(fn(batch, labels, reduction="mean"))  # 0/0, no exception
    assert jsoftmax.softmax(jnp.zeros((0,))).shape == (0,)
    g = jax.grad(lambda x: jnp.sum(jsoftmax.logsumexp(x)))(jnp.zeros((2, 0)))
    assert g.shape == (2, 0)


@pytest.mark.parametrize(
    "dtype", [jnp.int8, jnp.int16, jnp.int32, jnp.int64, jnp.uint8, jnp.uint32]
)
@pytest.mark.slow
def test_integer_inputs_get_jax_nn_dtypes(dtype):
    x = jnp.arange(4, dtype=dtype)
    for name in ("softmax", "log_softmax", "logsumexp"):
        assert getattr(jsoftmax, name)(x).dtype == getattr(jax.nn, name)(x).dtype, name


# --------------------------------------------------------------------------- #
# 10. logsumexp parity with jax.nn.logsumexp
# --------------------------------------------------------------------------- #
@given(
    # |x| >= 1e-300: the cores halve x, and a halved smallest-normal max is
    # subnormal, which XLA flushes to 0 (logsumexp is then off by ~1e-308, an
    # absolute error below the float range; documented in jsoftmax/_rows.py).
    x=hnp.arrays(
        np.float64,
        (3, 6),
        elements=st.floats(-30, 30).filter(lambda v: v == 0 or abs(v) >= 1e-300),
    ),
    b=hnp.arrays(np.float64, (3, 6), elements=st.sampled_from([-2.0, -0.5, 0, 1, 3])),
)
@pytest.mark.slow
def test_logsumexp_b_and_return_sign_match_jax_nn(x, b):
    for axis in (-1, 0):
        ours = jsoftmax.logsumexp(x, axis, b, False, True)
        theirs = jax.nn.logsumexp(x, axis, b, False, True)
        np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-10, atol=1e-12)
        np.testing.assert_array_equal(ours[1], theirs[1])
        plain = jsoftmax.logsumexp(x, axis=axis, b=b)
        np.testing.assert_allclose(
            plain, jax.nn.logsumexp(x, axis=axis, b=b), rtol=1e-10
        )


@pytest.mark.slow
def test_logsumexp_b_derivatives_match_autodiff_of_jax_nn():
    x = jnp.array([[0.3, -1.0, 2.0], [1.0, 1.5, -0.5]])
    b = jnp.array([[1.0, 2.0, 0.5], [0.5, 1.0, 3.0]])
    for argnum in (0, 1):
        ours = jax.jacrev(lambda x, b: jsoftmax.logsumexp(x, b=b), argnum)(x, b)
        theirs = jax.jacrev(lambda x, b: jax.nn.logsumexp(x, -1, b), argnum)(x, b)
        np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    # d/dT of T·log Σ b·exp(x/T) by central differences
    f = lambda t: jsoftmax.logsumexp(x, b=b, temperature=t)  # noqa: E731
    h = 1e-6
    np.testing.assert_allclose(
        jax.jacfwd(f)(0.7), (f(0.7 + h) - f(0.7 - h)) / (2 * h), rtol=1e-7
    )
    with pytest.raises(TypeError, match="must be real"):
        jsoftmax.logsumexp(jnp.ones(3, jnp.complex64))


# --------------------------------------------------------------------------- #
# 11. Per-example masks are never read as per-class masks
# --------------------------------------------------------------------------- #
def test_lower_rank_where_raises_for_the_losses():
    x = jnp.zeros((3, 3))
    per_example = jnp.array([True, False, True])
    with pytest.raises(ValueError, match="rank of logits"):
        jsoftmax.softmax_cross_entropy_with_integer_labels(
            x, jnp.array([0, 1, 2]), where=per_example
        )
    with pytest.raises(ValueError, match="rank of logits"):
        jsoftmax.softmax_cross_entropy(x, jnp.eye(3), where=per_example)


# --------------------------------------------------------------------------- #
# 12. The small corners
# --------------------------------------------------------------------------- #
def test_ignored_example_with_nan_logits_contributes_exactly_zero():
    x = jnp.array([[nan, 1.0, 2.0], [0.5, 1.0, 2.0]])
    labels = jnp.array([-100, 2])
    f = lambda x: jsoftmax.softmax_cross_entropy_with_integer_labels(  # noqa: E731
        x, labels, ignore_index=-100, reduction="mean"
    )
    value, grad = jax.value_and_grad(f)(x)
    np.testing.assert_allclose(value, -_float64_log_softmax(x[1:])[0, 2])
    np.testing.assert_array_equal(grad[0], 0)
    assert np.isfinite(grad[1]).all()


@pytest.mark.slow
def test_small_corners():
    # inverse_softmax of zero entries: ±inf (documented), never NaN
    eta = jsoftmax.inverse_softmax(jnp.array([0.5, 0.0, 0.5]))
    np.testing.assert_array_equal(eta, [-inf, 0.0])
    eta = jsoftmax.inverse_softmax(jnp.array([0.0, 0.3, 0.7]))
    np.testing.assert_array_equal(eta, [inf, inf])
    # Hessian of the simplex map where |scale·eta| ≈ 1e20: finite (p is a vertex)
    hess = jsoftmax.centered_softmax_hessian(jnp.array([1e20, -1e20]))
    assert np.isfinite(hess).all()
    # d logsumexp / dT at T = inf is the entropy of the uniform limit: log k
    x = jnp.array([1.0, 2.0, -inf, 0.5])
    np.testing.assert_allclose(
        jax.grad(lambda t: jsoftmax.logsumexp(x, temperature=t))(inf), np.log(3)
    )
    # a traced invalid T on an all -inf row: NaN in that row only
    rows = jnp.array([[-inf, -inf], [1.0, 2.0]])
    out = jax.jit(lambda t: jsoftmax.softmax(rows, temperature=t))(
        jnp.array([[-1.0], [1.0]])
    )
    assert np.isnan(out[0]).all() and np.isfinite(out[1]).all()
    # the CE Hessian at T = 0 is 0 (the hard max is locally constant), finite
    logits = jnp.array([1.0, 3.0, 2.0])
    hess = jax.hessian(
        lambda x: jsoftmax.softmax_cross_entropy_with_integer_labels(
            x, jnp.array(1), temperature=0.0
        )
    )(logits)
    np.testing.assert_array_equal(hess, 0)


@pytest.mark.parametrize("width", [2048, 4096, 8192])
def test_nan_that_fools_the_row_max_into_minus_inf(width):
    # XLA:CPU's vectorised max returned -inf for a row of zeros ending in NaN:
    # the all -inf row flag must not turn that row into zeros.
    x = jnp.zeros((2, width)).at[1, width - 1].set(nan)
    for name, fn in ROW_FUNCTIONS.items():
        out = np.asarray(fn(x))
        assert np.isnan(out[1]).all() and np.isfinite(out[0]).all(), name
    loss = jsoftmax.softmax_cross_entropy_with_integer_labels(x, jnp.array([0, 0]))
    assert np.isnan(loss[1]) and np.isfinite(loss[0])
