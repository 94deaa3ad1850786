"""The vocabulary split over 8 host devices inside ``jax.shard_map``.

Both vocabulary-parallel losses must equal the unsharded ones, values and
gradients, edge labels included: ``vocab_parallel_integer_cross_entropy`` on
logits split along the classes, and ``linear_cross_entropy(axis_name=...)`` on
``w`` split along its columns. The programs may exchange only per-row
statistics: no collective in them moves anything logits-sized.
"""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

import jsoftmax
from jsoftmax.vocab_parallel import vocab_parallel_integer_cross_entropy

ROWS, DIM, PER_DEVICE = 8, 5, 12  # V = 96 over 8 devices


@pytest.fixture(scope="module")
def mesh(cpu_devices):
    return jax.sharding.Mesh(np.array(cpu_devices), ("v",))


def _data(seed=0):
    rng = np.random.default_rng(seed)
    vocab = 8 * PER_DEVICE
    x = jnp.asarray(rng.normal(size=(ROWS, DIM)))
    w = jnp.asarray(rng.normal(size=(DIM, vocab)))
    bias = jnp.asarray(rng.normal(size=(vocab,)))
    # labels on several devices, one out of range, one negative, one ignored
    labels = jnp.asarray([0, 95, 13, 96, -1, -100, 50, 37])
    return x, w, bias, labels


def _close(got, want):
    np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-14)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"label_smoothing": 0.2, "temperature": 0.7},
        {"ignore_index": -100, "reduction": "none"},
    ],
    ids=["plain", "smoothing+T", "ignore"],
)
@pytest.mark.slow
def test_split_logits_equal_the_unsharded_integer_cross_entropy(mesh, options):
    x, w, _, labels = _data()
    logits = x @ w
    options = dict(options)
    reduction = options.pop("reduction", "mean")
    temperature = options.pop("temperature", 1.0)
    cotangent = jnp.linspace(0.5, 1.5, ROWS) if reduction == "none" else 1.0

    def sharded(logits, t):
        fn = jax.shard_map(
            lambda s, y, t: vocab_parallel_integer_cross_entropy(
                s, y, "v", temperature=t, reduction=reduction, **options
            ),
            mesh=mesh,
            in_specs=(P(None, "v"), P(), P()),
            out_specs=P(),
        )
        return fn(logits, labels, t)

    def whole(logits, t):
        return jsoftmax.softmax_cross_entropy_with_integer_labels(
            logits, labels, temperature=t, reduction=reduction, **options
        )

    out, ref = jax.jit(sharded)(logits, temperature), whole(logits, temperature)
    _close(out, ref)
    # Gradients on in-range labels (the edge labels have their own test);
    # the closures above read the rebound labels.
    bad = (labels >= 96) | ((labels < 0) & (labels != -100))
    if "ignore_index" not in options:
        bad = bad | (labels < 0)
    labels = jnp.where(bad, 1, labels)

    def scalar(f):
        return lambda logits, t: jnp.sum(f(logits, t) * cotangent)

    grads = jax.jit(jax.grad(scalar(sharded), (0, 1)))(logits, temperature)
    ref_grads = jax.grad(scalar(whole), (0, 1))(logits, temperature)
    for got, want in zip(grads, ref_grads, strict=True):
        assert np.isfinite(want).all()
        _close(got, want)


@pytest.mark.slow
def test_vocab_parallel_labels_poison_and_ignore_like_the_unsharded_loss(mesh):
    x, w, _, labels = _data(1)
    logits = (x @ w).at[5].set(jnp.nan)  # NaN logits on the ignored row
    fn = jax.jit(
        jax.shard_map(
            lambda s, y: vocab_parallel_integer_cross_entropy(
                s, y, "v", ignore_index=-100
            ),
            mesh=mesh,
            in_specs=(P(None, "v"), P()),
            out_specs=P(),
        )
    )
    out = fn(logits, labels)
    assert np.isnan(out[3]) and np.isnan(out[4]) and out[5] == 0
    ref = jsoftmax.softmax_cross_entropy_with_integer_labels(
        logits.at[5].set(0.0), labels, ignore_index=-100
    )
    ok = np.array([0, 1, 2, 6, 7])
    _close(out[ok], ref[ok])
    grad = jax.grad(lambda s: jnp.sum(jnp.nan_to_num(fn(s, labels))))(logits)
    assert (grad[5] == 0).all()
    assert np.isnan(grad[3]).all() and np.isnan(grad[4]).all()
    assert np.isfinite(grad[ok]).all()


