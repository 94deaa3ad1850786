r"""Probability vectors as unconstrained points: the scale-λ softmax maps.

A probability vector ``p = (p_0, …, p_n)`` with no zero entry is one point
``eta ∈ R^n``:

.. math::
    p = \mathrm{softmax}([0, λ·eta]), \qquad eta_i = (\log p_i - \log p_0) / λ .

``p_0`` is the reference category. An objective ``H(p)`` on the simplex becomes
the unconstrained, analytic ``H ∘ centered_softmax`` on ``R^n``, ready for any
optax optimizer. The forward maps are the softmax cores of
:mod:`jsoftmax.softmax` (``custom_jvp``, tail-exact) applied to ``[0, λ·eta]``;
``λ`` and the padding enter linearly, so JAX's derivative of that step is the
closed form ``∂p_i/∂eta_j = λ p_i (δ_{i,j+1} - p_{j+1})`` exactly. The inverse
maps are differences of logs, whose derivatives are ``(dp_i/p_i - dp_0/p_0)/λ``.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import jax
import jax.numpy as jnp

from jsoftmax import _validate
from jsoftmax._cores import log_softmax_core as _log_softmax_core
from jsoftmax._cores import softmax_core as _softmax_core
from jsoftmax.softmax import _softmax_jacobian_jit

__all__ = [
    "centered_softmax",
    "centered_softmax_hessian",
    "centered_softmax_jacobian",
    "centered_softmax_log_det",
    "inverse_log_softmax",
    "inverse_softmax",
    "log_centered_softmax",
    "softmax_normalize",
]


# --------------------------------------------------------------------------- #
# Argument handling: every map works on the last axis internally.
# --------------------------------------------------------------------------- #
def _prepare(values, scale, axis, name, check, *, min_length):
    values = _validate.as_float_array(values, name)
    if values.ndim == 0:
        raise ValueError(f"{name} must have at least one axis, got a scalar")
    axis = _validate.normalize_axis(axis, values.ndim)
    if values.shape[axis] < min_length:
        raise ValueError(
            f"{name} needs at least {min_length} entries along axis {axis}, "
            f"got shape {values.shape}"
        )
    moved = jnp.moveaxis(values, axis, -1)
    dtype = _validate.compute_dtype(values.dtype)
    scale = _validate.row_parameter(
        scale, moved.shape, (moved.ndim - 1,), dtype, "scale", check=check
    )
    return moved, scale, axis


def _padded_logits(eta, scale):
    """``[0, λ·eta]`` along the last axis, in the compute dtype."""
    eta = eta.astype(_validate.compute_dtype(eta.dtype))
    zero = jnp.zeros(eta.shape[:-1] + (1,), eta.dtype)
    return jnp.concatenate([zero, scale * eta], axis=-1)


def _expand(scale, extra: int):
    """A per-vector ``scale`` (keepdims shape) with ``extra`` more trailing axes."""
    return scale if scale.ndim == 0 else scale.reshape(scale.shape + (1,) * extra)


def _unit_temperature(dtype):
    return jnp.ones((), _validate.compute_dtype(dtype))


def _map(core, eta, scale):
    """``core`` (a softmax core) of ``[0, λ·eta]`` along the last axis."""
    logits = _padded_logits(eta, scale)
    return core(logits, _unit_temperature(eta.dtype), (logits.ndim - 1,))


@partial(jax.jit, static_argnums=(2,))
def _centered_softmax_jit(eta, scale, axis):
    p = _map(_softmax_core, eta, scale)
    return jnp.moveaxis(p.astype(eta.dtype), -1, axis)


@partial(jax.jit, static_argnums=(2,))
def _log_centered_softmax_jit(eta, scale, axis):
    log_p = _map(_log_softmax_core, eta, scale)
    return jnp.moveaxis(log_p.astype(eta.dtype), -1, axis)


def _coordinates(log_p, scale, axis, dtype):
    """``(log p_i - log p_0)/λ`` back on ``axis``, in ``dtype``."""
    eta = (log_p[..., 1:] - log_p[..., :1]) / scale
    return jnp.moveaxis(eta.astype(dtype), -1, axis)


@partial(jax.jit, static_argnums=(2,))
def _inverse_log_softmax_jit(log_p, scale, axis):
    lp = log_p.astype(_validate.compute_dtype(log_p.dtype))
    return _coordinates(lp, scale, axis, log_p.dtype)


@partial(jax.jit, static_argnums=(2,))
def _inverse_softmax_jit(p, scale, axis):
    log_p = jnp.log(p.astype(_validate.compute_dtype(p.dtype)))
    return _coordinates(log_p, scale, axis, p.dtype)


# --------------------------------------------------------------------------- #
# Public maps
# --------------------------------------------------------------------------- #
def centered_softmax(eta, scale=1.0, *, axis: int = -1) -> jax.Array:
    r"""Map ``eta ∈ R^n`` to the probability vector ``softmax([0, λ·eta])``.

    .. math::
        p_0 = \frac{1}{1 + \sum_j e^{λ eta_j}}, \qquad
        p_i = \frac{e^{λ eta_{i-1}}}{1 + \sum_j e^{λ eta_j}}

    The output has one more entry than ``eta`` along ``axis``; entry 0 is the
    reference category. ``λ`` only rescales:
    ``centered_softmax(eta, λ) == centered_softmax(λ·eta, 1)``. With ``n = 1``,
    ``p_1 = sigmoid(λ·eta)``. Edge values follow :func:`jsoftmax.softmax`
    (``+inf`` entries share the mass, ``-inf`` gives 0, NaN poisons its row).

    Args:
      eta: unconstrained coordinates ``[..., n, ...]``.
      scale: ``λ``, finite; a scalar or one value per vector. Traced and
        differentiable. A concrete NaN or infinite value raises ``ValueError``.
      axis: the axis holding the ``n`` coordinates.

    Returns:
      ``p`` with ``n + 1`` entries along ``axis``, in the dtype of ``eta``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jsoftmax
      >>> jnp.set_printoptions(precision=4)
      >>> print(jsoftmax.centered_softmax(jnp.array([0.0, 1.0])))
      [0.2119 0.2119 0.5761]
      >>> print(jsoftmax.centered_softmax(jnp.array([[1.0], [-1.0]]), 2.0))
      [[0.1192 0.8808]
       [0.8808 0.1192]]
    """
    eta, scale, axis = _prepare(eta, scale, axis, "eta", _validate.finite, min_length=0)
    return _centered_softmax_jit(eta, scale, axis)


def log_centered_softmax(eta, scale=1.0, *, axis: int = -1) -> jax.Array:
    r"""``log centered_softmax(eta, λ)``, finite wherever it is representable.

    Computed as ``[0, λ·eta] - logsumexp([0, λ·eta])``, never as the log of a
    probability, so ``eta = ±800`` in float64 (or ``±100`` in float32) gives
    finite log-probabilities and finite gradients where the probabilities
    themselves underflow to 0.

    Args:
      eta: unconstrained coordinates ``[..., n, ...]``.
      scale: ``λ`` as in :func:`centered_softmax`.
      axis: the axis holding the ``n`` coordinates.

    Returns:
      ``log p`` with ``n + 1`` entries along ``axis``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jsoftmax
      >>> jnp.set_printoptions(precision=4)
      >>> print(jsoftmax.log_centered_softmax(jnp.array([800.0, -800.0])))
      [ -800.     0. -1600.]
    """
    eta, scale, axis = _prepare(eta, scale, axis, "eta", _validate.finite, min_length=0)
    return _log_centered_softmax_jit(eta, scale, axis)


def inverse_softmax(p, scale=1.0, *, axis: int = -1) -> jax.Array:
    r"""Map a probability vector to its coordinates ``eta_i = (log p_i - log p_0)/λ``.

    The inverse of :func:`centered_softmax`. Only ratios matter, so an
    unnormalised ``p`` gives the same ``eta`` as its normalisation. A zero entry
    gives ``-inf`` (``+inf`` everywhere if ``p_0 = 0``), a negative entry NaN: the
    boundary of the simplex has no finite coordinates.

    Args:
      p: positive weights ``[..., n + 1, ...]``; entry 0 is the reference.
      scale: ``λ``, finite and nonzero (a concrete 0, NaN or ``inf`` raises
        ``ValueError``); a scalar or one value per vector.
      axis: the axis holding the ``n + 1`` entries.

    Returns:
      ``eta`` with ``n`` entries along ``axis``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jsoftmax
      >>> jnp.set_printoptions(precision=4)
      >>> print(jsoftmax.inverse_softmax(jnp.array([0.25, 0.25, 0.5])))
      [0.     0.6931]
      >>> print(jsoftmax.inverse_softmax(jnp.array([1.0, 1.0, 2.0]), 2.0))
      [0.     0.3466]
    """
    p, scale, axis = _prepare(
        p, scale, axis, "p", _validate.finite_nonzero, min_length=1
    )
    return _inverse_softmax_jit(p, scale, axis)


def inverse_log_softmax(log_p, scale=1.0, *, axis: int = -1) -> jax.Array:
    r"""``eta_i = (log p_i - log p_0)/λ`` from log-probabilities.

    The inverse of :func:`log_centered_softmax`; round-trips for every finite
    ``eta`` (to a few ulp of ``max|λ·eta|``), also where ``p`` underflows.
    Invariant to adding a constant to ``log_p`` (the normalisation).

    Args:
      log_p: log-weights ``[..., n + 1, ...]``; entry 0 is the reference.
      scale: ``λ``, finite and nonzero.
      axis: the axis holding the ``n + 1`` entries.

    Returns:
      ``eta`` with ``n`` entries along ``axis``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jsoftmax
      >>> print(jsoftmax.inverse_log_softmax(jnp.array([-800.0, 0.0, -1600.0])))
      [ 800. -800.]
    """
    log_p, scale, axis = _prepare(
        log_p, scale, axis, "log_p", _validate.finite_nonzero, min_length=1
    )
    return _inverse_log_softmax_jit(log_p, scale, axis)


def centered_softmax_log_det(eta, scale=1.0, *, axis: int = -1) -> jax.Array:
    r"""``log|det ∂(p_1..p_n)/∂eta|`` of :func:`centered_softmax`.

    .. math::
        \log|\det J| = n \log|λ| + \sum_{i=0}^{n} \log p_i

    (``J = λ(\mathrm{diag}\,q - q q^T)`` with ``q = p_{1..n}``, whose determinant is
    ``λ^n \prod_i q_i (1 - \sum q) = λ^n \prod_{i=0}^n p_i``.) Computed from
    log-probabilities, so it stays finite where ``p`` underflows.

    Convention: the chart ``(p_1, …, p_n)`` with Lebesgue measure, reference
    category first. TensorFlow Probability's ``SoftmaxCentered`` bijector uses the
    simplex's own surface measure in ``R^{n+1}``, which adds the constant
    ``½·log(n+1)``, and puts its reference category last.

    Args:
      eta: coordinates ``[..., n, ...]``.
      scale: ``λ`` as in :func:`centered_softmax`.
      axis: the axis holding the ``n`` coordinates (reduced away).

    Returns:
      The log-determinant, with ``axis`` removed.

    Example:
      >>> import jax.numpy as jnp
      >>> import jsoftmax
      >>> print(jsoftmax.centered_softmax_log_det(jnp.zeros(2)))  # log(1/27)
      -3.295836866004329
    """
    eta, scale, axis = _prepare(eta, scale, axis, "eta", _validate.finite, min_length=0)
    return _log_det_jit(eta, scale)


@jax.jit
def _log_det_jit(eta, scale):
    log_p = _map(_log_softmax_core, eta, scale)
    n = eta.shape[-1]
    log_scale = jnp.squeeze(
        jnp.broadcast_to(jnp.log(jnp.abs(scale)), log_p[..., :1].shape), -1
    )
    return (n * log_scale + jnp.sum(log_p, -1)).astype(eta.dtype)


def centered_softmax_jacobian(eta, scale=1.0, *, axis: int = -1) -> jax.Array:
    r"""``∂p/∂eta`` of :func:`centered_softmax` in closed form, ``[..., n+1, n]``.

    .. math::
        \frac{\partial p_i}{\partial eta_j} = λ\, p_i\, (δ_{i,j+1} - p_{j+1})

    Columns 1..n of the softmax Jacobian of ``[0, λ·eta]``, times ``λ``; the
    diagonal keeps a dominant entry's tail as :func:`jsoftmax.softmax_jacobian`.
    ``axis`` is moved to the end: the output's last two axes are ``(n+1, n)``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jsoftmax
      >>> jnp.set_printoptions(precision=4)
      >>> print(jsoftmax.centered_softmax_jacobian(jnp.array([0.0])))
      [[-0.25]
       [ 0.25]]
    """
    eta, scale, _ = _prepare(eta, scale, axis, "eta", _validate.finite, min_length=0)
    return _jacobian_jit(eta, scale)


@jax.jit
def _jacobian_jit(eta, scale):
    logits = _padded_logits(eta, scale)
    softmax_jac = _softmax_jacobian_jit(logits, _unit_temperature(eta.dtype))
    return (softmax_jac[..., :, 1:] * _expand(scale, 1)).astype(eta.dtype)


def centered_softmax_hessian(eta, scale=1.0, *, axis: int = -1) -> jax.Array:
    r"""``∂²p/∂eta²`` of :func:`centered_softmax` in closed form, ``[..., n+1, n, n]``.

    With ``q = p_{1..n}`` and ``e_{ij} = δ_{i,j+1}``:

    .. math::
        \frac{\partial^2 p_i}{\partial eta_j \partial eta_k}
          = λ^2 p_i \left[(e_{ij} - q_j)(e_{ik} - q_k) - q_j (δ_{jk} - q_k)\right]

    (differentiate ``λ p_i (e_{ij} - q_j)`` once more and use the first
    derivative for ``∂p_i`` and ``∂q_j``). For Newton-type methods and teaching.

    Example:
      >>> import jax.numpy as jnp
      >>> import jsoftmax
      >>> jnp.set_printoptions(precision=4)
      >>> # n = 1: p_1 = sigmoid(eta), p_1'' = p_1 (1 - p_1)(1 - 2 p_1)
      >>> print(jsoftmax.centered_softmax_hessian(jnp.array([1.0]))[..., 0, 0])
      [ 0.0909 -0.0909]
    """
    eta, scale, _ = _prepare(eta, scale, axis, "eta", _validate.finite, min_length=0)
    return _hessian_jit(eta, scale)


@jax.jit
def _hessian_jit(eta, scale):
    p = _map(_softmax_core, eta, scale)
    n = eta.shape[-1]
    q = p[..., 1:]
    batch_ones = (1,) * (p.ndim - 1)
    indicator = jnp.eye(n + 1, dtype=p.dtype)[:, 1:].reshape(batch_ones + (n + 1, n))
    centered = indicator - q[..., None, :]  # [..., n+1, n]: e_ij - q_j
    outer = centered[..., :, :, None] * centered[..., :, None, :]
    eye = jnp.eye(n, dtype=p.dtype).reshape(batch_ones + (n, n))
    curvature = q[..., :, None] * (eye - q[..., None, :])  # q_j (δ_jk - q_k)
    lam2 = _expand(scale * scale, 2)
    hess = lam2 * p[..., :, None, None] * (outer - curvature[..., None, :, :])
    return hess.astype(eta.dtype)


# --------------------------------------------------------------------------- #
# Softmax normalisation of data
# --------------------------------------------------------------------------- #
_KINDS = ("logistic", "tanh")


def softmax_normalize(
    x, axis: int | Sequence[int] | None = 0, where=None, *, kind: str = "logistic"
):
    r"""Squash data by its z-score: the "softmax normalisation" of a feature.

    .. math::
        z = \frac{x - \mathrm{mean}}{\mathrm{std}}, \qquad
        \text{logistic: } \frac{1}{1 + e^{-z}}, \qquad
        \text{tanh: } \frac{1 - e^{-z}}{1 + e^{-z}} = \tanh(z/2)

    Nearly linear within a standard deviation of the mean, and it squashes
    outliers into ``(0, 1)`` (logistic) or ``(-1, 1)`` (tanh). The standard
    deviation is the population one (as ``jnp.std``). ``where`` excludes entries
    from the mean and the standard deviation; every entry is still transformed.
    A slice with zero spread maps to ``z = 0``; an all-masked slice or one holding
    a counted NaN gives NaN (an excluded NaN changes nothing but its own entry).
    The statistics are taken of ``x`` scaled by a power of two, so values whose
    squares overflow (``1e20`` in float32) normalise correctly.

    Args:
      x: data; statistics are taken over ``axis`` (int, tuple or None).
      axis: the axes of the statistics (default 0: per feature over a batch).
      where: optional boolean mask of the entries that count.
      kind: ``"logistic"`` or ``"tanh"``.

    Returns:
      The squashed data, shape and dtype of ``x``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jsoftmax
      >>> jnp.set_printoptions(precision=4)
      >>> print(jsoftmax.softmax_normalize(jnp.array([1.0, 2.0, 3.0])))
      [0.2271 0.5    0.7729]
    """
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")
    x = _validate.as_float_array(x, "x")
    axes = _validate.normalize_axes(axis, x.ndim)
    mask = _validate.where_mask(where, x.shape)
    return _normalize_jit(x, mask, axes, kind)


@partial(jax.jit, static_argnums=(2, 3))
def _normalize_jit(x, mask, axes, kind):
    xc = x.astype(_validate.compute_dtype(x.dtype))
    counted = jnp.ones(xc.shape, bool) if mask is None else mask
    weight = counted.astype(xc.dtype)
    count = jnp.sum(weight, axes, keepdims=True)
    # Statistics of x/s, s the largest counted |x| (a power of two, so exact):
    # squares of values near 1e20 would overflow float32. Excluded entries are
    # read as 0, so an excluded NaN does not reach the sums.
    counted_x = jnp.where(counted, xc, 0)
    largest = jnp.max(jnp.abs(counted_x), axes, keepdims=True, initial=0)
    usable = (largest > 0) & (largest < jnp.inf)
    scale = jnp.where(
        usable, jnp.exp2(jnp.ceil(jnp.log2(jnp.where(usable, largest, 1)))), 1
    )
    scaled = counted_x / scale
    mean = jnp.sum(scaled, axes, keepdims=True) / count
    deviation = jnp.where(counted, scaled - mean, 0)
    std = jnp.sqrt(jnp.sum(deviation * deviation, axes, keepdims=True) / count)
    deviation = xc / scale - mean
    # Zero spread: every counted entry equals the mean, so z = 0 (not 0/0).
    z = jnp.where(std > 0, deviation / jnp.where(std > 0, std, 1), 0)
    z = jnp.where(jnp.isnan(std), jnp.nan, z)
    squashed = jax.nn.sigmoid(z) if kind == "logistic" else jnp.tanh(z / 2)
    return squashed.astype(x.dtype)
