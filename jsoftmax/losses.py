"""Softmax cross-entropy that never returns NaN by accident.

Two public losses, each a thin wrapper over a private ``custom_jvp`` core
(``_loss_cores.py``):

* :func:`softmax_cross_entropy` with probability labels;
* :func:`softmax_cross_entropy_with_integer_labels` (no one-hot is ever built:
  the label's logit is gathered, label smoothing is a row sum).

Their two-class case, ``sigmoid_binary_cross_entropy``, is elementwise: it lives
in ``binary.py`` and is re-exported here. The cores' rules return the gradient
``(p - y')/T`` directly, so reverse mode keeps one logits-sized tensor (optax's
``safe_softmax_cross_entropy`` keeps three). NaN appears only where DESIGN.md
asks for it: a NaN logit, an out-of-range label or a masked true class poison
their own example, value and gradient, and nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from jsoftmax import _validate
from jsoftmax._loss_cores import int_xent_core
from jsoftmax._loss_cores import xent_core
from jsoftmax.binary import sigmoid_binary_cross_entropy

__all__ = [
    "sigmoid_binary_cross_entropy",
    "softmax_cross_entropy",
    "softmax_cross_entropy_with_integer_labels",
]


# --------------------------------------------------------------------------- #
# Reduction
# --------------------------------------------------------------------------- #
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
def softmax_cross_entropy(
    logits,
    labels,
    axis: int | Sequence[int] | None = -1,
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
    alpha = _validate.check_label_smoothing(label_smoothing)
    reduction = _validate.check_reduction(reduction)
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
    mask = _validate.class_mask(where, logits.shape)
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
    loss = xent_core(x, y, temperature, axes)
    kept = (count > 0).astype(dtype)
    # A row with no class at all has no loss (and is left out of "mean").
    loss = jnp.where(count > 0, loss, 0)
    loss, kept = jnp.squeeze(loss, axes), jnp.squeeze(kept, axes)
    return _reduce(loss, kept, reduction)


# --------------------------------------------------------------------------- #
# Integer labels
# --------------------------------------------------------------------------- #
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
    axis_name=None,
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
      axis_name: inside ``jax.shard_map``, the mesh axis that splits the class
        axis (the last one): each device holds its slice of the vocabulary,
        labels are global ids, and devices exchange only per-row statistics
        (Megatron's vocabulary-parallel cross-entropy, see
        :func:`jsoftmax.vocab_parallel.vocab_parallel_integer_cross_entropy`).
        Then ``T`` must be ``> 0`` and finite, and ``where`` and
        ``class_weights`` are not supported.

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
    if axis_name is not None:
        return _vocab_parallel(
            logits,
            labels,
            axis,
            where,
            temperature,
            label_smoothing,
            ignore_index,
            class_weights,
            reduction,
            axis_name,
        )
    alpha = _validate.check_label_smoothing(label_smoothing)
    reduction = _validate.check_reduction(reduction)
    logits = _validate.as_float_array(logits, "logits")
    labels = jnp.asarray(labels)
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise TypeError(f"labels must be integers, got dtype {labels.dtype}")
    # In the order given: a tuple of class axes is flattened in that order.
    axes = _validate.normalize_axes(axis, logits.ndim, keep_order=True)
    batch_axes = tuple(i for i in range(logits.ndim) if i not in axes)
    batch_shape = tuple(logits.shape[i] for i in batch_axes)
    if labels.shape != batch_shape:
        raise ValueError(
            f"labels of shape {labels.shape} must have the batch shape {batch_shape} "
            f"(logits {logits.shape} without axis {_validate.plain(axis)})"
        )
    mask = _validate.class_mask(where, logits.shape)
    order = batch_axes + axes
    classes = (int(np.prod([logits.shape[i] for i in axes])),)
    logits = jnp.transpose(logits, order).reshape(batch_shape + classes)
    if mask is not None:
        mask = jnp.transpose(mask, order).reshape(batch_shape + classes)
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
        raise TypeError(
            f"ignore_index must be an int or None, got {_validate.plain(ignore_index)}"
        )
    if ignore_index is not None:
        info = jnp.iinfo(labels.dtype)
        # A value the labels' dtype cannot hold matches no label.
        ignore_index = (
            int(ignore_index) if info.min <= ignore_index <= info.max else None
        )
    return _int_xent_jit(
        logits, labels, temperature, mask, class_weights, alpha, ignore_index, reduction
    )


@partial(jax.jit, static_argnums=(5, 6, 7))
def _int_xent_jit(
    logits, labels, temperature, mask, class_weights, alpha, ignore_index, reduction
):
    dtype = _validate.compute_dtype(logits.dtype)
    num_classes = logits.shape[-1]
    # Checked at the labels' own width: a 64-bit label far out of range must not
    # wrap into range.
    in_range = (labels >= 0) & (labels < num_classes)
    label = jnp.where(in_range, labels, 0).astype(jnp.int32)[..., None]
    live = jnp.ones((), dtype) if mask is None else mask.astype(dtype)
    count = (
        jnp.full(labels.shape, num_classes, dtype)
        if mask is None
        else jnp.sum(live, -1)
    )
    label_live = in_range
    if mask is not None and num_classes:
        label_live = label_live & jnp.take_along_axis(mask, label, -1)[..., 0]
    ignored = (
        jnp.zeros(labels.shape, bool)
        if ignore_index is None
        else labels == ignore_index
    )
    skip = ignored | (count == 0)  # loss 0, gradient 0, out of "mean"
    x = logits  # in its own dtype: the core widens it inside its passes
    # A skipped example contributes exactly 0 to the value and the gradient,
    # also where its logits hold NaN; masked classes are -inf.
    keep = ~skip[..., None] if mask is None else mask & ~skip[..., None]
    x = jnp.where(keep, x, jnp.where(skip[..., None], 0, -jnp.inf).astype(x.dtype))
    if num_classes == 0:
        loss = jnp.zeros(labels.shape, dtype)
    else:
        smooth_weight = (alpha / jnp.maximum(count, 1))[..., None]
        loss = int_xent_core(x, label, live, smooth_weight, temperature, alpha)
        loss = loss[..., 0]
    weight = jnp.ones(labels.shape, dtype)
    if class_weights is not None and num_classes:
        weight = jnp.take(class_weights.astype(dtype), label[..., 0])
    weight = jnp.where(skip, 0, weight)
    # A bad label poisons its own example: the factor is NaN there, so the value
    # and (through the product) the gradient are NaN for that row only.
    poison = jnp.where(skip | label_live, 1, jnp.nan).astype(dtype)
    loss = jnp.where(skip, 0, loss * poison * weight)
    return _reduce(loss, weight, reduction)


def _vocab_parallel(
    logits,
    labels,
    axis,
    where,
    temperature,
    label_smoothing,
    ignore_index,
    class_weights,
    reduction,
    axis_name,
):
    """The ``axis_name`` form: logits split along their last (class) axis."""
    from jsoftmax.vocab_parallel import vocab_parallel_integer_cross_entropy

    ndim = jnp.ndim(logits)
    if _validate.normalize_axes(axis, ndim) != (ndim - 1,):
        raise ValueError(
            "with axis_name the class axis must be the last one, got "
            f"axis={_validate.plain(axis)}: "
            "move it last (jnp.moveaxis) before splitting it over devices"
        )
    if where is not None or class_weights is not None:
        raise ValueError(
            "with axis_name, where and class_weights are not supported: mask "
            "classes by setting their logits to -inf"
        )
    return vocab_parallel_integer_cross_entropy(
        logits,
        labels,
        axis_name,
        temperature=temperature,
        label_smoothing=label_smoothing,
        ignore_index=ignore_index,
        reduction=reduction,
    )
