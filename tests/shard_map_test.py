"""Every public function under ``jax.shard_map``, rows split over 8 CPU devices.

DESIGN.md promises ``shard_map`` next to sharded ``jit``: inside the map each
device runs the function on its own rows, and the per-row edge selects must
work per shard. Values and gradients must equal
the unsharded ones, edge rows included (a NaN row poisons only its own row,
also when it sits on another device than its neighbours).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

import jsoftmax

inf = np.inf

ROWS = 16  # two per device


def _logits(width, seed):
    """Ordinary rows with the edge rows of DESIGN.md among them (float64)."""
    x = np.random.default_rng(seed).standard_normal((ROWS, width)) * 3
    x[1, ::2] = -inf  # some -inf
    x[4] = -inf  # all -inf
    x[6, 2] = inf  # one +inf
    x[9, [0, 3]] = inf  # two +inf
    x[12, 1] = np.nan  # NaN row
    return jnp.asarray(x)


def _per_row(fn, mesh, *args):
    """``fn`` under ``shard_map``, every argument and result split by rows."""
    return jax.shard_map(fn, mesh=mesh, in_specs=P("d"), out_specs=P("d"))(*args)


def _assert_same(sharded, whole, what):
    # Per shard, XLA may add a row's sum in another order: equal to float64
    # roundoff relative to the largest entry (edge entries exactly).
    finite = np.abs(np.asarray(whole))[np.isfinite(whole)]
    atol = 1e-14 * (finite.max() if finite.size else 1.0)
    np.testing.assert_allclose(sharded, whole, rtol=1e-12, atol=atol, err_msg=what)


def _cases():
    labels = jnp.asarray(np.random.default_rng(3).integers(0, 7, ROWS))
    probs = jax.nn.softmax(jnp.asarray(np.random.default_rng(4).normal(size=(ROWS, 7))))
    temps = jnp.linspace(0.3, 3.0, ROWS)[:, None]
    # name -> (function of the row-split array and the row-split per-row data,
    #          width of x, per-row data)
    return {
        "softmax": (lambda x, t: jsoftmax.softmax(x, temperature=t), 7, temps),
        "log_softmax": (lambda x, t: jsoftmax.log_softmax(x, temperature=t), 7, temps),
        "logsumexp": (
            lambda x, t: jsoftmax.logsumexp(x, temperature=t, keepdims=True),
            7,
            temps,
        ),
        "softmax wide": (
            lambda x, t: jsoftmax.softmax(x, temperature=t),
            40000,
            temps,
        ),
        "integer cross-entropy": (
            lambda x, y: jsoftmax.softmax_cross_entropy_with_integer_labels(
                x, y, label_smoothing=0.1
            ),
            7,
            labels,
        ),
        "cross-entropy": (
            lambda x, q: jsoftmax.softmax_cross_entropy(x, q, temperature=0.7),
            7,
            probs,
        ),
        "centered_softmax": (
            lambda x, s: jsoftmax.centered_softmax(x, s),
            6,
            temps,
        ),
        "log_centered_softmax": (
            lambda x, s: jsoftmax.log_centered_softmax(x, s),
            6,
            temps,
        ),
    }


@pytest.mark.parametrize("name", list(_cases()))
@pytest.mark.slow
def test_shard_map_equals_unsharded(cpu_devices, name):
    mesh = jax.sharding.Mesh(np.array(cpu_devices), ("d",))
    fn, width, per_row = _cases()[name]
    x = _logits(width, seed=len(name))

    whole = jax.jit(fn)(x, per_row)
    sharded = jax.jit(lambda x, r: _per_row(fn, mesh, x, r))(x, per_row)
    _assert_same(sharded, whole, f"{name} value")

    # A smooth scalar of the result that ignores infinite entries, so that the
    # gradient is defined on the edge rows too (and NaN only on the NaN row).
    def objective(x, r, split):
        out = _per_row(fn, mesh, x, r) if split else fn(x, r)
        return jnp.sum(jnp.sin(jnp.where(jnp.isinf(out), 0.0, out)))

    grads = [
        jax.jit(jax.grad(objective), static_argnums=2)(x, per_row, split)
        for split in (True, False)
    ]
    _assert_same(grads[0], grads[1], f"{name} gradient")
    # NaN confinement across devices: only the NaN row (row 12, on device 6)
    # is NaN, in the value and in the gradient.
    bad = np.isnan(np.asarray(grads[0])).any(axis=-1)
    assert bad.tolist() == [i == 12 for i in range(ROWS)], name


def test_shard_map_sample_draws_per_device(cpu_devices):
    """``sample`` inside ``shard_map``: each device draws its own rows, and a
    greedy draw (``T = 0``) equals the unsharded arg-max."""
    mesh = jax.sharding.Mesh(np.array(cpu_devices), ("d",))
    x = jnp.asarray(np.random.default_rng(5).standard_normal((ROWS, 9)))
    key = jax.random.key(0)

    def greedy(x):
        return jsoftmax.sample(key, x, temperature=0.0)

    sharded = jax.jit(
        jax.shard_map(greedy, mesh=mesh, in_specs=P("d"), out_specs=P("d"))
    )(x)
    np.testing.assert_array_equal(sharded, jnp.argmax(x, -1))
