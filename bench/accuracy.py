"""``python -m bench accuracy``: measured error of every normaliser and loss, in ulps.

For each function, input dtype and input family this runs jsoftmax and the
function people use today (its *peer*), and compares both with a reference
computed from the *same rounded inputs*:

* float32 and bfloat16 inputs: the reference is evaluated in float64 from the
  inputs as rounded to the dtype and from ``T`` as float32 (what jsoftmax
  computes with; a 16-bit row is computed in float32). The log of a row sum is
  taken as ``log1p((k - 1) + rest)``, ``k`` the number of max entries and
  ``rest`` the sum over the others, so that a dominant entry's tiny negative
  log-probability keeps its digits; ``logsumexp`` is evaluated in
  ``np.longdouble`` (see ``_logsumexp_wide``). Its own error is below 1e-5
  float32 ulp on these families (``tests/accuracy_bench_test.py`` checks it
  against mpmath).
* float64 inputs: the reference is mpmath at 128 bits, on a smaller sample, and
  the error is formed from the reference's leading float64 and its remainder,
  so that it is not itself rounded to float64.

Error of one output entry (``ulp_error``)::

    |out - ref| / ulp(ref)

where ``ulp(ref)`` is the spacing of the *input* dtype at ``|ref|`` rounded to
that dtype (``np.spacing`` of the rounded reference, computed from ``finfo`` so
that bfloat16 works) and, where the reference lies below the smallest normal
number (0 included), the smallest normal number: XLA flushes subnormal results
to zero on CPU and GPU (``jnp.exp(float32(-100))`` is 0), so the grid it can
return there is ``{0, tiny}``. The input dtype is the output dtype of every
normaliser and of every peer; jsoftmax's losses return float32 for 16-bit
logits, and their error is still counted in ulps of the 16-bit dtype, the unit
both implementations are comparable in (the JSON names each output dtype). An
output that is NaN or infinite where the reference is finite counts as an
infinite error and is counted under ``nonfinite``.

For the log-domain outputs (``log_softmax``, ``logsumexp``, both losses,
``log_centered_softmax``), whose accuracy is conditioned by the size of the
row, the JSON also carries the *row-scale* error::

    |out - ref| / ulp(max(s, |ref|)),  s = max |x/T| over the row

(never stricter than the plain error) with ``s`` in the output's units:
``max|x/T|`` for log_softmax and the losses, ``max|x|`` (= ``T·max|x/T|``) for
logsumexp, ``max|[0, eta]|`` for log_centered_softmax. ``false_zeros`` counts
the outputs that are exactly 0 where the reference is at least the smallest
normal number (log_softmax of a dominant entry, whose true value is a tiny
negative number).

Peers, called as their users call them (no temperature argument, so ``x / T``
in the input dtype, a bfloat16 ``T`` for bfloat16 logits):
``jax.nn.softmax/log_softmax(x / T)``, ``T·jax.nn.logsumexp(x / T, axis=-1)``,
``optax.softmax_cross_entropy[_with_integer_labels](x / T, labels)``, and
``jax.nn.softmax/log_softmax`` of ``[0, eta]`` for the centered maps.

Families (seeded; width 1000, 2000 rows for float32/bfloat16, 4 rows for
float64): ``uniform`` in [-10, 10]; ``normal30`` (σ = 30); ``dominant`` (normal
rows, one entry 40 above the row's max; the integer label is that entry in
even rows); ``lse_near_0`` (``log(1/K)`` plus noise of σ = 1e-3, so
``logsumexp`` is within about 1e-4 of 0 at ``T = 1``; in bfloat16 the noise is
below the spacing and the rows are ties). Each family runs at ``T`` in
{0.1, 1, 7}; the centered maps (no temperature) at ``T = 1`` only, with the
family's rows as ``eta``. Probability labels are the softmax of a standard
normal row, rounded to the dtype.

Results: a table on stdout and JSON in ``bench/results/accuracy-cpu.json``
(``--quick``: 64 rows of width 200, to a temporary folder unless ``--out``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import subprocess
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import optax

import jsoftmax

RESULTS = pathlib.Path(__file__).parent / "results"
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float64": jnp.float64}
FAMILIES = ("uniform", "normal30", "dominant", "lse_near_0")
TEMPERATURES = (0.1, 1.0, 7.0)
MP_BITS = 128
FUNCTIONS = (
    "softmax",
    "log_softmax",
    "logsumexp",
    "softmax_cross_entropy_with_integer_labels",
    "softmax_cross_entropy",
    "centered_softmax",
    "log_centered_softmax",
)
# Functions whose error is also reported against the row's scale.
LOG_DOMAIN = {
    "log_softmax",
    "logsumexp",
    "softmax_cross_entropy_with_integer_labels",
    "softmax_cross_entropy",
    "log_centered_softmax",
}
CENTERED = {"centered_softmax", "log_centered_softmax"}
PEER_NAMES = {
    "softmax": "jax.nn",
    "log_softmax": "jax.nn",
    "logsumexp": "jax.nn",
    "softmax_cross_entropy_with_integer_labels": "optax",
    "softmax_cross_entropy": "optax",
    "centered_softmax": "jax.nn of [0, eta]",
    "log_centered_softmax": "jax.nn of [0, eta]",
}
SHORT = {
    "softmax_cross_entropy_with_integer_labels": "int_xent",
    "softmax_cross_entropy": "xent",
    "centered_softmax": "centered",
    "log_centered_softmax": "log_centered",
}


# --------------------------------------------------------------------------- #
# The metric
# --------------------------------------------------------------------------- #
def ulp(values, dtype) -> np.ndarray:
    """Spacing of ``dtype`` at ``|values|`` rounded to ``dtype`` (float64 array).

    ``np.spacing`` of the rounded value from the smallest normal number up;
    below it (0 included) the smallest normal number itself, because XLA
    flushes subnormal results to zero on CPU and GPU, so that the grid there is
    ``{0, tiny}``; ``inf`` where the value rounds to an infinity.
    """
    info = jnp.finfo(dtype)
    magnitude = np.abs(np.asarray(values, np.float64))
    rounded = magnitude.astype(dtype).astype(np.float64)
    tiny = float(info.tiny)
    with np.errstate(divide="ignore", invalid="ignore"):
        exponent = np.frexp(np.maximum(rounded, tiny))[1] - 1  # floor(log2 |v|)
    spacing = np.ldexp(1.0, exponent - int(info.nmant))
    spacing = np.where((magnitude < tiny) | (rounded < tiny), tiny, spacing)
    return np.where(np.isinf(rounded), np.inf, spacing)


def ulp_error(out, ref, dtype, ref_low=None, unit=None) -> np.ndarray:
    """``|out - ref| / ulp(ref)`` per entry, in ulps of ``dtype``.

    ``ref_low`` is the remainder of a reference wider than float64
    (``ref + ref_low`` is the reference); ``unit``, if given, replaces
    ``ulp(ref)`` (the row-scale variant passes ``ulp(scale)``). Equal values
    (infinities included) give 0; a NaN or infinite output against a finite
    reference gives ``inf``.
    """
    out = np.asarray(out, np.float64)
    ref = np.asarray(ref, np.float64)
    unit = ulp(ref, dtype) if unit is None else np.asarray(unit, np.float64)
    low = 0.0 if ref_low is None else np.asarray(ref_low, np.float64)
    low = np.where(np.isfinite(ref), low, 0.0)
    with np.errstate(invalid="ignore", over="ignore"):
        gap = (out - ref) - low  # out - ref is exact within a factor of 2
        error = np.abs(gap) / unit
    error = np.where((out == ref) & (low == 0), 0.0, error)
    return np.where(np.isnan(error), np.inf, error)


def summary(errors: np.ndarray, prefix: str = "") -> dict:
    errors = np.ravel(errors)
    return {
        f"max_{prefix}ulp": float(np.max(errors)),
        f"median_{prefix}ulp": float(np.median(errors)),
        f"p99_{prefix}ulp": float(np.percentile(errors, 99)),
    }


# --------------------------------------------------------------------------- #
# Inputs
# --------------------------------------------------------------------------- #
def family(name: str, rows: int, width: int, seed: int):
    """``(x, labels, probabilities)`` in float64 before rounding to a dtype."""
    rng = np.random.default_rng([seed, FAMILIES.index(name)])
    labels = rng.integers(0, width, rows)
    if name == "uniform":
        x = rng.uniform(-10, 10, (rows, width))
    elif name == "normal30":
        x = rng.normal(0, 30, (rows, width))
    elif name == "dominant":
        x = rng.normal(0, 1, (rows, width))
        top = rng.integers(0, width, rows)
        x[np.arange(rows), top] = x.max(1) + 40
        labels = np.where(np.arange(rows) % 2 == 0, top, labels)
    elif name == "lse_near_0":
        x = np.log(1 / width) + rng.normal(0, 1e-3, (rows, width))
    else:
        raise ValueError(f"unknown family {name!r}")
    g = rng.normal(0, 1, (rows, width))
    probabilities = np.exp(g - g.max(1, keepdims=True))
    probabilities /= probabilities.sum(1, keepdims=True)
    return x, labels, probabilities


# --------------------------------------------------------------------------- #
# References
# --------------------------------------------------------------------------- #
def reference_float64(x, temperature, labels, probabilities) -> dict:
    """Every function's value at rounded ``x`` (float64) and ``T``, in float64.

    Returns ``{function: (ref, scale)}``, ``scale`` the row scale (``None``
    outside :data:`LOG_DOMAIN`)."""
    refs = {}
    z = x / temperature
    for name, rows in (("", z), ("centered", np.pad(x, ((0, 0), (1, 0))))):
        m = rows.max(1, keepdims=True)
        shifted = rows - m  # float64 rounding: ~1e-7 float32 ulp at most here
        at_max = shifted == 0
        rest = np.where(at_max, 0, np.exp(shifted)).sum(1, keepdims=True)
        ties = at_max.sum(1, keepdims=True)
        log_total = np.log1p((ties - 1) + rest)
        log_p = shifted - log_total
        scale = np.abs(rows).max(1, keepdims=True)
        if name == "centered":
            refs["centered_softmax"] = (np.exp(log_p), None)
            refs["log_centered_softmax"] = (log_p, scale)
            continue
        refs["softmax"] = (np.exp(log_p), None)
        refs["log_softmax"] = (log_p, scale)
        refs["logsumexp"] = (_logsumexp_wide(x, temperature), temperature * scale[:, 0])
        label_log_p = np.take_along_axis(log_p, labels[:, None], 1)[:, 0]
        refs["softmax_cross_entropy_with_integer_labels"] = (-label_log_p, scale[:, 0])
        refs["softmax_cross_entropy"] = (
            -(probabilities * log_p).sum(1),
            scale[:, 0],
        )
    return refs


def _mp_log_softmax(z):
    """``(log p, log Σ exp z)`` with ``log p = (z - m) - log1p((k - 1) + rest)``:
    at any fixed working precision ``log(1 + 1e-174)``, or ``m + 1e-174``, would
    round the dominant entry's tiny ``log p`` away."""
    top = max(z)
    rest = mpmath.fsum(mpmath.exp(v - top) for v in z if v != top)
    ties = sum(1 for v in z if v == top)
    log_total = mpmath.log1p((ties - 1) + rest)
    return [(v - top) - log_total for v in z], top + log_total


