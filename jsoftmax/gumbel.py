"""The Gumbel-softmax (Concrete) relaxed sample, with a straight-through hard form."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from jsoftmax import _validate
from jsoftmax.softmax import softmax

__all__ = ["gumbel_softmax"]


def gumbel_softmax(
    key, logits, axis: int = -1, where=None, *, temperature=1.0, hard: bool = False
) -> jax.Array:
    r"""A Gumbel-softmax (Concrete) sample: a differentiable relaxed one-hot draw.

    .. math::
        y = \mathrm{softmax}\big((\mathrm{logits} + g) / T\big), \qquad
        g_i = -\log(-\log u_i),\; u_i \sim U(0, 1)

    As ``T → 0`` the sample becomes the one-hot of ``argmax(logits + g)``, a draw
    from ``softmax(logits)`` (the Gumbel-max trick); ``T = 0`` is that exact
    one-hot, with zero derivative. The noise is the one :func:`jsoftmax.sample`
    draws from the same ``key``, so the arg-max is (up to rounding of
    ``logits + g``) the index ``jsoftmax.sample(key, logits, axis, where)``
    returns. The temperature relaxes the sample; it does not rescale the
    category probabilities, which are always ``softmax(logits)``.

    ``hard=True`` returns the exact one-hot of that arg-max in the forward pass
    and the relaxed sample's derivatives (the straight-through estimator).

    Edge rows follow :func:`jsoftmax.softmax`: masked and ``-inf`` entries are
    never chosen (value 0, derivative 0); an all-masked or all ``-inf`` row is
    all zeros; a NaN makes its row NaN. A row holding ``+inf`` entries samples
    among them alone, as if they were equal finite logits far above the rest:
    the relaxed sample is ``softmax(g / T)`` over those entries and the
    derivatives with respect to the logits are 0.

    Args:
      key: a ``jax.random`` key (typed or raw); ``vmap`` over keys for many draws.
      logits: ``[..., K, ...]`` unnormalised log-probabilities; float16/bfloat16
        are computed in float32 and returned in their own dtype.
      axis: the category axis (one int).
      where: optional boolean mask broadcastable to ``logits``; False entries are
        never chosen.
      temperature: ``T >= 0``; a scalar, one value per row, or an array that
        broadcasts to the keepdims shape. Traced and differentiable. A concrete
        negative or NaN value raises ``ValueError``.
      hard: return the straight-through one-hot instead of the relaxed sample.

    Returns:
      An array with the shape and dtype of ``logits``: a point of the simplex
      along ``axis`` (zeros in a row with nothing to choose).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> import jsoftmax
      >>> logits = jnp.array([[1.0, 2.0, -jnp.inf], [0.0, 0.0, 0.0]])
      >>> y = jsoftmax.gumbel_softmax(jax.random.key(0), logits, temperature=0.5)
      >>> print(y.shape, bool(jnp.all(y[:, :2] >= 0) & (y[0, 2] == 0)))
      (2, 3) True
      >>> print(jnp.sum(y, -1).round(5))
      [1. 1.]
      >>> hard = jsoftmax.gumbel_softmax(jax.random.key(0), logits, hard=True)
      >>> print(jnp.sum(hard, -1), jnp.sum(hard == 1))
      [1. 1.] 2

    References:
      Maddison, Mnih and Teh, *The Concrete distribution: a continuous relaxation
      of discrete random variables*, ICLR 2017.
      Jang, Gu and Poole, *Categorical reparameterization with Gumbel-softmax*,
      ICLR 2017.
    """
    logits = _validate.as_float_array(logits, "logits")
    if logits.ndim == 0:
        raise ValueError("logits must have at least one axis (the categories)")
    axis = _validate.normalize_axis(axis, logits.ndim)
    dtype = _validate.compute_dtype(logits.dtype)
    temperature = _validate.row_parameter(
        temperature, logits.shape, (axis,), dtype, "temperature"
    )
    mask = _validate.where_mask(where, logits.shape)
    if not isinstance(hard, bool):
        raise TypeError(f"hard must be a bool, got {_validate.plain(hard)}")
    return _gumbel_softmax_jit(key, logits, temperature, mask, axis, hard)


@partial(jax.jit, static_argnums=(4, 5))
def _gumbel_softmax_jit(key, logits, temperature, mask, axis, hard):
    x = logits.astype(_validate.compute_dtype(logits.dtype))
    if mask is not None:
        x = jnp.where(mask, x, -jnp.inf)
    # The category axis last, as jsoftmax.sample draws its noise: the same key
    # gives the same noise, so the hard sample is sample's index.
    x = jnp.moveaxis(x, axis, -1)
    if temperature.ndim:
        temperature = jnp.moveaxis(temperature, axis, -1)
    noise = jax.random.gumbel(key, x.shape, x.dtype)
    scores = _perturbed(x, noise)
    relaxed = softmax(scores, temperature=temperature)
    out = _straight_through(relaxed, _one_hot_max(scores, relaxed)) if hard else relaxed
    return jnp.moveaxis(out, -1, axis).astype(logits.dtype)


def _perturbed(x, noise):
    """``x + g``, except in rows holding ``+inf``: ``g`` on those entries, ``-inf``
    elsewhere (NaN kept).

    ``+inf + g`` would be ``+inf`` on every such entry, and the softmax would
    share the mass evenly among them instead of drawing one. Read as equal
    finite logits ``L → ∞``, ``softmax((L + g)/T)`` over them is
    ``softmax(g/T)``, and the arg-max is uniform among them, as in
    :func:`jsoftmax.sample`. The replaced entries do not depend on ``x``, so the
    row's derivatives are 0.
    """
    inf_row = jnp.max(x, -1, keepdims=True) == jnp.inf
    on_inf_row = jnp.where(x == jnp.inf, noise, jnp.where(jnp.isnan(x), x, -jnp.inf))
    return jnp.where(inf_row, on_inf_row, x + noise)


def _one_hot_max(scores, relaxed):
    """The one-hot of ``argmax(scores)`` along the last axis.

    Taken from the scores, not from the relaxed sample: at a large ``T`` several
    entries of the relaxed sample can round to the same value, and its arg-max
    would then prefer the first of them. Zeros in a row with no finite score
    (nothing to choose); NaN in a row whose relaxed sample holds a NaN (its sum
    is NaN exactly then: the other entries lie in [0, 1]).
    """
    index = jnp.argmax(scores, -1, keepdims=True)
    alive = jnp.max(scores, -1, keepdims=True) > -jnp.inf
    positions = jax.lax.broadcasted_iota(index.dtype, scores.shape, scores.ndim - 1)
    one_hot = ((positions == index) & alive).astype(scores.dtype)
    has_nan = jnp.isnan(jnp.sum(relaxed, -1, keepdims=True))
    return jax.lax.stop_gradient(jnp.where(has_nan, jnp.nan, one_hot))


@jax.custom_jvp
def _straight_through(relaxed, one_hot):
    return one_hot


@_straight_through.defjvp
def _straight_through_jvp(primals, tangents):
    # The straight-through estimator as a rule: the exact one-hot with the
    # relaxed sample's tangent (the usual spelling, (one_hot - stop_gradient(y))
    # + y, rounds: 1 - 0.3 + 0.3 need not be 1).
    relaxed, one_hot = primals
    return _straight_through(relaxed, one_hot), tangents[0]
