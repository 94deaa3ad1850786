"""Weights of a Gaussian mixture with known components, through the map.

Data come from a 1-D mixture of four known Gaussians. The weights maximise
``Σ_n log Σ_k w_k N(x_n | μ_k, σ_k)``; with ``log w = log_centered_softmax(eta)``
the objective is a ``jsoftmax.logsumexp`` of ``log w + log N`` and L-BFGS runs on
``eta``. The reference is expectation–maximisation (``w ← mean_n r_nk``) run to
convergence, which never touches the map.
"""

from __future__ import annotations

import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

import jsoftmax
from jsoftmax.examples._common import Panel
from jsoftmax.examples._common import Result
from jsoftmax.examples._common import cli
from jsoftmax.examples._common import fmt
from jsoftmax.examples._common import trajectory

MEANS = np.array([-3.0, -1.0, 1.5, 4.0])
SCALES = np.array([0.8, 0.6, 1.0, 0.7])
WEIGHTS = np.array([0.1, 0.3, 0.4, 0.2])


def _log_densities(x):
    z = (x[:, None] - MEANS) / SCALES
    return -0.5 * z * z - np.log(SCALES * np.sqrt(2 * np.pi))


def negative_log_likelihood(eta, log_density):
    log_w = jsoftmax.log_centered_softmax(eta)
    return -jnp.mean(jsoftmax.logsumexp(log_w[None, :] + log_density, axis=-1))


@jax.jit
def _em(log_density):
    def step(w, _):
        log_r = jnp.log(w)[None, :] + log_density
        r = jnp.exp(log_r - jax.scipy.special.logsumexp(log_r, axis=-1, keepdims=True))
        new = jnp.mean(r, axis=0)
        return new, (jnp.max(jnp.abs(new - w)), new)

    w0 = jnp.full(log_density.shape[1], 1.0 / log_density.shape[1])
    return lax.scan(step, w0, None, length=3000)


def run(
    *, steps: int = 200, seed: int = 0, samples: int = 2000, trace: bool = False
) -> Result:
    rng = np.random.default_rng(seed)
    component = rng.choice(len(WEIGHTS), size=samples, p=WEIGHTS)
    x = rng.normal(MEANS[component], SCALES[component])
    log_density = jnp.asarray(_log_densities(x))
    result = jsoftmax.optim.minimize(
        negative_log_likelihood,
        jnp.zeros(len(WEIGHTS) - 1),
        optax.lbfgs(),
        max_steps=steps,
        gtol=1e-11,
        args=(log_density,),
    )
    found = np.asarray(jsoftmax.centered_softmax(result.params))
    reference, (changes, em_path) = _em(log_density)
    reference = np.asarray(reference)
    em_steps = int(np.argmax(np.asarray(changes) < 1e-10)) + 1
    panels = []
    if trace:  # L-BFGS step by step (as minimize ran it) beside EM's iterates
        lbfgs_path = trajectory(
            negative_log_likelihood,
            jnp.zeros(len(WEIGHTS) - 1),
            optax.lbfgs(),
            steps=steps,
            gtol=1e-11,
            measure=lambda eta: jnp.max(
                jnp.abs(jsoftmax.centered_softmax(eta) - reference)
            ),
            args=(log_density,),
        )
        em_distance = np.max(np.abs(np.asarray(em_path) - reference), axis=-1)
        panels.append(
            Panel(
                "distance to the EM fixed point after each step",
                {
                    "L-BFGS through the map (gtol 1e-11)": lbfgs_path,
                    "EM": em_distance[: max(2 * em_steps, len(lbfgs_path))],
                },
                ylabel="max |w - w_EM|",
            )
        )
    return Result(
        name="mixture",
        problem=f"weights of a 4-component Gaussian mixture, {samples} samples",
        found=fmt(found),
        reference=fmt(reference),
        how="EM run to convergence (3000 steps)",
        gap=float(np.max(np.abs(found - reference))),
        tolerance=1e-7,
        iterations=int(result.steps),
        baselines={"EM to a change below 1e-10": em_steps},
        notes=[f"true weights {fmt(WEIGHTS, 2)}"],
        panels=panels,
    )


if __name__ == "__main__":
    jax.config.update("jax_enable_x64", True)
    sys.exit(cli(run, __doc__))
