"""``python -m bench.vocab [--quick] [--out PATH]``: large-vocabulary cross-entropy.

Compares :func:`jsoftmax.linear_cross_entropy` with the naive path
(``optax.softmax_cross_entropy_with_integer_labels(x @ w, labels).mean()``) and,
where it installs, tokamax's ``linear_softmax_cross_entropy_loss`` (XLA path),
all as ``value_and_grad`` in ``x`` and ``w``:

* temporary memory of the compiled program (``memory_analysis()
  .temp_size_in_bytes``; compile only, nothing runs) at N=8192, D=2048,
  V=131072 in float32 and bfloat16, against the size of the naive logits;
* CPU time at N=2048, D=512, V=32768 (float32), the implementations taking
  turns, medians;
* values and gradients against the naive path (float32 tolerance).

tokamax is looked for in this interpreter, then in ``--tokamax-python`` (an
interpreter of a separate virtual environment, since tokamax may pin other jax
versions); if neither imports it, the JSON says why and skips it. Results go to
``bench/results/vocab-cpu.json`` (``--quick``: small sizes, a temporary file
unless ``--out``).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jsoftmax
from jsoftmax.linear_ce import default_block_size

RESULTS = pathlib.Path(__file__).parent / "results"
MEMORY_SHAPE = (8192, 2048, 131072)
TIME_SHAPE = (2048, 512, 32768)
QUICK_MEMORY_SHAPE = (1024, 256, 16384)
QUICK_TIME_SHAPE = (256, 128, 4096)
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}

# Run by --tokamax-python: prints the temp bytes of tokamax's XLA path.
_TOKAMAX_SCRIPT = """
import json, sys
import jax, jax.numpy as jnp, tokamax
rows, dim, vocab, dtype = json.loads(sys.argv[1])
def loss(x, w, y):
    return tokamax.linear_softmax_cross_entropy_loss(
        x, y, w, reduction="mean", implementation="xla")
args = (jax.ShapeDtypeStruct((rows, dim), dtype),
        jax.ShapeDtypeStruct((dim, vocab), dtype),
        jax.ShapeDtypeStruct((rows,), jnp.int32))
compiled = jax.jit(jax.value_and_grad(loss, (0, 1))).lower(*args).compile()
print(json.dumps({"temp_bytes": compiled.memory_analysis().temp_size_in_bytes,
                  "jax": jax.__version__}))
