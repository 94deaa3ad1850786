"""The ``custom_jvp`` cores of the two softmax cross-entropies.

Both run through :func:`jsoftmax._rows.with_logits` (so their edge handling is
the normalisers', and on CPU they take the plain program when it is exact),
and their rules hand over the gradient ``(p - y')/T`` directly: reverse mode
keeps one logits-sized tensor. Derivatives follow log_softmax's edge table: an
entry whose ``log p`` is ``-inf`` whatever ``x`` and ``T`` do (a ``-inf``
logit, a finite entry of a ``+inf`` row) adds nothing, and a row holding
``+inf`` has derivative 0. ``p = exp z / Σ``, but for probability labels in the
general program (see there); a row that plain arithmetic handles keeps the plain
program's bits whatever the other rows hold.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from jax import lax
from jax.custom_derivatives import SymbolicZero

from jsoftmax import _rows


def _neg_log_p(z, total, dead):
    # +inf at dead entries and in all -inf rows.
    return -_rows.log_p(z, total, dead)


# --------------------------------------------------------------------------- #
# Probability labels
# --------------------------------------------------------------------------- #
def _xent_rows(labels, temperature, axes, wants):
    """``finish`` for :func:`jsoftmax._rows.with_logits`: the per-row loss and,
    for each name in ``wants``, what the rule needs: ``"x"`` the gradient
    ``(Σy·p - y)/T``, ``"labels"`` ``-log p`` capped at max_float, ``"t"`` the
    per-row ``d loss/dT``. Plain arithmetic (``dead=None``) skips the selects:
    a ``-inf`` logit there makes the loss NaN (``y = 0``) or ``+inf``, and the
    row is recomputed by the general program."""

    def finish(m, temp, z, dead):
        regular = dead is None
        e = jnp.exp(z)
        total = jnp.sum(e, axes, keepdims=True)
        if regular:
            neg_log_p = jnp.log(total) - z
            terms = labels * neg_log_p
        else:
            neg_log_p = _neg_log_p(z, total, dead)  # >= 0, +inf at dead entries
            # y = 0 adds 0 even where -log p = inf; y > 0 there gives +inf.
            terms = jnp.where(labels == 0, 0, labels * neg_log_p)
        out = {"loss": jnp.sum(terms, axes, keepdims=True)}
        if not wants:
            return out
        # p = exp(-(-log p)), which XLA:CPU fuses into one YNNPACK kernel with
        # the gradient from 4096 rows on (e/Σ there: 0.8-0.9x of optax against
        # 1.3-1.5x at 8192x1024 and 4096x32768 float32) and an H100 into its
        # softmax kernels (e/Σ: one more kernel, 1.4x the bytes at 32x1000).
        # Under 4096 rows XLA:CPU leaves the row arithmetic out of YNNPACK and
        # then takes that exp inside a YNNPACK kernel, far slower than its own
        # loop: there the plain program (CPU only) takes e/Σ, exp z written
        # out once (1024x131072: 0.65x -> 0.84x of optax). A row that is not
        # flagged keeps the plain program's bits either way.
        few_rows = total.size < _rows.YNN_MIN_ELEMENTS
        p = e / total if regular and few_rows else jnp.exp(-neg_log_p)
        mass = jnp.sum(labels, axes, keepdims=True)
        if regular:
            alive_labels, z_live = labels, z
        else:
            alive_labels = jnp.where(neg_log_p == jnp.inf, 0, labels)
            z_live = _rows.finite_or_zero(z)
        scale = _rows.derivative_scale(temperature, m)
        if "x" in wants:
            out["x"] = (mass * p - alive_labels) * scale
        if "labels" in wants:
            # +inf at dead entries capped, so that a zero tangent there adds 0.
            out["labels"] = jnp.minimum(neg_log_p, _rows.limits(z.dtype)[0])
        if "t" in wants:
            # d(-log p_i)/dT = (z_i - <p, z>)/T, 0 at dead entries.
            along_labels = jnp.sum(alive_labels * z_live, axes, keepdims=True)
            along_p = jnp.sum(p * z_live, axes, keepdims=True)
            out["t"] = scale * (along_labels - mass * along_p)
        return out

    return finish


def _xent(x, labels, temperature, axes, wants=()):
    finish = _xent_rows(labels, temperature, axes, wants)
    return _rows.with_logits(
        x, temperature, axes, finish, lambda out: ~jnp.isfinite(out["loss"])
    )


@partial(jax.custom_jvp, nondiff_argnums=(3,))
def xent_core(x, labels, temperature, axes):
    """Per-row ``-Σ y log softmax(x/T)`` (keepdims), ``0·log 0 = 0``."""
    return _xent(x, labels, temperature, axes)["loss"]


@partial(xent_core.defjvp, symbolic_zeros=True)
def _xent_jvp(axes, primals, tangents):
    # Own rule: gradient (Σy·p - y)/T in one tensor; finite at -inf logits where
    # the value is +inf; no 0·inf in the label or temperature directions.
    x, labels, temperature = primals
    names = ("x", "labels", "t")
    wants = tuple(
        n
        for n, t in zip(names, tangents, strict=True)
        if not isinstance(t, SymbolicZero)
    )
    out = _xent(x, labels, temperature, axes, wants)
    loss = out["loss"]
    tangent = jnp.zeros_like(loss)
    if "x" in wants:
        dx = tangents[0].astype(loss.dtype)
        tangent = tangent + jnp.sum(out["x"] * dx, axes, keepdims=True)
    if "labels" in wants:
        tangent = tangent + jnp.sum(out["labels"] * tangents[1], axes, keepdims=True)
    if "t" in wants:
        tangent = tangent + out["t"] * tangents[2]
    return loss, tangent


# --------------------------------------------------------------------------- #
# Integer labels
# --------------------------------------------------------------------------- #
def gather_label(values, label):
    """``values`` at each row's label (``label`` is ``[..., 1]``, in range:
    the wrapper replaces bad labels by 0 and poisons their rows)."""
    return jnp.take_along_axis(values, label, axis=-1, mode="clip")


def _int_xent_rows(x, label, live, smooth_weight, temperature, alpha, wants):
    """``finish`` for :func:`jsoftmax._rows.with_logits`: the per-row loss and,
    for each name in ``wants``, what the rule needs: ``"x"`` the gradient
    ``p/T`` less the smoothing target, with ``"label"`` the per-row weight
    ``(1-α)/T`` of the label's entry (0 where the label's ``log p`` is
    ``-inf``), and ``"t"`` the per-row ``d loss/dT``. Plain arithmetic
    (``dead=None``) skips the selects and takes ``p`` from the summed ``exp z``
    (one exponential per entry, as optax): a dead label or, with smoothing,
    any ``-inf`` logit makes its loss NaN or ``+inf``, and the row is
    recomputed by the general program."""
    axes = (x.ndim - 1,)
    # The label's z by the row's own arithmetic: equal to z there bit for bit.
    # Gathered from x itself, so that only the label's entry is read.
    h_label = _rows.halved(gather_label(x, label))

    def finish(m, temp, z, dead):
        regular = dead is None
        e = jnp.exp(z)
        total = jnp.sum(e, axes, keepdims=True)
        if regular:
            log_total = jnp.log(total)
            z_label = (h_label - m) * temp.rate
            label_loss = log_total - z_label
        else:
            z_label = _rows.scaled_logits(h_label, m, temp)
            dead_label = _rows.dead_entries(h_label)
            label_loss = _neg_log_p(z_label, total, dead_label)
        loss = label_loss
        if alpha:
            if regular:
                smoothing = live * (log_total - z)
            else:
                # Σ_live (α/K)(log Σ - z): +inf if a live class has a -inf logit.
                smoothing = jnp.where(live == 0, 0, _neg_log_p(z, total, dead))
            smoothed = smooth_weight * jnp.sum(smoothing, axes, keepdims=True)
            loss = (1 - alpha) * loss + smoothed
        out = {"loss": loss}
        if not wants:
            return out
        # p = exp z / Σ in both programs, so that a row's gradient is the same
        # bits whichever program ran (a NaN row elsewhere sends all to the
        # general one).
        p = _rows.normalized(e, total, dead)
        scale = _rows.derivative_scale(temperature, m)
        # The target y' counts only where z is finite (dead entries keep
        # z = -inf whatever x and T do): one factor per row for the label.
        label_alive = jnp.where(label_loss == jnp.inf, 0, 1 - alpha).astype(z.dtype)
        # Plain rows have no -inf logit where smoothing spreads (the loss
        # would be NaN or +inf), but may have one elsewhere.
        if regular:
            spread = live
        else:
            dead_or_masked = _neg_log_p(z, total, dead) == jnp.inf  # rows too
            spread = jnp.where((live == 0) | dead_or_masked, 0, live)
        if "x" in wants:
            # The gradient is out["x"]·out["x_scale"]: without smoothing the
            # plain program hands over exp z and scale/Σ, so that the
            # cotangent's pass forms the product (one pass, as optax's).
            if alpha:
                out["x"] = scale * (p - smooth_weight * spread)
                out["x_scale"] = jnp.ones_like(total)
            else:
                # An all -inf row (e = 1 there) zeroed in the per-row factor,
                # so that the gradient's pass does not read x again.
                x_scale = scale / total
                if not regular:
                    # 0·x_scale: NaN in a NaN row (see _rows.normalized).
                    x_scale = jnp.where(_rows.dead_row(m), 0 * x_scale, x_scale)
                out["x"], out["x_scale"] = e, x_scale
            out["label"] = scale * label_alive
        if "t" in wants:
            # dz/dT = -z/T, 0 at dead entries (p = 0 there too).
            z_live = _rows.finite_or_zero(z)
            target = label_alive * _rows.finite_or_zero(z_label)
            if alpha:
                along_spread = jnp.sum(spread * z_live, axes, keepdims=True)
                target = target + smooth_weight * along_spread
            along_p = jnp.sum(p * z_live, axes, keepdims=True)
            out["t"] = scale * (target - along_p)
        return out

    return finish


def _int_xent(x, label, live, smooth_weight, temperature, alpha, wants=()):
    finish = _int_xent_rows(x, label, live, smooth_weight, temperature, alpha, wants)
    axes = (x.ndim - 1,)
    return _rows.with_logits(
        x, temperature, axes, finish, lambda out: ~jnp.isfinite(out["loss"])
    )


@partial(jax.custom_jvp, nondiff_argnums=(5,))
def int_xent_core(x, label, live, smooth_weight, temperature, alpha):
    """Per-row ``-Σ y' log softmax(x/T)``, ``y' = (1-α)·onehot + smooth_weight·live``.

    ``x`` is ``[..., K]`` (masked classes already ``-inf``), ``label``
    ``[..., 1]`` in range, ``live`` the unmasked-class indicator,
    ``smooth_weight = α/K``.
    """
    return _int_xent(x, label, live, smooth_weight, temperature, alpha)["loss"]


@partial(int_xent_core.defjvp, symbolic_zeros=True)
def _int_xent_jvp(alpha, primals, tangents):
    # Own rule: the gradient (p - y')/T without a one-hot, and the only
    # logits-sized tensor reverse mode keeps.
    x, label, live, smooth_weight, temperature = primals
    tangent_x, tangent_t = tangents[0], tangents[4]
    wants = tuple(
        name
        for name, t in (("x", tangent_x), ("t", tangent_t))
        if not isinstance(t, SymbolicZero)
    )
    out = _int_xent(x, label, live, smooth_weight, temperature, alpha, wants)
    loss = out["loss"]
    tangent = jnp.zeros_like(loss)
    if "x" in wants:
        v = tangent_x.astype(loss.dtype)
        axes = (x.ndim - 1,)
        if x.dtype == loss.dtype:
            # Reverse mode turns the gather into a scatter of one value per
            # row into the gradient, as optax does.
            at_label = gather_label(v, label)
        else:
            # A 16-bit tangent: its cotangent is formed in float32 and rounded
            # once, which the scatter cannot follow; one iota compare instead.
            classes = lax.broadcasted_iota(label.dtype, v.shape, v.ndim - 1)
            at_label = jnp.sum(jnp.where(classes == label, v, 0), axes, keepdims=True)
        along_p = jnp.sum(out["x"] * out["x_scale"] * v, axes, keepdims=True)
        tangent = tangent + (along_p - out["label"] * at_label)
    if "t" in wants:
        tangent = tangent + out["t"] * tangent_t
    return loss, tangent
