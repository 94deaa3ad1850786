"""Boltzmann sampling from logits with temperature (Gumbel-max)."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from jsoftmax import _rows
from jsoftmax import _validate

__all__ = ["sample"]


def sample(key, logits, axis: int = -1, where=None, *, temperature=1.0, shape=None):
    r"""Draw category indices with probabilities ``softmax(logits / T)``.

    Uses the Gumbel-max trick on the same scaled logits as :func:`jsoftmax.softmax`,
    so every edge case matches it: ``T = 0`` is greedy and breaks ties uniformly at
    random, ``T = inf`` is uniform over the unmasked, non ``-inf`` entries, a row
    with ``+inf`` entries draws uniformly among them, and masked or ``-inf``
    entries are never drawn.

    A row with nothing to draw (all masked or ``-inf``) or holding a NaN returns
    ``-1``: never a valid index, and a NaN loss if passed on as a label.

    Args:
      key: a ``jax.random`` key.
      logits: ``[..., K, ...]`` unnormalised log-probabilities.
      axis: the category axis.
      where: optional boolean mask broadcastable to ``logits``.
      temperature: ``T >= 0``, a scalar or one value per row (traced).
      shape: output shape as in :func:`jax.random.categorical`: it must end with
        the batch shape (``logits.shape`` without ``axis``); leading dimensions draw
        independent samples. Default: the batch shape.

    Returns:
      int32 indices of shape ``shape``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> import jsoftmax
      >>> logits = jnp.array([[0.0, 5.0, -jnp.inf], [1.0, 1.0, 1.0]])
      >>> print(jsoftmax.sample(jax.random.key(0), logits, temperature=0.0).shape)
      (2,)
      >>> print(jsoftmax.sample(jax.random.key(0), jnp.array([-jnp.inf, -jnp.inf])))
      -1
    """
    logits = _validate.as_float_array(logits, "logits")
    axis = _validate.normalize_axis(axis, logits.ndim)
    dtype = _validate.compute_dtype(logits.dtype)
    temperature = _validate.row_parameter(
        temperature, logits.shape, (axis,), dtype, "temperature"
    )
    mask = _validate.where_mask(where, logits.shape)
    batch = logits.shape[:axis] + logits.shape[axis + 1 :]
    shape = batch if shape is None else tuple(shape)
    if shape[len(shape) - len(batch) :] != batch:
        raise ValueError(
            f"shape={_validate.plain(shape)} must end with the batch shape {batch}"
        )
    return _sample_jit(key, logits, temperature, mask, axis, shape)


@partial(jax.jit, static_argnums=(4, 5))
def _sample_jit(key, logits, temperature, mask, axis, shape):
    x = logits if mask is None else jnp.where(mask, logits, -jnp.inf)
    x = jnp.moveaxis(x, axis, -1)
    temperature = (
        jnp.moveaxis(temperature, axis, -1) if temperature.ndim else temperature
    )
    if x.shape[-1] == 0:
        return jnp.full(shape, -1, jnp.int32)
    h = _rows.halved(x)
    m = _rows.row_max(h, (x.ndim - 1,))
    temp = _rows.temperature_terms(temperature, h.dtype)
    z = _rows.scaled_logits(h, m, temp)
    gumbel = jax.random.gumbel(key, shape + z.shape[-1:], z.dtype)
    # z is 0 at the row max and -inf where nothing may be drawn, so z + gumbel
    # is -inf there and argmax never picks it (unless the whole row is -inf).
    scores = jnp.broadcast_to(z, shape + z.shape[-1:]) + gumbel
    index = jnp.argmax(scores, axis=-1).astype(jnp.int32)
    # A NaN row (or a traced invalid T): the row sum of z is NaN there and
    # nowhere else (z <= 0). Not read off the row max, which may skip a NaN.
    has_nan = jnp.isnan(jnp.sum(z, -1))
    nothing = jnp.broadcast_to((m[..., 0] == -jnp.inf) | has_nan, shape)
    return jnp.where(nothing, -1, index)
