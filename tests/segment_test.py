"""Tests for jsoftmax.segment_softmax and segment_logsumexp.

The reference is the padded dense form: segments laid out as the rows of a
``[num_segments, max_len, ...]`` array (the padding masked), normalised by
``jax.nn`` or ``jsoftmax`` along axis 1 in float64, and read back per row.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from jax.test_util import check_grads

import jsoftmax

inf, nan = np.inf, np.nan
settings.register_profile("jsoftmax", derandomize=True, deadline=None, max_examples=60)
settings.load_profile("jsoftmax")


# --------------------------------------------------------------------------- #
# The padded dense reference
# --------------------------------------------------------------------------- #
def _layout(ids, num_segments):
    """Each valid row's position inside its segment, and the longest segment."""
    ids = np.asarray(ids)
    valid = (ids >= 0) & (ids < num_segments)
    positions = np.zeros(len(ids), np.int64)
    seen = np.zeros(max(num_segments, 1), np.int64)
    for i in np.flatnonzero(valid):
        positions[i] = seen[ids[i]]
        seen[ids[i]] += 1
    return valid, positions, max(int(seen.max()), 1)


def _dense(fn, x, ids, num_segments, temperature=1.0, reduce=False):
    """``fn(padded, axis=1, where=mask, temperature=T)`` read back per row of ``x``
    (0 for rows outside every segment), or per segment if ``reduce``."""
    valid, positions, longest = _layout(ids, num_segments)
    rows, cols = np.asarray(ids)[valid], positions[valid]
    shape = (num_segments, longest) + x.shape[1:]
    padded = jnp.zeros(shape, x.dtype).at[rows, cols].set(x[valid])
    mask = np.zeros(shape, bool)
    mask[rows, cols] = True
    t = jnp.asarray(temperature)
    if t.ndim:
        t = jnp.expand_dims(jnp.broadcast_to(t, (num_segments,) + t.shape[1:]), 1)
    out = fn(padded, axis=1, where=jnp.asarray(mask), temperature=t)
    if reduce:
        return out
    return jnp.zeros_like(x).at[valid].set(out[rows, cols])


def _jax_nn(fn):
    """A jax.nn normaliser with the temperature applied to its input."""
    return lambda x, axis, where, temperature: fn(x / temperature, axis, where=where)


def _ragged(seed, num_segments, heads=(), mean=6, dtype=np.float64):
    """Shuffled rows of segments of random lengths (some empty), with scores."""
    rng = np.random.default_rng(seed)
    lengths = rng.poisson(mean, num_segments)
    lengths[rng.random(num_segments) < 0.1] = 0
    ids = rng.permutation(np.repeat(np.arange(num_segments), lengths))
    x = (rng.standard_normal((len(ids),) + heads) * 3).astype(dtype)
    return jnp.asarray(x), jnp.asarray(ids, jnp.int32)


# --------------------------------------------------------------------------- #
# Values against the dense forms
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("temperature", [1.0, 0.3, 4.0])
@pytest.mark.parametrize("heads", [(), (3,)])
@pytest.mark.slow
def test_matches_padded_jax_nn_in_float64(temperature, heads):
    x, ids = _ragged(0, 40, heads)
    p = jsoftmax.segment_softmax(x, ids, 40, temperature=temperature)
    expected = _dense(_jax_nn(jax.nn.softmax), x, ids, 40, temperature)
    # exp turns the rounding of x/T into a relative error of |log p|·eps
    np.testing.assert_allclose(p, expected, rtol=1e-13, atol=1e-300)
    lse = jsoftmax.segment_logsumexp(x, ids, 40, temperature=temperature)
    counts = np.bincount(np.asarray(ids), minlength=40)
    dense = _dense(_jax_nn(jax.nn.logsumexp), x, ids, 40, temperature, reduce=True)
    expected = np.where(
        counts.reshape((40,) + (1,) * len(heads)) > 0, temperature * dense, -inf
    )
    np.testing.assert_allclose(lse, expected, rtol=4e-15)


