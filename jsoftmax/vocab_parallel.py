r"""Integer-label cross-entropy with the vocabulary split across devices.

Megatron's vocabulary-parallel cross-entropy: inside ``shard_map`` each device
holds ``logits[..., its V/n classes]`` and the global integer labels. A row's
loss needs only three numbers from every device, so devices exchange ``[N]``-sized
per-row statistics and never anything logits-sized:

* the row max ``m`` (``pmax``), to shift the exponentials;
* ``Σ exp(z - m)`` (``psum`` after rescaling each device's partial sum);
* the label's ``z`` (``psum``: one device holds it, the others add 0), and for
  label smoothing ``Σ z`` over the classes (``psum``).

The helpers here (label checks at the labels' own width, combining the
statistics, the loss from them, the reductions) are shared with
:func:`jsoftmax.linear_cross_entropy`, which computes the same statistics block
by block from ``x @ w`` without holding the logits.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jsoftmax import _validate

__all__ = ["vocab_parallel_integer_cross_entropy"]

REDUCTIONS = ("none", "mean", "sum")


# --------------------------------------------------------------------------- #
# Argument checks shared with linear_ce.py
# --------------------------------------------------------------------------- #
def check_options(label_smoothing, ignore_index, reduction):
    if not _validate.is_concrete(label_smoothing):
        raise TypeError("label_smoothing must be a Python float, not a traced value")
    alpha = float(label_smoothing)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {alpha!r}")
    if ignore_index is not None and (
        isinstance(ignore_index, bool)
        or not isinstance(ignore_index, (int, np.integer))
    ):
        raise TypeError(
            f"ignore_index must be an int or None, got {_validate.plain(ignore_index)}"
        )
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    return alpha, None if ignore_index is None else int(ignore_index)


def check_labels(labels, batch_shape, what):
    labels = jnp.asarray(labels)
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise TypeError(f"labels must be integers, got dtype {labels.dtype}")
    if labels.shape != tuple(batch_shape):
        raise ValueError(
            f"labels of shape {labels.shape} must have the batch shape "
            f"{tuple(batch_shape)} ({what})"
        )
    return labels


def check_temperature(temperature, batch_shape, dtype):
    """A scalar or one value per example (``batch_shape``), ``> 0`` and finite.

    A concrete bad value raises; a traced one gives NaN (``T <= 0`` or NaN) in
    its examples through the arithmetic.
    """
    value = _validate.real_array(temperature, "temperature")
    if value.shape not in ((), tuple(batch_shape)):
        raise ValueError(
            f"temperature of shape {value.shape} must be a scalar or have the "
            f"batch shape {tuple(batch_shape)}"
        )
    if _validate.is_concrete(value):
        host = np.asarray(value, np.float64)
        if not (np.isfinite(host).all() and (host > 0).all()):
            raise ValueError(
                f"temperature must be > 0 and finite, got {_validate._short(host)}"
            )
    return value.astype(dtype)


# --------------------------------------------------------------------------- #
# Labels at their own width
# --------------------------------------------------------------------------- #
def label_status(labels, num_classes, ignore_index):
    """``(label, in_range, ignored)``: ``label`` is int32, 0 where out of range.

    Compared at the labels' own width, so an int64 label ``2**32 + 1`` is out of
    range rather than wrapped to 1, and an ``ignore_index`` that the dtype
    cannot hold matches nothing.
    """
    info = np.iinfo(labels.dtype)
    in_range = jnp.ones(labels.shape, bool)
    if info.min < 0:
        in_range = labels >= 0
    if num_classes <= info.max:
        in_range = in_range & (labels < jnp.asarray(num_classes, labels.dtype))
    if ignore_index is not None and info.min <= ignore_index <= info.max:
        ignored = labels == jnp.asarray(ignore_index, labels.dtype)
    else:
        ignored = jnp.zeros(labels.shape, bool)
    label = jnp.where(in_range, labels, 0).astype(jnp.int32)
    return label, in_range, ignored


def finish(loss, in_range, ignored, reduction):
    """Poison bad labels (value and gradient NaN), zero ignored ones, reduce.

    ``"mean"`` is ``Σ loss / (number of kept examples)``: NaN (0/0) when every
    example is ignored, with zero gradients (the ``where`` stops them).
    """
    poison = jnp.where(in_range | ignored, 1, jnp.nan).astype(loss.dtype)
    loss = jnp.where(ignored, 0, loss * poison)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return jnp.sum(loss)
    return jnp.sum(loss) / jnp.sum(~ignored).astype(loss.dtype)


# --------------------------------------------------------------------------- #
# Per-row statistics
# --------------------------------------------------------------------------- #
class Stats(NamedTuple):
    """Per-row statistics of ``z = logits/T`` over some classes (all ``[N]``)."""

    row_max: jax.Array  # max z (-inf if none)
    sum_exp: jax.Array  # Σ exp(z - shift(row_max))
    label_z: jax.Array  # z at the label if it is among these classes, else 0
    sum_z: jax.Array  # Σ z (used by label smoothing)


def shift(row_max):
    # An all -inf row keeps exp(z - 0) = 0 instead of exp(-inf + inf) = NaN.
    return jnp.where(row_max == -jnp.inf, 0, row_max)


def block_stats(z, hit, valid=None):
    """Statistics of one ``[N, B]`` block; ``hit`` marks each row's label, and
    ``valid`` (if given) the columns that count."""
    if valid is not None:
        z = jnp.where(valid, z, -jnp.inf)
        hit = hit & valid
    row_max = jnp.max(z, axis=-1)
    sum_exp = jnp.sum(jnp.exp(z - shift(row_max)[:, None]), axis=-1)
    label_z = jnp.sum(jnp.where(hit, z, 0), axis=-1)
    finite_z = z if valid is None else jnp.where(valid, z, 0)
    return Stats(row_max, sum_exp, label_z, jnp.sum(finite_z, axis=-1))


def merge(a: Stats, b: Stats) -> Stats:
    """Online log-sum-exp: rescale both partial sums to the larger max."""
    row_max = jnp.maximum(a.row_max, b.row_max)
    new = shift(row_max)
    sum_exp = a.sum_exp * jnp.exp(shift(a.row_max) - new) + b.sum_exp * jnp.exp(
        shift(b.row_max) - new
    )
    return Stats(row_max, sum_exp, a.label_z + b.label_z, a.sum_z + b.sum_z)


def all_reduce(stats: Stats, axis_name) -> Stats:
    """Combine every device's statistics: four ``[N]``-sized collectives."""
    if axis_name is None:
        return stats
    row_max = lax.pmax(stats.row_max, axis_name)
    rescale = jnp.exp(shift(stats.row_max) - shift(row_max))
    return Stats(
        row_max,
        lax.psum(stats.sum_exp * rescale, axis_name),
        lax.psum(stats.label_z, axis_name),
        lax.psum(stats.sum_z, axis_name),
    )


