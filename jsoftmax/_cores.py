"""The ``custom_jvp`` cores of softmax, log-softmax and logsumexp.

Each core takes ``x`` in its own dtype (16-bit input is widened inside the
passes that read it, see :func:`jsoftmax._rows.widened`), a per-row
temperature in the compute dtype and the reduced ``axes`` (static). Values
come from :mod:`jsoftmax._rows`; the rules return derivatives with zeros on the
edges of DESIGN.md (softmax's keeps the dominant entry's tail), and call the
cores again, so that every higher order goes through the same rules.

On an accelerator each forward is the program ``jax.nn`` compiles to (a max
pass, a pass summing ``exp z``, the output pass), with the edge selects folded
into the passes and no conditional (the CPU-only ``lax.cond`` of
:func:`jsoftmax._rows.with_logits` is resolved away while lowering). The one
barrier is in softmax's rule for float16 input (:func:`_as_read`).
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
from jax import lax
from jax.custom_derivatives import SymbolicZero

from jsoftmax import _rows


def _flag_rows(name, axes):
    """``suspect`` for :func:`jsoftmax._rows.with_logits`: a row that plain
    arithmetic got wrong has a NaN sum and is NaN everywhere. Read off the row
    sum for float32 and wider (slicing an output entry split XLA:CPU's fused
    float32 softmax at 1024x131072: 0.61x of jax.nn), off the first output
    entry for 16-bit input (the sum as an output made XLA:CPU write the
    float32 ``z`` out: bfloat16 softmax 8192x1024 at 0.23x)."""

    def suspect(out):
        if out[name].dtype.itemsize >= 4:
            return ~jnp.isfinite(out["total"])
        first = out[name]
        for axis in axes:
            first = lax.slice_in_dim(first, 0, 1, axis=axis)
        return jnp.isnan(first)

    return suspect


# --------------------------------------------------------------------------- #
# softmax
# --------------------------------------------------------------------------- #
@partial(jax.custom_jvp, nondiff_argnums=(2,))
def softmax_core(x, temperature, axes):
    """Probabilities in ``x``'s dtype."""

    def finish(m, temp, z, dead):
        unnormalized = jnp.exp(z)
        total = jnp.sum(unnormalized, axes, keepdims=True)
        y = _rows.normalized(unnormalized, total, dead)
        return {"y": y.astype(x.dtype), "total": total}

    return _rows.with_logits(
        x, temperature, axes, finish, _flag_rows("y", axes), max_of_halves=True
    )["y"]


@partial(softmax_core.defjvp, symbolic_zeros=True)
def _softmax_jvp(axes, primals, tangents):
    # Own rule: keeps the dominant entry's tail (see log_softmax_tangent), zero
    # derivatives on edge rows, an exact d/dT.
    x, temperature = primals
    y = softmax_core(x, temperature, axes)
    if _rows.no_tangent(tangents):
        return y, jnp.zeros_like(y)
    narrow = _rows.widened(y).dtype != y.dtype
    yc = _as_read(y) if narrow else y
    log_p = None
    if not isinstance(tangents[1], SymbolicZero):
        log_p = _rows.widened(log_softmax_core(x, temperature, axes))
    u = _rows.direction(log_p, tangents[0], tangents[1], yc.dtype)
    # The forward's own max of the halves (max_of_halves): one max pass on CPU.
    scale = _rows.derivative_scale(temperature, _rows.row_max(_rows.halved(x), axes))
    tangent = yc * (scale * _rows.log_softmax_tangent(u, yc, axes, narrow))
    return y, tangent.astype(y.dtype)


def _as_read(y):
    """16-bit ``y`` widened to float32 as it is in memory.

    XLA's excess-precision rewrite reads ``convert(convert(y32))`` as the
    float32 ``y`` from before the cast, which it then keeps as a float32
    logits-sized residual (bfloat16 softmax forward+backward on H100: 1.63x
    jax.nn's bytes). bfloat16 is the upper half of a float32, widened here
    through its bits, which XLA does not see through (TPU v5e: 1.13x -> 1.00x
    jax.nn's bytes, 5 kernels against 6; CPU as with a barrier). float16, and
    bfloat16 on GPUs (a barrier there: 4 kernels at 32x1000 against 5 through
    the bits, the same at 4096x32768), go through a barrier. Same values.
    """

    def through_a_barrier(y):
        return _rows.widened(lax.optimization_barrier(y))

    def through_the_bits(y):
        bits = lax.bitcast_convert_type(y, jnp.uint16).astype(jnp.uint32) << 16
        return lax.bitcast_convert_type(bits, jnp.float32)

    if y.dtype != jnp.bfloat16:
        return through_a_barrier(y)
    return _rows.platform_dependent(
        y, cuda=through_a_barrier, rocm=through_a_barrier, default=through_the_bits
    )


