"""linear_cross_entropy against a float64 naive reference: x @ w, then log-softmax.

The reference holds the full logits and is differentiated by jax's autodiff, so
every custom_vjp rule (dx, dw, dbias, dT) is checked against an independent
formula, option by option, with V not divisible by the block.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jsoftmax
from jsoftmax.linear_ce import default_block_size

ROWS, DIM, VOCAB = 10, 6, 37  # 37 = 4 blocks of 8 + a ragged 5


def _data(seed=0, rows=ROWS, vocab=VOCAB, dtype=jnp.float64):
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.normal(size=(rows, DIM)), dtype)
    w = jnp.asarray(rng.normal(size=(DIM, vocab)) * 0.7, dtype)
    bias = jnp.asarray(rng.normal(size=(vocab,)), dtype)
    labels = jnp.asarray(rng.integers(0, vocab, rows))
    return x, w, bias, labels


def _reference(
    x,
    w,
    labels,
    *,
    bias=None,
    ignore_index=None,
    label_smoothing=0.0,
    z_loss=0.0,
    logit_softcap=None,
    temperature=1.0,
    reduction="mean",
):
    """Per-example loss from the full float64 logits (the naive path)."""
    x, w = x.astype(jnp.float64), w.astype(jnp.float64)
    logits = x @ w
    if bias is not None:
        logits = logits + jnp.broadcast_to(bias.astype(jnp.float64), logits.shape)
    if logit_softcap is not None:
        logits = logit_softcap * jnp.tanh(logits / logit_softcap)
    temperature = jnp.asarray(temperature, jnp.float64)
    z = logits / (temperature[..., None] if temperature.ndim else temperature)
    log_p = jax.nn.log_softmax(z, axis=-1)
    lse = jax.nn.logsumexp(z, axis=-1)
    vocab = w.shape[1]
    safe = jnp.clip(labels, 0, vocab - 1)
    picked = jnp.take_along_axis(log_p, safe[..., None], -1)[..., 0]
    loss = -(1 - label_smoothing) * picked
    if label_smoothing:
        loss = loss - label_smoothing * jnp.mean(log_p, -1)
    if z_loss:
        loss = loss + z_loss * lse**2
    bad = (labels < 0) | (labels >= vocab)
    keep = jnp.ones(labels.shape, bool)
    if ignore_index is not None:
        keep = labels != ignore_index
        bad = bad & keep
    loss = jnp.where(keep, jnp.where(bad, jnp.nan, loss), 0)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return jnp.sum(loss)
    return jnp.sum(loss) / jnp.sum(keep)


OPTIONS = {
    "plain": {},
    "bias": {"bias": True},
    "smoothing": {"label_smoothing": 0.2},
    "z_loss": {"z_loss": 1e-2},
    "softcap": {"logit_softcap": 2.0},
    "temperature": {"temperature": 0.6},
    "everything": {
        "bias": True,
        "label_smoothing": 0.1,
        "z_loss": 3e-3,
        "logit_softcap": 4.0,
        "temperature": 1.7,
    },
}


def _split(options, bias):
    options = dict(options)
    use_bias = options.pop("bias", False)
    return options, (bias if use_bias else None)


CASES = [(name, "mean") for name in OPTIONS] + [
    ("plain", "sum"),
    ("plain", "none"),
    ("everything", "none"),
]


@pytest.mark.parametrize("name, reduction", CASES)
@pytest.mark.slow
def test_values_and_gradients_match_float64_reference(name, reduction):
    x, w, bias, labels = _data()
    options, bias = _split(OPTIONS[name], bias)
    temperature = options.pop("temperature", 1.0)
    cotangent = jnp.linspace(0.5, 1.5, ROWS) if reduction == "none" else 1.0

    def scalar(fn):
        def f(x, w, b, t):
            out = fn(
                x, w, labels, bias=b, temperature=t, reduction=reduction, **options
            )
            return jnp.sum(out * cotangent)

        return f

    ours = scalar(lambda *a, **k: jsoftmax.linear_cross_entropy(*a, block_size=8, **k))
    argnums = (0, 1, 3) if bias is None else (0, 1, 2, 3)
    value, grads = jax.value_and_grad(ours, argnums)(x, w, bias, temperature)
    ref_value, ref_grads = jax.value_and_grad(scalar(_reference), argnums)(
        x, w, bias, temperature
    )
    np.testing.assert_allclose(value, ref_value, rtol=1e-12)
    for got, want in zip(grads, ref_grads, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("block", [1, 5, 8, 37, 64, None])
@pytest.mark.slow
def test_any_block_size_gives_the_same_loss_and_gradients(block):
    x, w, bias, labels = _data(1)
    f = lambda x, w, b: jsoftmax.linear_cross_entropy(
        x, w, labels, bias=b, label_smoothing=0.1, block_size=block
    )
    g = lambda x, w, b: _reference(x, w, labels, bias=b, label_smoothing=0.1)
    value, grads = jax.value_and_grad(f, (0, 1, 2))(x, w, bias)
    ref_value, ref_grads = jax.value_and_grad(g, (0, 1, 2))(x, w, bias)
    np.testing.assert_allclose(value, ref_value, rtol=1e-12)
    for got, want in zip(grads, ref_grads, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-13)


@pytest.mark.slow
def test_batch_shape_with_two_leading_axes_and_per_example_temperature():
    x, w, _, labels = _data(2, rows=12)
    x, labels = x.reshape(3, 4, DIM), labels.reshape(3, 4)
    temperature = jnp.linspace(0.5, 2.0, 12).reshape(3, 4)
    f = lambda x, w, t: jsoftmax.linear_cross_entropy(
        x, w, labels, temperature=t, reduction="none", block_size=16
    )
    out = f(x, w, temperature)
    assert out.shape == (3, 4)
    ref = _reference(x, w, labels, temperature=temperature, reduction="none")
    np.testing.assert_allclose(out, ref, rtol=1e-12)
    grads = jax.grad(lambda *a: jnp.sum(f(*a) ** 2), (0, 1, 2))(x, w, temperature)
    ref_f = lambda x, w, t: _reference(x, w, labels, temperature=t, reduction="none")
    ref_grads = jax.grad(lambda *a: jnp.sum(ref_f(*a) ** 2), (0, 1, 2))(
        x, w, temperature
    )
    assert grads[2].shape == (3, 4)
    for got, want in zip(grads, ref_grads, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-13)


@pytest.mark.slow
def test_bad_labels_are_nan_in_their_own_example_and_ignored_ones_are_exactly_zero():
    x, w, _, _ = _data(3)
    x = x.at[4].set(jnp.nan)  # NaN input on an ignored example
    labels = jnp.array([0, VOCAB, -1, 5, -100, 7, -100, 2, 36, 1])
    f = lambda x, w: jsoftmax.linear_cross_entropy(
        x, w, labels, ignore_index=-100, reduction="none", block_size=8
    )
    out = f(x, w)
    bad = np.array([False, True, True] + [False] * 7)
    ignored = np.asarray(labels == -100)
    assert np.isnan(out[bad]).all()
    assert (out[ignored] == 0).all()
    ok = ~bad & ~ignored
    ref = _reference(x.at[4].set(0.0), w, labels, ignore_index=-100, reduction="none")
    np.testing.assert_allclose(out[ok], ref[ok], rtol=1e-12)
    # Gradients: only the good examples carry a cotangent; the bad ones still
    # give NaN rows of dx (poisoned), ignored ones exactly 0 despite the NaN x.
    weights = jnp.asarray(ok, jnp.float64)
    dx = jax.grad(lambda x: jnp.sum(jnp.where(ok, f(x, w), 0) * weights))(x)
    assert np.isfinite(dx[ok]).all() and (dx[ignored] == 0).all()
    dx_all = jax.grad(lambda x: jnp.sum(jnp.nan_to_num(f(x, w)) * weights))(x)
    assert np.isnan(dx_all[bad]).all() and (dx_all[ignored] == 0).all()
    # With every bad label dropped, w's gradient is finite though x[4] is NaN.
    keep = labels.at[1].set(-100).at[2].set(-100)
    loss = lambda w: jsoftmax.linear_cross_entropy(x, w, keep, ignore_index=-100)
    dw = jax.grad(loss)(w)
    ref_dw = jax.grad(
        lambda w: _reference(x.at[4].set(0.0), w, keep, ignore_index=-100)
    )(w)
    np.testing.assert_allclose(dw, ref_dw, rtol=1e-10, atol=1e-13)


@pytest.mark.slow
def test_nan_input_poisons_only_its_example():
    x, w, _, labels = _data(4)
    x = x.at[3, 2].set(jnp.nan)
    f = lambda x: jsoftmax.linear_cross_entropy(
        x, w, labels, reduction="none", block_size=8
    )
    out = f(x)
    assert np.isnan(out[3]) and np.isfinite(np.delete(out, 3)).all()
    weights = jnp.ones(ROWS).at[3].set(0.0)
    dx = jax.grad(lambda x: jnp.sum(jnp.where(weights > 0, f(x), 0)))(x)
    assert np.isfinite(np.delete(dx, 3, axis=0)).all()


def test_mean_of_no_kept_example_is_nan_with_zero_gradients():
    x, w, _, _ = _data(5)
    labels = jnp.full((ROWS,), -100)
    f = lambda x, w: jsoftmax.linear_cross_entropy(x, w, labels, ignore_index=-100)
    value, (dx, dw) = jax.value_and_grad(f, (0, 1))(x, w)
    assert np.isnan(value)
    assert (dx == 0).all() and (dw == 0).all()


@pytest.mark.parametrize("dtype", [jnp.int8, jnp.uint8, jnp.int16, jnp.int64])
@pytest.mark.slow
def test_labels_are_checked_at_their_own_width(dtype):
    x, w, _, _ = _data(6, vocab=300)
    info = np.iinfo(dtype)
    values = [1, 299 if info.max >= 299 else info.max, info.max, info.min]
    if dtype == jnp.int64:
        values[2] = 2**32 + 1  # narrowed to int32 this would be label 1
    labels = jnp.asarray(values + [0] * (ROWS - 4), dtype)
    out = jsoftmax.linear_cross_entropy(x, w, labels, reduction="none")
    expected_bad = [(v < 0) or (v >= 300) for v in values]
    np.testing.assert_array_equal(np.isnan(out[:4]), expected_bad)
    # an ignore_index the dtype cannot hold matches nothing
    if info.min >= 0:
        out = jsoftmax.linear_cross_entropy(
            x, w, labels, ignore_index=-100, reduction="none"
        )
        assert not (np.asarray(out) == 0).any()


@pytest.mark.slow
def test_minus_inf_bias_masks_a_class_and_a_label_on_it_is_inf():
    x, w, bias, labels = _data(7)
    bias = bias.at[3].set(-jnp.inf)
    labels = labels.at[0].set(3).at[1].set(4)
    f = lambda x, w: jsoftmax.linear_cross_entropy(
        x, w, labels, bias=bias, reduction="none", block_size=8
    )
    out = f(x, w)
    assert out[0] == jnp.inf
    ref = _reference(x, w, labels, bias=bias, reduction="none")
    np.testing.assert_allclose(out[1:], ref[1:], rtol=1e-12)
    weights = jnp.ones(ROWS).at[0].set(0.0)
    dx, dw = jax.grad(lambda x, w: jnp.sum(jnp.where(weights > 0, f(x, w), 0)), (0, 1))(
        x, w
    )
    assert np.isfinite(dx).all() and (dw[:, 3] == 0).all()


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_sixteen_bit_inputs_accumulate_in_float32(dtype):
    x, w, bias, labels = _data(8, rows=64, vocab=300, dtype=dtype)
    f = lambda x, w, b: jsoftmax.linear_cross_entropy(
        x, w, labels, bias=b, z_loss=1e-3, block_size=128
    )
    value, grads = jax.value_and_grad(f, (0, 1, 2))(x, w, bias)
    assert value.dtype == jnp.float32
    assert [g.dtype for g in grads] == [dtype] * 3
    ref = lambda x, w, b: _reference(x, w, labels, bias=b, z_loss=1e-3)
    ref_value, ref_grads = jax.value_and_grad(ref, (0, 1, 2))(
        *(a.astype(jnp.float64) for a in (x, w, bias))
    )
    np.testing.assert_allclose(value, ref_value, rtol=1e-5)
    for got, want in zip(grads, ref_grads, strict=True):
        scale = float(jnp.max(jnp.abs(want)))
        np.testing.assert_allclose(
            got.astype(jnp.float64), want, atol=2e-2 * scale, rtol=2e-2
        )


@pytest.mark.slow
def test_float32_matches_the_naive_optax_path():
    import optax

    x, w, _, labels = _data(9, rows=32, vocab=1000, dtype=jnp.float32)
    naive = lambda x, w: optax.softmax_cross_entropy_with_integer_labels(
        x @ w, labels
    ).mean()
    ours = lambda x, w: jsoftmax.linear_cross_entropy(x, w, labels, block_size=256)
    value, grads = jax.value_and_grad(ours, (0, 1))(x, w)
    ref_value, ref_grads = jax.value_and_grad(naive, (0, 1))(x, w)
    np.testing.assert_allclose(value, ref_value, rtol=1e-5)
    for got, want in zip(grads, ref_grads, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


class TestTransformations(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    @pytest.mark.slow
    def test_jit_and_grad(self):
        x, w, bias, labels = _data(10)
        loss = lambda x, w, b: jsoftmax.linear_cross_entropy(
            x, w, labels, bias=b, logit_softcap=3.0, block_size=8
        )
        grads = self.variant(jax.grad(loss, (0, 1, 2)))(x, w, bias)
        ref = jax.grad(
            lambda x, w, b: _reference(x, w, labels, bias=b, logit_softcap=3.0),
            (0, 1, 2),
        )(x, w, bias)
        for got, want in zip(grads, ref, strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-13)

    def test_traced_once_under_jit(self):
        x, w, _, labels = _data(11)

        @jax.jit
        @chex.assert_max_traces(n=1)
        def step(x, w):
            return jax.grad(
                lambda w: jsoftmax.linear_cross_entropy(x, w, labels, block_size=8)
            )(w)

        step(x, w)
        step(x + 1, w)

    @pytest.mark.slow
    def test_vmap_over_a_batch_of_inputs(self):
        x, w, _, labels = _data(12, rows=12)
        xs, ys = x.reshape(3, 4, DIM), labels.reshape(3, 4)
        f = lambda x, y: jsoftmax.linear_cross_entropy(x, w, y, block_size=8)
        out = jax.vmap(f)(xs, ys)
        ref = jax.vmap(lambda x, y: _reference(x, w, y))(xs, ys)
        np.testing.assert_allclose(out, ref, rtol=1e-12)
        dxs = jax.vmap(jax.grad(f))(xs, ys)
        ref_dxs = jax.vmap(jax.grad(lambda x, y: _reference(x, w, y)))(xs, ys)
        np.testing.assert_allclose(dxs, ref_dxs, rtol=1e-10, atol=1e-13)

    @pytest.mark.slow
    def test_checkpoint(self):
        x, w, _, labels = _data(13)
        f = jax.checkpoint(
            lambda x, w: jsoftmax.linear_cross_entropy(
                jnp.tanh(x), w, labels, block_size=8
            )
        )
        grads = jax.grad(f, (0, 1))(x, w)
        ref = jax.grad(lambda x, w: _reference(jnp.tanh(x), w, labels), (0, 1))(x, w)
        for got, want in zip(grads, ref, strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-13)


def test_compiled_temporary_memory_never_holds_the_logits():
    rows, dim, vocab = 1024, 64, 32768
    args = (
        jax.ShapeDtypeStruct((rows, dim), jnp.float32),
        jax.ShapeDtypeStruct((dim, vocab), jnp.float32),
        jax.ShapeDtypeStruct((rows,), jnp.int32),
    )
    f = lambda x, w, y: jsoftmax.linear_cross_entropy(x, w, y, block_size=512)
    compiled = jax.jit(jax.value_and_grad(f, (0, 1))).lower(*args).compile()
    temp = compiled.memory_analysis().temp_size_in_bytes
    logits = rows * vocab * 4
    assert temp <= logits / 16, (temp, logits)


def test_default_block_size():
    assert default_block_size(8192, 131072, "cpu") == 128
    assert default_block_size(2048, 32768, "cpu") == 512
    assert default_block_size(8192, 131072, "gpu") == 4096
    assert default_block_size(8192, 131072, "tpu") == 4096
    assert default_block_size(65536, 262144, "gpu") == 512
    assert default_block_size(4, 100, "cpu") == 100


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"label_smoothing": 1.5}, ValueError),
        ({"reduction": "avg"}, ValueError),
        ({"temperature": 0.0}, ValueError),
        ({"temperature": -1.0}, ValueError),
        ({"z_loss": -1.0}, ValueError),
        ({"logit_softcap": 0.0}, ValueError),
        ({"block_size": 0}, ValueError),
        ({"block_size": 2.5}, TypeError),
        ({"ignore_index": 1.0}, TypeError),
        ({"bias": jnp.zeros(3)}, ValueError),
    ],
)
def test_bad_arguments_raise(kwargs, error):
    x, w, _, labels = _data()
    with pytest.raises(error):
        jsoftmax.linear_cross_entropy(x, w, labels, **kwargs)


def test_bad_shapes_and_label_dtypes_raise():
    x, w, _, labels = _data()
    with pytest.raises(ValueError):
        jsoftmax.linear_cross_entropy(x, w.T, labels)
    with pytest.raises(ValueError):
        jsoftmax.linear_cross_entropy(x, w, labels[:3])
    with pytest.raises(TypeError):
        jsoftmax.linear_cross_entropy(x, w, labels.astype(jnp.float32))
