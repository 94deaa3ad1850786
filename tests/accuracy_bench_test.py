"""``python -m bench accuracy``: the ulp metric on hand-made cases, the float64
reference against mpmath, and a ``--quick`` run into a temporary path."""

import json

import jax.numpy as jnp
import numpy as np
import pytest

from bench import accuracy
from bench.__main__ import main as bench_main

DTYPES = [np.float32, jnp.bfloat16, np.float64]


@pytest.mark.parametrize("dtype", DTYPES)
def test_exact_result_is_zero_ulp(dtype):
    ref = np.array([1.0, -3.5, 0.0, 1e-3, -700.0, np.inf, -np.inf])
    out = ref.astype(dtype)
    if dtype is not np.float64:  # 1e-3 is not a float32/bfloat16 number
        ref = out.astype(np.float64)
    np.testing.assert_array_equal(accuracy.ulp_error(out, ref, dtype), 0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_one_spacing_is_one_ulp(dtype):
    info = jnp.finfo(dtype)
    ref = np.array([1.0, 1.5, -3.0, 2.0**-20, 1000.0, -0.1]).astype(dtype)
    ref = ref.astype(np.float64)
    up = np.nextafter(ref.astype(np.float32), np.inf)  # exact for float32 only
    spacing = np.ldexp(1.0, np.frexp(np.abs(ref))[1] - 1 - int(info.nmant))
    np.testing.assert_allclose(accuracy.ulp(ref, dtype), spacing)
    if dtype is np.float32:
        np.testing.assert_allclose(accuracy.ulp(ref, dtype), up - ref)
    np.testing.assert_allclose(accuracy.ulp_error(ref + spacing, ref, dtype), 1)
    np.testing.assert_allclose(accuracy.ulp_error(ref - 3 * spacing, ref, dtype), 3)
    # bfloat16 keeps 8 significant bits: its spacing at 1 is 2^-7
    if dtype is jnp.bfloat16:
        assert accuracy.ulp(1.0, dtype) == 2.0**-7


@pytest.mark.parametrize("dtype", DTYPES)
def test_zeros_and_the_subnormal_range(dtype):
    tiny = float(jnp.finfo(dtype).tiny)
    # a zero reference: the unit is the smallest normal number
    assert accuracy.ulp(0.0, dtype) == tiny
    assert accuracy.ulp_error(0.0, 0.0, dtype) == 0
    assert accuracy.ulp_error(tiny, 0.0, dtype) == 1
    assert accuracy.ulp_error(-2 * tiny, 0.0, dtype) == 2
    # below the normal range (where XLA flushes to zero) the unit is still tiny
    assert accuracy.ulp(tiny / 3, dtype) == tiny
    assert accuracy.ulp_error(0.0, tiny / 4, dtype) == pytest.approx(0.25)
    # a flushed result at the bottom of the normal range is a real error
    spacing = tiny * float(jnp.finfo(dtype).eps)
    assert accuracy.ulp_error(0.0, tiny, dtype) == pytest.approx(tiny / spacing)


def test_wide_reference_remainder_and_nonfinite():
    # ref = 1 + 2^-60 as (high, low): the float64 output 1 is 2^-8 ulp off
    assert accuracy.ulp_error(1.0, 1.0, np.float64, 2.0**-60) == 2.0**-8
    out = np.array([np.nan, np.inf, -np.inf, 1.0])
    ref = np.array([1.0, 1.0, -np.inf, np.nan])
    np.testing.assert_array_equal(
        accuracy.ulp_error(out, ref, np.float32), [np.inf, np.inf, 0, np.inf]
    )


def test_row_scale_unit():
    # one float32 ulp of 8 is half an ulp of 16 (a row scale of 16)
    ulp8, ulp16 = accuracy.ulp(8.0, np.float32), accuracy.ulp(16.0, np.float32)
    error = accuracy.ulp_error(8.0 + ulp8, 8.0, np.float32, unit=ulp16)
    assert error == pytest.approx(0.5)


@pytest.mark.parametrize("family", accuracy.FAMILIES)
def test_float64_reference_against_mpmath(family):
    """The float32/bfloat16 reference (float64, longdouble for logsumexp) is
    within 1e-4 float32 ulp of mpmath on every function, the dominant entry's
    tiny log-probability and logsumexp near 0 included."""
    x, labels, probabilities = accuracy.family(family, 6, 200, seed=3)
    x = x.astype(np.float32).astype(np.float64)
    probabilities = probabilities.astype(np.float32).astype(np.float64)
    wide = np.finfo(np.longdouble).nmant >= 63
    for temperature in accuracy.TEMPERATURES:
        t = float(np.float32(temperature))
        ours = accuracy.reference_float64(x, t, labels, probabilities)
        exact = accuracy.reference_mpmath(x, t, labels, probabilities)
        for name in accuracy.FUNCTIONS:
            ref, _ = ours[name]
            (high, low), _ = exact[name]
            if isinstance(ref, tuple):
                ref = ref[0] + ref[1]
            error = accuracy.ulp_error(ref, high, np.float32, low).max()
            bound = 1e-2 if name == "logsumexp" and not wide else 1e-4
            assert error < bound, (name, temperature, error)


def test_dominant_entry_reference_is_tiny_and_negative():
    x = np.zeros((1, 1000))
    x[0, 3] = 40.0
    refs = accuracy.reference_float64(x, 1.0, np.array([3]), np.full((1, 1000), 1e-3))
    log_p = refs["log_softmax"][0][0, 3]
    expected = -np.log1p(999 * np.exp(-40.0))
    assert log_p < 0
    assert log_p == pytest.approx(expected, rel=1e-14)
    loss = refs["softmax_cross_entropy_with_integer_labels"][0][0]
    assert loss == pytest.approx(-expected, rel=1e-14)


@pytest.mark.slow  # about 10 s: compiles 14 functions in 3 dtypes
def test_quick_run_writes_json(tmp_path, capsys):
    out = tmp_path / "accuracy.json"
    assert accuracy.main(["--quick", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    header = report["header"]
    assert {"jax_version", "commit", "error", "row_error"} <= set(header)
    rows = report["results"]
    seen = {(r["function"], r["dtype"], r["impl"] == "jsoftmax") for r in rows}
    for function in accuracy.FUNCTIONS:
        for dtype in accuracy.DTYPES:
            assert (function, dtype, True) in seen
            assert (function, dtype, False) in seen
    for r in rows:
        assert {"max_ulp", "median_ulp", "p99_ulp", "false_zeros"} <= set(r)
        assert r["median_ulp"] <= r["p99_ulp"] <= r["max_ulp"]
        assert ("max_row_ulp" in r) == (r["function"] in accuracy.LOG_DOMAIN)
        if "max_row_ulp" in r:
            assert r["max_row_ulp"] <= r["max_ulp"]
    # both dtypes' worst cases summarised, and the table printed
    assert len(report["worst"]) == 2 * len(accuracy.FUNCTIONS) * len(accuracy.DTYPES)
    assert "# worst over families" in capsys.readouterr().out
    # jsoftmax's bfloat16 losses are computed and returned in float32
    losses = [
        r
        for r in rows
        if r["impl"] == "jsoftmax"
        and r["dtype"] == "bfloat16"
        and r["function"].startswith("softmax_cross_entropy")
    ]
    assert losses and all(r["out_dtype"] == "float32" for r in losses)


def test_bench_dispatches_accuracy(tmp_path):
    out = tmp_path / "a.json"
    args = ["accuracy", "--quick", "--dtypes", "float32", "--functions", "softmax"]
    assert bench_main([*args, "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["results"]
    assert {r["function"] for r in rows} == {"softmax"}
    assert {r["dtype"] for r in rows} == {"float32"}