@pytest.mark.slow
def test_float32_against_float64_reference():
    x, ids = _ragged(1, 30, (2,), dtype=np.float32)
    t = jnp.asarray(np.random.default_rng(2).uniform(0.1, 3, (30, 1)), jnp.float32)
    p = jsoftmax.segment_softmax(x, ids, 30, temperature=t)
    assert p.dtype == jnp.float32
    t64 = t.astype(jnp.float64)
    expected = _dense(jsoftmax.softmax, x.astype(jnp.float64), ids, 30, t64)
    live = np.asarray(expected) > 1e-30
    rel = (
        np.abs(np.asarray(p, np.float64) - expected)[live] / np.asarray(expected)[live]
    )
    # exp of an exponent |x/T| <~ 100 rounded to float32 ulp: a few hundred eps
    assert rel.max() < 300 * np.finfo(np.float32).eps, rel.max()
    lse = jsoftmax.segment_logsumexp(x, ids, 30, temperature=t)
    ref = _dense(jsoftmax.logsumexp, x.astype(jnp.float64), ids, 30, t64, reduce=True)
    np.testing.assert_allclose(lse, ref, rtol=4e-7, atol=4e-7)


@pytest.mark.slow
def test_per_segment_temperature_shapes():
    x, ids = _ragged(3, 12, (2,))
    t = jnp.linspace(0.5, 3.0, 12)
    by_segment = jsoftmax.segment_softmax(x, ids, 12, temperature=t)
    np.testing.assert_allclose(
        by_segment, jsoftmax.segment_softmax(x, ids, 12, temperature=t[:, None])
    )
    # one T per segment and head
    th = jnp.stack([t, 2 * t], -1)
    per_head = jsoftmax.segment_softmax(x, ids, 12, temperature=th)
    np.testing.assert_allclose(per_head, _dense(jsoftmax.softmax, x, ids, 12, th))
    with pytest.raises(ValueError, match="temperature of shape"):
        jsoftmax.segment_softmax(x, ids, 12, temperature=jnp.ones(5))


def test_overflowing_difference_is_never_formed():
    # x - max = -6e38 overflows float32; (x - max)/T = -6 does not.
    x = jnp.array([-3e38, 3e38, 1.0, -jnp.inf], jnp.float32)
    ids = jnp.array([0, 0, 1, 1])
    p = jsoftmax.segment_softmax(x, ids, 2, temperature=1e38)
    tail = np.exp(-6.0) / (1 + np.exp(-6.0))
    np.testing.assert_allclose(p, [tail, 1 - tail, 1, 0], rtol=1e-5)
    lse = jsoftmax.segment_logsumexp(x, ids, 2, temperature=1e38)
    np.testing.assert_allclose(lse, [3e38 + 1e38 * np.log1p(np.exp(-6.0)), 1], 1e-6)


# --------------------------------------------------------------------------- #
# Derivatives
# --------------------------------------------------------------------------- #
@pytest.mark.slow
@pytest.mark.parametrize(
    "fn", [jsoftmax.segment_softmax, jsoftmax.segment_logsumexp], ids=["sm", "lse"]
)
def test_check_grads_in_x_and_temperature(fn):
    x, ids = _ragged(4, 6, (2,), mean=3)
    t = jnp.linspace(0.6, 2.0, 6)
    check_grads(
        jax.jit(lambda x, t: fn(x, ids, 6, temperature=t)),
        (x, t),
        order=2,
        modes=("fwd", "rev"),
    )


