"""What the benchmark measures: operations, implementations, and their floors.

Each operation maps implementation names to functions of the inputs built by
``inputs(op, rows, cols, dtype)``. The floor is the number of bytes the
operation must move at least (N elements of s bytes; ``../shared/PEERS.md``):

* forward of softmax / log_softmax: read x, write y: ``2·N·s``;
* logsumexp: read x (the per-row output is negligible): ``N·s``;
* softmax forward+backward: read x, write y, read y and the cotangent, write
  the gradient: ``5·N·s`` (the same for log_softmax and centered_softmax);
* cross-entropy loss and gradient in separate passes: ``3·N·s`` for integer
  labels; probability labels read the labels too: ``4·N·s``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jsoftmax

FLOOR_FACTORS = {
    "softmax_fwd": 2,
    "softmax_fwd_bwd": 5,
    "log_softmax_fwd": 2,
    "log_softmax_fwd_bwd": 5,
    "logsumexp": 1,
    "int_xent_value_and_grad": 3,
    "prob_xent_value_and_grad": 4,
    "centered_softmax_fwd_bwd": 5,
}


def _naive_softmax(x):
    e = jnp.exp(x - jnp.max(x, -1, keepdims=True))
    return e / jnp.sum(e, -1, keepdims=True)


def _naive_log_softmax(x):
    shifted = x - jnp.max(x, -1, keepdims=True)
    return shifted - jnp.log(jnp.sum(jnp.exp(shifted), -1, keepdims=True))


def _naive_logsumexp(x):
    top = jnp.max(x, -1, keepdims=True)
    return jnp.squeeze(top, -1) + jnp.log(jnp.sum(jnp.exp(x - top), -1))


def _vjp(fn):
    """Forward + backward with a given cotangent: ``(x, g) -> vjp(fn, x)(g)``."""

    def run(x, g):
        y, pullback = jax.vjp(fn, x)
        return y, pullback(g)[0]

    return run


def _value_and_grad_int(fn):
    def run(x, labels):
        return jax.value_and_grad(lambda x: jnp.mean(fn(x, labels)))(x)

    return run


def _value_and_grad_prob(fn):
    def run(x, labels):
        return jax.value_and_grad(lambda x: jnp.mean(fn(x, labels)))(x)

    return run


def _naive_int_xent(x, labels):
    onehot = jax.nn.one_hot(labels, x.shape[-1], dtype=jnp.float32)
    return -jnp.sum(onehot * _naive_log_softmax(x.astype(jnp.float32)), -1)


def _naive_prob_xent(x, labels):
    return -jnp.sum(labels * _naive_log_softmax(x.astype(jnp.float32)), -1)


def _naive_centered(eta):
    zero = jnp.zeros(eta.shape[:-1] + (1,), eta.dtype)
    return _naive_softmax(jnp.concatenate([zero, eta], -1))


def _with_flag(fn, flag):
    """jax.nn's softmax with its ``jax_softmax_custom_jvp`` flag set while tracing."""
    fn.softmax_custom_jvp = flag
    return fn


IMPLEMENTATIONS = {
    "softmax_fwd": {
        "jsoftmax": lambda x: jsoftmax.softmax(x),
        "jax.nn (custom_jvp off)": _with_flag(lambda x: jax.nn.softmax(x), False),
        "jax.nn (custom_jvp on)": _with_flag(lambda x: jax.nn.softmax(x), True),
        "naive": _naive_softmax,
    },
    "softmax_fwd_bwd": {
        "jsoftmax": _vjp(jsoftmax.softmax),
        "jax.nn (custom_jvp off)": _with_flag(_vjp(jax.nn.softmax), False),
        "jax.nn (custom_jvp on)": _with_flag(_vjp(jax.nn.softmax), True),
        "naive": _vjp(_naive_softmax),
    },
    "log_softmax_fwd": {
        "jsoftmax": lambda x: jsoftmax.log_softmax(x),
        "jax.nn": lambda x: jax.nn.log_softmax(x),
        "naive": _naive_log_softmax,
    },
    "log_softmax_fwd_bwd": {
        "jsoftmax": _vjp(jsoftmax.log_softmax),
        "jax.nn": _vjp(jax.nn.log_softmax),
        "naive": _vjp(_naive_log_softmax),
    },
    "logsumexp": {
        "jsoftmax": lambda x: jsoftmax.logsumexp(x),
        "jax.nn": lambda x: jax.nn.logsumexp(x, axis=-1),
        "naive": _naive_logsumexp,
    },
    "int_xent_value_and_grad": {
        "jsoftmax": _value_and_grad_int(
            jsoftmax.softmax_cross_entropy_with_integer_labels
        ),
        "optax": _value_and_grad_int(optax.softmax_cross_entropy_with_integer_labels),
        "naive (one-hot)": _value_and_grad_int(_naive_int_xent),
    },
    "prob_xent_value_and_grad": {
        "jsoftmax": _value_and_grad_prob(jsoftmax.softmax_cross_entropy),
        "optax": _value_and_grad_prob(optax.softmax_cross_entropy),
        "optax (safe)": _value_and_grad_prob(optax.safe_softmax_cross_entropy),
        "naive": _value_and_grad_prob(_naive_prob_xent),
    },
    "centered_softmax_fwd_bwd": {
        "jsoftmax": _vjp(jsoftmax.centered_softmax),
        "naive (softmax of [0, eta])": _vjp(_naive_centered),
    },
}


def inputs(op: str, rows: int, cols: int, dtype) -> tuple:
    """Deterministic inputs for ``op`` at ``rows × cols`` in ``dtype``."""
    key_x, key_g, key_l = jax.random.split(jax.random.key(0), 3)
    x = (jax.random.normal(key_x, (rows, cols), jnp.float32) * 3).astype(dtype)
    if op in ("softmax_fwd", "log_softmax_fwd", "logsumexp"):
        return (x,)
    if op in ("softmax_fwd_bwd", "log_softmax_fwd_bwd"):
        return x, jax.random.normal(key_g, (rows, cols), jnp.float32).astype(dtype)
    if op == "centered_softmax_fwd_bwd":
        eta = x[:, 1:]
        return eta, jax.random.normal(key_g, (rows, cols), jnp.float32).astype(dtype)
    if op == "int_xent_value_and_grad":
        labels = np.random.default_rng(1).integers(0, cols, rows).astype(np.int32)
        return x, jnp.asarray(labels)
    if op == "prob_xent_value_and_grad":
        return x, jax.nn.softmax(
            jax.random.normal(key_l, (rows, cols), jnp.float32)
        ).astype(dtype)
    raise KeyError(op)


def floor_bytes(op: str, rows: int, cols: int, dtype) -> int:
    return FLOOR_FACTORS[op] * rows * cols * jnp.dtype(dtype).itemsize