def _logsumexp_wide(x, temperature):
    """``T·log Σ exp(x/T)`` per row in ``np.longdouble``, as ``(high, low)``.

    Near ``logsumexp = 0`` the result is ``m + log Σ exp(z - m)`` with ``m``
    about ``-log K``: in float64 that cancellation leaves 1.4e-3 float32 ulp of
    error (measured against mpmath); the x87 extended format (64-bit
    significand, on x86-64) takes it below 1e-6. Elsewhere ``longdouble`` may
    be float64, and the reference is that much less exact there.
    """
    wide = np.longdouble
    t = wide(temperature)
    z = x.astype(wide) / t
    m = z.max(1, keepdims=True)
    shifted = z - m
    at_max = shifted == 0
    rest = np.where(at_max, 0, np.exp(shifted)).sum(1, keepdims=True)
    ties = at_max.sum(1, keepdims=True).astype(wide)
    lse = (t * (m + np.log1p((ties - 1) + rest)))[:, 0]
    high = lse.astype(np.float64)
    return high, (lse - high).astype(np.float64)


def reference_mpmath(x, temperature, labels, probabilities) -> dict:
    """As :func:`reference_float64` at :data:`MP_BITS` bits; each reference is a
    pair ``(high, low)`` of float64 arrays whose sum is the mpmath value."""
    collected = {name: [] for name in FUNCTIONS}
    with mpmath.workprec(MP_BITS):
        t = mpmath.mpf(float(temperature))
        for row, label, prob in zip(x, labels, probabilities, strict=True):
            z = [mpmath.mpf(float(v)) / t for v in row]
            log_p, lse = _mp_log_softmax(z)
            padded = [mpmath.mpf(0)] + [mpmath.mpf(float(v)) for v in row]
            log_c, _ = _mp_log_softmax(padded)
            collected["softmax"].append([mpmath.exp(v) for v in log_p])
            collected["log_softmax"].append(log_p)
            collected["logsumexp"].append(t * lse)
            collected["softmax_cross_entropy_with_integer_labels"].append(
                -log_p[int(label)]
            )
            collected["softmax_cross_entropy"].append(
                -mpmath.fsum(
                    mpmath.mpf(float(q)) * v for q, v in zip(prob, log_p, strict=True)
                )
            )
            collected["centered_softmax"].append([mpmath.exp(v) for v in log_c])
            collected["log_centered_softmax"].append(log_c)
        refs = {}
        for name, values in collected.items():
            values = np.array(values, dtype=object)
            high = np.vectorize(float, otypes=[np.float64])(values)
            low = np.vectorize(
                lambda v, h: float(v - mpmath.mpf(h)), otypes=[np.float64]
            )(values, high)
            refs[name] = (high, low)
    z = x / temperature
    row_scale = np.abs(z).max(1)
    scales = {
        "log_softmax": row_scale[:, None],
        "logsumexp": temperature * row_scale,
        "softmax_cross_entropy_with_integer_labels": row_scale,
        "softmax_cross_entropy": row_scale,
        "log_centered_softmax": np.abs(np.pad(x, ((0, 0), (1, 0)))).max(1)[:, None],
    }
    return {name: (refs[name], scales.get(name)) for name in FUNCTIONS}


