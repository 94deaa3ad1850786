"""Row statistics and edge rules shared by every core.

One "row" is a slice of ``x`` along the reduced axes. Every core computes

* ``m``, the row max (a plain max, whose NaN handling is never relied upon);
* ``z = (x - m)/T`` with every edge of DESIGN.md folded in by selects, in the
  pass that reads ``x`` anyway (:func:`scaled_logits`);
* row sums of ``exp z``, which carry any NaN of the row: a NaN entry has a NaN
  ``z`` whatever ``m`` is, and a sum of a NaN is NaN on every backend.

How the edges fold in, with ``h = x/2``, ``m`` its row max and ``d = h - m``
(never overflows, unlike ``x - max`` in a row spanning more than the float
range, and ``2d == x - max`` exactly wherever that is representable):

=====================================  ======================================
entry                                  ``z``
=====================================  ======================================
``d == 0`` (the max and its ties)      0 (``0·rate``)
``d`` NaN at an infinite ``h``         0; an all ``-inf`` row (every entry
(``inf - inf``: the ``+inf`` entries   such a one) is zeroed in the outputs
of a ``+inf`` row, every entry of an   (:func:`dead_entries`)
all ``-inf`` row)
``d == -inf`` (``-inf`` logits, the    ``-inf``
finite entries of a ``+inf`` row)
``T == 0`` (``-0.0`` too) and          ``-inf``: the hard max, whatever the
``d < 0``                              gap
otherwise                              ``(d·c)·(2/(T·c))``, ``c`` a power of
                                       two that keeps ``2/(T·c)`` normal for
                                       huge ``T`` (XLA turns ``/T`` into
                                       ``·(1/T)``, which flushes to 0 above
                                       ``T = 2^126`` in float32)
NaN ``x``                              NaN (a NaN ``m``, which comes only
                                       from a NaN ``x``, makes the row's
                                       finite entries 0 or NaN: its sums are
                                       NaN either way)
=====================================  ======================================

At ``T = inf`` the last line gives ``0`` for every finite ``d`` (uniform over
the live entries). A negative or NaN ``T`` (possible only when traced) has a
NaN rate and poison, which makes ``z`` NaN at every entry that is not ``-inf``,
and so the row sums and the whole row. Subnormal logits closer than their own
spacing may halve to the same ``h`` and then count as tied, and on backends
that flush subnormals (XLA's CPU and GPU) a logit below twice the smallest
normal halves to 0: ``logsumexp`` of a row whose max is such a value is then
off by that value (at most ``2.4e-38`` in float32). There a gap between two
halves that is itself subnormal gives ``z = 0`` at ``T > 0`` (it is below
``1e-38·2/T``); at ``T = 0`` both halves are first scaled by ``2^24`` in a
row whose max is below 1, so that the gap stays a gap (the hard max "whatever
the gap" of DESIGN.md).

Every edge is a select on ``h``, on ``d`` and on the broadcast ``T`` terms
(no per-row flag selecting between elementwise arrays): XLA fuses those into
the passes, where a per-row flag (``T == 0``, ``m == -inf``) in such a select
became a kernel of its own (``python -m bench accel``: every forward on H100
and TPU v5e). The row max reaches the entries only through ``d``: XLA:GPU
fuses a max whose broadcast has one user with the passes after it into one
Triton softmax kernel, which it did not when ``h == m`` and ``h < m`` read
the broadcast max too (log_softmax forward+backward on H100: float32 32x1000
1.80x -> 1.00x jax.nn's bytes, 4096x4096 1.70x -> 1.00x, with the rule of
:func:`jsoftmax._cores._live`).
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import custom_batching
from jax import lax
from jax.custom_derivatives import SymbolicZero

from jsoftmax import _validate

# XLA:CPU builds its YNNPACK kernels (one per row pass) only from operations
# on at least this many elements (kMinElements in XLA's ynn_support.cc): with
# fewer rows, arithmetic on row values stays out of them.
YNN_MIN_ELEMENTS = 4096


# Tests set this to the name of an accelerator platform ("tpu", "cuda") to
# compile that platform's branches of platform_dependent on the CPU
# (tests/platform_test.py); never set otherwise.
ACCELERATOR_BRANCHES_ON_CPU = None


def platform_dependent(*args, default, **branches):
    """``lax.platform_dependent(*args, default=default, **branches)``, or the
    branch of the platform named by :data:`ACCELERATOR_BRANCHES_ON_CPU` when
    it is set (``default`` where that platform has none), so that the
    accelerators' programs run and are tested on a CPU-only machine."""
    if ACCELERATOR_BRANCHES_ON_CPU is not None:
        return branches.get(ACCELERATOR_BRANCHES_ON_CPU, default)(*args)
    return lax.platform_dependent(*args, default=default, **branches)


