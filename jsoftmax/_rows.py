"""Row statistics and edge rules shared by every core.

One "row" is a slice of ``x`` along the reduced axes. Every core computes

* ``m``, the row max (a plain max, whose NaN handling is never relied upon);
* ``z = (x - m)/T`` with every edge of DESIGN.md folded in by selects, in the
  pass that reads ``x`` anyway (:func:`scaled_logits`);
* row sums of ``exp z``, which carry any NaN of the row: a NaN entry has a NaN
  ``z`` whatever ``m`` is, and a sum of a NaN is NaN on every backend.

How the edges fold in, with ``d = x/2 - m/2`` (never overflows, unlike
``x - m`` in a row spanning more than the float range, and ``2d == x - m``
exactly wherever ``x - m`` is representable):

=====================================  ======================================
entry                                  ``z``
=====================================  ======================================
``x == m`` (the max, ties, ``+inf``    0, or ``-inf`` when the row is all
entries of a ``+inf`` row)             ``-inf`` (``m == -inf``)
``d == -inf`` (``-inf`` logits, the    ``-inf``
finite entries of a ``+inf`` row)
``T == 0`` (``-0.0`` too) and          ``-inf``: the hard max, whatever the
``x < m``                              gap
otherwise                              ``(d·c)·(2/(T·c))``, ``c`` a power of
                                       two that keeps ``2/(T·c)`` normal for
                                       huge ``T`` (XLA turns ``/T`` into
                                       ``·(1/T)``, which flushes to 0 above
                                       ``T = 2^126`` in float32)
NaN ``x`` (or NaN ``m``)               NaN
=====================================  ======================================

At ``T = inf`` the last line gives ``0`` for every finite ``d`` (uniform over
the live entries). A negative or NaN ``T`` (possible only when traced) adds NaN
to the row sums, so the whole row is NaN.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.custom_derivatives import SymbolicZero

from jsoftmax import _validate


def limits(dtype):
    info = jnp.finfo(dtype)
    return float(info.max), float(info.tiny)


def widened(x):
    """``x`` in its compute dtype (float32 for 16-bit input), inside the passes."""
    return x.astype(_validate.compute_dtype(x.dtype))


def row_max(x, axes):
    """Max over ``axes`` (keepdims) in the compute dtype; ``-inf`` for an empty
    axis. Taken in ``x``'s own dtype (exact) and widened after."""
    init = np.asarray(-np.inf, x.dtype)
    return widened(jnp.expand_dims(lax.reduce(x, init, lax.max, axes), axes))


class Temperature(NamedTuple):
    """Per-row factors for :func:`scaled_logits` (shapes broadcast on rows)."""

    hard: jax.Array  # T == 0: the hard max
    prescale: jax.Array  # c: 1, or 2^-e for T > 2^e (e = half the max exponent)
    rate: jax.Array  # 2/(T·c), at most 2/tiny; 0 at T = inf, NaN for NaN T
    poison: jax.Array  # 0, or NaN where T < 0 or NaN


def temperature_terms(temperature, dtype) -> Temperature:
    big, tiny = limits(dtype)
    t = jnp.asarray(temperature, dtype)
    half_exponent = jnp.finfo(dtype).maxexp // 2
    huge = t > 2.0**half_exponent
    prescale = jnp.where(huge, 2.0**-half_exponent, 1).astype(dtype)
    rate = 1 / jnp.maximum(t * prescale * 0.5, tiny)
    poison = jnp.where(t >= 0, 0, jnp.nan).astype(dtype)
    return Temperature(t == 0, prescale, rate, poison)


def scaled_logits(x, m, temp: Temperature):
    """``z = (x - m)/T`` with the edges of the module doc, elementwise in ``x``.

    ``x`` and ``m`` in the compute dtype; ``m`` the row max (keepdims) or, for
    one gathered entry per row (the losses' label), that row's max: the same
    arithmetic then gives the row's own ``z`` bit for bit.
    """
    half_gap = x * 0.5 - m * 0.5
    z = (half_gap * temp.prescale) * temp.rate
    dead = (half_gap == -jnp.inf) | (temp.hard & (x < m))
    top = jnp.where(m == -jnp.inf, -jnp.inf, 0).astype(x.dtype)
    return jnp.where(x == m, top, jnp.where(dead, -jnp.inf, z))