# --------------------------------------------------------------------------- #
# Implementations
# --------------------------------------------------------------------------- #
def _pad(eta):
    return jnp.concatenate([jnp.zeros_like(eta[:, :1]), eta], axis=1)


def implementations() -> dict:
    """``{function: (jsoftmax, peer)}``, each ``f(x, T, labels, probabilities)``
    jitted with ``T`` a traced weak-typed scalar (one compile per dtype)."""
    impls = {
        "softmax": (
            lambda x, t, i, y: jsoftmax.softmax(x, temperature=t),
            lambda x, t, i, y: jax.nn.softmax(x / t),
        ),
        "log_softmax": (
            lambda x, t, i, y: jsoftmax.log_softmax(x, temperature=t),
            lambda x, t, i, y: jax.nn.log_softmax(x / t),
        ),
        "logsumexp": (
            lambda x, t, i, y: jsoftmax.logsumexp(x, temperature=t),
            lambda x, t, i, y: t * jax.nn.logsumexp(x / t, axis=-1),
        ),
        "softmax_cross_entropy_with_integer_labels": (
            lambda x, t, i, y: jsoftmax.softmax_cross_entropy_with_integer_labels(
                x, i, temperature=t
            ),
            lambda x, t, i, y: optax.losses.softmax_cross_entropy_with_integer_labels(
                x / t, i
            ),
        ),
        "softmax_cross_entropy": (
            lambda x, t, i, y: jsoftmax.softmax_cross_entropy(x, y, temperature=t),
            lambda x, t, i, y: optax.losses.softmax_cross_entropy(x / t, y),
        ),
        "centered_softmax": (
            lambda x, t, i, y: jsoftmax.centered_softmax(x),
            lambda x, t, i, y: jax.nn.softmax(_pad(x)),
        ),
        "log_centered_softmax": (
            lambda x, t, i, y: jsoftmax.log_centered_softmax(x),
            lambda x, t, i, y: jax.nn.log_softmax(_pad(x)),
        ),
    }
    return {name: tuple(jax.jit(f) for f in pair) for name, pair in impls.items()}


