r"""Cross-entropy of a linear output layer that never holds the logits.

A language model's last layer computes ``logits = x @ w`` for ``N`` tokens and
a vocabulary of ``V`` classes (32k-256k), then an integer-label cross-entropy.
Done naively that holds an ``[N, V]`` array forward and another backward.
:func:`linear_cross_entropy` goes over the vocabulary block by block instead:

* forward: for each block of ``B`` columns of ``w``, the ``[N, B]`` logits are
  formed, folded into four per-row statistics (running max, sum of
  exponentials, the label's logit, their sum; see
  :mod:`jsoftmax.vocab_parallel`) and dropped. Only ``lse`` (``[N]``) is kept;
* backward (``jax.custom_vjp``): each block's logits are recomputed from ``x``
  and ``w``, turned into ``∂loss/∂logits`` for that block, and used at once for
  ``dx += g @ w_blockᵀ``, ``dw_block = xᵀ @ g`` and ``dbias_block = Σ g``.

Peak temporary memory is ``O(N·B + N·D)`` plus the ``[D, V]`` weight gradient,
never ``O(N·V)``; the price is one more matmul (the logits are computed twice).
16-bit inputs are multiplied with float32 accumulation and every statistic and
accumulator is float32; gradients come back in the inputs' dtypes.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from jsoftmax import _rows
from jsoftmax import _validate
from jsoftmax import vocab_parallel as vp

__all__ = ["linear_cross_entropy"]

# Default block: about this many logits (N·B) per block, so one block's
# float32 temporaries stay small next to x and w. On CPU 2^20 (4 MiB per [N, B]
# float32 array): value_and_grad at N=2048, D=512, V=32768 ran fastest at
# B=256-512 and 5-10% slower at B=2048-4096. Accelerators take 2^25: compiled
# without the device (python -m bench.vocab --target h100 / tpu-v5e) at N=8192,
# D=2048, V=131072, B=4096 against B=2048 moves 14-30% fewer bytes, launches
# half the kernels and (TPU v5e) takes 9-17% fewer estimated cycles, for
# 32-120 MiB more temporary memory; B=8192 gains little more in bytes and
# costs cycles on TPU.
_BLOCK_ELEMENTS = {"cpu": 1 << 20, "gpu": 1 << 25, "tpu": 1 << 25}
_MIN_BLOCK = 128


def default_block_size(rows: int, width: int, platform: str | None = None) -> int:
    """The ``block_size`` used when none is given (see :data:`_BLOCK_ELEMENTS`).

    ``budget / rows`` rounded down to a multiple of 128, at least 128 and at
    most ``width``; ``platform`` defaults to ``jax.default_backend()``.
    """
    platform = platform or jax.default_backend()
    budget = _BLOCK_ELEMENTS.get(platform, 1 << 25)
    block = max(_MIN_BLOCK, budget // max(rows, 1) // _MIN_BLOCK * _MIN_BLOCK)
    return max(1, min(block, width))


class _Config(NamedTuple):
    block: int
    alpha: float
    z_loss: float
    softcap: float | None
    num_classes: int  # global V (all devices)
    axis_name: object


# XLA:CPU moves 16-bit data in float32: a bfloat16 dynamic slice of w inside the
# loop becomes a slice of convert(w), and the convert of the loop-invariant w is
# hoisted out as a float32 copy of all of w (and dw is carried in float32).
# On CPU, 16-bit w is therefore sliced through a uint16 view and dw written
# into one ("bits"), which costs one w-sized uint16 copy instead of two; the
# weight gradient's product takes x transposed once in 16 bits (XLA:CPU's
# bfloat16 dot runs natively only on untransposed operands, otherwise x too is
# converted to float32). bfloat16 at N=8192, D=2048, V=131072: temporary memory
# 1220 -> 664 MiB. Other platforms slice w directly.
def _stored(w, bits):
    return lax.bitcast_convert_type(w, jnp.uint16) if bits else w


def _get_columns(stored, start, block, dtype):
    columns = lax.dynamic_slice_in_dim(stored, start, block, axis=1)
    if columns.dtype != dtype:
        columns = lax.bitcast_convert_type(columns, dtype)
    return columns


def _put_columns(target, columns, start, bits):
    """``target`` with ``columns`` written at ``start`` (through a uint16 view
    of both when ``bits``: the loop then carries ``target`` in its own dtype and
    XLA:CPU updates it in place)."""
    if not bits:
        return lax.dynamic_update_slice_in_dim(target, columns, start, axis=1)
    view = lax.dynamic_update_slice_in_dim(
        lax.bitcast_convert_type(target, jnp.uint16),
        lax.bitcast_convert_type(columns, jnp.uint16),
        start,
        axis=1,
    )
    return lax.bitcast_convert_type(view, target.dtype)


def _by_platform(fn, *args):
    """``fn(*args, bits=...)``: ``bits`` on CPU for 16-bit inputs (see above)."""
    if args[0].dtype not in (jnp.dtype(jnp.float16), jnp.dtype(jnp.bfloat16)):
        return fn(*args, bits=False)
    return _rows.platform_dependent(
        *args, cpu=partial(fn, bits=True), default=partial(fn, bits=False)
    )


def _block_logits(x, w_stored, dtype, bias, temperature, start, config):
    """One block's ``z = softcap(x @ w[:, start:start+B] + b) / T`` (float32 for
    16-bit inputs, ``bias`` already in that dtype), that block of ``w`` and
    ``∂z/∂logits·T`` (None without a cap)."""
    acc = _validate.compute_dtype(x.dtype)
    w_block = _get_columns(w_stored, start, config.block, dtype)
    logits = jnp.dot(x, w_block, preferred_element_type=acc)
    if bias is not None:
        logits = logits + lax.dynamic_slice_in_dim(bias, start, config.block)[None, :]
    slope = None
    if config.softcap is not None:
        cap = config.softcap
        tanh = jnp.tanh(logits / cap)
        logits, slope = cap * tanh, 1 - tanh * tanh
    return w_block, logits / temperature[:, None], slope


def _block_layout(width, config):
    """``(count, ragged)``: blocks over ``width`` columns. The last block starts
    at ``width - B`` when ``B`` does not divide ``width``; its columns already
    seen by the block before are masked (no padded copy of ``w``)."""
    return -(-width // config.block), width % config.block != 0


def _block_columns(k, width, label, config):
    """Start of block ``k``, its label hits ``[N, B]`` and valid columns."""
    _, ragged = _block_layout(width, config)
    start = jnp.minimum(k * config.block, width - config.block)
    columns = start + lax.broadcasted_iota(jnp.int32, (1, config.block), 1)
    offset = 0
    if config.axis_name is not None:
        offset = lax.axis_index(config.axis_name).astype(jnp.int32) * width
    hit = columns == (label - offset)[:, None]
    valid = columns >= k * config.block if ragged else None
    return start, hit, valid


def _over_blocks(count, step):
    """``step(k, carry)`` for ``k = 0..count-1``, the first with ``carry=None``.

    Block 0 runs outside the loop so that the loop's carry starts from real
    values: inside ``shard_map`` they carry the right varying-axes type
    (zeros made here would not, and the loop would reject them).
    """
    first = step(0, None)
    if count == 1:
        return first
    return lax.fori_loop(1, count, step, first)


def _forward(x, w, bias, label, temperature, config):
    return _by_platform(
        partial(_forward_blocks, config=config), x, w, bias, label, temperature
    )


def _forward_blocks(x, w, bias, label, temperature, *, config, bits):
    width = w.shape[1]
    count, _ = _block_layout(width, config)
    w_stored = _stored(w, bits)
    if bias is not None:
        bias = bias.astype(temperature.dtype)

    def step(k, stats):
        start, hit, valid = _block_columns(k, width, label, config)
        _, z, _ = _block_logits(x, w_stored, w.dtype, bias, temperature, start, config)
        new = vp.block_stats(z, hit, valid)
        return new if stats is None else vp.merge(stats, new)

    stats = vp.all_reduce(_over_blocks(count, step), config.axis_name)
    return vp.loss_from_stats(stats, config.alpha, config.num_classes, config.z_loss)


@partial(jax.custom_vjp, nondiff_argnums=(5,))
def _core(x, w, bias, label, temperature, config):
    """Per-row loss ``[N]`` of ``x [N, D] @ w [D, V_local] (+ bias)``."""
    return _forward(x, w, bias, label, temperature, config)[0]


def _core_fwd(x, w, bias, label, temperature, config):
    loss, lse = _forward(x, w, bias, label, temperature, config)
    return loss, (x, w, bias, label, temperature, lse)


def _core_bwd(config, residuals, cotangent):
    # Own rule: recompute each block's logits instead of keeping [N, V] of them,
    # and use each block's gradient at once for dx, dw and dbias.
    x, w, bias, label, temperature, lse = residuals
    grads = _by_platform(
        partial(_backward_blocks, config=config),
        x,
        w,
        bias,
        label,
        temperature,
        lse,
        cotangent,
    )
    grad_x, grad_w, grad_b, weighted = grads
    if config.axis_name is not None:
        # x is shared by every device: its gradient sums their vocabulary parts
        # ([N, D], as the backward of a column-parallel linear layer).
        grad_x = lax.psum(grad_x, config.axis_name)
        weighted = lax.psum(weighted, config.axis_name)
    grad_b = None if grad_b is None else grad_b.astype(bias.dtype)
    grad_t = -weighted / temperature
    return grad_x.astype(x.dtype), grad_w, grad_b, None, grad_t


def _backward_blocks(x, w, bias, label, temperature, lse, cotangent, *, config, bits):
    width = w.shape[1]
    count, _ = _block_layout(width, config)
    acc = lse.dtype
    w_stored = _stored(w, bits)
    if bias is not None:
        bias = bias.astype(acc)
    # See _stored: on the bits path x is transposed once, outside the loop.
    x_t = x.T if bits else None

    def step(k, carry):
        start, hit, valid = _block_columns(k, width, label, config)
        w_block, z, slope = _block_logits(
            x, w_stored, w.dtype, bias, temperature, start, config
        )
        grad_z = vp.target_gradient(
            z, lse, hit, cotangent, config.alpha, config.num_classes, config.z_loss
        )
        if valid is not None:
            grad_z = jnp.where(valid, grad_z, 0)
        # ∂z/∂T = -z/T: accumulate Σ grad_z·z (0 where grad_z is, even at z=-inf).
        weighted = jnp.sum(jnp.where(grad_z == 0, 0, grad_z * z), -1)
        grad_logits = grad_z / temperature[:, None]
        if slope is not None:
            grad_logits = grad_logits * slope
        # 16-bit inputs: the logits' gradient is rounded once to their dtype (as
        # the naive path's is) and the products accumulate in float32.
        grad_16 = grad_logits.astype(x.dtype)
        grad_x = jnp.dot(grad_16, w_block.T, preferred_element_type=acc)
        grad_w_block = jnp.dot(
            x.T if x_t is None else x_t, grad_16, preferred_element_type=acc
        )
        grad_b_block = None if bias is None else jnp.sum(grad_logits, axis=0)
        if carry is None:
            grad_w = jnp.zeros(w.shape, w.dtype)
            grad_b = None if bias is None else jnp.zeros(bias.shape, acc)
        else:
            grad_w, grad_b = carry[1], carry[2]
            grad_x, weighted = carry[0] + grad_x, carry[3] + weighted
            if valid is not None:
                # The last block overlaps the one before: add, where the masked
                # columns contribute exactly 0.
                before = _get_columns(
                    _stored(grad_w, bits), start, config.block, w.dtype
                )
                grad_w_block = grad_w_block + before.astype(acc)
                if bias is not None:
                    grad_b_block = grad_b_block + lax.dynamic_slice_in_dim(
                        grad_b, start, config.block
                    )
        grad_w = _put_columns(grad_w, grad_w_block.astype(w.dtype), start, bits)
        if bias is not None:
            grad_b = lax.dynamic_update_slice_in_dim(grad_b, grad_b_block, start, 0)
        return grad_x, grad_w, grad_b, weighted

    grad_x, grad_w, grad_b, weighted = _over_blocks(count, step)
    return grad_x, grad_w, grad_b, weighted


_core.defvjp(_core_fwd, _core_bwd)


def linear_cross_entropy(
    x,
    w,
    labels,
    *,
    bias=None,
    ignore_index: int | None = None,
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    logit_softcap: float | None = None,
    temperature=1.0,
    reduction: str = "mean",
    axis_name=None,
    block_size: int | None = None,
) -> jax.Array:
    r"""Integer-label cross-entropy of ``x @ w (+ bias)`` without the logits.

    .. math::
        s = c \tanh\bigl((x w + b)/c\bigr), \quad z = s / T, \quad
        \ell = (1-α)(\mathrm{lse} - z_y) + α\Bigl(\mathrm{lse} - \frac{1}{V}
        \sum_v z_v\Bigr) + λ_z\,\mathrm{lse}^2, \quad \mathrm{lse} = \log\sum_v e^{z_v}

    The loss of ``softmax_cross_entropy_with_integer_labels(x @ w + bias,
    labels)`` with label smoothing ``α``, PaLM's z-loss ``λ_z`` and Gemma 2's
    logit soft-cap ``c`` (applied before the temperature), computed block by
    block over the vocabulary: forward and backward never hold more than
    ``[N, block_size]`` logits, recomputed in the backward pass (a
    ``jax.custom_vjp``: reverse mode only). Temporary memory is
    ``O(N·block_size + N·D)`` plus the ``[D, V]`` weight gradient.

    * A label outside ``[0, V)`` that is not ``ignore_index`` (negative ones
      included, checked at the labels' own integer width) gives NaN for that
      example: its value and its row of ``dx``. ``dw``, ``dbias`` and ``dT``
      sum over examples, so they are NaN too, as in the naive path.
    * ``ignore_index`` gives 0 and leaves the example out of ``"mean"``; it adds
      exactly 0 to the value and every gradient, even where its ``x`` is NaN.
      ``"mean"`` of no kept example is NaN (0/0, as
      :func:`jsoftmax.softmax_cross_entropy_with_integer_labels`), with zero
      gradients.
    * ``-inf`` logits (a ``-inf`` bias masks a class) add nothing; a label on
      one gives ``+inf``. A NaN in ``x`` poisons its own example only.
    * With ``axis_name`` (inside ``jax.shard_map``) ``w`` is this device's
      ``[D, V/n]`` columns (``bias`` likewise), device ``i`` holding classes
      ``[i·V/n, (i+1)·V/n)``, and the labels are global. Devices exchange four
      ``[N]``-sized per-row statistics forward; backward, ``dx`` (``[N, D]``)
      and ``dT`` are summed over devices, ``dw`` and ``dbias`` stay local.

    Args:
      x: ``[..., D]`` inputs of the output layer (any number of leading axes).
      w: ``[D, V]`` weights (``[D, V/n]`` with ``axis_name``); promoted to a
        common dtype with ``x``.
      labels: integer class ids of shape ``x.shape[:-1]``.
      bias: optional ``[V]`` (``[V/n]``) bias.
      ignore_index: a label value to skip (e.g. ``-100``).
      label_smoothing: ``α`` in ``[0, 1]``: ``y' = (1-α)·onehot + α/V``.
      z_loss: ``λ_z >= 0``, adds ``λ_z·lse²`` per example (of ``z = s/T``).
      logit_softcap: ``c > 0`` or None.
      temperature: ``T > 0``, a scalar or one per example; differentiable.
      reduction: ``"mean"`` (over kept examples), ``"sum"`` or ``"none"``.
      axis_name: the ``shard_map`` axis the vocabulary is split over, or None.
      block_size: columns per block; None picks
        ``jsoftmax.linear_ce.default_block_size``: about ``2^20 / N`` columns
        on CPU and ``2^25 / N`` on GPU and TPU, a multiple of 128, at most ``V``.

    Returns:
      float32 loss (float64 for float64 inputs): a scalar, or the shape of
      ``labels`` for ``"none"``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> import jsoftmax
      >>> x = jax.random.normal(jax.random.key(0), (4, 8))
      >>> w = jax.random.normal(jax.random.key(1), (8, 1000))
      >>> labels = jnp.array([3, 999, -100, 42])
      >>> loss = jsoftmax.linear_cross_entropy(
      ...     x, w, labels, ignore_index=-100, block_size=256)
      >>> naive = jsoftmax.softmax_cross_entropy_with_integer_labels(
      ...     x @ w, labels, ignore_index=-100, reduction="mean")
      >>> print(bool(jnp.allclose(loss, naive)))
      True
    """
    alpha, ignore_index = vp.check_options(label_smoothing, ignore_index, reduction)
    x = _validate.as_float_array(x, "x")
    w = _validate.as_float_array(w, "w")
    if x.ndim < 1 or w.ndim != 2 or w.shape[0] != x.shape[-1]:
        raise ValueError(
            f"x [..., D] and w [D, V] do not fit: x {x.shape}, w {w.shape}"
        )
    dtype = jnp.promote_types(x.dtype, w.dtype)
    x, w = x.astype(dtype), w.astype(dtype)
    width = w.shape[1]
    if width == 0:
        raise ValueError("w must have at least one class (column)")
    if bias is not None:
        bias = _validate.as_float_array(bias, "bias").astype(dtype)
        if bias.shape != (width,):
            raise ValueError(f"bias must have shape ({width},), got {bias.shape}")
    batch_shape = x.shape[:-1]
    labels = vp.check_labels(labels, batch_shape, f"x {x.shape} without its last axis")
    z_loss = _static_number(z_loss, "z_loss", lambda v: v >= 0, ">= 0")
    if logit_softcap is not None:
        logit_softcap = _static_number(
            logit_softcap, "logit_softcap", lambda v: 0 < v < float("inf"), "> 0"
        )
    if block_size is not None and (
        isinstance(block_size, bool) or not isinstance(block_size, int)
    ):
        raise TypeError(
            f"block_size must be an int or None, got {_validate.plain(block_size)}"
        )
    if block_size is not None and block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {_validate.plain(block_size)}")
    rows = 1
    for n in batch_shape:
        rows *= n
    block = block_size or default_block_size(rows, width)
    compute = _validate.compute_dtype(dtype)
    temperature = vp.check_temperature(temperature, batch_shape, compute)
    parts = 1 if axis_name is None else lax.axis_size(axis_name)
    config = _Config(
        min(block, width),
        alpha,
        z_loss,
        logit_softcap,
        parts * width,
        axis_name,
    )
    return _linear_ce_jit(
        x, w, bias, labels, temperature, config, ignore_index, reduction
    )


def _static_number(value, name, ok, rule):
    if not _validate.is_concrete(value):
        raise TypeError(f"{name} must be a Python float, not a traced value")
    value = float(value)
    if not ok(value):
        raise ValueError(f"{name} must be {rule}, got {_validate.plain(value)}")
    return value


@partial(jax.jit, static_argnums=(5, 6, 7))
def _linear_ce_jit(x, w, bias, labels, temperature, config, ignore_index, reduction):
    batch_shape = labels.shape
    label, in_range, ignored = vp.label_status(labels, config.num_classes, ignore_index)
    flat_x = x.reshape(-1, x.shape[-1])
    if ignore_index is not None:
        # An ignored example's x (NaN included) never reaches a product.
        flat_x = jnp.where(ignored.reshape(-1, 1), 0, flat_x)
    temperature = jnp.broadcast_to(temperature, batch_shape).reshape(-1)
    loss = _core(flat_x, w, bias, label.reshape(-1), temperature, config)
    return vp.finish(loss.reshape(batch_shape), in_range, ignored, reduction)
