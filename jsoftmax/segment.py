"""Softmax and log-sum-exp over segments: variable-length groups of rows of ``x``.

Rows of ``x`` (along axis 0) that share a segment id form one softmax, the way
:func:`jax.ops.segment_sum` groups them: the attention weights of a node over
its incoming edges, or ragged sequences packed into one array. Nothing is
padded to ``[num_segments, max_len]``: every array is either ``x``-sized or
``[num_segments, ...]``-sized, reduced by ``segment_max`` / ``segment_sum``
and read back by a gather.

Per segment the arithmetic is the dense softmax's with each edge case a select
(the scatters and gathers cannot fuse like a dense row reduction anyway):

* ``d = x/2 - m/2`` with ``m`` the segment's max (0 where it is infinite):
  both halves lie within ``±max_float/2``, so ``d`` never overflows, and
  ``z = d·(2/T)`` is ``(x - m)/T`` (bit for bit at ``T = 1``). Where ``d`` is 0
  (the maxima) ``z`` is 0 at every ``T``, so ``T = 0`` (``2/T = inf``) shares
  the mass among ties without forming ``0·inf``; ``T = inf`` gives 0 for every
  finite entry.
* a segment holding ``+inf``: ``z = 0`` on those entries and ``-inf``
  elsewhere; a ``-inf`` entry: ``z = -inf`` (also at ``T = inf``).
* NaN: kept in ``z`` by every branch, so the segment's ``segment_sum`` of
  ``exp z`` is NaN and so is every row divided by it. It is never read off
  ``segment_max`` (XLA:CPU's vectorised max can drop a NaN).
* the maxima give ``exp(0) = 1``, so the sum is ``>= 1`` except in an all
  ``-inf`` segment (0); dividing by ``max(sum, 1)`` gives it zeros.

Rows whose id lies outside ``[0, num_segments)`` belong to no segment, as in
:func:`jax.ops.segment_sum` (which drops them): their softmax is 0 with
derivative 0. Temperatures above ``2/tiny`` (1.7e38 in float32) act as
``T = inf``.
"""

from __future__ import annotations

import operator
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_derivatives import SymbolicZero

from jsoftmax import _validate

__all__ = ["segment_softmax", "segment_logsumexp"]


# --------------------------------------------------------------------------- #
# Private math
# --------------------------------------------------------------------------- #
class _Segments:
    """The grouping: ids, their count and helpers that reduce and gather."""

    def __init__(self, ids, num_segments, is_sorted, ndim):
        self.num, self.sorted, self.ndim = num_segments, is_sorted, ndim
        self.ids = ids
        # Clipped ids keep a sorted order sorted; the rows they move are masked.
        self.clipped = jnp.clip(ids, 0, num_segments - 1)
        valid = (ids >= 0) & (ids < num_segments)
        self.valid = valid.reshape(valid.shape + (1,) * (ndim - 1))

    def sum(self, values):
        return jax.ops.segment_sum(
            values, self.ids, self.num, indices_are_sorted=self.sorted
        )

    def max(self, values):
        return jax.ops.segment_max(
            values, self.ids, self.num, indices_are_sorted=self.sorted
        )

    def gather(self, stats):
        """Per-segment ``stats`` read back for every row (a scalar stays one)."""
        if stats.ndim == 0:
            return stats
        return stats.at[self.clipped].get(
            mode="promise_in_bounds", indices_are_sorted=self.sorted
        )


def _scores(x, temperature, seg):
    """``z = (x - m)/T`` per row with the edge cases folded in (a NaN stays NaN in
    every branch), and the per-segment max ``m`` (see the module doc)."""
    seg_max = seg.max(x)
    m = seg.gather(seg_max)
    half_m = jnp.where(jnp.isfinite(m), m, 0) * 0.5
    d = x * 0.5 - half_m
    # |T| turns -0.0 into 0 (2/-0.0 would be -inf); a negative T is flagged bad.
    scale = seg.gather(2 / jnp.abs(temperature))
    z = jnp.where(d == 0, 0, d * scale)
    on_inf_segment = jnp.where(x == jnp.inf, 0, jnp.where(jnp.isnan(x), x, -jnp.inf))
    z = jnp.where(m == jnp.inf, on_inf_segment, z)
    z = jnp.where(x == -jnp.inf, -jnp.inf, z)
    return z, seg_max


def _sum_exp(z, temperature, seg):
    """``Σ exp z`` per segment, NaN where the segment holds a NaN (a sum keeps
    it, unlike XLA:CPU's max) or its temperature is (traced) negative or NaN."""
    total = seg.sum(jnp.exp(z))
    return jnp.where(temperature >= 0, total, jnp.nan)