def limits(dtype):
    info = jnp.finfo(dtype)
    return float(info.max), float(info.tiny)


def widened(x):
    """``x`` in its compute dtype (float32 for 16-bit input), inside the passes."""
    return x.astype(_validate.compute_dtype(x.dtype))


def halved(x):
    """``h = x/2`` in the compute dtype: exact (up to subnormals), and a
    difference of two halves never overflows."""
    return widened(x) * 0.5


def row_max(values, axes):
    """Max over ``axes`` (keepdims); ``-inf`` for an empty axis. Its NaN
    handling is never relied upon (XLA:CPU's vectorised max can drop a NaN)."""
    init = np.asarray(-np.inf, values.dtype)
    return jnp.expand_dims(lax.reduce(values, init, lax.max, axes), axes)


def half_max(x, axes):
    """The row max of ``h = x/2`` (keepdims, compute dtype), as each platform
    compiles best: ``max(x/2)`` on accelerators (no operation on the row
    value, so the max fuses with the passes after it), ``max(x)/2`` (the same
    value) on CPU, where XLA writes ``x/2`` out when the max reads it (softmax
    forward at 4096x32768 float32: 0.48x -> 1.25x of jax.nn with plain
    arithmetic; measured in one process, turn by turn)."""

    def on_accelerators(x):
        return row_max(halved(x), axes)

    def on_cpu(x):
        return widened(row_max(x, axes)) * 0.5

    return platform_dependent(x, cpu=on_cpu, default=on_accelerators)


class Temperature(NamedTuple):
    """Per-row factors for :func:`scaled_logits` (shapes broadcast on rows)."""

    prescale: jax.Array  # c: 1, or 2^-e for T > 2^e (e = half the max exponent)
    rate: jax.Array  # 2/(T·c), at most 2/tiny; 0 at T = inf, NaN where T < 0 or NaN
    hard: jax.Array  # inf at T == 0 (-0.0 too), else 1
    poison: jax.Array  # 0, or NaN where T < 0 or NaN


def temperature_terms(temperature, dtype) -> Temperature:
    """The per-row terms of ``T``, all numbers: each reaches the passes only
    through a product or a select's branch, which XLA fuses there. A flag
    (``T == 0`` as a boolean) became a kernel of its own on TPU v5e. One
    small kernel of these terms is left on both targets for a traced ``T``
    (``python -m bench accel``, one temperature per row: 6 kernels against
    jax.nn's 5 on H100, 5 against 4 on TPU v5e): the contract's edges of
    ``T`` (zero, huge, negative or NaN) need them."""
    big, tiny = limits(dtype)
    t = jnp.asarray(temperature, dtype)
    half_exponent = jnp.finfo(dtype).maxexp // 2
    huge = t > 2.0**half_exponent
    prescale = jnp.where(huge, 2.0**-half_exponent, 1).astype(dtype)
    rate = jnp.where(t >= 0, 1 / jnp.maximum(t * prescale * 0.5, tiny), jnp.nan)
    hard = jnp.where(t == 0, jnp.inf, 1).astype(dtype)
    poison = jnp.where(t >= 0, 0, jnp.nan).astype(dtype)
    return Temperature(prescale, rate, hard, poison)