# --------------------------------------------------------------------------- #
# The run
# --------------------------------------------------------------------------- #
def measure(function, impl_name, fn, dtype_name, family_name, temperature, case):
    dtype = DTYPES[dtype_name]
    x, labels, probabilities, refs = case
    out = fn(x, temperature, labels, probabilities)
    out_dtype = str(out.dtype)
    out = np.asarray(out.astype(jnp.float64) if dtype_name != "float64" else out)
    (ref, scale) = refs[function]
    ref_low = None
    if isinstance(ref, tuple):
        ref, ref_low = ref
    errors = ulp_error(out, ref, dtype, ref_low)
    record = {
        "function": function,
        "impl": impl_name,
        "dtype": dtype_name,
        "out_dtype": out_dtype,
        "family": family_name,
        "temperature": temperature,
        "entries": int(errors.size),
        **summary(errors),
    }
    if scale is not None:
        # never stricter than the plain ulp: logsumexp can exceed the row scale
        scale = np.maximum(np.abs(np.asarray(ref, np.float64)), scale)
        unit = ulp(scale, dtype)
        record.update(summary(ulp_error(out, ref, dtype, ref_low, unit), "row_"))
    finite_ref = np.isfinite(ref)
    record["nonfinite"] = int(np.sum(~np.isfinite(out) & finite_ref))
    # a reference at or above the smallest normal number, which XLA keeps
    tiny = float(jnp.finfo(dtype).tiny)
    representable = np.abs(np.asarray(ref, np.float64)) >= tiny
    record["false_zeros"] = int(np.sum((out == 0) & representable))
    return record