def log_normalizer(stats: Stats):
    return shift(stats.row_max) + jnp.log(stats.sum_exp)


def loss_from_stats(stats: Stats, alpha, num_classes, z_loss=0.0):
    """``(1-α)(lse - z_y) + α(lse - Σz/V) + z_loss·lse²`` per row, and ``lse``.

    A label (or, with smoothing, any class) at ``z = -inf`` gives ``+inf``, never
    ``-inf - (-inf)``; a term whose weight is 0 is left out, not multiplied by 0.
    """
    lse = log_normalizer(stats)
    loss = jnp.zeros_like(lse)
    if alpha < 1:
        label_term = jnp.where(stats.label_z == -jnp.inf, jnp.inf, lse - stats.label_z)
        loss = loss + (1 - alpha) * label_term
    if alpha > 0:
        mean_z = stats.sum_z / num_classes
        loss = loss + alpha * jnp.where(mean_z == -jnp.inf, jnp.inf, lse - mean_z)
    if z_loss:
        loss = loss + z_loss * jnp.square(lse)
    return loss, lse


def target_gradient(z, lse, hit, cotangent, alpha, num_classes, z_loss=0.0):
    """``∂loss/∂z`` times the row cotangent: ``p(1 + 2·z_loss·lse) - y'``.

    Entries at ``z = -inf`` (and rows whose ``lse`` is not finite) get 0: they
    add nothing to any derivative, as in :func:`jsoftmax.log_softmax`.
    """
    scale = cotangent if not z_loss else cotangent * (1 + 2 * z_loss * lse)
    probs = jnp.exp(z - shift(lse)[:, None])
    target = cotangent[:, None] * ((1 - alpha) * hit + alpha / num_classes)
    grad = scale[:, None] * probs - target
    return jnp.where(z == -jnp.inf, 0, grad)