def split_sums(x, m, z, temp: Temperature, axes):
    """``Σ exp z`` over the row's max entries and over the rest (keepdims).

    The max entries have ``exp z = 1`` exactly (0 in an all ``-inf`` row), so
    ``log Σ = log1p((top - 1) + rest)`` keeps the digits of a small ``rest``
    that ``log(1 + rest)`` rounds away (log-softmax of a dominant entry is a
    tiny negative number, not 0). ``rest`` carries NaN and the poison.
    """
    at_max = x == m
    e = jnp.exp(z)
    top = jnp.sum(jnp.where(at_max, e, 0), axes, keepdims=True)
    rest = jnp.sum(jnp.where(at_max, 0, e), axes, keepdims=True)
    return top, rest + temp.poison


def log_total(top, rest):
    """``log Σ exp z`` from :func:`split_sums`; 0 in an all ``-inf``/empty row
    (so ``z - log Σ`` stays ``-inf`` there and ``T·log Σ`` is 0)."""
    empty = (top + rest) == 0
    return jnp.where(empty, 0, jnp.log1p((top - 1) + rest))


def inverse_total(total):
    """``1/Σ exp z``, 1 in an all ``-inf``/empty row (whose ``exp z`` are 0)."""
    return 1 / jnp.where(total == 0, 1, total)


# --------------------------------------------------------------------------- #
# Derivatives
# --------------------------------------------------------------------------- #
def derivative_scale(temperature, m):
    """``1/T`` per row for the derivatives of ``z``; 0 at ``T = 0`` (and at
    ``T = inf``, where ``1/T`` is 0) and on rows holding ``+inf``, whose
    probabilities sit on the ``+inf`` entries whatever the others do.

    The double select keeps ``1/T`` differentiable at ``T = 0`` (second order).
    """
    hard = lax.stop_gradient(temperature) == 0
    inverse = 1 / jnp.where(hard, 1, temperature)
    return jnp.where(hard | (m == jnp.inf), 0, inverse)


def finite_or_zero(log_p):
    """``log p`` with ``-inf`` replaced by 0 (NaN stays): ``p·log p`` and
    ``log p · dT`` stay finite where ``p = 0``."""
    return jnp.where(log_p == -jnp.inf, 0, log_p)


def direction(log_p, tangent_x, tangent_t, dtype):
    """The tangent of ``x/T`` in units of ``1/T``: ``dx - log p·dT``.

    ``log p`` stands in for ``z`` because every tangent map it feeds is shift
    invariant. Symbolic zeros are skipped.
    """
    if not isinstance(tangent_x, SymbolicZero):
        tangent_x = tangent_x.astype(dtype)
    if isinstance(tangent_t, SymbolicZero):
        return tangent_x
    along_t = finite_or_zero(log_p) * tangent_t.astype(dtype)
    return -along_t if isinstance(tangent_x, SymbolicZero) else tangent_x - along_t


def no_tangent(tangents):
    return all(isinstance(t, SymbolicZero) for t in tangents)


def log_softmax_tangent(u, y, axes):
    """``u - <p, u>`` along ``axes`` with the dominant entry's tail kept.

    Where one entry ``k`` has ``y_k > 1/2``, its rounded ``y_k`` loses the tail
    ``R = Σ_{j≠k} y_j`` (``softmax([40, 0])`` has ``y_0 = 1``, ``R = 4.25e-18``)
    and ``u_k - <y, u>`` cancels. The map is written with ``R`` in place of
    ``1 - y_k``, as a diagonal and two rank-one terms:

    ``d_k = R·u_k - Σ_{j≠k} y_j u_j``, ``d_i = u_i - Σ_{j≠k} y_j u_j - (1-R)·u_k``,

    so that neither it nor its transpose (reverse mode:
    ``ct_k = R·g_k - (1-R)·Σ_{i≠k} g_i``, ``ct_j = g_j - y_j·Σg``) subtracts two
    numbers near 1. Without a dominant entry (ties included) it is the plain
    ``u - <y, u>``.
    """
    dominant = y > 0.5
    rest = jnp.where(dominant, 0, y)
    rest_mass = jnp.sum(rest, axes, keepdims=True)
    u_dominant = jnp.sum(jnp.where(dominant, u, 0), axes, keepdims=True)
    along_rest = jnp.sum(rest * u, axes, keepdims=True)
    diagonal = jnp.where(dominant, rest_mass, 1)
    to_dominant = jnp.where(dominant, 0, (1 - rest_mass) * u_dominant)
    return (diagonal * u - along_rest) - to_dominant