def _softmax_value(x, temperature, ids, num_segments, is_sorted):
    seg = _Segments(ids, num_segments, is_sorted, x.ndim)
    z, _ = _scores(x, temperature, seg)
    # NaN spreads from the sum to every row of its segment.
    total = jnp.maximum(seg.gather(_sum_exp(z, temperature, seg)), 1)
    y = jnp.exp(z) / total
    log_p = z - jnp.log(total)
    return jnp.where(seg.valid, y, 0), jnp.where(seg.valid, log_p, -jnp.inf)


def _logsumexp_value(x, temperature, ids, num_segments, is_sorted):
    seg = _Segments(ids, num_segments, is_sorted, x.ndim)
    z, m = _scores(x, temperature, seg)
    log_total = jnp.log(_sum_exp(z, temperature, seg))
    # T·log Σ is 0 when one entry carries the segment (also at T = 0 or inf);
    # an empty or all -inf segment (Σ = 0, m = -inf) is -inf at every T.
    scaled = jnp.where(log_total == 0, 0, temperature * log_total)
    finite_m = jnp.where(jnp.isfinite(m), m, 0)
    value = jnp.where(jnp.isfinite(m), finite_m + scaled, m)
    return jnp.where(jnp.isnan(log_total), jnp.nan, value)


def _derivative_scale(temperature):
    """``1/T``, 0 at ``T = 0`` and ``T = inf``; differentiable for second order."""
    hard = jax.lax.stop_gradient(1 / jnp.abs(temperature)) == jnp.inf
    hard = hard | (jax.lax.stop_gradient(temperature) == jnp.inf)
    # Double where: the T fed to 1/T is never 0 or inf, so the unselected branch
    # cannot turn a zero cotangent into NaN.
    return jnp.where(hard, 0, 1 / jnp.where(hard, 1, temperature))


def _finite_or_zero(log_p):
    return jnp.where(log_p == -jnp.inf, 0, log_p)


@partial(jax.custom_jvp, nondiff_argnums=(3, 4))
def _softmax_core(x, temperature, ids, num_segments, is_sorted):
    """``(p, log p)`` per row, in the dtype of ``x``."""
    return _softmax_value(x, temperature, ids, num_segments, is_sorted)


@partial(_softmax_core.defjvp, symbolic_zeros=True)
def _softmax_jvp(num_segments, is_sorted, primals, tangents):
    # Own rule: autodiff of the selects leaks NaN (0·inf) at -inf entries and at
    # T = 0 or inf; the rule gives 0 there, keeps the dominant entry's tail,
    # and calls the core again so every higher order is exact.
    x, temperature, ids = primals
    tangent_x, tangent_t, _ = tangents
    y, log_p = _softmax_core(x, temperature, ids, num_segments, is_sorted)
    if isinstance(tangent_x, SymbolicZero) and isinstance(tangent_t, SymbolicZero):
        return (y, log_p), (jnp.zeros_like(y), jnp.zeros_like(log_p))
    seg = _Segments(ids, num_segments, is_sorted, x.ndim)
    # z = x/T moves by (dx - z·dT)/T; z may be replaced by log p (shift
    # invariance), finite where p > 0 and 0 elsewhere (where p = 0 it is unused).
    v = jnp.zeros_like(y) if isinstance(tangent_x, SymbolicZero) else tangent_x
    if not isinstance(tangent_t, SymbolicZero):
        v = v - _finite_or_zero(log_p) * seg.gather(tangent_t)
    # A segment holding +inf keeps its mass on those entries: derivative 0.
    inf_segment = seg.gather(seg.max(x)) == jnp.inf
    scale = jnp.where(inf_segment, 0, seg.gather(_derivative_scale(temperature)))
    mean_v = seg.gather(seg.sum(y * v))
    # d log p = (v - <p, v>)/T, 0 where log p stays -inf.
    tangent_log_p = jnp.where(log_p == -jnp.inf, 0, scale * (v - mean_v))
    # dp = p·(v - <p, v>)/T, less its own segment sum at the entry with
    # p > 1/2: that entry's 1 - p rounds away (p([40, 0]) = [1, 4.2e-18]), and
    # -Σ_{j≠k} dp_j gives its derivative with the tail (Σ dp = 0 exactly).
    w = y * v - y * mean_v
    dominant = (y > 0.5).astype(w.dtype)
    tangent_y = scale * (w - dominant * seg.gather(seg.sum(w)))
    return (y, log_p), (tangent_y, tangent_log_p)


@partial(jax.custom_jvp, nondiff_argnums=(3, 4))
def _logsumexp_core(x, temperature, ids, num_segments, is_sorted):
    """``T·log Σ exp(x/T)`` per segment, ``[num_segments, ...]``."""
    return _logsumexp_value(x, temperature, ids, num_segments, is_sorted)