# --------------------------------------------------------------------------- #
# log_softmax
# --------------------------------------------------------------------------- #
@partial(jax.custom_jvp, nondiff_argnums=(2,))
def log_softmax_core(x, temperature, axes):
    """Log-probabilities in ``x``'s dtype: ``z - log Σ exp z``."""

    def finish(m, temp, z, dead):
        total = _rows.row_sum(z, axes)
        log_p = _rows.log_p(z, total, dead).astype(x.dtype)
        return {"log_p": log_p, "total": total}

    suspect = _flag_rows("log_p", axes)
    return _rows.with_logits(x, temperature, axes, finish, suspect)["log_p"]


@partial(log_softmax_core.defjvp, symbolic_zeros=True)
def _log_softmax_jvp(axes, primals, tangents):
    # Own rule: 0 (not 1) at entries whose log p stays -inf, 0 on +inf rows
    # and at T = 0, an exact d/dT. It is the plain u - <p, u>: keeping the
    # dominant entry's tail (as the softmax's rule does) needs a sum of
    # p over the other entries, one more read of log p in the backward (1.17x
    # jax.nn's bytes on H100, python -m bench accel); log p's own value
    # rounds the tail away at that entry anyway.
    x, temperature = primals
    log_p = log_softmax_core(x, temperature, axes)
    if _rows.no_tangent(tangents):
        return log_p, jnp.zeros_like(log_p)
    lp = _rows.widened(log_p)
    u = _rows.direction(lp, tangents[0], tangents[1], lp.dtype)
    live, keep, e, inverse_total = _live(x, lp, temperature, axes)
    scale = jnp.where(keep, _rows.inverse_temperature(temperature), 0)
    along_p = jnp.sum(e * u, axes, keepdims=True) * inverse_total
    tangent = live * (scale * (u - along_p))
    return log_p, tangent.astype(log_p.dtype)


# The widest row XLA:GPU fuses into one Triton softmax kernel (jax 0.10,
# deviceless H100: log_softmax forward+backward at 4096x16384 against
# 4096x16385 in python -m bench accel --shapes).
TRITON_ROW_LIMIT = 16384


