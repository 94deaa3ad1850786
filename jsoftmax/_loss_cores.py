"""The ``custom_jvp`` cores of the two softmax cross-entropies.

Both read ``z``, ``log Σ exp z`` and the row max from :mod:`jsoftmax._rows`
(so their edge handling is the normalisers'), and their rules return the
gradient ``(p - y')/T`` directly: reverse mode keeps one logits-sized tensor.
Derivatives follow log_softmax's edge table: an entry whose ``log p`` is
``-inf`` whatever ``x`` and ``T`` do (a ``-inf`` logit, a finite entry of a
``+inf`` row) adds nothing, and a row holding ``+inf`` has derivative 0.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from jax import lax
from jax.custom_derivatives import SymbolicZero

from jsoftmax import _rows


def _normalizer(x, temperature, axes):
    """``h = x/2`` widened, its row max, the temperature terms, ``z``, ``log Σ``."""
    m = _rows.half_max(x, axes)
    h = _rows.halved(x)
    temp = _rows.temperature_terms(temperature, h.dtype)
    z = _rows.scaled_logits(h, m, temp)
    return h, m, temp, z, _rows.row_sum(z, axes)


def _probabilities(z, total, m, temp):
    # 0 at dead entries and in all -inf rows.
    return jnp.exp(_rows.log_p(z, total, m, temp))


def _neg_log_p(z, total, m, temp):
    # +inf at dead entries and in all -inf rows.
    return -_rows.log_p(z, total, m, temp)


# --------------------------------------------------------------------------- #
# Probability labels
# --------------------------------------------------------------------------- #
def _xent_parts(x, labels, temperature, axes):
    _, m, temp, z, total = _normalizer(x, temperature, axes)
    neg_log_p = _neg_log_p(z, total, m, temp)  # >= 0, +inf at dead entries
    # y = 0 adds 0 even where -log p = inf; y > 0 there gives +inf.
    terms = jnp.where(labels == 0, 0, labels * neg_log_p)
    return jnp.sum(terms, axes, keepdims=True), m, z, total, neg_log_p, temp


@partial(jax.custom_jvp, nondiff_argnums=(3,))
def xent_core(x, labels, temperature, axes):
    """Per-row ``-Σ y log softmax(x/T)`` (keepdims), ``0·log 0 = 0``."""
    return _xent_parts(x, labels, temperature, axes)[0]


@partial(xent_core.defjvp, symbolic_zeros=True)
def _xent_jvp(axes, primals, tangents):
    # Own rule: gradient (Σy·p - y)/T in one tensor; finite at -inf logits where
    # the value is +inf; no 0·inf in the label or temperature directions.
    x, labels, temperature = primals
    tangent_x, tangent_labels, tangent_t = tangents
    loss, m, z, total, neg_log_p, temp = _xent_parts(x, labels, temperature, axes)
    tangent = jnp.zeros_like(loss)
    if _rows.no_tangent(tangents):
        return loss, tangent
    p = _probabilities(z, total, m, temp)
    mass = jnp.sum(labels, axes, keepdims=True)
    alive_labels = jnp.where(neg_log_p == jnp.inf, 0, labels)
    scale = _rows.derivative_scale(temperature, m)
    if not isinstance(tangent_x, SymbolicZero):
        grad = (mass * p - alive_labels) * scale
        dx = tangent_x.astype(grad.dtype)
        tangent = tangent + jnp.sum(grad * dx, axes, keepdims=True)
    if not isinstance(tangent_labels, SymbolicZero):
        # ∂/∂y = -log p, +inf at dead entries: capped at max_float so that a
        # zero tangent there contributes 0, not 0·inf = NaN.
        capped = jnp.minimum(neg_log_p, _rows.limits(z.dtype)[0])
        tangent = tangent + jnp.sum(capped * tangent_labels, axes, keepdims=True)
    if not isinstance(tangent_t, SymbolicZero):
        # d(-log p_i)/dT = (z_i - <p, z>)/T, 0 at dead entries.
        z_live = _rows.finite_or_zero(z)
        centered = jnp.sum(alive_labels * z_live, axes, keepdims=True) - mass * jnp.sum(
            p * z_live, axes, keepdims=True
        )
        tangent = tangent + scale * centered * tangent_t
    return loss, tangent


# --------------------------------------------------------------------------- #
# Integer labels
# --------------------------------------------------------------------------- #
def gather_label(values, label):
    """``values`` at each row's label (``label`` is ``[..., 1]``, in range:
    the wrapper replaces bad labels by 0 and poisons their rows)."""
    return jnp.take_along_axis(values, label, axis=-1, mode="clip")


def _int_xent_parts(x, label, live, smooth_weight, temperature, alpha):
    axes = (x.ndim - 1,)
    _, m, temp, z, total = _normalizer(x, temperature, axes)
    # The label's z by the row's own arithmetic: equal to z there bit for bit.
    # Gathered from x itself, so that only the label's entry is read.
    z_label = _rows.scaled_logits(_rows.halved(gather_label(x, label)), m, temp)
    loss = _neg_log_p(z_label, total, m, temp)
    if alpha:
        # Σ_live (α/K)(log Σ - z): +inf if a live class has a -inf logit.
        terms = jnp.where(live == 0, 0, _neg_log_p(z, total, m, temp))
        loss = (1 - alpha) * loss + smooth_weight * jnp.sum(terms, axes, keepdims=True)
    return loss, m, z, total, z_label, temp


@partial(jax.custom_jvp, nondiff_argnums=(5,))
def int_xent_core(x, label, live, smooth_weight, temperature, alpha):
    """Per-row ``-Σ y' log softmax(x/T)``, ``y' = (1-α)·onehot + smooth_weight·live``.

    ``x`` is ``[..., K]`` (masked classes already ``-inf``), ``label``
    ``[..., 1]`` in range, ``live`` the unmasked-class indicator,
    ``smooth_weight = α/K``.
    """
    return _int_xent_parts(x, label, live, smooth_weight, temperature, alpha)[0]


@partial(int_xent_core.defjvp, symbolic_zeros=True)
def _int_xent_jvp(alpha, primals, tangents):
    # Own rule: the gradient (p - y')/T without a one-hot, and the only
    # logits-sized tensor reverse mode keeps.
    x, label, live, smooth_weight, temperature = primals
    tangent_x, tangent_t = tangents[0], tangents[4]
    axes = (x.ndim - 1,)
    loss, m, z, total, z_label, temp = _int_xent_parts(
        x, label, live, smooth_weight, temperature, alpha
    )
    tangent = jnp.zeros_like(loss)
    if isinstance(tangent_x, SymbolicZero) and isinstance(tangent_t, SymbolicZero):
        return loss, tangent
    p = _probabilities(z, total, m, temp)
    # The target y' counts only where z is finite (dead entries keep z = -inf
    # whatever x and T do): one factor per row for the label.
    label_dead = _neg_log_p(z_label, total, m, temp) == jnp.inf
    label_alive = jnp.where(label_dead, 0, 1 - alpha).astype(z.dtype)

    def against_target(v):
        if x.dtype == z.dtype:
            # Reverse mode turns the gather into a scatter of one value per
            # row into the gradient, as optax does.
            picked = label_alive * gather_label(v, label)
        else:
            # A 16-bit tangent: its cotangent is formed in float32 and rounded
            # once, which the scatter cannot follow; one iota compare instead.
            classes = lax.broadcasted_iota(label.dtype, v.shape, v.ndim - 1)
            picked = label_alive * jnp.sum(
                jnp.where(classes == label, v, 0), axes, keepdims=True
            )
        if alpha:
            dead = _neg_log_p(z, total, m, temp) == jnp.inf
            spread = jnp.where((live == 0) | dead, 0, v)
            picked = picked + smooth_weight * jnp.sum(spread, axes, keepdims=True)
        return picked

    scale = _rows.derivative_scale(temperature, m)
    if not isinstance(tangent_x, SymbolicZero):
        v = tangent_x.astype(z.dtype)
        along_p = jnp.sum(p * v, axes, keepdims=True)
        tangent = tangent + scale * (along_p - against_target(v))
    if not isinstance(tangent_t, SymbolicZero):
        # dz/dT = -z/T, 0 at dead entries (p = 0 there too).
        z_live = _rows.finite_or_zero(z)
        along_p = jnp.sum(p * z_live, axes, keepdims=True)
        tangent = tangent + scale * (against_target(z_live) - along_p) * tangent_t
    return loss, tangent
