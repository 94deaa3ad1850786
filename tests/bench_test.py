"""The benchmark's smoke test: ``python -m bench --quick`` runs and writes its JSON."""

import json
import pathlib
import subprocess
import sys
import types

import numpy as np
import pytest

import bench
from bench.__main__ import RESULTS
from bench.__main__ import main as bench_main
from bench.__main__ import speedup

REQUIRED = {
    "op",
    "impl",
    "shape",
    "dtype",
    "median_s",
    "q25_s",
    "q75_s",
    "floor_bytes",
    "device",
    "compile_s",
    "xla_bytes_accessed",
    "peak_bytes",
    "achieved_bytes_per_s",
    "fraction_of_copy_bandwidth",
}


@pytest.mark.slow
def test_quick_bench_writes_results(tmp_path):
    out = tmp_path / "quick.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--quick",
            "--out",
            str(out),
            "--ops",
            "softmax_fwd",
            "int_xent_value_and_grad",
            "--dtypes",
            "float32",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    header = report["header"]
    assert {"device", "device_kind", "jax_version", "commit"} <= set(header)
    assert header["copy_bandwidth_bytes_per_s"] > 0
    rows = report["results"]
    assert {r["impl"] for r in rows} >= {"jsoftmax", "optax", "jax.nn (custom_jvp on)"}
    for row in rows:
        assert REQUIRED <= set(row)
        assert row["median_s"] > 0 and row["floor_bytes"] > 0
        assert row["q25_s"] <= row["median_s"] <= row["q75_s"]
    assert "softmax_fwd" in proc.stdout

    ours = [r for r in rows if r["impl"] == "jsoftmax"]
    assert ours and all("speedup" in r for r in ours)
    xent = next(r for r in ours if r["op"] == "int_xent_value_and_grad")
    assert set(xent["speedup"]) == {"optax"}
    s = xent["speedup"]["optax"]
    assert s["low"] <= s["ratio"] <= s["high"]
    assert s["verdict"] in ("slower", "tie", "faster")
    assert "speedup" in proc.stdout


def test_speedup_interval_separates_only_what_the_samples_resolve():
    rng = np.random.default_rng(1)
    noise = rng.normal(1.0, 0.05, 20)
    ratio, low, high = speedup(noise, noise)
    assert ratio == 1 and low < 1 < high
    ratio, low, high = speedup(2 * noise, rng.permutation(noise))
    assert ratio == 2 and 1 < low <= 2 <= high
    _, low, high = speedup(noise, 1.5 * rng.permutation(noise))
    assert high < 1


@pytest.mark.slow
def test_quick_bench_leaves_committed_results_alone():
    committed = {p: p.read_bytes() for p in RESULTS.glob("*.json")}
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--ops", "logsumexp"]
        + ["--dtypes", "float32", "--runs", "3"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    wrote = pathlib.Path(proc.stdout.strip().splitlines()[-1].removeprefix("# wrote "))
    assert wrote.is_file() and RESULTS not in wrote.parents
    assert json.loads(wrote.read_text())["results"]
    assert {p: p.read_bytes() for p in RESULTS.glob("*.json")} == committed
    # progress: one line per case on stderr
    assert "# [1/2] logsumexp 64x128 float32" in proc.stderr
    assert "# [2/2] logsumexp 16x1024 float32" in proc.stderr


def test_accuracy_dispatches_to_bench_accuracy(monkeypatch, capsys, tmp_path):
    calls = []
    fake = types.ModuleType("bench.accuracy")
    fake.main = lambda argv: calls.append(argv) or 7
    monkeypatch.delattr(bench, "accuracy", raising=False)
    monkeypatch.setitem(sys.modules, "bench.accuracy", fake)
    assert bench_main(["accuracy", "--quick", "x"]) == 7
    assert calls == [["--quick", "x"]]

    # a checkout without bench/accuracy.py
    monkeypatch.delitem(sys.modules, "bench.accuracy")
    monkeypatch.setattr(bench, "__path__", [str(tmp_path)])
    assert bench_main(["accuracy"]) == 2
    assert "bench/accuracy.py is missing" in capsys.readouterr().err


def test_accel_dispatches_to_bench_accel(capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench_main(["accel", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "python -m bench accel" in out and "--target" in out