@pytest.mark.parametrize("block", [5, 12])
@pytest.mark.slow
def test_linear_cross_entropy_with_w_split_over_devices(mesh, block):
    x, w, bias, labels = _data(2)
    labels = labels.at[3].set(7).at[4].set(90)  # keep every label in range
    options = dict(
        ignore_index=-100,
        label_smoothing=0.1,
        z_loss=1e-2,
        logit_softcap=3.0,
        block_size=block,
    )

    def sharded(x, w, b, t):
        fn = jax.shard_map(
            lambda x, w, b, y, t: jsoftmax.linear_cross_entropy(
                x, w, y, bias=b, temperature=t, axis_name="v", **options
            ),
            mesh=mesh,
            in_specs=(P(), P(None, "v"), P("v"), P(), P()),
            out_specs=P(),
        )
        return fn(x, w, b, labels, t)

    def whole(x, w, b, t):
        return jsoftmax.linear_cross_entropy(
            x, w, labels, bias=b, temperature=t, **options
        )

    args = (x, w, bias, 0.8)
    value, grads = jax.jit(jax.value_and_grad(sharded, (0, 1, 2, 3)))(*args)
    ref_value, ref_grads = jax.value_and_grad(whole, (0, 1, 2, 3))(*args)
    _close(value, ref_value)
    for got, want in zip(grads, ref_grads, strict=True):
        _close(got, want)


@pytest.mark.slow
def test_out_of_range_label_poisons_only_its_example_when_w_is_split(mesh):
    x, w, _, labels = _data(3)
    fn = jax.shard_map(
        lambda x, w, y: jsoftmax.linear_cross_entropy(
            x, w, y, axis_name="v", ignore_index=-100, reduction="none"
        ),
        mesh=mesh,
        in_specs=(P(), P(None, "v"), P()),
        out_specs=P(),
    )
    out = fn(x, w, labels)
    ref = jsoftmax.linear_cross_entropy(
        x, w, labels, ignore_index=-100, reduction="none"
    )
    np.testing.assert_array_equal(np.isnan(out), np.isnan(ref))
    assert np.isnan(out[3]) and np.isnan(out[4]) and out[5] == 0
    _close(np.nan_to_num(out), np.nan_to_num(ref))


def _collective_sizes(hlo_text):
    """Element counts of every all-reduce / all-gather result in ``hlo_text``."""
    sizes = []
    for line in hlo_text.splitlines():
        if re.search(r"= \S+ (all-reduce|all-gather|all-to-all)(-start)?\(", line):
            for dims in re.findall(r"[a-z0-9]+\[([0-9,]*)\]", line.split("=")[1]):
                sizes.append(int(np.prod([int(d) for d in dims.split(",") if d])))
    return sizes


def test_forward_exchanges_only_per_row_statistics(mesh):
    rows, dim, vocab = 64, 16, 8 * 256
    fn = jax.shard_map(
        lambda x, w, y: jsoftmax.linear_cross_entropy(x, w, y, axis_name="v"),
        mesh=mesh,
        in_specs=(P(), P(None, "v"), P()),
        out_specs=P(),
    )
    args = (
        jax.ShapeDtypeStruct((rows, dim), jnp.float32),
        jax.ShapeDtypeStruct((dim, vocab), jnp.float32),
        jax.ShapeDtypeStruct((rows,), jnp.int32),
    )
    forward = jax.jit(fn).lower(*args).compile().as_text()
    sizes = _collective_sizes(forward)
    assert sizes and max(sizes) <= rows, sizes
    # backward adds only dx ([N, D]) and dT: never [N, V/n]
    backward = jax.jit(jax.grad(fn, (0, 1))).lower(*args).compile().as_text()
    assert max(_collective_sizes(backward)) <= rows * dim


@pytest.mark.slow
def test_axis_name_none_is_the_single_device_loss():
    x, w, _, labels = _data(4)
    labels = jnp.where(labels == 96, 1, jnp.where(labels < 0, 2, labels))
    out = vocab_parallel_integer_cross_entropy(x @ w, labels, None, reduction="sum")
    ref = jsoftmax.softmax_cross_entropy_with_integer_labels(
        x @ w, labels, reduction="sum"
    )
    _close(out, ref)