def scaled_logits(h, m, temp: Temperature):
    """``z = (x - max)/T`` with the edges of the module doc, elementwise in ``h``.

    ``h = x/2`` (:func:`halved`) and ``m`` its row max (keepdims); or one
    gathered ``h`` per row (the losses' label) with that row's ``m``: the same
    arithmetic then gives the row's own ``z`` bit for bit. The broadcast
    ``m`` has one use and the terms of ``T`` enter as numbers, so XLA fuses
    everything into the passes that read ``x`` (on an H100 small rows become
    one Triton softmax kernel, as ``jax.nn``'s do).
    """
    # d·c as (h·c) - (m·c), the row max's one use (module doc). At T = 0
    # only the sign of the gap counts: magnified by 2^24 in a row whose max
    # is below 1, so that a gap between two tiny normals is not flushed to 0
    # (any subnormal gap becomes normal; h·c overflows only to -inf, still
    # below the max). Per-row values: XLA fuses them into the passes.
    c = jnp.where((temp.hard == jnp.inf) & (jnp.abs(m) < 1), 2.0**24, temp.prescale)
    scaled = h * c - m * c
    # Below the max, scaled·hard is -inf exactly at the -inf gaps and, at
    # T = 0, everywhere: there z is -inf. At the max it is 0, or NaN (0·inf)
    # at T = 0, and z is 0·rate: 0, NaN for an invalid T (poisoning the row
    # sums). Not z itself: its rate stays finite, so that no derivative of z
    # meets inf·0.
    z = jnp.where(scaled * temp.hard == -jnp.inf, -jnp.inf, scaled * temp.rate)
    # The gap is NaN where an infinite h meets the same infinite max (inf -
    # inf): those entries are max entries (poison). In an all -inf row every
    # entry is one: callers read such a row off dead_entries in their output,
    # where XLA fuses it. A NaN h stays NaN.
    return jnp.where(scaled == scaled, z, jnp.where(h == h, temp.poison, h))


def ordinary_temperature(temp: Temperature):
    """Where ``T`` is ordinary: ``0 < T < inf`` unscaled (``c = 1``). There, in
    a row with a finite max, ``z = (h - m)·(2/T)`` equals
    :func:`scaled_logits` bit for bit."""
    plain = (temp.hard == 1) & (temp.prescale == 1)
    return plain & (temp.rate > 0) & (temp.poison == 0)


@custom_batching.custom_vmap
def _any(flags):
    """``jnp.any(flags)``; under ``vmap`` the same over the batch too, unbatched."""
    return jnp.any(flags)


@_any.def_vmap
def _any_over_the_batch(axis_size, in_batched, flags):
    return jnp.any(flags), False


def with_logits(x, temperature, axes, finish, suspect, max_of_halves=False):
    """``finish(m, temp, z, dead)`` with ``z`` from :func:`scaled_logits` and
    ``dead`` from :func:`dead_entries`.

    On accelerators this is the one general program (selects, no
    conditional). On CPU, where XLA does not fuse selects into its vectorised
    exp-and-sum (softmax forward at 4096x32768 float32: 0.47x of jax.nn with
    them) but compiles the plain arithmetic of ``jax.nn`` into one fused
    kernel, it first runs ``finish`` on the plain ``z = (h - m)·(2/T)``
    (``dead=None``: no edge select) and keeps that result unless
    ``suspect(result)`` flags a row or some ``T`` is not ordinary; then a
    ``lax.cond`` runs the general program too and takes its outputs in the
    flagged rows. Wherever the row max is finite, plain ``z`` is the general
    ``z`` bit for bit; in a row that holds ``±inf`` or NaN, or is all
    ``-inf``, plain arithmetic forms ``inf - inf`` or NaN, whose NaN reaches
    every output of the row through its sum, so ``suspect`` (a row-shaped
    boolean array, keepdims) only needs to look at a row-sized witness. Rows
    that are not flagged keep the plain program's bits whatever the other rows
    hold (the two programs' sums may round apart in the last place).
    Accelerator programs never carry the conditional
    (``lax.platform_dependent`` resolves it while lowering). Under ``vmap``
    the predicate stays one flag for the whole batch (:func:`_any`), so that
    the conditional does not turn into a select of both programs.
    """

    def general(x):
        m = half_max(x, axes)
        temp = temperature_terms(temperature, m.dtype)
        h = halved(x)
        return finish(m, temp, scaled_logits(h, m, temp), dead_entries(h))

    def on_cpu(x):
        # The max of the halves fuses with the exp into XLA:CPU's one softmax
        # kernel (softmax forward 1024x131072 float32: 0.98x of jax.nn, 0.78x
        # with max(x)/2); a lone row sum wants max(x)/2 (logsumexp 4096x32768:
        # 0.29x with the max of the halves, which XLA:CPU writes out).
        m = row_max(halved(x), axes) if max_of_halves else half_max(x, axes)
        temp = temperature_terms(temperature, m.dtype)
        plain = finish(m, temp, (halved(x) - m) * temp.rate, None)
        flagged = suspect(plain) | ~ordinary_temperature(temp)

        def repaired(x, plain):
            def take(general_leaf, plain_leaf):
                return jnp.where(flagged, general_leaf, plain_leaf)

            return jax.tree_util.tree_map(take, general(x), plain)

        return lax.cond(_any(flagged), repaired, lambda _, kept: kept, x, plain)

    if any(x.shape[axis] == 0 for axis in axes):
        return general(x)
    return platform_dependent(x, cpu=on_cpu, default=general)