# --------------------------------------------------------------------------- #
# Logits already split along the vocabulary
# --------------------------------------------------------------------------- #
class _Config(NamedTuple):
    alpha: float
    num_classes: int
    axis_name: object


def _local_labels(label, width, axis_name):
    """The global label shifted into this device's columns ``[0, width)``."""
    if axis_name is None:
        return label
    return label - lax.axis_index(axis_name).astype(label.dtype) * width


@partial(jax.custom_vjp, nondiff_argnums=(3,))
def _vp_core(logits, label, temperature, config):
    return _vp_forward(logits, label, temperature, config)[0]


def _vp_forward(logits, label, temperature, config):
    dtype = _validate.compute_dtype(logits.dtype)
    z = logits.astype(dtype) / temperature[:, None]
    width = logits.shape[-1]
    local = _local_labels(label, width, config.axis_name)
    hit = lax.broadcasted_iota(jnp.int32, z.shape, 1) == local[:, None]
    stats = all_reduce(block_stats(z, hit), config.axis_name)
    loss, lse = loss_from_stats(stats, config.alpha, config.num_classes)
    return loss, (logits, label, temperature, lse)


def _vp_fwd(logits, label, temperature, config):
    loss, residuals = _vp_forward(logits, label, temperature, config)
    return loss, residuals


def _vp_bwd(config, residuals, cotangent):
    # Own rule: the gradient p - y' from the saved logits and lse alone (no
    # probabilities kept between the passes), and dT from the same pass.
    logits, label, temperature, lse = residuals
    z = logits.astype(lse.dtype) / temperature[:, None]
    local = _local_labels(label, logits.shape[-1], config.axis_name)
    hit = lax.broadcasted_iota(jnp.int32, z.shape, 1) == local[:, None]
    grad_z = target_gradient(z, lse, hit, cotangent, config.alpha, config.num_classes)
    # ∂z/∂T = -z/T: dT = -(1/T)·Σ grad_z·z, summed over every device's classes.
    weighted = jnp.sum(jnp.where(grad_z == 0, 0, grad_z * z), axis=-1)
    if config.axis_name is not None:
        weighted = lax.psum(weighted, config.axis_name)
    grad_t = -weighted / temperature
    grad_logits = (grad_z / temperature[:, None]).astype(logits.dtype)
    return grad_logits, None, grad_t


_vp_core.defvjp(_vp_fwd, _vp_bwd)


