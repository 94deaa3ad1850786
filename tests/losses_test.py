"""Tests for jsoftmax.losses: optax equality, float64 formulas, edge cases, sharding.

The sigmoid loss (jsoftmax.binary) has its own tests in binary_test.py.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from jax.test_util import check_grads

import jsoftmax

inf, nan = np.inf, np.nan
int_xent = jsoftmax.softmax_cross_entropy_with_integer_labels


def _dense_reference(
    logits, labels, *, where=None, alpha=0.0, temperature=1.0, weights=None, ignore=None
):
    """float64 numpy: dense (smoothed) one-hot, masked log-softmax, per example."""
    x = np.asarray(logits, np.float64) / temperature
    k = x.shape[-1]
    live = np.ones_like(x, bool) if where is None else np.asarray(where)
    x = np.where(live, x, -np.inf)
    top = x.max(-1, keepdims=True)
    log_p = x - top - np.log(np.exp(x - top).sum(-1, keepdims=True))
    onehot = np.eye(k)[np.clip(labels, 0, k - 1)]
    target = (1 - alpha) * onehot + alpha * live / live.sum(-1, keepdims=True)
    with np.errstate(invalid="ignore"):
        loss = -np.sum(np.where(target > 0, target * log_p, 0), -1)
    w = (
        np.ones(len(labels))
        if weights is None
        else np.asarray(weights)[np.clip(labels, 0, k - 1)]
    )
    if ignore is not None:
        w = np.where(labels == ignore, 0.0, w)
    return loss * w, w


# --------------------------------------------------------------------------- #
# Equality with optax and float64 formulas
# --------------------------------------------------------------------------- #
class OptaxEqualityTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    @pytest.mark.slow
    def test_probability_labels_values_and_gradients(self):
        logits = jax.random.normal(jax.random.key(0), (4, 7))
        labels = jax.nn.softmax(jax.random.normal(jax.random.key(1), (4, 7)))
        ours = self.variant(jsoftmax.softmax_cross_entropy)
        np.testing.assert_allclose(
            ours(logits, labels),
            optax.softmax_cross_entropy(logits, labels),
            rtol=1e-13,
        )
        for argnum in (0, 1):
            g_ours = jax.grad(lambda a, b: jnp.sum(jnp.sin(ours(a, b))), argnum)(
                logits, labels
            )
            g_optax = jax.grad(
                lambda a, b: jnp.sum(jnp.sin(optax.softmax_cross_entropy(a, b))), argnum
            )(logits, labels)
            np.testing.assert_allclose(g_ours, g_optax, rtol=1e-12, atol=1e-14)

    @chex.variants(with_jit=True, without_jit=True)
    @pytest.mark.slow
    def test_integer_labels_values_and_gradients(self):
        logits = jax.random.normal(jax.random.key(2), (5, 6))
        labels = jnp.array([0, 5, 2, 2, 3])
        ours = self.variant(lambda a: int_xent(a, labels))
        theirs = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
        np.testing.assert_allclose(ours(logits), theirs, rtol=1e-13)
        g_ours = jax.grad(lambda a: jnp.sum(jnp.sin(ours(a))))(logits)
        g_optax = jax.grad(
            lambda a: jnp.sum(
                jnp.sin(optax.softmax_cross_entropy_with_integer_labels(a, labels))
            )
        )(logits)
        np.testing.assert_allclose(g_ours, g_optax, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("alpha", [0.0, 0.1])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.slow
def test_integer_labels_against_dense_float64(alpha, masked, weighted):
    rng = np.random.default_rng(5)
    logits = rng.standard_normal((6, 5)) * 2
    labels = np.array([0, 4, 1, 3, 2, 1])
    where = np.ones((6, 5), bool)
    if masked:
        where[:, 2] = False
        where[2, 1:] = [False, True, True, True]
        labels = np.array([0, 4, 3, 3, 0, 1])
    weights = np.array([0.5, 2.0, 1.0, 1.5, 0.25]) if weighted else None
    kwargs = dict(
        where=jnp.asarray(where) if masked else None,
        label_smoothing=alpha,
        class_weights=None if weights is None else jnp.asarray(weights),
        temperature=1.3,
    )
    ref, w = _dense_reference(
        logits,
        labels,
        where=where if masked else None,
        alpha=alpha,
        temperature=1.3,
        weights=weights,
    )
    np.testing.assert_allclose(int_xent(logits, labels, **kwargs), ref, rtol=1e-12)
    np.testing.assert_allclose(
        int_xent(logits, labels, reduction="sum", **kwargs), ref.sum(), rtol=1e-12
    )
    np.testing.assert_allclose(
        int_xent(logits, labels, reduction="mean", **kwargs),
        ref.sum() / w.sum(),
        rtol=1e-12,
    )

    # gradient of the dense formula, by autodiff in float64
    def dense(x):
        live = jnp.asarray(where)
        z = jnp.where(live, x / 1.3, -jnp.inf)
        log_p = jax.nn.log_softmax(z, where=live)
        onehot = jax.nn.one_hot(labels, 5)
        target = (1 - alpha) * onehot + alpha * live / jnp.sum(live, -1, keepdims=True)
        wt = jnp.ones(6) if weights is None else jnp.asarray(weights)[labels]
        return jnp.sum(wt * -jnp.sum(jnp.where(target > 0, target * log_p, 0), -1))

    g = jax.grad(lambda x: int_xent(x, labels, reduction="sum", **kwargs))(logits)
    np.testing.assert_allclose(
        g, jax.grad(dense)(jnp.asarray(logits)), rtol=1e-11, atol=1e-14
    )


def test_probability_label_smoothing_spreads_over_unmasked_classes():
    logits = jnp.array([[1.0, 2.0, 0.5, -1.0]])
    labels = jnp.array([[0.0, 1.0, 0.0, 0.0]])
    where = jnp.array([[True, True, False, True]])
    out = jsoftmax.softmax_cross_entropy(
        logits, labels, where=where, label_smoothing=0.3
    )
    ref, _ = _dense_reference(logits, np.array([1]), where=np.asarray(where), alpha=0.3)
    np.testing.assert_allclose(out, ref, rtol=1e-13)
    int_out = int_xent(logits, jnp.array([1]), where=where, label_smoothing=0.3)
    np.testing.assert_allclose(int_out, ref, rtol=1e-13)


# --------------------------------------------------------------------------- #
# Edge cases, values and gradients in both modes
# --------------------------------------------------------------------------- #
def _both_modes(fn, x):
    return jax.jacfwd(fn)(x), jax.jacrev(fn)(x)


@pytest.mark.slow
def test_zero_label_at_minus_inf_logit_is_finite():
    logits = jnp.array([0.0, -inf, 1.0])
    labels = jnp.array([0.5, 0.0, 0.5])
    value = jsoftmax.softmax_cross_entropy(logits, labels)
    assert np.isfinite(value)
    assert np.isnan(
        optax.softmax_cross_entropy(logits, labels)
    )  # what users have today
    for d in _both_modes(lambda x: jsoftmax.softmax_cross_entropy(x, labels), logits):
        assert np.isfinite(d).all()
        assert d[1] == 0
    for d in _both_modes(lambda y: jsoftmax.softmax_cross_entropy(logits, y), labels):
        assert not np.isnan(d).any()
    g = jax.grad(
        lambda t: jsoftmax.softmax_cross_entropy(logits, labels, temperature=t)
    )(1.5)
    assert np.isfinite(g)


@pytest.mark.slow
def test_label_mass_at_minus_inf_logit_is_inf_with_finite_gradient():
    logits = jnp.array([0.0, -inf, 1.0])
    labels = jnp.array([0.5, 0.25, 0.25])
    assert jsoftmax.softmax_cross_entropy(logits, labels) == inf
    for d in _both_modes(lambda x: jsoftmax.softmax_cross_entropy(x, labels), logits):
        assert np.isfinite(d).all()
    # smoothing puts mass on a -inf class too
    assert int_xent(logits[None], jnp.array([0]), label_smoothing=0.1)[0] == inf


def _dead_entry_reference(x, target, t):
    """float64 numpy: the loss, and its gradients in x and T with every dead
    entry (log p = -inf) left out, and 0 on rows holding +inf."""
    x = np.asarray(x, np.float64)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        top = np.max(x, -1, keepdims=True)
        z = np.where(np.isneginf(x), -inf, (x - top) / t)
        z = np.where(np.isposinf(top), np.where(np.isposinf(x), 0.0, -inf), z)
        total = np.exp(z).sum(-1, keepdims=True)
        log_p = z - np.log(np.maximum(total, 1))
        loss = -np.sum(np.where(target > 0, target * log_p, 0), -1)
        p = np.exp(log_p)
        alive = np.isfinite(z)
        live_target = np.where(alive, target, 0)
        mass = target.sum(-1, keepdims=True)
        grad = (p * mass - live_target) / t
        z0 = np.where(alive, z, 0)
        grad_t = (np.sum(live_target * z0, -1) - mass[:, 0] * np.sum(p * z0, -1)) / t
    keep = ~np.isposinf(top)
    return loss, np.where(keep, grad, 0), np.where(keep[:, 0], grad_t, 0)


@pytest.mark.parametrize("temperature", [0.5, 1.0, 3.0])
@pytest.mark.slow
def test_dead_entries_add_nothing_to_the_derivatives(temperature):
    """Where z = -inf (a -inf logit, an all -inf row, the finite entries of a
    +inf row) z stays -inf whatever x and T do: such entries add +inf to the
    loss if they carry label mass and nothing to any derivative, as
    log_softmax's derivatives are 0 there. Rows holding +inf have derivative 0.
    Both losses agree for one-hot labels; d/dT stays finite (it was -inf for
    T < 1 with label mass on a -inf logit)."""
    x = jnp.array(
        [
            [0.0, -inf, 1.0, 2.0],  # label on the -inf logit
            [0.0, -inf, 1.0, 2.0],  # label on a finite logit, a -inf elsewhere
            [-inf, -inf, -inf, -inf],  # all -inf: +inf, derivatives 0
            [inf, 3.0, inf, -inf],  # label on a +inf entry: log 2
            [inf, 3.0, inf, -inf],  # label on a finite entry of a +inf row: inf
            [0.3, -1.0, 2.0, 0.5],  # ordinary
        ]
    )
    labels = jnp.array([1, 3, 2, 0, 1, 2])
    onehot = jax.nn.one_hot(labels, 4, dtype=x.dtype)
    losses = {
        "integer": lambda x, t: int_xent(x, labels, temperature=t),
        "probability": lambda x, t: jsoftmax.softmax_cross_entropy(
            x, onehot, temperature=t
        ),
    }
    want, want_grad, want_grad_t = _dead_entry_reference(
        x, np.asarray(onehot), temperature
    )
    np.testing.assert_allclose(want[[0, 2, 4]], inf)
    for name, loss in losses.items():
        np.testing.assert_allclose(loss(x, temperature), want, rtol=1e-14, err_msg=name)
        total = lambda x, t, loss=loss: jnp.sum(loss(x, t))  # noqa: E731
        grad, grad_t = jax.grad(total, (0, 1))(x, temperature)
        np.testing.assert_allclose(
            grad, want_grad, rtol=1e-13, atol=1e-15, err_msg=name
        )
        np.testing.assert_allclose(grad_t, want_grad_t.sum(), rtol=1e-13)
        # forward mode, row by row
        per_row_t = jax.jacfwd(loss, 1)(x, jnp.full((6, 1), temperature))[:, :, 0]
        np.testing.assert_allclose(
            np.diagonal(per_row_t), want_grad_t, rtol=1e-13, atol=1e-15
        )
        jac = jax.jacfwd(lambda x, loss=loss: loss(x, temperature))(x)
        np.testing.assert_allclose(
            np.einsum("iij->ij", jac), want_grad, rtol=1e-13, atol=1e-15
        )
    # smoothing spreads mass on the -inf logits too: +inf, finite gradient
    smooth = np.asarray(
        jax.grad(lambda x: jnp.sum(int_xent(x, labels, label_smoothing=0.1)))(x)
    )
    assert np.isfinite(smooth).all()
    np.testing.assert_array_equal(smooth[np.isinf(np.asarray(x))], 0)
    np.testing.assert_array_equal(smooth[[2, 3, 4]], 0)


@pytest.mark.parametrize("temperature", [1e-30, 1.0, 1e35])
def test_label_on_a_finite_entry_of_a_plus_inf_row_is_inf(temperature):
    # -log 0 = inf there at every T, also at T = 1e35 where (x - max)/T alone
    # would stay finite, and also when T is a constant inside jit.
    logits = jnp.array([[inf, 3.0, -inf, inf], [1.0, 2.0, 3.0, 4.0]])
    labels = jnp.array([[0.0, 1.0, 0.0, 0.0], [0.5, 0.0, 0.0, 0.5]])
    losses = {
        "integer": lambda x: int_xent(x, jnp.array([1, 0]), temperature=temperature),
        "probability": lambda x: jsoftmax.softmax_cross_entropy(
            x, labels, temperature=temperature
        ),
    }
    for name, loss in losses.items():
        for value in (loss(logits), jax.jit(loss)(logits)):
            assert value[0] == inf, name
            assert np.isfinite(value[1]), name
    on_inf = int_xent(logits, jnp.array([0, 0]), temperature=temperature)
    np.testing.assert_allclose(on_inf[0], np.log(2), rtol=1e-6)


@pytest.mark.parametrize("bad", [5, 3, -1])
@pytest.mark.slow
def test_out_of_range_label_poisons_its_example_only(bad):
    logits = jax.random.normal(jax.random.key(6), (3, 3))
    good_labels = jnp.array([0, 1, 2])
    labels = good_labels.at[1].set(bad)
    loss = np.asarray(int_xent(logits, labels))
    assert np.isnan(loss[1]) and np.isfinite(loss[[0, 2]]).all()
    np.testing.assert_array_equal(
        loss[[0, 2]], np.asarray(int_xent(logits, good_labels))[[0, 2]]
    )
    good = jax.jacrev(lambda x: int_xent(x, good_labels))(logits)
    for d in _both_modes(lambda x: int_xent(x, labels), logits):
        d = np.asarray(d)  # [output example, input example, class]
        assert np.isnan(d[1, 1]).all()
        # every other example's loss and its derivative in its own logits
        others = np.delete(np.delete(d, 1, 0), 1, 1)
        np.testing.assert_array_equal(others, np.delete(np.delete(good, 1, 0), 1, 1))
    # other rows' gradients survive a "mean" too
    g = np.asarray(jax.grad(lambda x: int_xent(x, labels, reduction="mean"))(logits))
    assert np.isnan(g[1]).all() and np.isfinite(g[[0, 2]]).all()


@pytest.mark.slow
def test_masked_true_class_is_nan_and_fully_masked_row_is_zero():
    logits = jax.random.normal(jax.random.key(7), (3, 4))
    where = jnp.array([[True, False, True, True], [False] * 4, [True] * 4])
    labels = jnp.array([1, 2, 3])
    loss = int_xent(logits, labels, where=where)
    assert np.isnan(loss[0]) and loss[1] == 0 and np.isfinite(loss[2])
    mean = int_xent(logits[1:], labels[1:], where=where[1:], reduction="mean")
    np.testing.assert_allclose(mean, loss[2], rtol=1e-14)
    g = jax.grad(lambda x: int_xent(x, labels[1:], where=where[1:], reduction="sum"))(
        logits[1:]
    )
    np.testing.assert_array_equal(g[0], 0)
    prob = jsoftmax.softmax_cross_entropy(
        logits, jax.nn.one_hot(labels, 4), where=where
    )
    assert prob[1] == 0 and prob[0] == inf


@pytest.mark.slow
def test_ignore_index_gives_zero_and_leaves_mean():
    logits = jax.random.normal(jax.random.key(8), (4, 3))
    labels = jnp.array([0, -100, 2, 1])
    loss = np.asarray(int_xent(logits, labels, ignore_index=-100))
    assert loss[1] == 0
    mean = int_xent(logits, labels, ignore_index=-100, reduction="mean")
    np.testing.assert_allclose(mean, loss[[0, 2, 3]].mean(), rtol=1e-14)
    g = jax.grad(lambda x: int_xent(x, labels, ignore_index=-100, reduction="mean"))(
        logits
    )
    np.testing.assert_array_equal(g[1], 0)
    weights = jnp.array([1.0, 3.0, 0.5])
    wmean = int_xent(
        logits, labels, ignore_index=-100, class_weights=weights, reduction="mean"
    )
    w = weights[jnp.array([0, 2, 1])]
    expected = jnp.sum(w * int_xent(logits, labels)[jnp.array([0, 2, 3])]) / jnp.sum(w)
    np.testing.assert_allclose(wmean, expected, rtol=1e-13)


# 4096 classes: XLA:CPU's vectorised max can drop a NaN, so the NaN must be
# carried by the row sum (see jsoftmax/_rows.py); at T = 0 and with a +inf row
# in the batch too.
@pytest.mark.parametrize("width", [4, 4096])
@pytest.mark.parametrize("temperature", [1.0, 0.0])
@pytest.mark.parametrize("inf_row", [False, True])
@pytest.mark.slow
def test_nan_logit_poisons_its_example_only(width, temperature, inf_row):
    logits = jax.random.normal(jax.random.key(9), (3, width)).at[0, 2].set(nan)
    if inf_row:
        logits = logits.at[2, 0].set(inf)
    labels = jnp.array([1, 2, 0])
    loss = int_xent(logits, labels, temperature=temperature)
    assert np.isnan(loss[0]) and not np.isnan(loss[1:]).any()
    g = jax.grad(lambda x: jnp.sum(int_xent(x, labels, temperature=temperature)))(
        logits
    )
    assert np.isnan(g[0]).all() and np.isfinite(g[1:]).all()
    probs = jax.nn.one_hot(labels, width)
    prob_xent = jsoftmax.softmax_cross_entropy
    loss = prob_xent(logits, probs, temperature=temperature)
    assert np.isnan(loss[0]) and not np.isnan(loss[1:]).any()
    g = jax.grad(lambda x: jnp.sum(prob_xent(x, probs, temperature=temperature)))(
        logits
    )
    assert np.isnan(g[0]).all() and np.isfinite(g[1:]).all()


# --------------------------------------------------------------------------- #
# Derivatives
# --------------------------------------------------------------------------- #
@pytest.mark.slow
def test_check_grads_and_temperature_derivative():
    logits = jax.random.normal(jax.random.key(10), (3, 5))
    labels = jax.nn.softmax(jax.random.normal(jax.random.key(11), (3, 5)))
    ints = jnp.array([0, 3, 4])
    check_grads(
        lambda x, y, t: jsoftmax.softmax_cross_entropy(x, y, temperature=t),
        (logits, labels, 1.4),
        order=2,
        modes=("fwd", "rev"),
    )
    check_grads(
        lambda x, t: int_xent(x, ints, temperature=t, label_smoothing=0.2),
        (logits, 0.8),
        order=2,
        modes=("fwd", "rev"),
    )
    h = 1e-6
    for fn in (
        lambda t: jnp.sum(
            jsoftmax.softmax_cross_entropy(logits, labels, temperature=t)
        ),
        lambda t: jnp.sum(int_xent(logits, ints, temperature=t, label_smoothing=0.1)),
    ):
        fd = (fn(1.7 + h) - fn(1.7 - h)) / (2 * h)
        np.testing.assert_allclose(jax.grad(fn)(1.7), fd, rtol=1e-7)


@pytest.mark.slow
def test_hessian_of_integer_loss():
    logits = jax.random.normal(jax.random.key(12), (6,))
    p = jax.nn.softmax(logits)
    hess = jax.hessian(lambda x: int_xent(x[None], jnp.array([2]))[0])(logits)
    np.testing.assert_allclose(
        hess, jnp.diag(p) - jnp.outer(p, p), rtol=1e-12, atol=1e-15
    )


# --------------------------------------------------------------------------- #
# Precision, sharding, arguments
# --------------------------------------------------------------------------- #
@pytest.mark.slow
def test_bfloat16_logits_computed_in_float32():
    logits = (jax.random.normal(jax.random.key(13), (8, 1000)) * 4 + 15).astype(
        jnp.bfloat16
    )
    labels = jax.random.randint(jax.random.key(14), (8,), 0, 1000)
    loss = int_xent(logits, labels)
    assert loss.dtype == jnp.float32
    ref, _ = _dense_reference(np.asarray(logits, np.float64), np.asarray(labels))
    np.testing.assert_allclose(np.asarray(loss, np.float64), ref, rtol=1e-5)
    probs = jax.nn.one_hot(labels, 1000)
    loss = jsoftmax.softmax_cross_entropy(logits, probs)
    assert loss.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(loss, np.float64), ref, rtol=1e-5)


@pytest.mark.slow
def test_sixteen_bit_logits_equal_their_float32_values():
    # The cores take 16-bit logits narrow and widen them inside: the losses,
    # smoothing (1001 classes, not exactly a bfloat16 count) and the gradients
    # (a 16-bit tangent picks the label by compare, not by gather) must match
    # the same values given in float32, the gradient rounded once.
    for dtype in (jnp.bfloat16, jnp.float16):
        narrow = (jax.random.normal(jax.random.key(30), (4, 1001)) * 3).astype(dtype)
        wide = narrow.astype(jnp.float32)
        labels = jnp.array([0, 1000, 17, 500])
        probs = jax.nn.softmax(jax.random.normal(jax.random.key(31), (4, 1001)))
        for fn in (
            lambda x: int_xent(x, labels, label_smoothing=0.3, temperature=0.7),
            lambda x: int_xent(x, labels),
            lambda x: jsoftmax.softmax_cross_entropy(x, probs, label_smoothing=0.3),
        ):
            np.testing.assert_allclose(fn(narrow), fn(wide), rtol=1e-6)
            grad_narrow = jax.grad(lambda x: jnp.sum(fn(x)))(narrow)
            grad_wide = jax.grad(lambda x: jnp.sum(fn(x)))(wide)
            assert grad_narrow.dtype == dtype
            np.testing.assert_array_equal(grad_narrow, grad_wide.astype(dtype))


@pytest.mark.parametrize("spec", [P("d", None), P(None, "d")], ids=["batch", "class"])
@pytest.mark.slow
def test_sharded_jit_equals_unsharded(cpu_devices, spec):
    mesh = jax.sharding.Mesh(np.array(cpu_devices), ("d",))
    logits = jax.random.normal(jax.random.key(15), (16, 32), jnp.float32)
    labels = jax.random.randint(jax.random.key(16), (16,), 0, 32)
    probs = jax.nn.softmax(jax.random.normal(jax.random.key(17), (16, 32), jnp.float32))
    sharded = jax.device_put(logits, NamedSharding(mesh, spec))
    for fn in (
        lambda x: int_xent(x, labels, temperature=0.7, reduction="mean"),
        lambda x: jsoftmax.softmax_cross_entropy(x, probs, reduction="mean"),
    ):
        vg = jax.jit(jax.value_and_grad(fn))
        (v1, g1), (v2, g2) = vg(sharded), vg(logits)
        np.testing.assert_allclose(v1, v2, rtol=1e-6)
        np.testing.assert_allclose(g1, g2, rtol=1e-5, atol=1e-8)


def test_temperature_change_does_not_retrace():
    logits = jax.random.normal(jax.random.key(18), (4, 5))
    labels = jnp.array([0, 1, 2, 3])

    @jax.jit
    @chex.assert_max_traces(n=1)
    def loss(x, t):
        return int_xent(x, labels, temperature=t, reduction="mean")

    for t in (0.5, 1.0, 2.0):
        loss(logits, jnp.float64(t))


def test_bad_arguments_name_themselves():
    logits = jnp.ones((2, 3))
    with pytest.raises(ValueError, match="reduction"):
        int_xent(logits, jnp.array([0, 1]), reduction="avg")
    with pytest.raises(ValueError, match="label_smoothing"):
        int_xent(logits, jnp.array([0, 1]), label_smoothing=1.5)
    with pytest.raises(TypeError, match="labels must be integers"):
        int_xent(logits, jnp.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="labels of shape"):
        int_xent(logits, jnp.array([0, 1, 2]))
    with pytest.raises(ValueError, match="class_weights"):
        int_xent(logits, jnp.array([0, 1]), class_weights=jnp.ones(4))
    with pytest.raises(ValueError, match="temperature"):
        jsoftmax.softmax_cross_entropy(logits, logits, temperature=-1.0)


@pytest.mark.slow
def test_integer_labels_with_axis_name_split_the_vocabulary(cpu_devices):
    # softmax_cross_entropy_with_integer_labels(..., axis_name=) inside shard_map
    # equals the unsharded loss, values and gradients; bad combinations raise.
    mesh = jax.sharding.Mesh(np.array(cpu_devices), ("v",))
    logits = jax.random.normal(jax.random.key(5), (6, 32)) * 3
    labels = jnp.array([0, 31, 7, -100, 40, 16])

    def split(x):
        return jax.shard_map(
            lambda s, y: jsoftmax.softmax_cross_entropy_with_integer_labels(
                s, y, axis_name="v", ignore_index=-100, label_smoothing=0.1
            ),
            mesh=mesh,
            in_specs=(P(None, "v"), P()),
            out_specs=P(),
        )(x, labels)

    def whole(x):
        return jsoftmax.softmax_cross_entropy_with_integer_labels(
            x, labels, ignore_index=-100, label_smoothing=0.1
        )

    # (jit: shard_map's derivatives compiled once, not dispatched op by op)
    np.testing.assert_allclose(jax.jit(split)(logits), whole(logits), rtol=1e-12)
    kept = jnp.array([1, 1, 1, 1, 0, 1.0])  # label 40 of 32 is NaN in both

    def objective(f):
        return lambda x: jnp.sum(jnp.nan_to_num(f(x)) * kept)

    np.testing.assert_allclose(
        jax.jit(jax.grad(objective(split)))(logits),
        jax.jit(jax.grad(objective(whole)))(logits),
        rtol=1e-10,
        atol=1e-14,
    )
    with pytest.raises(ValueError, match="last one"):
        jsoftmax.softmax_cross_entropy_with_integer_labels(
            logits, labels, axis=0, axis_name="v"
        )


@pytest.mark.parametrize("rows", [4095, 4096])
def test_probability_gradient_on_both_sides_of_the_cpu_row_threshold(rows):
    # The plain CPU program takes p = e/Σ under jsoftmax._rows.YNN_MIN_ELEMENTS
    # rows and exp(-(-log p)) from there on; both are softmax's gradient. Rows
    # with all entries tied, and rows with a -inf logit under a zero label
    # (their plain loss is 0·inf, so the general program redoes them) in the
    # same batch; values and gradients against float64.
    rng = np.random.default_rng(rows)
    x = rng.normal(size=(rows, 5)) * 4
    labels = rng.dirichlet(np.ones(5), size=rows)
    x[::7] = 1.5  # ties
    x[1::7, 2] = -np.inf
    labels[1::7, 2] = 0
    labels /= labels.sum(-1, keepdims=True)
    loss = lambda x: jsoftmax.softmax_cross_entropy(x, labels)  # noqa: E731
    value, pullback = jax.vjp(loss, jnp.asarray(x, jnp.float32))
    got = pullback(jnp.ones(rows, jnp.float32))[0]
    shifted = x - x.max(-1, keepdims=True)
    p = np.exp(shifted) / np.exp(shifted).sum(-1, keepdims=True)  # float64
    log_p = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    expected_value = -np.sum(np.where(labels == 0, 0, labels * log_p), -1)
    np.testing.assert_allclose(value, expected_value, rtol=2e-6, atol=1e-6)
    np.testing.assert_allclose(got, p - labels, rtol=0, atol=6e-7)  # a few eps