@partial(_logsumexp_core.defjvp, symbolic_zeros=True)
def _logsumexp_jvp(num_segments, is_sorted, primals, tangents):
    # Own rule: d/dx is the segment softmax and d/dT its entropy, 0 on +inf
    # segments instead of inf - inf; the softmax core makes higher orders exact.
    x, temperature, ids = primals
    tangent_x, tangent_t, _ = tangents
    value = _logsumexp_core(x, temperature, ids, num_segments, is_sorted)
    if isinstance(tangent_x, SymbolicZero) and isinstance(tangent_t, SymbolicZero):
        return value, jnp.zeros_like(value)
    seg = _Segments(ids, num_segments, is_sorted, x.ndim)
    y, log_p = _softmax_core(x, temperature, ids, num_segments, is_sorted)
    tangent = jnp.zeros_like(value)
    if not isinstance(tangent_x, SymbolicZero):
        tangent = tangent + seg.sum(y * tangent_x)
    if not isinstance(tangent_t, SymbolicZero):
        entropy = -seg.sum(y * _finite_or_zero(log_p))
        tangent = tangent + entropy * tangent_t
    return value, jnp.where(value == jnp.inf, 0, tangent)


# --------------------------------------------------------------------------- #
# Public API
# --------------------------------------------------------------------------- #
def _prepare(x, segment_ids, num_segments, temperature, indices_are_sorted):
    """Validate eagerly; return ``x``, ids, the count, the compute-dtype T."""
    x = _validate.as_float_array(x, "x")
    if x.ndim == 0:
        raise ValueError("x must have at least one axis (axis 0 holds the rows)")
    ids = jnp.asarray(segment_ids)
    if not jnp.issubdtype(ids.dtype, jnp.integer):
        raise TypeError(f"segment_ids must be integers, got dtype {ids.dtype}")
    if ids.shape != x.shape[:1]:
        raise ValueError(
            f"segment_ids of shape {ids.shape} must have one id per row of x "
            f"(shape {x.shape[:1]})"
        )
    if num_segments is None:
        if not _validate.is_concrete(ids):
            raise ValueError(
                "num_segments must be given when segment_ids is traced (under jit)"
            )
        num_segments = int(np.max(np.asarray(ids), initial=-1)) + 1
    num_segments = operator.index(num_segments)
    if num_segments < 0:
        raise ValueError(f"num_segments must be >= 0, got {num_segments}")
    if not isinstance(indices_are_sorted, bool):
        raise TypeError(
            "indices_are_sorted must be a bool, got "
            f"{_validate.plain(indices_are_sorted)}"
        )
    dtype = _validate.compute_dtype(x.dtype)
    stats_shape = (num_segments,) + x.shape[1:]
    return x, ids, num_segments, _temperature(temperature, stats_shape, dtype)


def _temperature(value, stats_shape, dtype):
    """T as a scalar or a ``[num_segments, ...]``-ranked array (one per segment)."""
    value = _validate.real_array(value, "temperature")
    if _validate.is_concrete(value):
        problem = _validate.nonnegative(np.asarray(value, dtype=np.float64))
        if problem:
            raise ValueError(f"temperature {problem}")
    rank = len(stats_shape)
    if value.ndim == 1 and rank > 1 and value.shape == stats_shape[:1]:
        value = value.reshape(stats_shape[:1] + (1,) * (rank - 1))
    fits = value.ndim == rank and all(
        s in (1, n) for s, n in zip(value.shape, stats_shape, strict=True)
    )
    if value.ndim and not fits:
        raise ValueError(
            f"temperature of shape {value.shape} is neither a scalar, nor one value "
            f"per segment (shape {stats_shape[:1]}), nor broadcastable to the "
            f"per-segment shape {stats_shape}"
        )
    if value.ndim:
        value = jnp.broadcast_to(value, stats_shape[:1] + value.shape[1:])
    return value.astype(dtype)


@partial(jax.jit, static_argnums=(3, 4))
def _segment_softmax_jit(x, ids, temperature, num_segments, is_sorted):
    if num_segments == 0:
        return jnp.zeros_like(x)
    xc = x.astype(_validate.compute_dtype(x.dtype))
    y, _ = _softmax_core(xc, temperature, ids, num_segments, is_sorted)
    return y.astype(x.dtype)


@partial(jax.jit, static_argnums=(3, 4))
def _segment_logsumexp_jit(x, ids, temperature, num_segments, is_sorted):
    if num_segments == 0:
        return jnp.zeros((0,) + x.shape[1:], x.dtype)
    xc = x.astype(_validate.compute_dtype(x.dtype))
    value = _logsumexp_core(xc, temperature, ids, num_segments, is_sorted)
    return value.astype(x.dtype)


