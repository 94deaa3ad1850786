"""Temperature scaling: calibrate a classifier's logits by one scalar ``T``.

An over-confident classifier's logits are divided by ``T = exp(θ)`` fitted on a
held-out set with ``softmax_cross_entropy_with_integer_labels(..., temperature=T)``
(``T`` is traced and differentiable, so θ is an ordinary optax parameter). The
negative log-likelihood is convex in ``1/T``; the reference is a golden-section
search over ``1/T`` that never differentiates. Expected calibration error (15
bins) is reported before and after.
"""

from __future__ import annotations

import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jsoftmax
from jsoftmax.examples._common import Panel
from jsoftmax.examples._common import Result
from jsoftmax.examples._common import cli
from jsoftmax.examples._common import trajectory


def _data(seed, n=4000, classes=10):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    clean = rng.normal(0, 1, (n, classes))
    clean[np.arange(n), labels] += 2.0  # informative but noisy
    return jnp.asarray(3.0 * clean), jnp.asarray(labels)  # over-confident by 3x


def nll(theta, logits, labels):
    return jsoftmax.softmax_cross_entropy_with_integer_labels(
        logits, labels, temperature=jnp.exp(theta[0]), reduction="mean"
    )


def expected_calibration_error(logits, labels, temperature, bins=15):
    p = np.asarray(jsoftmax.softmax(logits, temperature=temperature))
    confidence = p.max(-1)
    correct = p.argmax(-1) == np.asarray(labels)
    edges = np.linspace(0, 1, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        inside = (confidence > lo) & (confidence <= hi)
        if inside.any():
            ece += inside.mean() * abs(
                correct[inside].mean() - confidence[inside].mean()
            )
    return ece


def _golden_section(f, lo, hi, tol=1e-12, trail=None):
    """Minimiser of a unimodal ``f`` on ``[lo, hi]``; ``trail`` collects midpoints."""
    ratio = (np.sqrt(5) - 1) / 2
    a, b = lo, hi
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = f(c), f(d)
    while b - a > tol:
        if trail is not None:
            trail.append((a + b) / 2)
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = f(d)
    return (a + b) / 2


def run(*, steps: int = 100, seed: int = 0, trace: bool = False) -> Result:
    logits, labels = _data(seed)
    result = jsoftmax.optim.minimize(
        nll,
        jnp.zeros(1),
        optax.lbfgs(),
        max_steps=steps,
        gtol=1e-12,
        args=(logits, labels),
    )
    found = float(np.exp(result.params[0]))
    # reference: NLL as a function of u = 1/T by plain numpy log-sum-exp
    x, y = np.asarray(logits, np.float64), np.asarray(labels)

    def nll_of_inverse(u):
        z = u * x
        top = z.max(-1)
        return np.mean(
            top + np.log(np.exp(z - top[:, None]).sum(-1)) - z[np.arange(len(y)), y]
        )

    midpoints = []
    reference = 1.0 / _golden_section(nll_of_inverse, 1e-3, 10.0, trail=midpoints)
    panels = []
    if trace:
        lbfgs_path = trajectory(
            nll,
            jnp.zeros(1),
            optax.lbfgs(),
            steps=steps,
            gtol=1e-12,
            measure=lambda theta: jnp.exp(theta[0]),
            args=(logits, labels),
        )
        relative = lambda t: np.abs(np.asarray(t) - reference) / reference  # noqa: E731
        panels.append(
            Panel(
                "relative error of the fitted temperature after each step",
                {
                    "L-BFGS on log T (gtol 1e-12)": relative(lbfgs_path),
                    "golden section on 1/T (bracket midpoint)": relative(
                        1.0 / np.asarray(midpoints)
                    ),
                },
                ylabel="|T - T_ref| / T_ref",
            )
        )
    before = expected_calibration_error(logits, labels, 1.0)
    after = expected_calibration_error(logits, labels, found)
    return Result(
        name="temperature",
        problem="temperature scaling of an over-confident 10-class classifier",
        found=f"T = {found:.8f}",
        reference=f"T = {reference:.8f}",
        how="golden-section search of the NLL over 1/T (numpy)",
        gap=abs(found - reference) / reference,
        tolerance=1e-6,
        iterations=int(result.steps),
        notes=[
            f"expected calibration error: {before:.4f} at T = 1, {after:.4f} at the fit"
        ],
        panels=panels,
    )


if __name__ == "__main__":
    jax.config.update("jax_enable_x64", True)
    sys.exit(cli(run, __doc__))