def vocab_parallel_integer_cross_entropy(
    logits_shard,
    labels,
    axis_name,
    *,
    temperature=1.0,
    label_smoothing: float = 0.0,
    ignore_index: int | None = None,
    reduction: str = "none",
) -> jax.Array:
    r"""Integer-label cross-entropy of logits split along the class axis.

    .. math::
        \ell = (1 - α)(\mathrm{lse} - z_y) + α\Bigl(\mathrm{lse}
        - \frac{1}{V}\sum_{c} z_c\Bigr), \qquad z = x / T,\quad
        \mathrm{lse} = \log \sum_c e^{z_c}

    Call it inside ``jax.shard_map`` with the class axis of the logits split over
    ``axis_name`` (``V = n·V_local`` classes; device ``i`` holds classes
    ``[i·V_local, (i+1)·V_local)``) and the labels replicated as global class
    ids. Devices exchange four ``[N]``-sized per-row statistics (the row max,
    the sum of exponentials, the label's ``z`` and, for label smoothing,
    ``Σ z``); the gradient of each device's shard is computed on that device
    from the shard and the per-row ``lse`` alone. With ``axis_name=None`` it is
    the ordinary single-device loss.

    Edge semantics are those of
    :func:`jsoftmax.softmax_cross_entropy_with_integer_labels`: a label outside
    ``[0, V)`` that is not ``ignore_index`` gives NaN for that example (value and
    gradient), checked at the labels' own integer width; ``ignore_index`` gives
    0, a zero gradient (even where that row of logits holds NaN) and leaves
    the example out of ``"mean"``, which is NaN when no example is kept. A
    label on a ``-inf`` logit gives ``+inf``. Unlike that function the
    temperature must be ``> 0`` and finite, and there is no ``where``.

    Args:
      logits_shard: ``[..., V_local]`` this device's classes (16-bit computed in
        float32; the gradient is returned in the logits' dtype).
      labels: integer global class ids, shape ``logits_shard.shape[:-1]``.
      axis_name: the ``shard_map`` axis the classes are split over, or None.
      temperature: ``T > 0``, a scalar or one per example; differentiable.
      label_smoothing: ``α`` in ``[0, 1]``, spread over all ``V`` classes.
      ignore_index: a label value to skip (e.g. ``-100``).
      reduction: ``"none"`` (shape of ``labels``), ``"mean"`` or ``"sum"``.

    Returns:
      The loss in float32 (float64 for float64 logits), the same on every device.

    Example:
      >>> import jax, jax.numpy as jnp, numpy as np
      >>> from jax.sharding import Mesh, PartitionSpec as P
      >>> from jsoftmax.vocab_parallel import vocab_parallel_integer_cross_entropy
      >>> jnp.set_printoptions(precision=4)
      >>> mesh = Mesh(np.array(jax.devices()[:2]), ("v",))
      >>> logits = jnp.array([[2.0, 1.0, 0.0, -1.0], [0.0, 0.0, 0.0, 0.0]])
      >>> labels = jnp.array([0, 3])
      >>> loss = jax.shard_map(
      ...     lambda s, y: vocab_parallel_integer_cross_entropy(s, y, "v"),
      ...     mesh=mesh, in_specs=(P(None, "v"), P()), out_specs=P())
      >>> print(loss(logits, labels))
      [0.4402 1.3863]
    """
    alpha, ignore_index = check_options(label_smoothing, ignore_index, reduction)
    logits_shard = _validate.as_float_array(logits_shard, "logits_shard")
    if logits_shard.ndim < 1:
        raise ValueError("logits_shard must have a class axis")
    batch_shape = logits_shard.shape[:-1]
    labels = check_labels(labels, batch_shape, f"logits_shard {logits_shard.shape}")
    dtype = _validate.compute_dtype(logits_shard.dtype)
    temperature = check_temperature(temperature, batch_shape, dtype)
    parts = 1 if axis_name is None else lax.axis_size(axis_name)
    num_classes = parts * logits_shard.shape[-1]
    label, in_range, ignored = label_status(labels, num_classes, ignore_index)
    width = logits_shard.shape[-1]
    flat = logits_shard.reshape(-1, width)
    # An ignored row's logits (NaN included) never reach the loss or gradient.
    flat = jnp.where(ignored.reshape(-1, 1), 0, flat)
    temperature = jnp.broadcast_to(temperature, batch_shape).reshape(-1)
    config = _Config(alpha, num_classes, axis_name)
    loss = _vp_core(flat, label.reshape(-1), temperature, config)
    return finish(loss.reshape(batch_shape), in_range, ignored, reduction)
