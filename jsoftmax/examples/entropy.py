"""The maximum-entropy die with mean 4.5 (Jaynes' Brandeis dice problem).

Maximise ``H(p) = -Σ p_i log p_i`` over the faces 1..6 subject to ``Σ i p_i = 4.5``.
The map removes the simplex constraints; the mean constraint is enforced by an
augmented Lagrangian whose inner problems L-BFGS solves in ``eta``
(``jsoftmax.optim.minimize`` with the multiplier passed as an argument, so it
compiles once). The reference is the Gibbs form ``p_i ∝ exp(β i)`` with ``β`` the
root of the 1-D moment equation ``Σ i e^{β i} / Σ e^{β i} = 4.5``, found by
bisection.
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
from jsoftmax.examples._common import fmt

FACES = np.arange(1.0, 7.0)
MEAN = 4.5


def augmented_lagrangian(eta, multiplier, penalty):
    log_p = jsoftmax.log_centered_softmax(eta)
    p = jnp.exp(log_p)
    violation = jnp.dot(p, FACES) - MEAN
    return jnp.sum(p * log_p) + multiplier * violation + 0.5 * penalty * violation**2


def _gibbs(beta):
    w = np.exp(beta * (FACES - FACES.max()))
    return w / w.sum()


def _moment_root(lo=-10.0, hi=10.0):
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if _gibbs(mid) @ FACES < MEAN:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def run(*, steps: int = 25, seed: int = 0, trace: bool = False) -> Result:
    del seed, trace  # deterministic problem; the curves cost nothing extra
    beta = _moment_root()
    reference = _gibbs(beta)
    eta, multiplier, penalty = jnp.zeros(5), 0.0, 10.0
    inner_steps = 0
    errors, violations = [], []
    lbfgs = optax.lbfgs()
    for _ in range(steps):
        result = jsoftmax.optim.minimize(
            augmented_lagrangian,
            eta,
            lbfgs,
            max_steps=200,
            gtol=1e-12,
            args=(jnp.asarray(multiplier), jnp.asarray(penalty)),
        )
        eta, inner_steps = result.params, inner_steps + int(result.steps)
        p = np.asarray(jsoftmax.centered_softmax(eta))
        violation = float(p @ FACES - MEAN)
        multiplier += penalty * violation
        errors.append(float(np.max(np.abs(p - reference))))
        violations.append(abs(violation))
        if abs(violation) < 1e-13:
            break
    found = np.asarray(jsoftmax.centered_softmax(eta))
    return Result(
        name="entropy",
        problem="maximum-entropy die with mean 4.5",
        found=fmt(found),
        reference=fmt(reference),
        how=f"Gibbs p ∝ exp(βi), β = {beta:.6f} from bisection of the moment equation",
        gap=float(np.max(np.abs(found - reference))),
        tolerance=1e-8,
        iterations=inner_steps,
        notes=[
            f"mean of the answer {found @ FACES:.10f}; multiplier {multiplier:.6f} "
            f"(= -β up to the sign convention)"
        ],
        panels=[
            Panel(
                "after each multiplier update (each an L-BFGS solve in eta)",
                {
                    "max |p - p_Gibbs|": errors,
                    "|Σ i·p_i - 4.5| (constraint violation)": violations,
                },
                ylabel="error",
                xlabel="augmented-Lagrangian (outer) iteration",
            )
        ],
    )


if __name__ == "__main__":
    jax.config.update("jax_enable_x64", True)
    sys.exit(cli(run, __doc__))
