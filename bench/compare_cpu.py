"""jsoftmax vs jax.nn and optax side by side in one process: speed and XLA bytes accessed.

Run: ``python -m bench.compare_cpu [--rows 512] [--cols 32768] [--runs 15]``

For each operation it prints the median wall time of a compiled function over
``--runs`` runs after warm-up (blocking outside jit), the speed ratio
(baseline time / jsoftmax time: above 1 means jsoftmax is faster), and XLA's
cost-analysis "bytes accessed" of both, in units of the input's size N·s.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jsoftmax


def median_seconds(fn, *args, runs: int) -> float:
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def bytes_accessed(fn, *args) -> float:
    cost = jax.jit(fn).lower(*args).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return float(cost["bytes accessed"])


def _weighted_sum_grad(normaliser):
    # forward + backward of a loss that uses every output (cotangent = x)
    return jax.grad(lambda x: jnp.sum(normaliser(x) * x))


def _labels_for(x):
    # numpy, so the labels are a constant of the compiled function (never a tracer)
    rng = np.random.default_rng(1)
    return rng.integers(0, x.shape[-1], x.shape[:-1]).astype(np.int32)


def _integer_xent_value_and_grad(loss_fn):
    def run(x):
        labels = _labels_for(x)
        return jax.value_and_grad(lambda x: jnp.mean(loss_fn(x, labels)))(x)

    return run


CASES = {
    "softmax forward (jax.nn)": (
        lambda x: jax.nn.softmax(x),
        lambda x: jsoftmax.softmax(x),
    ),
    "log_softmax forward (jax.nn)": (
        lambda x: jax.nn.log_softmax(x),
        lambda x: jsoftmax.log_softmax(x),
    ),
    "softmax forward+backward (jax.nn)": (
        _weighted_sum_grad(jax.nn.softmax),
        _weighted_sum_grad(jsoftmax.softmax),
    ),
    "log_softmax forward+backward (jax.nn)": (
        _weighted_sum_grad(jax.nn.log_softmax),
        _weighted_sum_grad(jsoftmax.log_softmax),
    ),
    "integer-label CE value_and_grad (optax)": (
        _integer_xent_value_and_grad(optax.softmax_cross_entropy_with_integer_labels),
        _integer_xent_value_and_grad(
            jsoftmax.softmax_cross_entropy_with_integer_labels
        ),
    ),
}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=512)
    parser.add_argument("--cols", type=int, default=32768)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args(argv)
    x = jax.random.normal(jax.random.key(0), (args.rows, args.cols), jnp.float32)
    device = jax.devices()[0]
    print(
        f"{args.rows}x{args.cols} float32 on {device.device_kind} ({device.platform}), "
        f"jax {jax.__version__}, median of {args.runs} runs"
    )
    print(
        f"{'operation (baseline)':<44} {'base ms':>8} {'jsoftmax ms':>12} "
        f"{'speed ratio':>12} {'bytes/N·s base':>15} {'jsoftmax':>9}"
    )
    for name, (baseline, ours) in CASES.items():
        t_base = median_seconds(jax.jit(baseline), x, runs=args.runs)
        t_ours = median_seconds(jax.jit(ours), x, runs=args.runs)
        b_base = bytes_accessed(baseline, x) / x.nbytes
        b_ours = bytes_accessed(ours, x) / x.nbytes
        print(
            f"{name:<44} {t_base * 1e3:>8.1f} {t_ours * 1e3:>12.1f} "
            f"{t_base / t_ours:>12.2f} {b_base:>15.2f} {b_ours:>9.2f}"
        )


if __name__ == "__main__":
    main()