def segment_softmax(
    x,
    segment_ids,
    num_segments: int | None = None,
    *,
    temperature=1.0,
    indices_are_sorted: bool = False,
) -> jax.Array:
    r"""Softmax over the rows of ``x`` that share a segment id.

    .. math::
        \mathrm{segment\_softmax}(x)_i =
        \frac{\exp(x_i / T)}{\sum_{j:\ s_j = s_i} \exp(x_j / T)}

    Segments group rows along axis 0 as in :func:`jax.ops.segment_sum`; every
    trailing position (an attention head, a feature) is its own softmax. Each
    segment has the edge semantics of a :func:`jsoftmax.softmax` row: ``-inf``
    entries get 0, an all ``-inf`` segment is all 0, ``k`` entries at ``+inf``
    share ``1/k``, a NaN makes its whole segment NaN (and no other). ``T = 0``
    is the hard max (ties share), ``T = inf`` uniform over the non ``-inf``
    entries; both have zero derivative. Rows with an id outside
    ``[0, num_segments)`` belong to no segment and get 0. Memory is
    ``O(size of x + num_segments)``: nothing is padded to the longest segment.

    Args:
      x: ``[N, ...]`` scores; float16/bfloat16 are computed in float32 and
        returned in their own dtype; integers promote like ``jax.nn``.
      segment_ids: ``[N]`` integer segment of each row (need not be sorted).
      num_segments: the number of segments; required under ``jit``. Default:
        ``max(segment_ids) + 1``, read eagerly.
      temperature: ``T >= 0``; a scalar, one value per segment (``[S]``), or an
        array broadcastable to ``[S, ...]`` of the rank of ``x``. Traced and
        differentiable; a concrete negative or NaN value raises ``ValueError``.
      indices_are_sorted: promise that ``segment_ids`` is sorted (faster
        scatters and gathers on some backends).

    Returns:
      Probabilities with the shape and dtype of ``x``: each segment sums to 1
      over its rows (0 for an all ``-inf`` segment).

    Example (attention of each node over its incoming edges):
      >>> import jax, jax.numpy as jnp
      >>> import jsoftmax
      >>> jnp.set_printoptions(precision=4)
      >>> h = jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])  # node features
      >>> senders = jnp.array([0, 1, 2, 0, 2])  # edge k: senders[k] -> receivers[k]
      >>> receivers = jnp.array([1, 0, 0, 2, 2])
      >>> scores = jnp.sum(h[senders] * h[receivers], -1)  # one score per edge
      >>> weights = jsoftmax.segment_softmax(scores, receivers, num_segments=3)
      >>> print(weights)
      [1.     0.2689 0.7311 0.2689 0.7311]
      >>> print(jax.ops.segment_sum(weights[:, None] * h[senders], receivers, 3))
      [[0.7311 1.    ]
       [1.     0.    ]
       [1.     0.7311]]
    """
    x, ids, num_segments, temperature = _prepare(
        x, segment_ids, num_segments, temperature, indices_are_sorted
    )
    return _segment_softmax_jit(x, ids, temperature, num_segments, indices_are_sorted)


def segment_logsumexp(
    x,
    segment_ids,
    num_segments: int | None = None,
    *,
    temperature=1.0,
    indices_are_sorted: bool = False,
) -> jax.Array:
    r"""Temperature-scaled log-sum-exp per segment, the log-normaliser of
    :func:`segment_softmax`.

    .. math::
        \mathrm{segment\_logsumexp}(x)_s = T \log \sum_{j:\ s_j = s} \exp(x_j / T)

    ``T = 0`` is the segment max. ``∂/∂x`` is :func:`segment_softmax` and
    ``∂/∂T`` its entropy. An empty or all ``-inf`` segment gives ``-inf``
    (derivative 0), one holding ``+inf`` gives ``+inf`` (derivative 0), one
    holding a NaN gives NaN.

    Args:
      x: ``[N, ...]`` values (see :func:`segment_softmax`).
      segment_ids: ``[N]`` integer segment of each row.
      num_segments: the number of segments ``S`` (see :func:`segment_softmax`).
      temperature: ``T >= 0`` as in :func:`segment_softmax`.
      indices_are_sorted: promise that ``segment_ids`` is sorted.

    Returns:
      ``[S, ...]`` in the dtype of ``x``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jsoftmax
      >>> jnp.set_printoptions(precision=4)
      >>> x = jnp.array([0.0, 0.0, 3.0, -jnp.inf])
      >>> print(jsoftmax.segment_logsumexp(x, jnp.array([0, 0, 1, 3]), 4))
      [0.6931 3.       -inf   -inf]
    """
    x, ids, num_segments, temperature = _prepare(
        x, segment_ids, num_segments, temperature, indices_are_sorted
    )
    return _segment_logsumexp_jit(x, ids, temperature, num_segments, indices_are_sorted)
