"""A self-checking tour of the normalisers, next to what jax.nn does on the same rows.

Run with ``python -m jsoftmax.examples.tour`` (``python -m jsoftmax.examples`` runs the
optax examples, not this tour). Every line checks jsoftmax against an independent
reference (float64 numpy or a closed form) and prints what jax.nn gives for the same
input; where jax.nn has no such operation (a temperature) it prints ``—``. The exit
status is non-zero if any check fails.
"""

from __future__ import annotations

import sys

import jax
import jax.numpy as jnp
import numpy as np

import jsoftmax

inf = np.inf


def _row(label, ours, reference, theirs, rtol=1e-6):
    """One check; ``theirs`` is jax.nn's value, or None where jax.nn offers none."""
    ok = np.allclose(
        np.asarray(ours, np.float64), reference, rtol=rtol, atol=1e-30, equal_nan=True
    )
    theirs = "— (not offered)" if theirs is None else str(np.asarray(theirs))
    print(
        f"  {'ok ' if ok else 'BAD'} {label:<44} jsoftmax {np.asarray(ours)!s:<28} "
        f"jax.nn {theirs}"
    )
    return ok


def main() -> int:
    jnp.set_printoptions(precision=4)
    np.set_printoptions(precision=4)
    print("jsoftmax tour: edge rows, temperature, precision (reference: float64 numpy)")
    print("  (jax.nn has no temperature: at T it is given x / T)")
    checks = []
    x = jnp.array([-inf, -inf, -inf])
    checks.append(
        _row(
            "softmax of an all -inf row",
            jsoftmax.softmax(x),
            [0, 0, 0],
            jax.nn.softmax(x),
        )
    )
    x = jnp.array([0.0, inf, inf])
    checks.append(
        _row(
            "softmax with two +inf entries",
            jsoftmax.softmax(x),
            [0, 0.5, 0.5],
            jax.nn.softmax(x),
        )
    )
    x = jnp.array([1.0, 3.0, 3.0])
    checks.append(
        _row(
            "softmax at T = 0 (ties share)",
            jsoftmax.softmax(x, temperature=0.0),
            [0, 0.5, 0.5],
            jax.nn.softmax(x / 0.0),
        )
    )
    checks.append(
        _row(
            "softmax at T = 1e-40 (no overflow)",
            jsoftmax.softmax(x, temperature=1e-40),
            [0, 0.5, 0.5],
            jax.nn.softmax(x / 1e-40),
        )
    )
    x16 = jnp.zeros(65536, jnp.float16)
    checks.append(
        _row(
            "log_softmax(zeros(65536)) in float16",
            jsoftmax.log_softmax(x16)[:1],
            [-np.log(65536)],
            jax.nn.log_softmax(x16)[:1],
            rtol=2**-11,
        )
    )
    x = jnp.array([40.0, 0.0], jnp.float32)
    tail = np.exp(-40.0) / (1 + np.exp(-40.0))
    checks.append(
        _row(
            "grad softmax([40, 0])[0] (the tail)",
            jax.grad(lambda v: jsoftmax.softmax(v)[0])(x),
            [tail, -tail],
            jax.grad(lambda v: jax.nn.softmax(v)[0])(x),
        )
    )
    x = jnp.array([0.5, 1.5, -0.25])
    p = np.exp(np.array([0.5, 1.5, -0.25]) / 2.0)
    p /= p.sum()
    checks.append(
        _row(
            "d logsumexp / dT at T = 2 (the entropy)",
            jax.grad(lambda t: jsoftmax.logsumexp(x, temperature=t))(2.0),
            -np.sum(p * np.log(p)),
            None,  # jax.nn.logsumexp takes no temperature
        )
    )
    draws = jsoftmax.sample(
        jax.random.key(0), jnp.array([0.0, -inf, 1.0]), shape=(20000,)
    )
    freq = np.bincount(np.asarray(draws), minlength=3) / 20000
    checks.append(bool(abs(freq[2] - 1 / (1 + np.exp(-1))) < 0.02 and freq[1] == 0))
    print(
        f"  {'ok ' if checks[-1] else 'BAD'} "
        f"{'sample: frequencies of [0, -inf, 1]':<44} "
        f"jsoftmax {freq}"
    )
    failed = checks.count(False)
    print(f"{len(checks) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
