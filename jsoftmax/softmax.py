"""Softmax, log-softmax and logsumexp with temperature, safe at every IEEE input.

The public functions here validate and normalise their arguments eagerly, then
call the ``custom_jvp`` cores of :mod:`jsoftmax._cores`, whose edge handling is
described in :mod:`jsoftmax._rows`.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import jax
import jax.numpy as jnp

from jsoftmax import _rows
from jsoftmax import _validate
from jsoftmax._cores import log_softmax_core
from jsoftmax._cores import logsumexp_core
from jsoftmax._cores import softmax_core
from jsoftmax._cores import weighted_logsumexp_core

__all__ = ["softmax", "log_softmax", "logsumexp", "softmax_jacobian"]


def _prepare(x, axis, where, temperature, name="x"):
    """Validate eagerly; return ``x``, axes, the compute-dtype T and the mask."""
    x = _validate.as_float_array(x, name)
    axes = _validate.normalize_axes(axis, x.ndim)
    dtype = _validate.compute_dtype(x.dtype)
    temperature = _validate.row_parameter(
        temperature, x.shape, axes, dtype, "temperature"
    )
    mask = _validate.where_mask(where, x.shape)
    return x, axes, temperature, mask


def _masked(x, mask):
    """``x`` (in its own dtype: the cores widen it) with masked entries -inf."""
    return x if mask is None else jnp.where(mask, x, -jnp.inf)


@partial(jax.jit, static_argnums=(2,))
def _softmax_jit(x, temperature, axes, mask):
    return softmax_core(_masked(x, mask), temperature, axes)


@partial(jax.jit, static_argnums=(2,))
def _log_softmax_jit(x, temperature, axes, mask):
    return log_softmax_core(_masked(x, mask), temperature, axes)


@partial(jax.jit, static_argnums=(2, 4))
def _logsumexp_jit(x, temperature, axes, mask, keepdims):
    value = logsumexp_core(_masked(x, mask), temperature, axes)
    value = value if keepdims else jnp.squeeze(value, axes)
    return value.astype(x.dtype)


@partial(jax.jit, static_argnums=(3, 5, 6))
def _weighted_logsumexp_jit(x, b, temperature, axes, mask, keepdims, return_sign):
    b = jnp.broadcast_to(b, x.shape)
    if mask is not None:
        b = jnp.where(mask, b, 0)
    value, sign = weighted_logsumexp_core(x, b, temperature, axes)
    if not keepdims:
        value, sign = jnp.squeeze(value, axes), jnp.squeeze(sign, axes)
    if not return_sign:
        # As jax.nn.logsumexp: the log of a negative sum is NaN.
        return jnp.where(sign < 0, jnp.nan, value).astype(x.dtype)
    return value.astype(x.dtype), sign.astype(x.dtype)


def softmax(
    x, axis: int | Sequence[int] | None = -1, where=None, *, temperature=1.0
) -> jax.Array:
    r"""Softmax with temperature, safe at ``±inf``, NaN and masked rows.

    .. math::
        \mathrm{softmax}(x)_i = \frac{\exp(x_i / T)}{\sum_{j} \exp(x_j / T)}

    A drop-in replacement for :func:`jax.nn.softmax` (same positional arguments).
    Edge rows: ``-inf`` and masked entries get 0; an all ``-inf`` / all masked row
    is all 0; ``k`` entries at ``+inf`` share ``1/k``; a NaN poisons its own row
    only. ``T = 0`` is the hard max (ties share equally), ``T = inf`` is uniform
    over the unmasked, non ``-inf`` entries (over the ``+inf`` entries if there
    are any); both have zero derivative. The JVP
    keeps the tail (``grad softmax([40, 0])[0]`` is ``[4.25e-18, -4.25e-18]``).

    Args:
      x: logits, any real dtype; float16/bfloat16 are computed in float32 and
        returned in their own dtype; integers promote like ``jax.nn``.
      axis: int, tuple of ints or None: the axes normalised over.
      where: optional boolean mask broadcastable to ``x``; False entries are
        excluded (probability 0, gradient 0).
      temperature: ``T >= 0``; a scalar, one value per row, or an array that
        broadcasts to the keepdims shape. Traced and differentiable. A concrete
        negative or NaN value raises ``ValueError``; a traced one gives NaN rows.

    Returns:
      Probabilities with the shape and dtype of ``x``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jsoftmax
      >>> jnp.set_printoptions(precision=4)
      >>> print(jsoftmax.softmax(jnp.array([1.0, 2.0, 3.0])))
      [0.09   0.2447 0.6652]
      >>> print(jsoftmax.softmax(jnp.array([0.0, -jnp.inf, jnp.inf, jnp.inf])))
      [0.  0.  0.5 0.5]
      >>> print(jsoftmax.softmax(jnp.array([1.0, 3.0, 3.0]), temperature=0.0))
      [0.  0.5 0.5]

    References:
      Bridle, *Probabilistic interpretation of feedforward classification network
      outputs*, 1990.
    """
    x, axes, temperature, mask = _prepare(x, axis, where, temperature)
    return _softmax_jit(x, temperature, axes, mask)


def log_softmax(
    x, axis: int | Sequence[int] | None = -1, where=None, *, temperature=1.0
) -> jax.Array:
    r"""Log-softmax with temperature, finite wherever the log-probability is.

    .. math::
        \mathrm{log\_softmax}(x)_i = x_i / T - \log \sum_j \exp(x_j / T)

    A drop-in replacement for :func:`jax.nn.log_softmax`. Edge rows: ``-inf``
    there for ``-inf`` and masked entries (with derivative 0); all ``-inf`` for an
    all-masked row; ``-log k`` on ``k`` entries at ``+inf``; NaN only in a row that
    holds a NaN. Computed without forming ``log(softmax)``, so float16 input
    ``zeros(65536)`` gives ``-11.09``, not ``-inf``.

    Args:
      x: logits (see :func:`softmax` for dtypes).
      axis: int, tuple of ints or None.
      where: optional boolean mask broadcastable to ``x``.
      temperature: ``T >= 0`` as in :func:`softmax`.

    Returns:
      Log-probabilities with the shape and dtype of ``x``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jsoftmax
      >>> jnp.set_printoptions(precision=4)
      >>> print(jsoftmax.log_softmax(jnp.array([1.0, 2.0, 3.0])))
      [-2.4076 -1.4076 -0.4076]
      >>> print(jsoftmax.log_softmax(jnp.array([-jnp.inf, -jnp.inf])))
      [-inf -inf]
    """
    x, axes, temperature, mask = _prepare(x, axis, where, temperature)
    return _log_softmax_jit(x, temperature, axes, mask)


def logsumexp(
    x,
    axis: int | Sequence[int] | None = -1,
    b=None,
    keepdims: bool = False,
    return_sign: bool = False,
    where=None,
    *,
    temperature=1.0,
):
    r"""Temperature-scaled log-sum-exp, the log-normaliser of :func:`softmax`.

    .. math::
        \mathrm{logsumexp}(x) = T \log \sum_j b_j \exp(x_j / T)

    Positional arguments match :func:`jax.nn.logsumexp` (``axis``, ``b``,
    ``keepdims``, ``return_sign``, ``where``), so code ported by position or by
    keyword keeps its meaning, except that ``axis`` defaults to ``-1`` (as every
    jsoftmax reduction) where jax.nn's defaults to ``None``. ``T = 0`` is the
    max. ``∂/∂x`` is the softmax and ``∂/∂T`` its entropy (``log k`` over ``k``
    live entries at ``T = inf``). Edge rows: ``-inf`` for an all ``-inf`` / all
    masked / empty row (derivative 0), ``+inf`` if any entry is ``+inf``
    (derivative 0), NaN if the row holds a NaN.

    Args:
      x: values (see :func:`softmax` for dtypes).
      axis: int, tuple of ints or None.
      b: optional weights broadcastable to ``x``, possibly zero or negative;
        an entry with ``b = 0`` is left out (as if masked). Differentiable.
      keepdims: keep the reduced axes with length 1.
      return_sign: return ``(log|Σ|, sign Σ)``; without it a negative sum gives
        NaN (as jax.nn). A zero sum gives ``-inf`` with sign 0.
      where: optional boolean mask broadcastable to ``x``.
      temperature: ``T >= 0`` as in :func:`softmax`.

    Returns:
      The reduced array in the dtype of ``x``, or the pair with its sign.

    Example:
      >>> import jax.numpy as jnp
      >>> import jsoftmax
      >>> jnp.set_printoptions(precision=4)
      >>> print(jsoftmax.logsumexp(jnp.array([[0.0, 0.0], [1.0, -jnp.inf]])))
      [0.6931 1.    ]
      >>> print(jsoftmax.logsumexp(jnp.array([1.0, 5.0]), temperature=0.0))
      5.0
      >>> value, sign = jsoftmax.logsumexp(
      ...     jnp.array([0.0, 1.0]), b=jnp.array([1.0, -1.0]), return_sign=True)
      >>> print(f"{value:.4f} {sign}")
      0.5413 -1.0
    """
    x, axes, temperature, mask = _prepare(x, axis, where, temperature)
    if b is None and not return_sign:
        return _logsumexp_jit(x, temperature, axes, mask, bool(keepdims))
    b = jnp.ones((), x.dtype) if b is None else _validate.as_float_array(b, "b")
    if not _validate.broadcasts(b.shape, x.shape):
        raise ValueError(f"b of shape {b.shape} does not broadcast to {x.shape}")
    return _weighted_logsumexp_jit(
        x, b, temperature, axes, mask, bool(keepdims), bool(return_sign)
    )


def softmax_jacobian(x, *, temperature=1.0, axis: int = -1) -> jax.Array:
    r"""The Jacobian of :func:`softmax` along one axis, in closed form.

    .. math::
        \frac{\partial y_i}{\partial x_j} = \frac{y_i (\delta_{ij} - y_j)}{T}

    The diagonal is formed as ``y_i Σ_{j≠i} y_j`` so a dominant entry keeps its tail.
    Edge rows follow :func:`softmax`'s derivatives (0 at ``T = 0``, ``T = inf``, on
    ``+inf`` rows and at ``-inf`` entries).

    Args:
      x: logits ``[..., K]`` (``axis`` moves to the end).
      temperature: ``T >= 0``, scalar or one per row.
      axis: the softmax axis.

    Returns:
      ``[..., K, K]`` with ``out[..., i, j] = ∂y_i/∂x_j``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jsoftmax
      >>> jnp.set_printoptions(precision=4)
      >>> print(jsoftmax.softmax_jacobian(jnp.array([0.0, 0.0])))
      [[ 0.25 -0.25]
       [-0.25  0.25]]
    """
    x = _validate.as_float_array(x, "x")
    axis = _validate.normalize_axis(axis, x.ndim)
    x = jnp.moveaxis(x, axis, -1)
    dtype = _validate.compute_dtype(x.dtype)
    temperature = _validate.row_parameter(
        temperature, x.shape, (x.ndim - 1,), dtype, "temperature"
    )
    return _softmax_jacobian_jit(x, temperature)


@jax.jit
def _softmax_jacobian_jit(x, temperature):
    axes = (x.ndim - 1,)
    y = _rows.widened(softmax_core(x, temperature, axes))
    scale = _rows.derivative_scale(temperature, _rows.row_max(x, axes))[..., None]
    # Row i of the Jacobian is the softmax tangent of e_i (forward mode), so the
    # dominant entry keeps its tail: (diag y - y yᵀ) with y_k (1 - y_k) formed
    # as y_k·Σ_{j≠k} y_j (see jsoftmax._rows.log_softmax_tangent).
    dominant = y > 0.5
    rest_mass = jnp.sum(jnp.where(dominant, 0, y), axes, keepdims=True)
    rest = jnp.where(dominant, rest_mass, 1 - y)
    outer = -y[..., :, None] * y[..., None, :]
    eye = jnp.eye(y.shape[-1], dtype=bool)
    jac = jnp.where(eye, (y * rest)[..., :, None], outer) * scale
    return jac.astype(x.dtype)