def _live(x, lp, temperature, axes):
    """``(live, keep, e, inverse_total)``: the product of ``live``
    (elementwise) and ``keep`` (per row) is 1 where ``log p`` is finite in a
    row without ``+inf``, else 0 (NaN rows are NaN through the row sum), and
    ``p = e·inverse_total``. Primal factors: a ``lax.platform_dependent``
    over the tangent itself transposed to a zero gradient in jax 0.10.

    On accelerators everything is read off ``x`` as ``jax.nn``'s rule does:
    ``p = exp z / Σ exp z`` (``z`` as the forward forms it) and ``live``
    where ``z`` is above ``-inf`` and ``x`` finite (``0·h`` is NaN at the
    ``+inf`` entries of a ``+inf`` row and in an all ``-inf`` row, the only
    entries whose ``z`` is finite where ``log p`` is not). XLA then
    recomputes the row from ``x`` in the backward instead of reading
    ``log p`` (log_softmax forward+backward on H100, float32: 32x1000 2
    kernels against 4, 1.80x -> 1.00x jax.nn's bytes; 4096x4096 1.70x ->
    1.00x with the sum below; 4096x32768 1.07x -> 1.00x; TPU v5e one kernel
    fewer, the same bytes; ``python -m bench accel``). On GPUs the row width
    (static) picks the form: rows of at most 16384 entries, which XLA:GPU
    fuses into one Triton softmax kernel, sum ``exp z`` in the backward
    instead of sharing the forward's sum, which XLA:GPU otherwise computes in
    a kernel of its own (4096x4096 and any such width: 3 kernels and 1.20x
    jax.nn's bytes -> 2 and 1.00x; on wider rows it costs a pass: 4096x32768
    1.00x -> 1.22x); wider rows form the mask by min/max arithmetic (bfloat16
    4096x32768: 1.14x -> 1.002x; on the narrower rows it costs the
    one-kernel program: bfloat16 2 -> 4 kernels). A mask read off
    ``x - max`` alone (1/T at an entry whose ``z`` underflows to ``-inf``)
    would change the derivative there and make the CPU read ``x`` (float32
    4096x32768, 1024x131072, 8192x1024 in one process: 0.53x, 0.59x, 0.64x
    of jax.nn against 0.72x, 0.55x, 0.83x).

    On CPU off ``log p`` by min/max arithmetic, not a compare: XLA:CPU fuses
    no compare into its vectorised row sums (8192x1024 float32: 0.64x of
    jax.nn with a compare, 0.91x so), and the ``+inf`` row is zeroed per row
    (reading ``x`` there instead: 0.8-0.9x of this in float32, 0.5x in
    bfloat16; so is a select on the broadcast row flag); ``e = p = exp(log
    p)``.
    """
    h = _rows.halved(x)
    m = _rows.half_max(x, axes)

    def above_minus_inf(v):
        # 1 where v > -inf (v <= 0 finite), 0 at -inf, by min/max arithmetic.
        big = _rows.limits(v.dtype)[0]
        return jnp.sign(jnp.maximum(v * 0.25 + big, 0))

    def on_cpu(h, m, lp):
        return above_minus_inf(lp), m != jnp.inf, jnp.exp(lp), jnp.ones_like(m)

    def from_x(h, m, lp, gpu_rows=None):
        # gpu_rows: "fused" for rows that XLA:GPU fuses into one Triton
        # softmax kernel (at most TRITON_ROW_LIMIT entries), "wide" for wider
        # ones on GPUs, None elsewhere.
        z = _rows.scaled_logits(h, m, _rows.temperature_terms(temperature, m.dtype))
        if gpu_rows == "wide":
            # By arithmetic (the same values): XLA:GPU writes the compare
            # below out as a boolean array in bfloat16 (4096x32768: 1.14x
            # jax.nn's bytes -> 1.002x).
            live = above_minus_inf(z) * (jnp.abs(h) < jnp.inf).astype(lp.dtype)
        else:
            live = (z + 0 * h > -jnp.inf).astype(lp.dtype)
        e = jnp.exp(z)
        if gpu_rows == "fused":
            # Σ e over the entries with a finite or NaN x: Σ e itself in a
            # row of finite max, NaN in a NaN row, 0 in +inf and all -inf rows,
            # whose derivatives are 0·(1/1) = 0 (selects: a product with
            # the mask becomes a select that would drop a NaN entry, and max
            # with a NaN is not relied upon). Not the forward's sum, so XLA
            # does not share it.
            total = jnp.sum(jnp.where(jnp.abs(h) == jnp.inf, 0, e), axes, keepdims=True)
            total = jnp.where(total == 0, 1, total)
        else:
            total = jnp.sum(e, axes, keepdims=True)
        return live, jnp.full_like(m, True, dtype=bool), e, 1 / total

    def on_gpus(h, m, lp):
        fused = math.prod(x.shape[a] for a in axes) <= TRITON_ROW_LIMIT
        return from_x(h, m, lp, "fused" if fused else "wide")

    def on_accelerators(h, m, lp):
        return from_x(h, m, lp)

    return _rows.platform_dependent(
        h, m, lp, cpu=on_cpu, cuda=on_gpus, default=on_accelerators
    )


# --------------------------------------------------------------------------- #
# logsumexp
# --------------------------------------------------------------------------- #
@partial(jax.custom_jvp, nondiff_argnums=(2,))
def logsumexp_core(x, temperature, axes):
    """Keepdims ``T·log Σ exp(x/T)`` in the compute dtype."""

    def finish(m, temp, z, dead):
        total = _rows.row_sum(z, axes)
        log_total = jnp.log(total)
        t = jnp.asarray(temperature, m.dtype)
        # T·log Σ is 0 where one entry carries the row, also at T = 0 or inf
        # (0·inf would be NaN), and in an all -inf row (value -inf). m is max/2.
        keep_max = (log_total == 0) | (m == -jnp.inf)
        # 0·Σ: NaN where a NaN row fooled the max into -inf (_rows.normalized).
        return 2 * m + jnp.where(keep_max, temp.poison + 0 * total, t * log_total)

    return _rows.with_logits(x, temperature, axes, finish, jnp.isnan)


