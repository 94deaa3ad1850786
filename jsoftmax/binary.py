"""Binary cross-entropy of ``sigmoid(logits)``: the two-class softmax loss.

:func:`sigmoid_binary_cross_entropy` is elementwise, so it needs none of the
row statistics of ``jsoftmax.losses``: one private ``custom_jvp`` core computes
``y·softplus(-x) + (1-y)·softplus(x)`` with each term dropped where its weight
is 0, and its rule returns ``sigmoid(x) - y`` directly. A ``±inf`` logit whose
label agrees gives 0 (not ``0·inf = NaN``), one whose label contradicts it
``+inf``; the gradient in the logits is 0 at ``±inf`` either way.
``jsoftmax.losses`` re-exports the function.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jsoftmax import _rows
from jsoftmax import _validate

__all__ = ["sigmoid_binary_cross_entropy"]


@jax.custom_jvp
def _sigmoid_xent_core(x, y):
    # y·softplus(-x) + (1-y)·softplus(x), each term 0 when its weight is 0, so a
    # +inf logit with label 1 (or -inf with 0) gives 0 instead of 0·inf = NaN.
    positive = jnp.where(y == 0, 0, y * jax.nn.softplus(-x))
    negative = jnp.where(y == 1, 0, (1 - y) * jax.nn.softplus(x))
    return positive + negative


@_sigmoid_xent_core.defjvp
def _sigmoid_xent_jvp(primals, tangents):
    # Own rule: d/dx = sigmoid(x) - y (0 at agreeing ±inf), d/dy = -x capped at
    # the largest float so that a zero label tangent never meets an infinite x.
    x, y = primals
    tangent_x, tangent_y = tangents
    big, _ = _rows.limits(x.dtype)
    loss = _sigmoid_xent_core(x, y)
    grad_x = jax.nn.sigmoid(x) - y
    finite_x = jnp.clip(x, -big, big)
    return loss, grad_x * jnp.where(jnp.isinf(x), 0, tangent_x) - finite_x * tangent_y


def sigmoid_binary_cross_entropy(logits, labels) -> jax.Array:
    r"""Elementwise binary cross-entropy of ``sigmoid(logits)`` against ``labels``.

    .. math::
        \ell = -y \log \sigma(x) - (1 - y) \log(1 - \sigma(x))
             = y\,\mathrm{softplus}(-x) + (1 - y)\,\mathrm{softplus}(x)

    The two-class case of :func:`softmax_cross_entropy`. Finite (0) at ``±inf``
    logits whose label agrees, ``+inf`` where it contradicts, with the finite
    gradient ``sigmoid(x) - y`` wherever the value is finite. Matches
    :func:`optax.sigmoid_binary_cross_entropy` on ordinary inputs.

    Args:
      logits: scores, any shape; 16-bit computed in float32.
      labels: targets in ``[0, 1]``, broadcastable to ``logits``.

    Returns:
      The elementwise loss in float32 (float64 for float64 logits).

    Example:
      >>> import jax.numpy as jnp
      >>> import jsoftmax
      >>> jnp.set_printoptions(precision=4)
      >>> logits = jnp.array([jnp.inf, -jnp.inf, 0.0, jnp.inf])
      >>> labels = jnp.array([1.0, 0.0, 1.0, 0.0])
      >>> print(jsoftmax.sigmoid_binary_cross_entropy(logits, labels))
      [0.     0.     0.6931    inf]
    """
    logits = _validate.as_float_array(logits, "logits")
    labels = _validate.as_float_array(labels, "labels")
    if not _validate.broadcasts(labels.shape, logits.shape):
        raise ValueError(
            f"labels of shape {labels.shape} do not broadcast to logits of shape "
            f"{logits.shape}: give labels the shape of logits, or one that "
            "broadcasts to it (size-1 or missing leading axes)"
        )
    dtype = _validate.compute_dtype(logits.dtype)
    x = logits.astype(dtype)
    y = jnp.broadcast_to(labels.astype(dtype), x.shape)
    return _sigmoid_xent_core(x, y)