def row_sum(z, axes):
    """``Σ exp z`` over ``axes`` (keepdims), NaN in a NaN row.

    One plain sum, as ``jax.nn``: splitting off the max entries (``exp z = 1``
    exactly) into a sum of their own would keep the digits of a dominant
    entry's tiny ``log p``, but cost two more kernels on large rows and the
    one-kernel program on small ones (log_softmax forward 32x1000 on H100: 5
    kernels against 1, 4x the bytes; ``python -m bench accel``), so a dominant
    entry's ``log p`` rounds as in jax.nn.
    """
    return jnp.sum(jnp.exp(z), axes, keepdims=True)


def dead_row(m):
    """All ``-inf`` (or empty) rows, from the half max ``m``, for per-row
    outputs; elementwise outputs take :func:`dead_entries`."""
    return m == -jnp.inf


def dead_entries(h):
    """The ``-inf`` entries (``h = x/2``), where the outputs of an all ``-inf``
    row are set. Outputs of a live row are the same there with or without
    the select; an elementwise compare, since a compare on the row max
    became a kernel of its own in every forward on H100 and TPU v5e
    (``python -m bench accel``)."""
    return h == -jnp.inf


def normalized(e, total, dead):
    """``e/Σ``; 0 in an all ``-inf`` row (``dead``, :func:`dead_entries`: there
    every ``z`` is 0, or NaN for an invalid ``T``, by construction).
    ``dead=None``: no such row (the plain program of :func:`with_logits`)."""
    value = e / total
    if dead is None:
        return value
    # 0·value: 0 in an all -inf row (value 1/K) and at -inf entries (value 0),
    # NaN in a NaN row (also where a NaN fooled XLA:CPU's vectorised max into
    # -inf) and for an invalid T.
    return jnp.where(dead, 0 * value, value)


def log_p(z, total, dead):
    """``z - log Σ`` (``-inf`` at ``-inf`` entries); ``-inf`` in an all ``-inf``
    row (NaN for an invalid ``T``). A NaN row is NaN everywhere: ``-inf - NaN``.
    ``dead`` as in :func:`normalized`."""
    value = z - jnp.log(total)
    if dead is None:
        return value
    # value - inf: -inf in an all -inf row (value -log K) and at -inf entries
    # (value -inf), NaN where value is (see normalized).
    return jnp.where(dead, value - jnp.inf, value)


# --------------------------------------------------------------------------- #
# Derivatives
# --------------------------------------------------------------------------- #
def derivative_scale(temperature, m):
    """``1/T`` per row for the derivatives of ``z``; 0 at ``T = 0`` (and at
    ``T = inf``, where ``1/T`` is 0) and on rows holding ``+inf``, whose
    probabilities sit on the ``+inf`` entries whatever the others do."""
    return jnp.where(m == jnp.inf, 0, inverse_temperature(temperature))


def inverse_temperature(temperature):
    """``1/T``, 0 at ``T = 0`` (the double select keeps it differentiable
    there, second order)."""
    hard = lax.stop_gradient(temperature) == 0
    return jnp.where(hard, 0, 1 / jnp.where(hard, 1, temperature))


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


def _dominant(y):
    """f = floor(y + c), c two steps below 1/2: 1 where y > 1/2, else 0."""
    zero, half = np.asarray(0, y.dtype), np.asarray(0.5, y.dtype)
    return jnp.floor(y + np.nextafter(np.nextafter(half, zero), zero))


