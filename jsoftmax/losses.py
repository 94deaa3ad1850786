r"""Softmax cross-entropy that never returns NaN by accident, and its sigmoid case.

Three public losses, each a thin wrapper over a private ``custom_jvp`` core:

* :func:`softmax_cross_entropy` with probability labels;
* :func:`softmax_cross_entropy_with_integer_labels` (no one-hot is ever built:
  the label's logit is gathered, label smoothing is a row sum);
* :func:`sigmoid_binary_cross_entropy`.

The cores' rules return the gradient ``(p - y')/T`` directly, so reverse mode
keeps one logits-sized tensor (optax's ``safe_softmax_cross_entropy`` keeps
three). NaN appears only where DESIGN.md asks for it: a NaN logit, an
out-of-range label or a masked true class poison their own example, value and
gradient, and nothing else.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.custom_derivatives import SymbolicZero

from jsoftmax import _validate
from jsoftmax.softmax import _alive
from jsoftmax.softmax import _by_temperature
from jsoftmax.softmax import _finite_or_zero
from jsoftmax.softmax import _general_z
from jsoftmax.softmax import _limits
from jsoftmax.softmax import _row_derivative_scale
from jsoftmax.softmax import _scaled_logits
from jsoftmax.softmax import _shrink
from jsoftmax.softmax import _widened

__all__ = [
    "sigmoid_binary_cross_entropy",
    "softmax_cross_entropy",
    "softmax_cross_entropy_with_integer_labels",
]

_REDUCTIONS = ("none", "mean", "sum")


# --------------------------------------------------------------------------- #
# Shared pieces
# --------------------------------------------------------------------------- #
def _normalizer_value(x, temperature, plain_max, label, axes, ordinary):
    """See :func:`_log_normalizer`; ``ordinary`` picks the arithmetic."""
    x = _widened(x)
    plain_max = plain_max.astype(x.dtype)
    big, _ = _limits(x.dtype)
    if ordinary:
        # Every T ordinary and no row holding +inf or NaN: jax.nn's arithmetic,
        # with all -inf rows kept out of -inf - (-inf) by the per-row clip.
        row_max = jnp.maximum(plain_max, -big)
        inverse_t = 1 / temperature
        z = (x - row_max) * inverse_t
        z_label = (_gather_label(x, label) - row_max) * inverse_t
    else:
        z, row_max = _scaled_logits(x, temperature, axes, raw_max=plain_max)
        z_label = _label_logit_z(x, label, temperature, row_max)
    # The raw Σ exp z leaves the branch (see _log_normalizer).
    return (z, *_exp_and_sum(z, axes), z_label)


def _exact_normalizer_value(x, temperature, plain_max, axes, ordinary):
    """:func:`_normalizer_value` for probability labels, by temperature only:
    ``exact_z`` keeps ``z`` at ``-inf`` at the finite entries of ``+inf`` rows
    on the cheap branch too (see :func:`jsoftmax.softmax._scaled_logits`)."""
    x = _widened(x)
    z, _ = _scaled_logits(
        x,
        temperature,
        axes,
        raw_max=plain_max.astype(x.dtype),
        ordinary=ordinary,
        exact_z=True,
    )
    return _normalized(z, *_exp_and_sum(z, axes))


def _exp_and_sum(z, axes):
    unnormalized = jnp.exp(z)
    return unnormalized, jnp.sum(unnormalized, axes, keepdims=True)


def _normalized(z, unnormalized, total):
    # total >= 1 but in all -inf rows (see jsoftmax.softmax._softmax_core).
    # p = unnormalized·inverse is left to the callers: a rule that scales p by
    # a per-row factor c then spells it unnormalized·(inverse·c), one multiply
    # per entry instead of two (XLA does not fold the two per-row factors).
    # max(total, 1) also gives an all -inf row log Σ = 0, so that -log p is
    # 0 - (-inf) = +inf there (log_softmax's -inf), not -inf - (-inf) = NaN.
    total = jnp.maximum(total, 1)
    return z, jnp.log(total), (unnormalized, 1 / total)


def _log_normalizer(x, temperature, axes, label=None):
    """``z = (x - max)/T``, ``log Σ exp z`` (keepdims), ``p = softmax`` as the
    pair ``(exp z, 1/Σ exp z)``, and with ``label`` (``[..., 1]``) the label's
    ``z``, computed with the row's own arithmetic.

    Without ``label`` (probability labels): the temperature-only cond of
    :func:`jsoftmax.softmax._by_temperature` with exact ``z``. With it, a
    ``lax.cond`` on one scalar picks the arithmetic. If every ``T`` is
    ordinary (as in :func:`jsoftmax.softmax._by_temperature`) and no row holds
    ``+inf`` or NaN (from the plain row max, a pass of its own anyway), ``z`` is
    ``(x - max)/T``, two operations per entry as in optax; otherwise the general
    arithmetic of :func:`jsoftmax.softmax._scaled_logits`, six (measured: integer
    CE value_and_grad at 512x32768 float32 on CPU, 0.94x -> 1.01x of optax).
    Both give the same ``z`` bit for bit where both apply (both overflow to
    ``-inf`` where ``x - max < -max_float``). A NaN row may take either branch:
    XLA:CPU's fused max skips NaN in rows of 2048 entries or more (see
    :func:`jsoftmax.softmax._opaque`). Both give it NaN: the cheap ``z``
    carries the NaN into ``Σ exp z``.
    """
    # x may be 16-bit: its (exact) max is taken narrow, and each branch widens
    # x inside its own passes. Widened out here, the float32 copy would be
    # written out as the cond's operand (bfloat16 integer CE: 8 instead of
    # 6 N·s, and 1.5x -> 1.0x of optax).
    plain_max = jnp.max(x, axes, keepdims=True)
    if label is None:
        # Probability labels read z at every class: there the cond on the row
        # max (x-dependent, so never resolved while compiling) made XLA:CPU
        # write z and exp z out of the branch (float32 CE 0.86x -> 0.64x of
        # optax at 4096x32768). They keep the temperature-only cond instead.
        def value(x, temperature, axes, ordinary):
            return _exact_normalizer_value(x, temperature, plain_max, axes, ordinary)

        return _by_temperature(value, x, temperature, axes)
    dtype = _validate.compute_dtype(x.dtype)
    big, _ = _limits(dtype)
    t = jnp.asarray(temperature, dtype)
    # One max over the row maxes, behind a barrier: without it XLA folds the
    # two maxes into a second pass over x; jnp.all(plain_max < inf) took a
    # compare pass and a two-stage reduction (896 more bytes at 512 rows).
    ordinary = jnp.all((t >= 4 / big) & (t <= big / 4096)) & (
        jnp.max(lax.optimization_barrier(plain_max)) < jnp.inf
    )
    # The branches return the raw Σ exp z, and log Σ and 1/Σ are taken here:
    # taken inside, each was written out of the cond and read back (integer
    # CE value_and_grad at 512x32768 float32: 4096 fewer bytes accessed).
    z, unnormalized, total, z_label = lax.cond(
        ordinary,
        partial(_normalizer_value, axes=axes, ordinary=True),
        partial(_normalizer_value, axes=axes, ordinary=False),
        x,
        temperature,
        plain_max,
        label,
    )
    return _normalized(z, unnormalized, total) + (z_label,)


def _finite_tangent(x, tangent_x):
    """``dx`` with 0 where ``x`` is infinite: ``±inf + dx`` is still ``±inf``.

    The indicator ``max(1 - min(|x|·tiny, max)·1e-30, 0)`` is 1 for finite ``x``
    and 0 for ``±inf`` (the min keeps XLA from folding ``tiny·1e-30`` into 0).
    Taken from ``x``, not ``z``: the same indicator on ``z`` (which also catches
    entries with ``x - max < -max_float``) made XLA:CPU write out one more
    logits-sized array (probability CE value_and_grad at 4096x32768 float32:
    14 instead of 12 N·s, 0.91x -> 0.85x of optax).
    """
    x = _widened(x)
    big, tiny = _limits(x.dtype)
    # -0.0, not 0: a constant of its own. XLA:CPU would otherwise share one
    # broadcast 0 between fusions and write it out as a logits-sized array.
    finite = jnp.maximum(1 - jnp.minimum(jnp.abs(x) * tiny, big) * 1e-30, -0.0)
    return tangent_x * finite


def _check_label_smoothing(label_smoothing):
    if not _validate.is_concrete(label_smoothing):
        raise TypeError("label_smoothing must be a Python float, not a traced value")
    alpha = float(label_smoothing)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {alpha!r}")
    return alpha


def _check_reduction(reduction):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    return reduction


def _reduce(loss, weight, reduction):
    """``"none"``: per example; ``"sum"``; ``"mean"``: ``Σ loss / Σ weight``.

    ``loss`` already carries its weight; ``weight`` is 0 for examples left out of
    the mean (ignored labels, fully masked rows).
    """
    if reduction == "none":
        return loss
    if reduction == "sum":
        return jnp.sum(loss)
    return jnp.sum(loss) / jnp.sum(weight)


# --------------------------------------------------------------------------- #
# Probability labels
# --------------------------------------------------------------------------- #
def _xent_parts(x, labels, temperature, axes):
    """The per-row loss with the pieces its rule reuses: ``z``, ``-log p``, ``p``
    (as ``(exp z, 1/Σ exp z)``)."""
    z, log_total, probs = _log_normalizer(x, temperature, axes)
    neg_log_p = log_total - z  # >= 0, +inf at -inf logits
    # y = 0 adds 0 even where -log p = inf; y > 0 there gives +inf.
    terms = jnp.where(labels == 0, 0, labels * neg_log_p)
    return jnp.sum(terms, axes, keepdims=True), z, neg_log_p, probs


@partial(jax.custom_jvp, nondiff_argnums=(3,))
def _xent_core(x, labels, temperature, axes):
    """Per-row ``-Σ y log softmax(x/T)`` (keepdims), ``0·log 0 = 0``."""
    return _xent_parts(x, labels, temperature, axes)[0]


@partial(_xent_core.defjvp, symbolic_zeros=True)
def _xent_jvp(axes, primals, tangents):
    # Own rule: gradient (Σy·p - y)/T in one tensor; finite at -inf logits where
    # the value is +inf; no 0·inf in the label or temperature directions.
    x, labels, temperature = primals
    tangent_x, tangent_labels, tangent_t = tangents
    loss, z, neg_log_p, (unnormalized, inverse) = _xent_parts(
        x, labels, temperature, axes
    )
    tangent = jnp.zeros_like(loss)
    mass = jnp.sum(labels, axes, keepdims=True)
    # Dead entries add nothing (see _int_xent_jvp): 0 on +inf rows (a loss of
    # log k or +inf whatever the entries do) from the per-row scale, whose row
    # max XLA shares with _log_normalizer's, and 0 at -inf logits from
    # _finite_tangent (p = 0 there).
    scale = _row_derivative_scale(x, temperature, axes)
    if not isinstance(tangent_x, SymbolicZero):
        grad = unnormalized * (mass * inverse * scale) - labels * scale
        tangent = tangent + jnp.sum(
            grad * _finite_tangent(x, tangent_x), axes, keepdims=True
        )
    if not isinstance(tangent_labels, SymbolicZero):
        # ∂/∂y = -log p, +inf at -inf logits: capped at max_float so that a zero
        # tangent there contributes 0, not 0·inf = NaN.
        big, _ = _limits(z.dtype)
        capped = jnp.minimum(neg_log_p, big)
        tangent = tangent + jnp.sum(capped * tangent_labels, axes, keepdims=True)
    if not isinstance(tangent_t, SymbolicZero):
        # d(-log p_i)/dT = (z_i - <p, z>)/T, 0 at dead entries (p = 0 there).
        z_live = _finite_or_zero(z)
        centered = jnp.sum(labels * z_live, axes, keepdims=True) - (
            mass * inverse
        ) * jnp.sum(unnormalized * z_live, axes, keepdims=True)
        tangent = tangent + scale * centered * tangent_t
    return loss, tangent


def softmax_cross_entropy(
    logits,
    labels,
    axis: _validate.Axis = -1,
    where=None,
    *,
    temperature=1.0,
    label_smoothing: float = 0.0,
    reduction: str = "none",
) -> jax.Array:
    r"""Cross-entropy between probability labels and ``softmax(logits / T)``.

    .. math::
        \ell = -\sum_i y'_i \log \mathrm{softmax}(x / T)_i, \qquad
        y' = (1 - α) y + α / K

    with ``K`` the number of unmasked classes. Positional arguments match
    :func:`optax.softmax_cross_entropy`. A term with ``y'_i = 0`` adds 0 even at a
    ``-inf`` logit (optax returns NaN for logits ``[0, -inf, 1]``, labels
    ``[.5, 0, .5]``); ``y'_i > 0`` at a ``-inf`` logit gives ``+inf`` with a
    finite gradient: an entry whose ``log p`` is ``-inf`` whatever ``x`` and
    ``T`` do (a ``-inf`` logit, a finite entry of a ``+inf`` row) adds nothing to
    the derivatives in ``logits`` and ``temperature``, and a row holding ``+inf``
    has derivative 0 (log_softmax's edge table). One exception, in rows that
    span more than the float range: an entry with ``x - max < -max_float`` has
    ``log p = -inf`` but keeps the gradient ``-y/T`` in ``logits``. An all
    ``-inf`` row that is not masked gives ``+inf`` (0 without label mass). The
    derivative with respect to ``labels`` is ``-log p``, capped at the largest
    float where ``p = 0``.

    Args:
      logits: ``[..., K]`` scores; 16-bit inputs are computed in float32.
      labels: probabilities of the same shape (rows usually sum to 1).
      axis: the class axis or axes.
      where: optional boolean mask of the classes that exist in each row;
        masked classes get no label mass from smoothing. Label mass on a masked
        class gives ``+inf``.
      temperature: ``T >= 0`` as in :func:`jsoftmax.softmax`; differentiable.
      label_smoothing: ``α`` in ``[0, 1]`` (a Python float).
      reduction: ``"none"`` (per example), ``"mean"`` (over examples that have
        at least one unmasked class) or ``"sum"``.

    Returns:
      The loss in float32 (float64 for float64 logits): per example, with the
      class axes removed, or a scalar.

    Example:
      >>> import jax.numpy as jnp
      >>> import jsoftmax
      >>> jnp.set_printoptions(precision=4)
      >>> logits = jnp.array([[0.0, -jnp.inf, 1.0], [2.0, 1.0, 0.0]])
      >>> labels = jnp.array([[0.5, 0.0, 0.5], [1.0, 0.0, 0.0]])
      >>> print(jsoftmax.softmax_cross_entropy(logits, labels))
      [0.8133 0.4076]

    References:
      Szegedy et al., *Rethinking the Inception Architecture for Computer
      Vision*, 2016 (label smoothing).
    """
    alpha = _check_label_smoothing(label_smoothing)
    reduction = _check_reduction(reduction)
    logits = _validate.as_float_array(logits, "logits")
    labels = _validate.as_float_array(labels, "labels")
    if labels.shape != logits.shape:
        raise ValueError(
            f"labels of shape {labels.shape} must have the shape of logits "
            f"{logits.shape}"
        )
    axes = _validate.normalize_axes(axis, logits.ndim)
    dtype = _validate.compute_dtype(logits.dtype)
    temperature = _validate.row_parameter(
        temperature, logits.shape, axes, dtype, "temperature"
    )
    mask = _validate.where_mask(where, logits.shape)
    return _xent_jit(logits, labels, temperature, mask, axes, alpha, reduction)


@partial(jax.jit, static_argnums=(4, 5, 6))
def _xent_jit(logits, labels, temperature, mask, axes, alpha, reduction):
    dtype = _validate.compute_dtype(logits.dtype)
    x = logits  # in its own dtype: the core widens it (see _log_normalizer)
    y = labels.astype(dtype)
    if mask is not None:
        x = jnp.where(mask, x, -jnp.inf)
    # In the compute dtype: counted in bfloat16, 1001 classes would be 1000.
    live = jnp.ones(x.shape, dtype) if mask is None else mask.astype(dtype)
    count = jnp.sum(live, axes, keepdims=True)
    if alpha:
        y = (1 - alpha) * y + alpha * live / jnp.maximum(count, 1)
    loss = _xent_core(x, y, temperature, axes)
    kept = (count > 0).astype(dtype)
    # A row with no class at all has no loss (and is left out of "mean").
    loss = jnp.where(count > 0, loss, 0)
    loss, kept = jnp.squeeze(loss, axes), jnp.squeeze(kept, axes)
    return _reduce(loss, kept, reduction)


# --------------------------------------------------------------------------- #
# Integer labels
# --------------------------------------------------------------------------- #
def _gather_label(values, label):
    """``values`` at each row's label (``label`` is ``[..., 1]``).

    The labels reach the core as given: the wrapper poisons a row whose label
    is out of range (NaN) or ignored (0), so whatever the gather reads there
    is never seen. ``mode="clip"`` clamps the class index in the gather and in
    its transpose, the scatter, so that a bad row reads and writes inside its
    own row only (``promise_in_bounds`` would rely on XLA's current handling
    of a broken promise; same bytes). Sanitising the labels first cost a pass
    over them (integer CE value_and_grad at 512x32768 float32: 4096 more bytes
    accessed).
    """
    return jnp.take_along_axis(values, label, axis=-1, mode="clip")


def _label_logit_z(x, label, temperature, row_max):
    """``z`` at the label, from the gathered logit (the general arithmetic of
    :func:`jsoftmax.softmax._scaled_logits`, bit for bit)."""
    x_label = _gather_label(x, label)
    return _general_z(_shrink(x_label), row_max, temperature)


def _int_xent_parts(x, label, live, smooth_weight, temperature, alpha):
    """The per-row loss with the pieces its rule reuses: ``z``, ``p`` (as
    ``(exp z, 1/Σ exp z)``) and the label's ``z``."""
    axes = (x.ndim - 1,)
    z, log_total, probs, z_label = _log_normalizer(x, temperature, axes, label)
    loss = log_total - z_label
    if alpha:
        loss = (1 - alpha) * loss + _smoothing_term(
            z, log_total, live, smooth_weight, axes
        )
    return loss, z, probs, z_label


@partial(jax.custom_jvp, nondiff_argnums=(5,))
def _int_xent_core(x, label, live, smooth_weight, temperature, alpha):
    """Per-row ``-Σ y' log softmax(x/T)``, ``y' = (1-α)·onehot + smooth_weight·live``.

    ``x`` is ``[..., K]`` (masked classes already ``-inf``), ``label`` ``[..., 1]``
    (out of range only on rows the wrapper poisons: see :func:`_gather_label`),
    ``live`` the unmasked-class indicator, ``smooth_weight = α/K``.
    """
    return _int_xent_parts(x, label, live, smooth_weight, temperature, alpha)[0]


def _smoothing_term(z, log_total, live, smooth_weight, axes):
    # Σ_live (α/K)(log Σ - z): +inf if a live class has a -inf logit.
    terms = jnp.where(live == 0, 0, log_total - z)
    return smooth_weight * jnp.sum(terms, axes, keepdims=True)


@partial(_int_xent_core.defjvp, symbolic_zeros=True)
def _int_xent_jvp(alpha, primals, tangents):
    # Own rule: the gradient (p - y')/T without a one-hot, and the only
    # logits-sized tensor reverse mode keeps.
    x, label, live, smooth_weight, temperature = primals
    tangent_x, tangent_t = tangents[0], tangents[4]
    axes = (x.ndim - 1,)
    loss, z, (unnormalized, inverse), z_label = _int_xent_parts(
        x, label, live, smooth_weight, temperature, alpha
    )
    tangent = jnp.zeros_like(loss)
    if isinstance(tangent_x, SymbolicZero) and isinstance(tangent_t, SymbolicZero):
        return loss, tangent

    def along_p(v):
        # <p, v> as (1/Σ)·<exp z, v>: reverse mode then scales exp z by one
        # per-row factor (see _normalizer_value).
        return inverse * jnp.sum(unnormalized * v, axes, keepdims=True)

    # Dead entries (z = -inf: -inf logits, the finite entries of a +inf row)
    # keep z = -inf whatever x and T do, so they add nothing to any derivative
    # (as log_softmax's derivatives are 0 there): the target y' counts only
    # where z is finite. One factor per row for the label; per entry only for
    # the smoothing mass.
    label_alive = (1 - alpha) * _alive(z_label)

    def against_target(v):
        # Σ y'·v with y' = (1 - α)·onehot + (α/K)·live. The label's entry is a
        # gather, whose transpose in reverse mode XLA turns into an in-place
        # scatter of one value per row into p/T: no per-entry compare with the
        # label in the gradient's pass (as optax; with the losses' cheap branch,
        # integer CE value_and_grad at 512x32768 float32 on CPU went from
        # 0.90-0.94x to 0.96-1.03x of optax's speed).
        if x.dtype == z.dtype:
            picked = label_alive * _gather_label(v, label)
        else:
            # A 16-bit tangent: its cotangent is formed in float32 and rounded
            # once, which an in-place scatter cannot follow (XLA scatters into
            # a float32 zeros array and adds it: 8 instead of 6 N·s). One iota
            # compare in the gradient's own pass instead.
            classes = lax.broadcasted_iota(label.dtype, v.shape, v.ndim - 1)
            onehot = (classes == label).astype(z.dtype)
            picked = label_alive * jnp.sum(onehot * v, axes, keepdims=True)
        if alpha:
            spread = live * _alive(z) * v
            picked = picked + smooth_weight * jnp.sum(spread, axes, keepdims=True)
        return picked

    # 0 on +inf rows; the row max is _log_normalizer's (XLA takes it once).
    scale = _row_derivative_scale(x, temperature, axes)
    if not isinstance(tangent_x, SymbolicZero):
        # Widened once: reverse mode then adds every term's cotangent in float32
        # and rounds a 16-bit gradient once (one widening per use rounded each).
        tangent_x = tangent_x.astype(z.dtype)
        tangent = tangent + scale * (along_p(tangent_x) - against_target(tangent_x))
    if not isinstance(tangent_t, SymbolicZero):
        # dz/dT = -z/T, 0 at dead entries (p = 0 there too).
        z_live = _finite_or_zero(z)
        centered = against_target(z_live) - along_p(z_live)
        tangent = tangent + scale * centered * tangent_t
    return loss, tangent


def softmax_cross_entropy_with_integer_labels(
    logits,
    labels,
    axis: int | tuple[int, ...] = -1,
    where=None,
    *,
    temperature=1.0,
    label_smoothing: float = 0.0,
    ignore_index: int | None = None,
    class_weights=None,
    reduction: str = "none",
) -> jax.Array:
    r"""Cross-entropy of integer class labels under ``softmax(logits / T)``.

    .. math::
        \ell = w_{y} \left[-(1 - α) \log p_{y} - \frac{α}{K} \sum_{c\ \mathrm{unmasked}}
        \log p_c\right], \qquad p = \mathrm{softmax}(x / T)

    Positional arguments match
    :func:`optax.softmax_cross_entropy_with_integer_labels`; the options are
    PyTorch's ``CrossEntropyLoss`` ones, without a one-hot ever being built.

    * A label outside ``[0, K)`` (negative ones included) that is not
      ``ignore_index``, or a label on a masked class, gives NaN for that example:
      value and gradient (optax returns a NaN value but the gradient of a valid
      example for label 5 of 3, and wraps -1 to the last class).
    * ``ignore_index`` gives 0, a zero gradient, and leaves the example out of
      ``"mean"``. A row whose classes are all masked does the same.
    * ``class_weights[K]`` multiplies each example by the weight of its label;
      ``"mean"`` is ``Σ w·loss / Σ w`` over the kept examples (PyTorch's rule).
    * Label smoothing spreads ``α`` over the unmasked classes only.
    * A label (or smoothing mass) on a ``-inf`` logit gives ``+inf``, also in an
      all ``-inf`` row that is not masked. Derivatives are those of
      :func:`softmax_cross_entropy` with the one-hot labels: entries whose
      ``log p`` is ``-inf`` add nothing to them and rows holding ``+inf`` have
      derivative 0.

    Args:
      logits: ``[..., K]`` scores (16-bit computed in float32).
      labels: integer labels of the batch shape (``logits`` without ``axis``).
      axis: the class axis (or axes, flattened in C order as optax does).
      where: optional boolean mask of the classes that exist in each row.
      temperature: ``T >= 0``; traced and differentiable.
      label_smoothing: ``α`` in ``[0, 1]`` (a Python float).
      ignore_index: a label value to skip (e.g. ``-100``).
      class_weights: optional ``[K]`` weights.
      reduction: ``"none"``, ``"mean"`` or ``"sum"``.

    Returns:
      float32 (float64 for float64 logits) loss: per example or reduced.

    Example:
      >>> import jax.numpy as jnp
      >>> import jsoftmax
      >>> jnp.set_printoptions(precision=4)
      >>> logits = jnp.array([[2.0, 1.0, 0.0], [0.0, 0.0, 0.0], [1.0, 2.0, 3.0]])
      >>> labels = jnp.array([0, -100, 5])
      >>> print(jsoftmax.softmax_cross_entropy_with_integer_labels(
      ...     logits, labels, ignore_index=-100))
      [0.4076 0.        nan]
      >>> mean = jsoftmax.softmax_cross_entropy_with_integer_labels(
      ...     logits[:2], labels[:2], ignore_index=-100, reduction="mean")
      >>> print(f"{mean:.4f}")
      0.4076
    """
    alpha = _check_label_smoothing(label_smoothing)
    reduction = _check_reduction(reduction)
    logits = _validate.as_float_array(logits, "logits")
    labels = jnp.asarray(labels)
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise TypeError(f"labels must be integers, got dtype {labels.dtype}")
    axes = _validate.normalize_axes(axis, logits.ndim)
    batch_axes = tuple(i for i in range(logits.ndim) if i not in axes)
    batch_shape = tuple(logits.shape[i] for i in batch_axes)
    if labels.shape != batch_shape:
        raise ValueError(
            f"labels of shape {labels.shape} must have the batch shape {batch_shape} "
            f"(logits {logits.shape} without axis {axis!r})"
        )
    mask = _validate.where_mask(where, logits.shape)
    # Classes last and flattened (optax's convention for a tuple of axes).
    order = batch_axes + axes
    logits = jnp.transpose(logits, order).reshape(batch_shape + (-1,))
    if mask is not None:
        mask = jnp.transpose(mask, order).reshape(batch_shape + (-1,))
    num_classes = logits.shape[-1]
    dtype = _validate.compute_dtype(logits.dtype)
    temperature = _validate.row_parameter(
        temperature, logits.shape, (logits.ndim - 1,), dtype, "temperature"
    )
    if class_weights is not None:
        class_weights = _validate.as_float_array(class_weights, "class_weights")
        if class_weights.shape != (num_classes,):
            raise ValueError(
                f"class_weights must have shape ({num_classes},), "
                f"got {class_weights.shape}"
            )
    if ignore_index is not None and not isinstance(ignore_index, (int, np.integer)):
        raise TypeError(f"ignore_index must be an int or None, got {ignore_index!r}")
    return _int_xent_jit(
        logits, labels, temperature, mask, class_weights, alpha, ignore_index, reduction
    )


@partial(jax.jit, static_argnums=(5, 6, 7))
def _int_xent_jit(
    logits, labels, temperature, mask, class_weights, alpha, ignore_index, reduction
):
    dtype = _validate.compute_dtype(logits.dtype)
    num_classes = logits.shape[-1]
    x = logits  # in its own dtype: the core widens it (see _log_normalizer)
    if mask is not None:
        x = jnp.where(mask, x, -jnp.inf)
    live = jnp.ones((), dtype) if mask is None else mask.astype(dtype)
    count = (
        jnp.full(labels.shape, num_classes, dtype)
        if mask is None
        else jnp.sum(live, -1)
    )
    label = labels.astype(jnp.int32)
    in_range = (label >= 0) & (label < num_classes)
    safe_label = jnp.where(in_range, label, 0)[..., None]
    label_live = (
        in_range
        if mask is None
        else in_range & jnp.take_along_axis(mask, safe_label, -1)[..., 0]
    )
    ignored = (
        jnp.zeros(labels.shape, bool) if ignore_index is None else label == ignore_index
    )
    empty = count == 0
    skip = ignored | empty  # loss 0, gradient 0, out of "mean"
    smooth_weight = (alpha / jnp.maximum(count, 1))[..., None]
    loss = _int_xent_core(x, label[..., None], live, smooth_weight, temperature, alpha)[
        ..., 0
    ]
    weight = jnp.ones(labels.shape, dtype)
    if class_weights is not None:
        weight = jnp.take(class_weights.astype(dtype), safe_label[..., 0])
    weight = jnp.where(skip, 0, weight)
    # A bad label poisons its own example: the factor is NaN there, so the value
    # and (through the product) the gradient are NaN for that row only.
    poison = jnp.where(skip | label_live, 1, jnp.nan).astype(dtype)
    loss = jnp.where(skip, 0, loss * poison) * jnp.where(skip, 0, weight)
    return _reduce(loss, weight, reduction)


# --------------------------------------------------------------------------- #
# Sigmoid
# --------------------------------------------------------------------------- #
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
    big, _ = _limits(x.dtype)
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
    dtype = _validate.compute_dtype(logits.dtype)
    x = logits.astype(dtype)
    y = jnp.broadcast_to(labels.astype(dtype), x.shape)
    return _sigmoid_xent_core(x, y)
