"""Maximum likelihood of category probabilities from counts, through the map.

The negative log-likelihood ``-Σ c_i log p_i`` is minimised over ``eta`` with
``p = centered_softmax(eta)`` by L-BFGS (``jsoftmax.optim.minimize`` stops on the
gradient norm). The reference is the closed form ``counts / total``.
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
from jsoftmax.examples._common import trajectory


def negative_log_likelihood(eta, counts):
    return -jnp.sum(counts * jsoftmax.log_centered_softmax(eta)) / jnp.sum(counts)


def run(
    *, steps: int = 200, seed: int = 0, categories: int = 6, trace: bool = False
) -> Result:
    rng = np.random.default_rng(seed)
    truth = rng.dirichlet(np.full(categories, 2.0))
    counts = jnp.asarray(rng.multinomial(1000, truth), jnp.float64)
    reference = np.asarray(counts / counts.sum())
    eta0 = jnp.zeros(categories - 1)
    lbfgs = jsoftmax.optim.minimize(
        negative_log_likelihood,
        eta0,
        optax.lbfgs(),
        max_steps=steps,
        gtol=1e-12,
        args=(counts,),
    )
    adam = jsoftmax.optim.minimize(
        negative_log_likelihood,
        eta0,
        optax.adam(0.1),
        max_steps=20 * steps,
        gtol=1e-8,
        args=(counts,),
    )
    found = np.asarray(jsoftmax.centered_softmax(lbfgs.params))
    panels = []
    if trace:  # the same two runs, step by step, for --plot
        distance = lambda eta: jnp.max(  # noqa: E731
            jnp.abs(jsoftmax.centered_softmax(eta) - reference)
        )
        runs = {
            "L-BFGS through the map (gtol 1e-12)": (optax.lbfgs(), steps, 1e-12),
            "Adam(0.1) through the map (gtol 1e-8)": (
                optax.adam(0.1),
                20 * steps,
                1e-8,
            ),
        }
        curves = {
            label: trajectory(
                negative_log_likelihood,
                eta0,
                tx,
                steps=n,
                gtol=gtol,
                measure=distance,
                args=(counts,),
            )
            for label, (tx, n, gtol) in runs.items()
        }
        panels.append(
            Panel(
                "distance to the closed-form MLE after each step",
                curves,
                ylabel="max |p - counts/total|",
            )
        )
    return Result(
        name="multinomial",
        problem=f"MLE of {categories} category probabilities from 1000 counts",
        found=fmt(found),
        reference=fmt(reference),
        how="closed form counts / total",
        gap=float(np.max(np.abs(found - reference))),
        tolerance=1e-8,
        iterations=int(lbfgs.steps),
        baselines={"adam(0.1) to gtol 1e-8": int(adam.steps)},
        panels=panels,
    )


if __name__ == "__main__":
    jax.config.update("jax_enable_x64", True)
    sys.exit(cli(run, __doc__))