@partial(logsumexp_core.defjvp, symbolic_zeros=True)
def _logsumexp_jvp(axes, primals, tangents):
    # Own rule: d/dx = softmax and d/dT = its entropy (log k at T = inf), both 0
    # on +inf rows instead of inf - inf.
    x, temperature = primals
    tangent_x, tangent_t = tangents
    value = logsumexp_core(x, temperature, axes)
    if _rows.no_tangent(tangents):
        return value, jnp.zeros_like(value)
    keep = _rows.half_max(x, axes) != jnp.inf
    y = _rows.widened(softmax_core(x, temperature, axes))
    tangent = jnp.zeros_like(value)
    if not isinstance(tangent_x, SymbolicZero):
        along_x = jnp.sum(y * tangent_x.astype(y.dtype), axes, keepdims=True)
        tangent = tangent + jnp.where(keep, along_x, 0)
    if not isinstance(tangent_t, SymbolicZero):
        log_p = _rows.widened(log_softmax_core(x, temperature, axes))
        entropy = -jnp.sum(y * _rows.finite_or_zero(log_p), axes, keepdims=True)
        tangent = tangent + jnp.where(keep, entropy, 0) * tangent_t
    return value, tangent


# --------------------------------------------------------------------------- #
# logsumexp with weights b (jax.nn.logsumexp's b and return_sign)
# --------------------------------------------------------------------------- #
def _weighted_parts(x, b, temperature, axes):
    """``m``, ``z``, the weighted terms ``b·exp z`` and their row sum ``S``.
    Entries with ``b = 0`` are left out, as if masked."""
    h = _rows.halved(x)
    b = b.astype(h.dtype)
    h = jnp.where(b == 0, -jnp.inf, h)
    m = _rows.row_max(h, axes)
    temp = _rows.temperature_terms(temperature, h.dtype)
    z = _rows.scaled_logits(h, m, temp)
    terms = b * jnp.exp(z)
    total = jnp.sum(terms, axes, keepdims=True)
    return 2 * m, z, terms, total


@partial(jax.custom_jvp, nondiff_argnums=(3,))
def weighted_logsumexp_core(x, b, temperature, axes):
    """Keepdims ``(T·log|Σ b·exp(x/T)|, sign Σ)``; ``-inf`` and sign 0 where
    the sum is 0."""
    m, _, _, total = _weighted_parts(x, b, temperature, axes)
    log_abs = jnp.log(jnp.abs(total))
    t = jnp.asarray(temperature, m.dtype)
    value = m + jnp.where(log_abs == 0, 0, t * log_abs)
    empty = (total == 0) | _rows.dead_row(m)
    value = jnp.where(empty, -jnp.inf + 0 * total, value)
    return value, jnp.where(empty, 0, jnp.sign(total))


@partial(weighted_logsumexp_core.defjvp, symbolic_zeros=True)
def _weighted_logsumexp_jvp(axes, primals, tangents):
    # Own rule: weights w = b·exp z / S; d/dx = w, d/db = T·exp z / S,
    # d/dT = log|S| - <w, z>; 0 on +inf rows and where S = 0.
    x, b, temperature = primals
    tangent_x, tangent_b, tangent_t = tangents
    value, sign = weighted_logsumexp_core(x, b, temperature, axes)
    tangent = jnp.zeros_like(value)
    if _rows.no_tangent(tangents):
        return (value, sign), (tangent, jnp.zeros_like(sign))
    m, z, terms, total = _weighted_parts(x, b, temperature, axes)
    live = (m != jnp.inf) & (total != 0) & ~_rows.dead_row(m)
    inverse = jnp.where(live, 1 / jnp.where(total == 0, 1, total), 0)
    weights = terms * inverse
    if not isinstance(tangent_x, SymbolicZero):
        dx = tangent_x.astype(weights.dtype)
        tangent = tangent + jnp.sum(weights * dx, axes, keepdims=True)
    if not isinstance(tangent_b, SymbolicZero):
        t = jnp.asarray(temperature, m.dtype)
        along_b = jnp.sum(jnp.exp(z) * tangent_b.astype(m.dtype), axes, keepdims=True)
        tangent = tangent + jnp.where(live, t * along_b * inverse, 0)
    if not isinstance(tangent_t, SymbolicZero):
        log_abs = jnp.log(jnp.abs(jnp.where(live, total, 1)))
        z_live = jnp.where(weights == 0, 0, z)
        along_t = log_abs - jnp.sum(weights * z_live, axes, keepdims=True)
        tangent = tangent + jnp.where(live, along_t, 0) * tangent_t
    return (value, sign), (tangent, jnp.zeros_like(sign))