def _split_factors(y, axes):
    """``f, R, outer, inner, along`` of :func:`log_softmax_tangent`, with n."""
    f = _dominant(y)
    n = jnp.floor(1.5 - y)
    rest_mass = jnp.sum(n * y, axes, keepdims=True)
    return f, rest_mass, n, f * rest_mass - f, f * y - y


def _shared_factors(y, axes):
    """Factors for the same map written with f alone (outer and inner
    differ from :func:`_split_factors`'; their products do not)."""
    f = _dominant(y)
    rest = y - f * y
    rest_mass = jnp.sum(rest, axes, keepdims=True)
    return f, rest_mass, (1 - f) * rest_mass - (1 - f), f, -rest


def log_softmax_tangent(u, y, axes, narrow=False):
    """``u - <p, u>`` along ``axes`` with the dominant entry's tail kept.

    Where one entry ``k`` has ``y_k > 1/2``, its rounded ``y_k`` loses the tail
    ``R = Σ_{j≠k} y_j`` (``softmax([40, 0])`` has ``y_0 = 1``, ``R = 4.25e-18``)
    and ``u_k - <y, u>`` cancels. The map is written with ``R`` in place of
    ``1 - y_k``, as a diagonal and two rank-one terms:

    ``d_k = R·u_k - Σ_{j≠k} y_j u_j``, ``d_i = u_i - Σ_{j≠k} y_j u_j - (1-R)·u_k``,

    so that neither it nor its transpose (reverse mode:
    ``ct_k = R·g_k - (1-R)·Σ_{i≠k} g_i``, ``ct_j = g_j - y_j·Σg``) subtracts two
    numbers near 1. Without a dominant entry (ties included) it is the plain
    ``u - <y, u>``. ``narrow``: ``y`` was widened from 16-bit input, which
    picks the form XLA:CPU compiles best (same values; see below).
    """
    # f: 1 at the dominant entry, else 0, as floor(y + c), c just below 1/2 (two
    # entries at exactly 1/2 both give 0; with c one step below 1/2, 1/2 + c
    # rounds up to 1); n = 1 - f as floor(3/2 - y) (exact for y in [0, 1]).
    # Products with f or n instead of selects, which XLA:CPU does not fuse into
    # its vectorised row sums (softmax forward+backward at 4096x32768 float32:
    # 0.27x of jax.nn with selects); each such product is exact, so the values
    # are the selects' and both forms below give the same bits.
    #
    # The map is diagonal·u + Σ along·u + outer·Σ inner·u. How XLA:CPU fuses
    # its transpose (reverse mode, one YNNPACK kernel per row pass) sets how
    # the factors are written, measured on softmax forward+backward against
    # jax.nn with its default flag: every row sum enters through a product
    # with a logits-sized factor, signs included (XLA:CPU fuses no arithmetic
    # on vectors of under 4096 row values: 0.45x at 1024x131072); for float32
    # the factors used inside the transpose's row sums are written with n,
    # those outside with f, so that no computed logits-sized value is needed
    # on both sides of a row sum (YNNPACK keeps such a value in memory: 0.73x
    # at 1024x131072, 1.19x so in python -m bench). For 16-bit input YNNPACK
    # runs that form slowly (0.36x at 4096x32768) and the one with shared
    # factors well (0.97x; 0.9x at 1024x131072) if the sum over ``inner``
    # comes first (swapped: 0.38x), while accelerators compile the shared one
    # worse (bfloat16 on H100: 1.25x jax.nn's bytes, 1.13x with n): only these
    # primal factors differ by platform (a lax.platform_dependent over a
    # tangent transposed to a zero gradient in jax 0.10), the map is the same
    # and so are its values (tests/softmax_test.py checks the two bit for bit).
    factors = partial(_split_factors, axes=axes)
    if narrow:
        shared = partial(_shared_factors, axes=axes)
        factors = partial(platform_dependent, cpu=shared, default=factors)
    return _tangent_map(u, y, axes, factors)


def _tangent_map(u, y, axes, factors):
    f, rest_mass, outer, inner, along = factors(y)
    from_dominant = outer * jnp.sum(inner * u, axes, keepdims=True)
    minus_along_rest = jnp.sum(along * u, axes, keepdims=True)
    diagonal = (1 - f) + f * rest_mass
    return (diagonal * u + minus_along_rest) + from_dominant