@pytest.mark.slow
def test_gradients_match_padded_jax_nn():
    x, ids = _ragged(5, 25, (2,))
    present = jnp.asarray(np.unique(np.asarray(ids))[:4])
    w = jax.random.normal(jax.random.key(0), x.shape, x.dtype)

    def loss(f):
        return lambda x, t: jnp.sum(w * f(x, t))

    ours = jax.jit(
        jax.grad(
            loss(lambda x, t: jsoftmax.segment_softmax(x, ids, 25, temperature=t)),
            (0, 1),
        )
    )(x, 1.7)
    dense = jax.jit(
        jax.grad(
            loss(lambda x, t: _dense(_jax_nn(jax.nn.softmax), x, ids, 25, t)), (0, 1)
        )
    )(x, 1.7)
    np.testing.assert_allclose(ours[0], dense[0], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(ours[1], dense[1], rtol=1e-12)
    lse = jax.jit(
        jax.grad(
            lambda x, t: jnp.sum(
                jsoftmax.segment_logsumexp(x, ids, 25, temperature=t)[present]
            ),
            (0, 1),
        )
    )(x, 1.7)
    lse_dense = jax.jit(
        jax.grad(
            lambda x, t: jnp.sum(
                t
                * _dense(_jax_nn(jax.nn.logsumexp), x, ids, 25, t, reduce=True)[present]
            ),
            (0, 1),
        )
    )(x, 1.7)
    np.testing.assert_allclose(lse[0], lse_dense[0], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(lse[1], lse_dense[1], rtol=1e-12)


def test_temperature_derivative_against_finite_differences():
    x, ids = _ragged(6, 5, mean=4)
    t0, h = 1.3, 1e-6
    tangent = jax.jvp(
        lambda t: jsoftmax.segment_softmax(x, ids, 5, temperature=t), (t0,), (1.0,)
    )[1]
    fd = (
        jsoftmax.segment_softmax(x, ids, 5, temperature=t0 + h)
        - jsoftmax.segment_softmax(x, ids, 5, temperature=t0 - h)
    ) / (2 * h)
    np.testing.assert_allclose(tangent, fd, rtol=1e-6, atol=1e-9)


def test_tail_of_the_jvp_is_kept():
    x = jnp.array([40.0, 0.0, 1.0])
    ids = jnp.array([0, 0, 1])
    tail = np.exp(-40.0) / (1 + np.exp(-40.0))
    fn = lambda x: jsoftmax.segment_softmax(x, ids, 2)
    for jac in (jax.jacfwd(fn)(x), jax.jacrev(fn)(x)):
        np.testing.assert_allclose(jac[0], [tail, -tail, 0], rtol=1e-14)


# --------------------------------------------------------------------------- #
# Edge segments (DESIGN.md), values and derivatives
# --------------------------------------------------------------------------- #
# One segment per case, rows shuffled; segment 5 is empty and id 9 is outside.
EDGE = [
    ([0.5, 2.0, 2.0, -1.0], "ties"),
    ([1.0, -inf, 3.0], "some -inf"),
    ([-inf, -inf], "all -inf"),
    ([1.0, inf, -inf, inf], "two +inf"),
    ([-inf], "single -inf"),
    ([], "empty"),
    ([1.0, nan, 2.0, inf], "nan"),
    ([7.0], "single"),
]


def _edge_input():
    values, ids = [], []
    for s, (row, _) in enumerate(EDGE):
        values += row
        ids += [s] * len(row)
    values.append(4.0)
    ids.append(9)
    order = np.random.default_rng(0).permutation(len(ids))
    return jnp.asarray(np.array(values)[order]), jnp.asarray(np.array(ids)[order])


@pytest.mark.parametrize("temperature", [1.0, 0.0, -0.0, inf, 1e-300, 1e300])
@pytest.mark.slow
def test_edge_segments_match_dense_jsoftmax(temperature):
    x, ids = _edge_input()
    s = len(EDGE)
    p = jsoftmax.segment_softmax(x, ids, s, temperature=temperature)
    # DESIGN: T = -0.0 is T = 0, the hard max (the dense reference is given +0.0:
    # jsoftmax.softmax at jax 0.10.2 / 2026-11 returned the uniform row for -0.0).
    reference_t = abs(temperature)
    expected = _dense(jsoftmax.softmax, x, ids, s, reference_t)
    np.testing.assert_array_equal(np.isnan(p), np.asarray(ids) == 6)
    np.testing.assert_allclose(p, expected, rtol=1e-14)
    lse = jsoftmax.segment_logsumexp(x, ids, s, temperature=temperature)
    dense = _dense(jsoftmax.logsumexp, x, ids, s, reference_t, reduce=True)
    np.testing.assert_allclose(lse, dense, rtol=1e-14)
    assert lse[5] == -inf  # the empty segment


@pytest.mark.parametrize("temperature", [1.0, 0.0, inf])
@pytest.mark.slow
def test_edge_segment_derivatives(temperature):
    x, ids = _edge_input()
    s, ids_np = len(EDGE), np.asarray(ids)
    in_nan = ids_np == 6
    sm = lambda x, t: jsoftmax.segment_softmax(x, ids, s, temperature=t)
    jac = np.asarray(jax.jacrev(sm)(x, temperature))
    # Reverse mode carries the NaN segment's NaN into its own columns (its
    # cotangent meets p = NaN there), as jsoftmax.softmax does for a NaN row;
    # elsewhere both modes agree exactly and are NaN-free.
    # (forward mode into its own rows: a zero tangent meets p = NaN there).
    jac_fwd = np.asarray(jax.jacfwd(sm)(x, temperature))
    np.testing.assert_array_equal(np.isnan(jac), np.broadcast_to(in_nan, jac.shape))
    np.testing.assert_array_equal(np.isnan(jac_fwd).T, np.isnan(jac))
    bad = in_nan[:, None] | in_nan[None, :]
    np.testing.assert_array_equal(jac_fwd[~bad], jac[~bad])
    same = ids_np[:, None] == ids_np[None, :]
    clean = jac[~in_nan][:, ~in_nan]
    np.testing.assert_array_equal(clean[~same[~in_nan][:, ~in_nan]], 0)
    dead = ~np.isfinite(np.asarray(x)) | (ids_np == 9) | np.isin(ids_np, [2, 3])
    np.testing.assert_array_equal(jac[~in_nan][:, dead & ~in_nan], 0)
    if temperature != 1.0:  # T = 0 and T = inf: zero derivative
        np.testing.assert_array_equal(clean, 0)
    # Each segment sums to a constant; one T per segment keeps the NaN in its own.
    per_segment = jnp.full(s, temperature)
    g_t = jax.grad(lambda t: jnp.sum(jnp.where(in_nan, 0, sm(x, t))))(per_segment)
    np.testing.assert_array_equal(g_t, np.where(np.arange(s) == 6, nan, 0))
    lse = lambda x: jsoftmax.segment_logsumexp(x, ids, s, temperature=temperature)
    jac_lse = np.asarray(jax.jacrev(lse)(x))
    keep = np.arange(s) != 6
    np.testing.assert_array_equal(
        np.asarray(jax.jacfwd(lse)(x))[keep][:, ~in_nan], jac_lse[keep][:, ~in_nan]
    )
    # d lse_s / dx = the segment's softmax on its rows (0 on the +inf segment)
    expected = (ids_np[None, :] == np.arange(s)[:, None]) * np.asarray(
        sm(x, temperature)
    )[None, :]
    expected[3] = 0
    # a +inf value (T = inf over two or more entries) has derivative 0
    expected[np.asarray(lse(x)) == inf] = 0
    keep = np.arange(s) != 6
    np.testing.assert_array_equal(np.isnan(jac_lse[keep][:, ~in_nan]), False)
    np.testing.assert_allclose(jac_lse[keep][:, ~in_nan], expected[keep][:, ~in_nan])
    assert np.isnan(jac_lse[6][in_nan]).all()


@pytest.mark.parametrize("size", [8, 5000])
@pytest.mark.slow
def test_nan_is_confined_to_its_segment(size):
    # 5000 rows: XLA:CPU's vectorised max may drop a NaN; the count may not.
    rng = np.random.default_rng(7)
    ids = jnp.asarray(np.sort(rng.integers(0, 3, size)))
    x = jnp.asarray(rng.standard_normal(size)).at[int(np.argmax(ids == 1))].set(nan)
    p = jsoftmax.segment_softmax(x, ids, 3, indices_are_sorted=True)
    np.testing.assert_array_equal(np.isnan(p), np.asarray(ids) == 1)
    lse = jsoftmax.segment_logsumexp(x, ids, 3)
    np.testing.assert_array_equal(np.isnan(lse), [False, True, False])
    g = jax.grad(lambda x: jnp.sum(jsoftmax.segment_logsumexp(x, ids, 3)[::2]))(x)
    np.testing.assert_array_equal(np.isnan(g), np.asarray(ids) == 1)


def test_traced_bad_temperature_poisons_its_segment_only():
    x, ids = jnp.array([1.0, 2.0, 3.0]), jnp.array([0, 0, 1])
    t = jnp.array([-1.0, 1.0])
    p = jax.jit(lambda t: jsoftmax.segment_softmax(x, ids, 2, temperature=t))(t)
    np.testing.assert_array_equal(np.isnan(p), [True, True, False])
    with pytest.raises(ValueError, match="temperature"):
        jsoftmax.segment_softmax(x, ids, 2, temperature=t)
    with pytest.raises(ValueError, match="temperature"):
        jsoftmax.segment_logsumexp(x, ids, 2, temperature=nan)


# --------------------------------------------------------------------------- #
# Properties
# --------------------------------------------------------------------------- #
def _numpy_softmax(x, ids, num_segments, temperature):
    """Float64 NumPy reference for finite ``x``, one segment at a time."""
    x, ids = np.asarray(x, np.float64), np.asarray(ids)
    out = np.zeros_like(x)
    for s in range(num_segments):
        rows = x[ids == s]
        if not len(rows):
            continue
        top = rows.max(0)
        if temperature == 0:
            e = (rows == top).astype(np.float64)
        elif temperature == inf:
            e = np.ones_like(rows)
        else:
            e = np.exp((rows - top) / temperature)
        out[ids == s] = e / e.sum(0)
    return out


@st.composite
def _segmented(draw):
    num_segments = draw(st.sampled_from([3, 40]))
    size = draw(st.sampled_from([7, 64, 4096, 5000]))
    heads = draw(st.sampled_from([(), (2,)]))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    ids = rng.integers(0, num_segments, size)
    # small integers: many ties within a segment
    values = rng.integers(-4, 5, (size,) + heads).astype(np.float64)
    if draw(st.booleans()):
        values = values + rng.standard_normal(values.shape) * 0.1
    return jnp.asarray(values), jnp.asarray(ids), num_segments


@pytest.mark.slow
@settings(max_examples=30)
@given(_segmented(), st.sampled_from([0.0, 0.5, 1.0, 3.0, inf]))
def test_property_matches_numpy_reference(case, temperature):
    x, ids, s = case
    p = jsoftmax.segment_softmax(x, ids, s, temperature=temperature)
    expected = _numpy_softmax(x, ids, s, temperature)
    np.testing.assert_allclose(p, expected, rtol=1e-13, atol=1e-300)
    sums = jax.ops.segment_sum(p, ids, s)
    present = np.bincount(np.asarray(ids), minlength=s) > 0
    np.testing.assert_allclose(np.asarray(sums)[present], 1, rtol=1e-13)
    # shift invariance, one shift per segment
    shift = jnp.arange(s, dtype=x.dtype).reshape((s,) + (1,) * (x.ndim - 1)) * 7
    shifted = jsoftmax.segment_softmax(x + shift[ids], ids, s, temperature=temperature)
    np.testing.assert_allclose(shifted, p, rtol=1e-12, atol=1e-300)
    # log Σ p = 0, so lse(x) = log Σ exp: p = exp((x - lse)/T) where T > 0
    lse = jsoftmax.segment_logsumexp(x, ids, s, temperature=temperature)
    if 0 < temperature < inf:
        np.testing.assert_allclose(
            jnp.exp((x - lse[ids]) / temperature), expected, rtol=1e-12, atol=1e-300
        )
    elif temperature == 0:
        np.testing.assert_array_equal(lse, jax.ops.segment_max(x, ids, s))


@settings(max_examples=20)
@given(_segmented(), st.sampled_from([0.25, 2.0]))
@pytest.mark.slow
def test_property_temperature_equivalence(case, temperature):
    x, ids, s = case
    np.testing.assert_allclose(
        jsoftmax.segment_softmax(x, ids, s, temperature=temperature),
        jsoftmax.segment_softmax(x / temperature, ids, s),
        rtol=1e-13,
        atol=1e-300,
    )


@pytest.mark.slow
def test_sorted_promise_gives_the_same_result():
    x, ids = _ragged(12, 30, (2,))
    order = jnp.argsort(ids)
    x, ids = x[order], ids[order]
    for fn in (jsoftmax.segment_softmax, jsoftmax.segment_logsumexp):
        np.testing.assert_array_equal(
            fn(x, ids, 30, indices_are_sorted=True), fn(x, ids, 30)
        )


# --------------------------------------------------------------------------- #
# Transformations, dtypes, arguments, memory
# --------------------------------------------------------------------------- #
class TransformsTest(parameterized.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    @pytest.mark.slow
    def test_jit_and_plain_agree(self):
        x, ids = _ragged(8, 10, (3,))
        fn = self.variant(lambda x, ids: jsoftmax.segment_softmax(x, ids, 10))
        np.testing.assert_allclose(fn(x, ids), _dense(jsoftmax.softmax, x, ids, 10))

    def test_traces_once(self):
        x, ids = _ragged(9, 10)

        @jax.jit
        @chex.assert_max_traces(n=1)
        def fn(x, ids, t):
            return jsoftmax.segment_softmax(x, ids, 10, temperature=t)

        fn(x, ids, 1.0)
        fn(x + 1, ids, 2.0)


@pytest.mark.slow
def test_vmap_over_batch_ids_and_temperature():
    x, ids = _ragged(10, 8)
    batch = jnp.stack([x, 2 * x, -x])
    out = jax.vmap(lambda x: jsoftmax.segment_softmax(x, ids, 8))(batch)
    for b in range(3):
        np.testing.assert_allclose(out[b], jsoftmax.segment_softmax(batch[b], ids, 8))
    ids_batch = jnp.stack([ids, jnp.roll(ids, 1)])
    out = jax.vmap(lambda i: jsoftmax.segment_softmax(x, i, 8))(ids_batch)
    np.testing.assert_allclose(out[1], jsoftmax.segment_softmax(x, ids_batch[1], 8))
    ts = jnp.array([0.5, 0.0, inf])
    out = jax.vmap(lambda t: jsoftmax.segment_logsumexp(x, ids, 8, temperature=t))(ts)
    np.testing.assert_allclose(
        out[1], jsoftmax.segment_logsumexp(x, ids, 8, temperature=0.0)
    )


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
@pytest.mark.slow
def test_sixteen_bit_computed_in_float32(dtype):
    x, ids = _ragged(11, 10, (2,))
    x16 = x.astype(dtype)
    p = jsoftmax.segment_softmax(x16, ids, 10)
    assert p.dtype == dtype
    expected = jsoftmax.segment_softmax(x16.astype(jnp.float32), ids, 10)
    np.testing.assert_array_equal(p, expected.astype(dtype))
    lse = jsoftmax.segment_logsumexp(x16, ids, 10)
    assert lse.dtype == dtype
    g = jax.grad(lambda x: jnp.sum(jsoftmax.segment_softmax(x, ids, 10)[:4]))(x16)
    assert g.dtype == dtype and np.isfinite(np.asarray(g, np.float32)).all()


@pytest.mark.slow
def test_integer_input_and_default_num_segments():
    x, ids = jnp.array([1, 2, 3]), jnp.array([0, 1, 1])
    p = jsoftmax.segment_softmax(x, ids)
    assert p.dtype == jax.nn.softmax(x).dtype
    np.testing.assert_allclose(p, [1, *jax.nn.softmax(jnp.array([2.0, 3.0]))])
    assert jsoftmax.segment_logsumexp(x, ids).shape == (2,)
    assert jsoftmax.segment_softmax(jnp.zeros(0), jnp.zeros(0, int)).shape == (0,)
    assert jsoftmax.segment_logsumexp(x, ids, 0).shape == (0,)
    np.testing.assert_array_equal(jsoftmax.segment_softmax(x, ids, 0), 0)


def test_argument_errors():
    x, ids = jnp.ones(3), jnp.array([0, 0, 1])
    with pytest.raises(TypeError, match="segment_ids"):
        jsoftmax.segment_softmax(x, jnp.array([0.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match="one id per row"):
        jsoftmax.segment_softmax(x, ids[:2])
    with pytest.raises(ValueError, match="num_segments"):
        jax.jit(lambda i: jsoftmax.segment_softmax(x, i))(ids)
    with pytest.raises(ValueError, match="num_segments"):
        jsoftmax.segment_logsumexp(x, ids, -1)
    with pytest.raises(ValueError, match="at least one axis"):
        jsoftmax.segment_softmax(jnp.float32(1.0), ids)


@pytest.mark.slow
def test_no_padded_copy_in_memory():
    # One segment of 65536 rows and 65535 of one row: a padded layout would hold
    # 2^32 entries (16 GiB of float32); the compiled program's temporaries stay
    # a few times the input (a handful of row- and segment-sized arrays).
    s, n = 65536, 131071
    ids = jnp.concatenate([jnp.zeros(n - s + 1, jnp.int32), jnp.arange(1, s)])
    x = jnp.zeros(n, jnp.float32)
    for fn in (jsoftmax.segment_softmax, jsoftmax.segment_logsumexp):
        compiled = (
            jax.jit(lambda x: fn(x, ids, s)).lower(x).compile()  # noqa: B023
        )
        temp = compiled.memory_analysis().temp_size_in_bytes
        assert temp < 16 * n * 4, (fn.__name__, temp)
        grad = jax.jit(jax.grad(lambda x: jnp.sum(jnp.sin(fn(x, ids, s)))))  # noqa: B023
        temp = grad.lower(x).compile().memory_analysis().temp_size_in_bytes
        assert temp < 32 * n * 4, (fn.__name__, "grad", temp)