"""


def naive(x, w, labels):
    return optax.softmax_cross_entropy_with_integer_labels(x @ w, labels).mean()


def ours(x, w, labels):
    return jsoftmax.linear_cross_entropy(x, w, labels)


def _abstract(rows, dim, vocab, dtype):
    return (
        jax.ShapeDtypeStruct((rows, dim), dtype),
        jax.ShapeDtypeStruct((dim, vocab), dtype),
        jax.ShapeDtypeStruct((rows,), jnp.int32),
    )


def temp_bytes(fn, args) -> int:
    compiled = jax.jit(jax.value_and_grad(fn, (0, 1))).lower(*args).compile()
    return int(compiled.memory_analysis().temp_size_in_bytes)


def tokamax_temp_bytes(shape, dtype_name, python):
    """``(bytes, note)``: tokamax's XLA path, or None and why not."""
    spec = json.dumps([*shape, dtype_name])
    try:
        import tokamax  # noqa: F401

        python = sys.executable
    except ImportError:
        if not python:
            return None, "tokamax does not import here and no --tokamax-python"
    try:
        run = subprocess.run(
            [python, "-c", _TOKAMAX_SCRIPT, spec],
            capture_output=True,
            text=True,
            timeout=300,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return None, f"tokamax run failed: {error}"
    if run.returncode != 0:
        return None, "tokamax failed: " + run.stderr.strip().splitlines()[-1]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    return out["temp_bytes"], f"tokamax XLA path, jax {out['jax']} ({python})"


def memory(shape, tokamax_python):
    rows, dim, vocab = shape
    out = []
    for name, dtype in DTYPES.items():
        args = _abstract(rows, dim, vocab, dtype)
        size = jnp.dtype(dtype).itemsize
        logits = rows * vocab * size
        w_bytes = dim * vocab * size
        entry = {
            "shape": {"N": rows, "D": dim, "V": vocab},
            "dtype": name,
            "block_size": default_block_size(rows, vocab),
            "naive_logits_bytes": logits,
            "w_bytes": w_bytes,
            "temp_bytes": {"naive": temp_bytes(naive, args), "jsoftmax": None},
        }
        entry["temp_bytes"]["jsoftmax"] = temp_bytes(ours, args)
        tokamax_bytes, note = tokamax_temp_bytes(shape, name, tokamax_python)
        entry["temp_bytes"]["tokamax"] = tokamax_bytes
        entry["tokamax_note"] = note
        beyond_w = max(0, entry["temp_bytes"]["jsoftmax"] - w_bytes)
        entry["jsoftmax_beyond_w_over_logits"] = beyond_w / logits
        entry["target_met"] = beyond_w <= logits / 16
        out.append(entry)
    return out


def timing(shape, runs):
    rows, dim, vocab = shape
    keys = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(keys[0], (rows, dim), jnp.float32)
    w = jax.random.normal(keys[1], (dim, vocab), jnp.float32) / np.sqrt(dim)
    labels = jax.random.randint(keys[2], (rows,), 0, vocab)
    fns = {
        name: jax.jit(jax.value_and_grad(fn, (0, 1)))
        for name, fn in (("naive", naive), ("jsoftmax", ours))
    }
    results = {
        name: jax.block_until_ready(fn(x, w, labels)) for name, fn in fns.items()
    }
    times = {name: [] for name in fns}
    for turn in range(runs):
        order = list(fns) if turn % 2 == 0 else list(fns)[::-1]
        for name in order:
            start = time.perf_counter()
            jax.block_until_ready(fns[name](x, w, labels))
            times[name].append(time.perf_counter() - start)
    medians = {name: float(np.median(t)) for name, t in times.items()}
    (value, grads), (ref_value, ref_grads) = results["jsoftmax"], results["naive"]
    errors = {
        "value_rel": float(abs(value - ref_value) / abs(ref_value)),
        "dx_max_rel": _max_rel(grads[0], ref_grads[0]),
        "dw_max_rel": _max_rel(grads[1], ref_grads[1]),
    }
    return {
        "shape": {"N": rows, "D": dim, "V": vocab},
        "dtype": "float32",
        "block_size": default_block_size(rows, vocab),
        "runs": runs,
        "median_seconds": medians,
        "speed_vs_naive": medians["naive"] / medians["jsoftmax"],
        "errors_vs_naive": errors,
        "equal_to_float32_tolerance": bool(
            np.allclose(value, ref_value, rtol=1e-5)
            and all(
                np.allclose(g, r, rtol=1e-4, atol=1e-4 * float(jnp.max(jnp.abs(r))))
                for g, r in zip(grads, ref_grads, strict=True)
            )
        ),
    }


def _max_rel(got, want):
    return float(jnp.max(jnp.abs(got - want)) / jnp.max(jnp.abs(want)))


def _commit():
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=pathlib.Path(__file__).parent,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _print(report):
    mib = 2**20
    print("temporary memory of value_and_grad (MiB, compiled, not run)")
    print(f"{'dtype':9} {'naive':>9} {'jsoftmax':>9} {'tokamax':>9} beyond-w/logits")
    for e in report["memory"]:
        t = e["temp_bytes"]
        tok = "-" if t["tokamax"] is None else f"{t['tokamax'] / mib:9.0f}"
        print(
            f"{e['dtype']:9} {t['naive'] / mib:9.0f} {t['jsoftmax'] / mib:9.0f} "
            f"{tok:>9} {e['jsoftmax_beyond_w_over_logits']:.4f} "
            f"(target 1/16 = 0.0625: {'met' if e['target_met'] else 'MISSED'})"
        )
    print(f"     tokamax: {report['memory'][0]['tokamax_note']}")
    t = report["time"]
    print(
        f"CPU time {t['shape']}: naive {t['median_seconds']['naive']:.3f} s, "
        f"jsoftmax {t['median_seconds']['jsoftmax']:.3f} s, "
        f"speed {t['speed_vs_naive']:.2f}x of naive; errors {t['errors_vs_naive']}"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes")
    parser.add_argument("--out", help="JSON path")
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument(
        "--tokamax-python", help="python of a venv with tokamax (XLA path memory)"
    )
    args = parser.parse_args(argv)
    if args.out:
        out = pathlib.Path(args.out)
    elif args.quick:
        out = pathlib.Path(tempfile.gettempdir()) / "vocab-quick.json"
    else:
        out = RESULTS / "vocab-cpu.json"
    report = {
        "jax": jax.__version__,
        "optax": optax.__version__,
        "device": jax.devices()[0].device_kind,
        "commit": _commit(),
        "command": "python -m bench.vocab " + " ".join(argv or sys.argv[1:]),
        "memory": memory(
            QUICK_MEMORY_SHAPE if args.quick else MEMORY_SHAPE, args.tokamax_python
        ),
        "time": timing(
            QUICK_TIME_SHAPE if args.quick else TIME_SHAPE,
            args.runs or (3 if args.quick else 7),
        ),
    }
    _print(report)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
