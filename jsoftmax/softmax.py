"""Softmax, log-softmax and logsumexp with temperature, safe at every IEEE input.

Public functions validate and normalise their arguments, then call one of three
private ``custom_jvp`` cores. The cores fold every edge case of DESIGN.md into
plain arithmetic, with no compare or select on logits-sized tensors. That is a
speed decision, not a style one: on XLA:CPU a reduction whose producer holds only
arithmetic (add, mul, min, max, floor, exp, log) is fused and vectorised, and
``max → subtract → exp`` runs as one pass exactly as in ``jax.nn``; a single
elementwise ``select`` costs an extra pass over the logits and runs at a fifth of
the speed. How the edge cases become arithmetic (see :func:`_scaled_logits`):

* ``h = min(x/4, Q)`` with ``Q = 7/8·max_float`` maps ``+inf`` to ``Q`` and every
  finite value to at most ``max_float/4``, so ``+inf`` stays apart from the
  largest finite float and ``inf - inf`` never happens;
* the row max of ``h`` starts from ``-Q`` instead of ``-inf``, so an all ``-inf``
  row gives ``-inf - (-Q) = -inf`` (probability 0) rather than NaN;
* ``z = ((h - m)·4)·A·B`` (evaluated in that order) equals ``(x - max)/T``
  bit for bit in ordinary rows (``(h - m)·4`` is ``x - max`` exactly). In a
  ``+inf`` row the factor 4 sends the finite entries below
  ``-2.5·max_float``, to ``-inf`` at every ``T``. The per-row factors ``A, B``
  come from ``T`` alone: ``T = 0`` gives ``A = max_float, B = 1e4`` (ties give
  exactly 0, anything else ``-inf``) and ``T = inf`` gives ``A = tiny,
  B = 1e-30`` (finite entries give 0, ``-inf`` stays ``-inf``), so neither
  ``0·inf`` nor ``-inf·0`` ever appears.

A NaN anywhere in a row stays NaN in ``h`` and so in ``z``, ``exp z`` and the
row sum, which reaches every entry of that row and no other row (each ``min``
takes an opaque scalar first: XLA:CPU's fused min against a constant drops a
NaN, see :func:`_opaque`). Three documented limits of this arithmetic: at
``T = 0`` logits closer than the smallest normal float (1.2e-38 in float32)
count as tied; temperatures above ``1/tiny`` (8.5e37 in float32) act as
``T = inf``; and ``x - max`` overflows where it is below ``-max_float`` (as in
``jax.nn``), so log-softmax gives ``-inf`` there at every ``T``, also where
``(x - max)/T`` would be finite (float32
``log_softmax([-3e38, 3e38], temperature=4.0)`` is ``[-inf, 0]``, not
``[-1.5e38, 0]``). Only rows whose logits span more than the float range are
affected; softmax and logsumexp are not (``exp`` of either value is 0).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.custom_derivatives import SymbolicZero

from jsoftmax import _validate

__all__ = ["softmax", "log_softmax", "logsumexp", "softmax_jacobian"]


# --------------------------------------------------------------------------- #
# Private math shared by the cores (arithmetic only on logits-sized arrays).
# --------------------------------------------------------------------------- #
def _limits(dtype):
    info = jnp.finfo(dtype)
    return float(info.max), float(info.tiny)


def _inverse_temperature(temperature):
    # T < 0 or NaN (only reachable traced) -> NaN, which poisons just its row.
    return jnp.where(temperature >= 0, 1 / temperature, jnp.nan)


def _temperature_factors(temperature, dtype):
    """Per-row ``A, B`` with ``((h - m)·4)·A·B == (x - max)/T`` (see module doc)."""
    big, tiny = _limits(dtype)
    inverse = _inverse_temperature(temperature)
    factor_a = jnp.clip(inverse, tiny, big)
    factor_b = jnp.where(
        inverse > big,
        1e4,
        jnp.where(inverse < tiny, jnp.maximum(inverse / tiny, 1e-30), 1),
    )
    return factor_a.astype(dtype), factor_b.astype(dtype)


# h = min(x·_SHRINK, Q) with Q = _Q_FRACTION·max_float (see the module doc); the
# factors 4 in the formulas for z undo _SHRINK, so (h - m)·4 is x - max exactly.
_SHRINK = 0.25
_Q_FRACTION = 0.875


def _row_max(shrunk, axes):
    """Max of ``h`` over ``axes`` (keepdims), starting from ``-Q`` (not ``-inf``)."""
    big, _ = _limits(shrunk.dtype)
    init = np.asarray(-_Q_FRACTION * big, shrunk.dtype)
    row_max = lax.reduce(shrunk, init, lax.max, axes)
    return jnp.expand_dims(row_max, axes)


def _opaque(dtype, *values):
    """``values`` as scalars in ``dtype`` that XLA cannot treat as constants.

    XLA:CPU's fused reductions (rows of 2048 entries or more) evaluate
    ``min(v, c)`` with a constant ``c`` as ``c`` where ``v`` is NaN: a NaN logit
    then vanishes from its row (measured with jax 0.10.2: ``sum(min(x/4, Q))``
    over a row of zeros and one NaN gives ``Q``). XLA puts a constant operand
    second; behind an optimization barrier ``c`` is not a constant, stays
    first, and ``min(c, v)`` keeps the NaN. (Taken from ``x`` instead, the
    values made XLA write out the float32 copy of 16-bit input.)
    """
    return [lax.optimization_barrier(jnp.asarray(v, dtype)) for v in values]


def _scaled_logits(
    x, temperature, axes, *, raw_max=False, ordinary: bool = False, exact_z=False
):
    """``z = (x - max)/T`` with every edge case folded in; also ``m = max(h)``.

    ``m == Q`` marks a row holding ``+inf``; ``m == -Q`` an all ``-inf`` row.
    ``raw_max`` takes ``m`` from a plain max of ``x`` instead of fusing it into
    this pass (``True``, or that max itself if the caller has it).

    With ``ordinary=True`` the caller guarantees that every ``T`` lies in
    ``[4/max_float, max_float/4096]`` (see :func:`_by_temperature`), and both
    cheaper formulas agree bit for bit with the general one wherever it matters:

    * ``z = (h - m)·(4/T)``, one operation per entry, sends the finite entries
      of a ``+inf`` row below ``-2.5·max_float/T <= -10240``, not to ``-inf``.
      Their ``exp(z)`` is 0 even in float64, so softmax and logsumexp use it.
    * ``exact_z=True`` (log-softmax and the losses show ``z`` or ``log p``
      itself): ``((h - m)·4)·(1/T)``, two operations, where ``(h - m)·4``
      overflows to ``-inf``. The 4 is an opaque scalar (see :func:`_opaque`):
      XLA folds a constant 4 into ``4/T``, which would undo the overflow. At
      ``T = 1`` under ``jit`` XLA drops the ``·1``: one operation. (The
      earlier spelling, with ``h = min(x/2, Q)``, was
      ``min((h - m)·4, 1/2)·(1/(2T))``, three; measured log_softmax forward
      at 512x32768 float32 on CPU: 0.90x -> 0.93x of jax.nn.)
    """
    big, _ = _limits(x.dtype)
    shrunk = _shrink(x)
    if raw_max is not False:
        # The same m from a plain max of x (clipped afterwards, per row): better
        # where the pass cannot fuse with the exponential anyway (the losses).
        plain_max = jnp.max(x, axes, keepdims=True) if raw_max is True else raw_max
        q = _Q_FRACTION * big
        row_max = jnp.clip(plain_max * _SHRINK, -q, q)
    else:
        row_max = _row_max(shrunk, axes)
    return _z_from(shrunk, row_max, temperature, ordinary, exact_z), row_max


def _z_from(shrunk, row_max, temperature, ordinary, exact_z):
    """``z`` from ``h`` and its row max ``m`` (see :func:`_scaled_logits`)."""
    if ordinary and not exact_z:
        return (shrunk - row_max) * (4 / temperature)
    if ordinary:
        (four,) = _opaque(shrunk.dtype, 4.0)
        return ((shrunk - row_max) * four) * (1 / temperature)
    return _general_z(shrunk, row_max, temperature)


def _narrow_z(x, row_max, temperature, *, ordinary, exact_z):
    """``z`` from the 16-bit ``x`` itself, for :func:`_sum_exp`."""
    return _z_from(_shrink(_widened(x)), row_max, temperature, ordinary, exact_z)


def _normalizer_sum(x, z, row_max, temperature, axes, narrow, *, ordinary, exact_z):
    """``Σ exp z`` over ``axes`` (keepdims) for the normalisers' cores.

    ``narrow`` (16-bit rows cut into chunks, see :func:`_narrow_max`): the
    chunked sum recomputes ``z`` from the 16-bit ``x``, already in memory, so
    that the float32 ``z`` is never written out for it (the barrier in
    :func:`_row_sum` made XLA:CPU write the ``z`` it was given). Measured at
    1024x131072 bfloat16 with ``bench.interleaved_seconds``: the forward
    passes move 4 instead of 8 N·s; softmax forward 0.94x -> 1.55x of
    jax.nn, log_softmax forward 2.1x -> 3.9x.
    """
    if narrow is False:
        return _sum_exp(_same, axes, z)
    z_of = partial(_narrow_z, ordinary=ordinary, exact_z=exact_z)
    t = jnp.broadcast_to(temperature, row_max.shape)
    return _sum_exp(z_of, axes, x, row_max, t)


def _shrink(x):
    """``h = min(x/4, Q)`` (module doc); the min takes its bound first, behind
    an optimization barrier, so that a NaN survives (see :func:`_opaque`)."""
    big, _ = _limits(x.dtype)
    (bound,) = _opaque(x.dtype, _Q_FRACTION * big)
    return jnp.minimum(bound, x * _SHRINK)


def _general_z(shrunk, row_max, temperature):
    """``z = ((h - m)·4)·A·B`` for every ``T`` (module doc), from ``h`` and the
    row max ``m`` of ``h``. The losses apply it to the gathered label logit, so
    that the label's ``z`` is the row's ``z`` there bit for bit."""
    (zero,) = _opaque(shrunk.dtype, 0.0)
    factor_a, factor_b = _temperature_factors(temperature, shrunk.dtype)
    # Each min(., 0) is a no-op on the value (every factor is >= 0 and h <= m)
    # that stops XLA from folding the three factors into one product, which
    # would overflow (T = 0) or underflow (T = inf) and give 0·inf = NaN.
    scaled = jnp.minimum(zero, jnp.minimum(zero, (shrunk - row_max) * 4) * factor_a)
    return scaled * factor_b


# Rows wider than this make XLA:CPU's fused exp-and-sum about 11x slower per
# entry (measured: sum(exp(z), -1) over 2**26 float32 entries takes 22 ms with
# rows of 32768 and 230-270 ms with rows of 32769 to 262144).
_WIDEST_FAST_ROW = 32768


def _chunk_count(n):
    """The fewest ``k`` that cut a row of ``n`` into equal chunks no wider than
    ``_WIDEST_FAST_ROW``, or None if the row is narrow or has no such divisor
    (chunks of at least 256)."""
    if n <= _WIDEST_FAST_ROW:
        return None
    fits = (k for k in range(2, n // 256 + 1) if n % k == 0)
    return next((k for k in fits if n // k <= _WIDEST_FAST_ROW), None)


def _sum_exp(z_of, axes, x, *row_values):
    """``Σ exp(z_of(x, *row_values))`` over ``axes`` (keepdims), by
    :func:`_row_sum` (measured at 1024x131072 float32: log_softmax forward
    0.95x -> 2.1x and logsumexp 1.07x -> 5.7x of jax.nn's speed)."""
    return _row_sum(partial(_exp_of, z_of), axes, x, *row_values)


def _exp_of(z_of, x, *row_values):
    return jnp.exp(z_of(x, *row_values))


def _row_sum(term_of, axes, x, *row_values):
    """``Σ term_of(x, *row_values)`` over ``axes`` (keepdims).

    ``term_of`` is elementwise in ``x`` (logits-sized) and the per-row
    ``row_values`` (keepdims shapes). On CPU, over a last axis wider than
    ``_WIDEST_FAST_ROW``, ``x`` is cut into ``k`` chunks per row, each summed in
    its own row of a ``[rows·k, n/k]`` view, and the ``k`` partial sums are
    added. The optimization barrier keeps XLA from folding the view back into
    one wide reduction. ``x`` should be an array that is written out anyway
    (an input, or ``z`` where the pass writes it): the barrier makes XLA
    write it. Other platforms sum directly.
    """

    def plain(x, *row_values):
        return jnp.sum(term_of(x, *row_values), axes, keepdims=True)

    k = _chunk_count(x.shape[-1]) if x.ndim and axes == (x.ndim - 1,) else None
    if k is None:
        return plain(x, *row_values)

    def chunked(x, *row_values):
        batch, width = x.shape[:-1], x.shape[-1] // k
        chunks = lax.optimization_barrier(x.reshape(-1, width))
        per_chunk = [
            jnp.broadcast_to(r, batch + (k,)).reshape(-1, 1) for r in row_values
        ]
        partial_sums = jnp.sum(term_of(chunks, *per_chunk), -1)
        return jnp.sum(partial_sums.reshape(batch + (k,)), -1, keepdims=True)

    return lax.platform_dependent(x, *row_values, cpu=chunked, default=plain)


def _narrow_max(x, axes):
    """``raw_max`` for :func:`_scaled_logits` from ``x`` in its own dtype.

    For 16-bit rows that :func:`_sum_exp` cuts into chunks: a plain max of the
    narrow ``x`` (exact), so that the pass making ``z`` needs no row max of its
    own. Fused into that pass, the max made XLA:CPU write ``z`` out in float32
    for the chunked sum (measured at 1024x131072 bfloat16: log_softmax
    forward+backward 0.52x -> 0.81x of jax.nn, softmax forward+backward
    0.80x -> 0.86x); with this max, :func:`_normalizer_sum` recomputes ``z``
    from the 16-bit ``x`` in the chunked sum, and no float32 ``z`` is written
    at all. Elsewhere ``False``, the fused max: a separate max is
    slower on rows up to 32768 wide (bfloat16 log_softmax forward 0.84x ->
    0.78x at 8192x1024) and on float32 rows (softmax forward 1.01x -> 0.89x
    at 1024x131072). The choice is by shape, so it holds on every platform,
    though only CPU chunks the sum; on an accelerator the separate max costs
    one more read of the 16-bit ``x`` (not measured: no GPU was lent yet).
    """
    dtype = _validate.compute_dtype(x.dtype)
    wide = x.ndim and axes == (x.ndim - 1,) and _chunk_count(x.shape[-1])
    if x.dtype == dtype or not wide:
        return False
    return jnp.max(x, axes, keepdims=True).astype(dtype)


def _same(z):
    return z


def _by_temperature(value, x, temperature, axes):
    """``value(x, T, axes, ordinary)``, the cheaper arithmetic when it is exact.

    A ``lax.cond`` on one scalar: are all temperatures ordinary (between
    ``4/max_float`` and ``max_float/4096``, so ``1/(2T)`` is a normal number)?
    Then :func:`_scaled_logits` needs one multiply (three with ``exact_z``) per
    entry instead of six operations (measured with ``python -m bench``: softmax
    forward 0.86x -> 1.04x of ``jax.nn`` at 512x32768 float32 on CPU).
    ``T = 0``, ``T = inf``, NaN and extreme temperatures take the general
    branch. The whole computation sits inside the branch so that XLA fuses it as
    before. Under ``vmap`` with a batched ``T``, JAX turns the cond into a
    select and evaluates both branches.
    """
    # The range of the compute dtype: x may still be 16-bit here (see _widened).
    dtype = _validate.compute_dtype(x.dtype)
    big, _ = _limits(dtype)
    t = jnp.asarray(temperature, dtype)
    return lax.cond(
        jnp.all((t >= 4 / big) & (t <= big / 4096)),
        partial(value, axes=axes, ordinary=True),
        partial(value, axes=axes, ordinary=False),
        x,
        temperature,
    )


def _widened(x):
    """``x`` in its compute dtype (float32 for 16-bit input).

    The cores take ``x`` in its own dtype and widen it here, inside the passes
    that read it: widened outside, a 16-bit ``x`` has its float32 copy read by
    two passes and XLA:CPU writes that copy out (measured with bfloat16:
    log_softmax forward+backward 0.35x of jax.nn, logsumexp 7 instead of 2 N·s).
    """
    return x.astype(_validate.compute_dtype(x.dtype))


def _derivative_scale(temperature):
    """``1/T`` for derivatives, 0 at ``T = 0`` (and so also at ``T = inf``).

    Differentiable in ``T`` for second order.
    """
    hard = lax.stop_gradient(1 / temperature) == jnp.inf
    # Double where: the T fed to 1/T is never 0, so d(1/T)/dT is never inf and
    # the unselected branch cannot turn a zero cotangent into NaN.
    return jnp.where(hard, 0, _inverse_temperature(jnp.where(hard, 1, temperature)))


def _row_derivative_scale(x, temperature, axes):
    """:func:`_derivative_scale` per row, and 0 on rows holding ``+inf``.

    Such a row's probability sits on its ``+inf`` entries whatever the others
    are, so all its derivatives are 0. One flag per row, from a max of ``x`` that
    reads it once; zeroing ``dx`` where ``x`` is infinite instead puts a read of
    ``x`` and six operations per entry into the backward pass (measured with
    ``jax.profiler`` at 512x32768 float32 on CPU: log_softmax's backward 35 ->
    22 ms).
    """
    inf_row = jnp.max(x, axes, keepdims=True) == jnp.inf
    return jnp.where(inf_row, 0, _derivative_scale(temperature))


def _dominant_flag(p):
    """1 at the entry with ``p > 1/2`` (at most one per row), else 0.

    ``floor(p + (1/2 - ulp))`` is the indicator without a compare and select
    (two entries at exactly 1/2 both give 0).
    """
    below_half = np.nextafter(np.asarray(0.5, p.dtype), np.asarray(0, p.dtype))
    return jnp.floor(p + below_half)


def _log_softmax_tangent(v, y, rest_mass, axes):
    """``v - <y, v>`` along ``axes``, with the dominant entry's tail restored.

    At the entry ``k`` with ``y_k > 1/2`` the true probability is ``1 - R``,
    ``R = Σ_{j≠k} y_j`` summed over the other entries (``rest_mass``, from
    the rule: see :func:`_off_dominant`), but the rounded ``y_k``
    loses ``R`` below ``eps`` (``softmax([40, 0])`` has ``y_0 = 1``,
    ``R = 4.25e-18``). The rule adds ``<c, v>`` with ``c = f·((y - 1) + R)``
    (``f`` the one-hot of ``k``): the rounding error of ``y_k``, where
    ``y_k - 1`` is exact (Sterbenz), so that the formula uses ``1 - R`` at
    ``k``.

    * Reverse mode, the transpose, is ``g - y·Σg + c·Σg``, added in that order
      (JAX accumulates cotangents in the reverse of the program order, hence
      ``correction`` first): at ``k`` it is ``(g_k - y_k Σg) + c_k Σg``, and for
      ``g = e_k`` (the gradient of ``log_softmax(x)[k]``) that is
      ``(1 - y_k) + ((y_k - 1) + R) = R`` exactly.
    * Forward mode is ``(v_k - <y, v>) + c_k v_k``: exact on the unit tangents
      (the Jacobian's columns), within ``eps·|v_k|`` otherwise.

    Reverse mode sums the cotangent once per row (the earlier rule took three
    row sums; measured log_softmax forward+backward at 512x32768 float32 on
    CPU: 0.73-0.76x -> 0.78-0.80x of jax.nn's tail-free autodiff).
    """
    flag = _dominant_flag(y)
    lost = flag * ((y - 1) + rest_mass)
    # First in program order, so last in the transpose's accumulation.
    correction = jnp.sum(lost * v, axes, keepdims=True)
    return (v - jnp.sum(y * v, axes, keepdims=True)) + correction


def _softmax_tangent(v, y, axes):
    """``y·(v - <y, v>)`` along ``axes``, exact in the dominant entry's tail.

    The plain ``w = y·v - y·<y, v>`` loses the tail at the dominant entry ``k``
    (``y_k > 1/2``): ``y_k`` rounds to 1 and ``v_k - <y, v>`` cancels, so
    ``grad softmax([40, 0])[0]`` comes out ``[0, -4.25e-18]``. The rule returns
    ``w - f·Σw`` instead, with ``f`` the one-hot of ``k`` (zero if there is
    none). That is ``(I - f 1ᵀ) J v = J v`` (``1ᵀJ = 0``), and

    * forward mode: ``(w - f·Σw)_k = -Σ_{j≠k} w_j``, the tail from the other
      entries, each exact (``Σw`` is 0 up to ``eps·|w_k|``, itself ``eps``
      small, so the error is ``eps²·|v|``);
    * reverse mode, the transpose, is ``J (g - g_k)``: the cotangent shifted by
      its own value at ``k`` (``Σ f·g``, exact) before the usual formula, so
      the ``k`` term is exactly 0 and ``ct_k = -y_k Σ_j y_j (g_j - g_k)``
      keeps the tail.

    Reverse mode is one fused pass with two sums and a 3-operation output per
    entry (measured at 512x32768 float32 on CPU: 0.87-0.96x of the speed of
    jax.nn's tail-free autodiff, against 0.82-0.86x for the earlier rule with
    three sums, whose output took 9 operations per entry).
    """
    w = y * v - y * jnp.sum(y * v, axes, keepdims=True)
    return w - _dominant_flag(y) * jnp.sum(w, axes, keepdims=True)


def _finite_or_zero(log_p):
    """``log p`` with ``-inf`` replaced by 0: ``0·log 0`` in an entropy and
    ``log p · dT`` where ``p = 0`` stay finite for every finite ``dT``
    (``-max_float`` alone would give ``-max_float · 3 = -inf``)."""
    big, _ = _limits(log_p.dtype)
    return jnp.maximum(log_p, -big) * _alive(log_p)


def _alive(log_p):
    """1 where ``log p`` is finite, 0 where it is ``-inf`` (NaN stays NaN).

    ``log p · tiny · 1e-30`` underflows to (minus) zero for every finite value.
    """
    _, tiny = _limits(log_p.dtype)
    # min(., 1) is a no-op (log p <= 0) that keeps XLA from folding tiny·1e-30
    # into a single 0. Neither constant is the 0 of _scaled_logits: XLA:CPU
    # writes a broadcast constant shared by two fusions out as a logits-sized
    # array (measured: log_softmax forward+backward 12 -> 9 N·s).
    return jnp.maximum(1 + jnp.minimum(log_p * tiny, 1) * 1e-30, -0.0)


def _direction(log_p, tangent_x, tangent_t, dtype):
    """The tangent of ``z = x/T`` in units of ``1/T``: ``dx - z·dT``, in ``dtype``.

    ``z`` may be replaced by ``log p`` because both tangent maps are shift
    invariant (``J·1 = 0``). Symbolic zeros are skipped.
    """
    if not isinstance(tangent_x, SymbolicZero):
        tangent_x = tangent_x.astype(dtype)
    if isinstance(tangent_t, SymbolicZero):
        return tangent_x
    along_t = _finite_or_zero(log_p) * tangent_t
    return -along_t if isinstance(tangent_x, SymbolicZero) else tangent_x - along_t


def _no_tangent(tangents):
    return all(isinstance(t, SymbolicZero) for t in tangents)


# --------------------------------------------------------------------------- #
# softmax
# --------------------------------------------------------------------------- #
def _softmax_value(x, temperature, axes, ordinary):
    raw_max = _narrow_max(x, axes)
    xc = _widened(x)
    z, row_max = _scaled_logits(
        xc, temperature, axes, raw_max=raw_max, ordinary=ordinary
    )
    unnormalized = jnp.exp(z)
    total = _normalizer_sum(
        x, z, row_max, temperature, axes, raw_max, ordinary=ordinary, exact_z=False
    )
    # The max entry contributes exp(0) = 1, so total >= 1 in every row but an
    # all -inf / all masked one, where it is 0: max(total, 1) returns zeros there
    # (not 0/0) without a select.
    return unnormalized * (1 / jnp.maximum(total, 1))


@partial(jax.custom_jvp, nondiff_argnums=(2,))
def _softmax_core(x, temperature, axes):
    return _by_temperature(_softmax_value, x, temperature, axes)


@partial(_softmax_core.defjvp, symbolic_zeros=True)
def _softmax_jvp(axes, primals, tangents):
    # Own rule: keeps the tail (see _softmax_tangent), zero derivatives on edge
    # rows, an exact d/dT; calling the core again makes every higher order exact.
    x, temperature = primals
    y = _softmax_core(x, temperature, axes)
    if _no_tangent(tangents):
        return y, jnp.zeros_like(y)
    log_p = None
    if not isinstance(tangents[1], SymbolicZero):
        log_p = _log_softmax_core(x, temperature, axes)
    v = _direction(log_p, tangents[0], tangents[1], y.dtype)
    scale = _row_derivative_scale(x, temperature, axes)
    return y, scale * _softmax_tangent(v, y, axes)


# --------------------------------------------------------------------------- #
# log_softmax
# --------------------------------------------------------------------------- #
def _log_softmax_value(x, temperature, axes, ordinary):
    # Log-softmax shows z itself, which must be -inf at the finite entries of a
    # +inf row: hence exact_z on the cheap branch.
    raw_max = _narrow_max(x, axes)
    xc = _widened(x)
    z, row_max = _scaled_logits(
        xc, temperature, axes, raw_max=raw_max, ordinary=ordinary, exact_z=True
    )
    total = _normalizer_sum(
        x, z, row_max, temperature, axes, raw_max, ordinary=ordinary, exact_z=True
    )
    # total >= 1 but in all -inf rows (total 0), where z is -inf already.
    return z - jnp.log(jnp.maximum(total, 1))


@partial(jax.custom_jvp, nondiff_argnums=(2,))
def _log_softmax_core(x, temperature, axes):
    return _by_temperature(_log_softmax_value, x, temperature, axes)


@partial(_log_softmax_core.defjvp, symbolic_zeros=True)
def _log_softmax_jvp(axes, primals, tangents):
    # Own rule: tail-exact, and 0 (not 1) at -inf entries whose output stays -inf.
    x, temperature = primals
    log_p = _log_softmax_core(x, temperature, axes)
    if _no_tangent(tangents):
        return log_p, jnp.zeros_like(log_p)
    y = jnp.exp(log_p)
    v = _direction(log_p, tangents[0], tangents[1], y.dtype)
    scale = _row_derivative_scale(x, temperature, axes)
    # The mask multiplies the whole tangent, so reverse mode writes the masked
    # cotangent out once (13 N·s at 512x32768; jax.nn moves 11). Spread over
    # the rule's terms instead (keep·v - keep·<y, v> + ...), it let XLA:CPU
    # fuse the backward into one kernel (9 N·s), but that kernel was slower:
    # 0.80x against 0.85x of jax.nn at 512x32768 float32, 0.45x against 0.78x
    # at 1024x131072 (no chunked row sums there). The mask is the costly part
    # of the rule on CPU: without it (and without the +inf flag and the tail)
    # the rule ran at 0.98-1.01x, with it 0.72-0.77x.
    if x.dtype == log_p.dtype:
        rest_mass = jnp.sum(_off_dominant(log_p), axes, keepdims=True)
    else:
        # 16-bit x: see _off_dominant.
        rest_mass = _row_sum(_off_dominant, axes, log_p)
    tangent = _log_softmax_tangent(v, y, rest_mass, axes)
    return log_p, _alive(log_p) * (scale * tangent)


def _off_dominant(log_p):
    """``p`` at every entry but the dominant one (``p > 1/2``), 0 there.

    Its row sum is the tail term's ``R`` (see :func:`_log_softmax_tangent`).
    For 16-bit ``x`` the rule sums it in chunks (:func:`_row_sum`, over the
    float32 ``log p`` that the backward reads anyway): summed whole inside
    the backward's kernel, it made that kernel 665 instead of 277 ms at
    1024x131072 bfloat16 (``jax.profiler``), and log_softmax
    forward+backward went from 0.52x to 0.67x of jax.nn. For float32 ``x``
    the plain sum stays fused in the backward's kernel: chunked, it was
    0.82x -> 0.76x at the same shape.
    """
    y = jnp.exp(log_p)
    return y - _dominant_flag(y) * y


# --------------------------------------------------------------------------- #
# logsumexp
# --------------------------------------------------------------------------- #
def _plain_z(x, row_max, inverse_t):
    return (_widened(x) - row_max) * inverse_t


def _logsumexp_value(x, temperature, axes, ordinary):
    xc = _widened(x)
    # One plain max of the narrow x (exact) serves z and the result. Fusing it
    # into the exponential's pass, as softmax does, is 3x slower on 131072-wide
    # rows on XLA:CPU (measured: 0.36x -> 0.98x of jax.nn at 1024x131072).
    row_max = jnp.max(x, axes, keepdims=True).astype(xc.dtype)
    if ordinary:
        # Only exp(z) is used, and a +inf row's value is +inf whatever its
        # entries give, so the plain (x - max)/T suffices: equal to the general
        # z wherever exp(z) > 0. The clip keeps -inf - (-inf) out.
        big, _ = _limits(xc.dtype)
        total = _sum_exp(
            _plain_z, axes, x, jnp.clip(row_max, -big, big), 1 / temperature
        )
    else:
        z, _ = _scaled_logits(xc, temperature, axes, raw_max=row_max)
        total = _sum_exp(_same, axes, z)
    log_total = jnp.log(total)
    # T·log Σ is 0 when one entry carries the row (also at T = 0 or inf), and
    # 0·log 0 must not become NaN in an all -inf row (whose max is -inf).
    scaled = jnp.where(
        (log_total == 0) | (row_max == -jnp.inf), 0, temperature * log_total
    )
    return row_max + scaled


@partial(jax.custom_jvp, nondiff_argnums=(2,))
def _logsumexp_core(x, temperature, axes):
    """Keepdims ``T·log Σ exp(x/T)`` in the compute dtype (``x`` in its own)."""
    return _by_temperature(_logsumexp_value, x, temperature, axes)


@partial(_logsumexp_core.defjvp, symbolic_zeros=True)
def _logsumexp_jvp(axes, primals, tangents):
    # Own rule: d/dx = softmax and d/dT = its entropy, both 0 on +inf rows
    # instead of inf - inf; the softmax core makes higher orders exact.
    x, temperature = primals
    tangent_x, tangent_t = tangents
    value = _logsumexp_core(x, temperature, axes)
    if _no_tangent(tangents):
        return value, jnp.zeros_like(value)
    x = x.astype(value.dtype)
    keep = jnp.where(value == jnp.inf, 0, 1).astype(x.dtype)
    y = _softmax_core(x, temperature, axes)
    tangent = jnp.zeros_like(value)
    if not isinstance(tangent_x, SymbolicZero):
        tangent = tangent + keep * jnp.sum(y * tangent_x, axes, keepdims=True)
    if not isinstance(tangent_t, SymbolicZero):
        log_p = _log_softmax_core(x, temperature, axes)
        entropy = -jnp.sum(y * _finite_or_zero(log_p), axes, keepdims=True)
        tangent = tangent + keep * entropy * tangent_t
    return value, tangent


# --------------------------------------------------------------------------- #
# Public API
# --------------------------------------------------------------------------- #
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


@partial(jax.jit, static_argnums=(2,))
def _softmax_jit(x, temperature, axes, mask):
    return _softmax_core(_masked(x, mask), temperature, axes).astype(x.dtype)


@partial(jax.jit, static_argnums=(2,))
def _log_softmax_jit(x, temperature, axes, mask):
    return _log_softmax_core(_masked(x, mask), temperature, axes).astype(x.dtype)


@partial(jax.jit, static_argnums=(2, 4))
def _logsumexp_jit(x, temperature, axes, mask, keepdims):
    value = _logsumexp_core(_masked(x, mask), temperature, axes)
    value = value if keepdims else jnp.squeeze(value, axes)
    return value.astype(x.dtype)


def _masked(x, mask):
    """``x`` (in its own dtype: the cores widen it) with masked entries -inf."""
    return x if mask is None else jnp.where(mask, x, -jnp.inf)


def softmax(x, axis: _validate.Axis = -1, where=None, *, temperature=1.0) -> jax.Array:
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
    x, axis: _validate.Axis = -1, where=None, *, temperature=1.0
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
    x, axis: _validate.Axis = -1, where=None, *, temperature=1.0, keepdims: bool = False
) -> jax.Array:
    r"""Temperature-scaled log-sum-exp, the log-normaliser of :func:`softmax`.

    .. math::
        \mathrm{logsumexp}(x) = T \log \sum_j \exp(x_j / T)

    Note the defaults follow :func:`softmax` (``axis=-1``, ``where`` third), not
    :func:`jax.nn.logsumexp` (``axis=None``, ``b`` third): pass ``axis`` and
    ``where`` by keyword when porting code that used ``b``. ``T = 0`` is the max.
    ``∂/∂x`` is the softmax and ``∂/∂T`` its entropy. Edge rows: ``-inf`` for an
    all ``-inf`` / all masked row (derivative 0), ``+inf`` if any entry is
    ``+inf`` (derivative 0), NaN if the row holds a NaN.

    Args:
      x: values (see :func:`softmax` for dtypes).
      axis: int, tuple of ints or None.
      where: optional boolean mask broadcastable to ``x``.
      temperature: ``T >= 0`` as in :func:`softmax`.
      keepdims: keep the reduced axes with length 1.

    Returns:
      The reduced array, in the dtype of ``x``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jsoftmax
      >>> jnp.set_printoptions(precision=4)
      >>> print(jsoftmax.logsumexp(jnp.array([[0.0, 0.0], [1.0, -jnp.inf]])))
      [0.6931 1.    ]
      >>> print(jsoftmax.logsumexp(jnp.array([1.0, 5.0]), temperature=0.0))
      5.0
    """
    x, axes, temperature, mask = _prepare(x, axis, where, temperature)
    return _logsumexp_jit(x, temperature, axes, mask, bool(keepdims))


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
    xc = x.astype(_validate.compute_dtype(x.dtype))
    axes = (xc.ndim - 1,)
    y = _softmax_core(xc, temperature, axes)
    # 0 at T = 0 and on rows holding +inf (see _row_derivative_scale).
    scale = _row_derivative_scale(xc, temperature, axes)[..., None]
    # Diagonal y_i (1 - y_i); where y_i > 1/2, 1 - y_i is summed over the other
    # entries so a dominant entry keeps its tail (see _softmax_tangent).
    dominant = y > 0.5
    rest_mass = jnp.sum(jnp.where(dominant, 0, y), axes, keepdims=True)
    rest = jnp.where(dominant, rest_mass, 1 - y)
    outer = -y[..., :, None] * y[..., None, :]
    eye = jnp.eye(y.shape[-1], dtype=bool)
    jac = jnp.where(eye, (y * rest)[..., :, None], outer) * scale
    return jac.astype(x.dtype)