def cases(dtype_name, rows, width, f64_rows, f64_width, seed, temperatures):
    """Yield ``(family, T, (x, labels, probabilities, refs))`` for one dtype."""
    dtype = DTYPES[dtype_name]
    wide = dtype_name == "float64"
    n_rows, n_width = (f64_rows, f64_width) if wide else (rows, width)
    for family_name in FAMILIES:
        x, labels, probabilities = family(family_name, n_rows, n_width, seed)
        x = np.asarray(jnp.asarray(x, dtype))
        probabilities = np.asarray(jnp.asarray(probabilities, dtype))
        x64 = x.astype(np.float64)
        p64 = probabilities.astype(np.float64)
        for temperature in temperatures:
            if wide:
                refs = reference_mpmath(x64, temperature, labels, p64)
            else:
                t_ref = float(np.float32(temperature))
                refs = reference_float64(x64, t_ref, labels, p64)
            yield family_name, temperature, (x, labels, probabilities, refs)


def library_modified() -> list[str] | None:
    """Files of the imported ``jsoftmax`` package that differ from the commit
    (uncommitted edits the numbers include); ``None`` outside a git checkout."""
    package = pathlib.Path(jsoftmax.__file__).parent
    try:
        status = subprocess.run(
            ["git", "status", "--porcelain", "--", "."],
            capture_output=True,
            text=True,
            check=True,
            cwd=package,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return [line[3:] for line in status.splitlines()]


def run(args) -> dict:
    jax.config.update("jax_enable_x64", True)  # float64 rows; labels stay int32
    from bench.__main__ import commit

    header = {
        "device": jax.devices()[0].device_kind,
        "platform": jax.devices()[0].platform,
        "jax_version": jax.__version__,
        "optax_version": optax.__version__,
        "commit": commit(),
        "library_modified": library_modified(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"
        ),
        "rows": args.rows,
        "width": args.width,
        "float64_rows": args.f64_rows,
        "float64_width": args.f64_width,
        "seed": args.seed,
        "temperatures": list(args.temperatures),
        "error": "|out - ref| / ulp(ref): ulp = spacing of the input dtype at "
        "|ref| rounded to it (the smallest normal where |ref| is below it: XLA "
        "flushes subnormals); ref in "
        "float64 from the rounded inputs and float32 T (float32/bfloat16 rows), "
        f"mpmath at {MP_BITS} bits (float64 rows)",
        "row_error": "|out - ref| / ulp(max(s, |ref|)), s = max|x/T| of the row in the "
        "output's units (max|x| for logsumexp, max|[0, eta]| for "
        "log_centered_softmax)",
        "false_zeros": "outputs exactly 0 where |ref| >= the smallest normal",
    }
    impls = implementations()
    functions = args.functions or list(FUNCTIONS)
    results = []
    start = time.perf_counter()
    print(
        f"# accuracy in ulps of the input dtype; jax {jax.__version__}, optax "
        f"{optax.__version__}, commit {header['commit']}",
        flush=True,
    )
    print(
        f"{'function':<12} {'dtype':<8} {'family':<10} {'T':>4} | "
        f"{'jsoftmax max':>12} {'med':>6} {'p99':>6} {'row max':>8} {'0s':>4} | "
        f"{'peer max':>10} {'med':>6} {'p99':>6} {'row max':>8} {'0s':>4}",
        flush=True,
    )
    for dtype_name in args.dtypes:
        for family_name, temperature, case in cases(
            dtype_name,
            args.rows,
            args.width,
            args.f64_rows,
            args.f64_width,
            args.seed,
            args.temperatures,
        ):
            for function in functions:
                if function in CENTERED and temperature != 1.0:
                    continue
                ours_fn, peer_fn = impls[function]
                pair = [
                    measure(function, "jsoftmax", ours_fn, dtype_name, family_name,
                            temperature, case),
                    measure(function, PEER_NAMES[function], peer_fn, dtype_name,
                            family_name, temperature, case),
                ]  # fmt: skip
                results.extend(pair)
                print(line(pair), flush=True)
        print(
            f"# {dtype_name} done ({time.perf_counter() - start:.0f} s)",
            file=sys.stderr,
            flush=True,
        )
    worst = worst_cases(results)
    print_worst(worst)
    return {"header": header, "results": results, "worst": worst}


def _fmt(value: float) -> str:
    if not np.isfinite(value):
        return "inf"
    return f"{value:.3g}" if value < 1000 else f"{value:.2e}"


def line(pair) -> str:
    ours, peer = pair
    cells = []
    for r in pair:
        row = _fmt(r["max_row_ulp"]) if "max_row_ulp" in r else "-"
        cells.append(
            f"{_fmt(r['max_ulp']):>12} {_fmt(r['median_ulp']):>6} "
            f"{_fmt(r['p99_ulp']):>6} {row:>8} {r['false_zeros']:>4}"
        )
    name = SHORT.get(ours["function"], ours["function"])
    return (
        f"{name:<12} {ours['dtype']:<8} {ours['family']:<10} "
        f"{ours['temperature']:>4g} | {cells[0]} | {cells[1][2:]}"
    )


def worst_cases(results) -> list[dict]:
    """Per function × dtype × implementation: the largest max, p99 and row-scale
    max over families and temperatures, the largest median, and the total
    false zeros, with the case each maximum came from."""
    groups = {}
    for r in results:
        groups.setdefault((r["function"], r["dtype"], r["impl"]), []).append(r)
    worst = []
    for (function, dtype_name, impl), rows in groups.items():
        entry = {"function": function, "dtype": dtype_name, "impl": impl}
        for key in ("max_ulp", "median_ulp", "p99_ulp", "max_row_ulp"):
            if key not in rows[0]:
                continue
            top = max(rows, key=lambda r, key=key: r[key])
            entry[key] = top[key]
            entry[f"{key}_at"] = f"{top['family']} T={top['temperature']:g}"
        entry["false_zeros"] = sum(r["false_zeros"] for r in rows)
        entry["nonfinite"] = sum(r["nonfinite"] for r in rows)
        worst.append(entry)
    return worst


def print_worst(worst) -> None:
    print("# worst over families and temperatures (max ulp at family T)")
    for w in worst:
        row = ""
        if "max_row_ulp" in w:
            row = f", row-scale max {_fmt(w['max_row_ulp'])}"
        print(
            f"{SHORT.get(w['function'], w['function']):<12} {w['dtype']:<8} "
            f"{w['impl']:<18} max {_fmt(w['max_ulp'])} ({w['max_ulp_at']}), "
            f"median {_fmt(w['median_ulp'])}, p99 {_fmt(w['p99_ulp'])}{row}, "
            f"false zeros {w['false_zeros']}"
        )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench accuracy",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="64 rows of width 200 (float64: 2 of width 50); writes to a "
        "temporary folder unless --out is given",
    )
    parser.add_argument(
        "--out", help="JSON path (default bench/results/accuracy-cpu.json)"
    )
    parser.add_argument(
        "--dtypes", nargs="*", choices=list(DTYPES), default=list(DTYPES)
    )
    parser.add_argument("--functions", nargs="*", choices=list(FUNCTIONS))
    parser.add_argument("--temperatures", nargs="*", type=float, default=TEMPERATURES)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--width", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.width, args.f64_rows, args.f64_width = 64, 200, 2, 50
    else:
        args.f64_rows, args.f64_width = 4, args.width
    report = run(args)
    name = f"accuracy-{report['header']['platform']}.json"
    if args.out:
        out = pathlib.Path(args.out)
    elif args.quick:  # a smoke test never replaces the committed results
        out = pathlib.Path(tempfile.mkdtemp(prefix="bench-accuracy-")) / name
    else:
        out = RESULTS / name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"# wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
