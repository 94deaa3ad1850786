"""A Boltzmann (softmax) policy learning a 10-armed bandit by policy gradient.

Arms pay Gaussian rewards with unknown means. The policy ``π = softmax(θ / T)`` is
sampled with ``jsoftmax.sample(key, θ, temperature=T)`` and θ follows the
REINFORCE gradient ``(onehot(a) - π)(r - b)/T`` with a running-average baseline
``b``. Temperature sets exploration: a high ``T`` keeps sampling bad arms (regret
grows), a very low one commits early. The reference is the known best arm; the
check is that the policy at the default ``T`` puts at least 90% of its mass there.
"""

from __future__ import annotations

import sys

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

import jsoftmax
from jsoftmax.examples._common import Panel
from jsoftmax.examples._common import Result
from jsoftmax.examples._common import cli

TEMPERATURES = (0.05, 0.25, 2.0)
DEFAULT_T = 0.25


def _play(key, means, temperature, steps, lr=0.2):
    arms = means.shape[0]

    def step(carry, key):
        theta, baseline = carry
        k_arm, k_reward = jax.random.split(key)
        arm = jsoftmax.sample(k_arm, theta, temperature=temperature)
        reward = means[arm] + 0.5 * jax.random.normal(k_reward)
        policy = jsoftmax.softmax(theta, temperature=temperature)
        grad = (jax.nn.one_hot(arm, arms) - policy) * (reward - baseline) / temperature
        theta = theta + lr * grad
        baseline = 0.95 * baseline + 0.05 * reward
        return (theta, baseline), (jnp.max(means) - means[arm], policy)

    init = (jnp.zeros(arms), jnp.asarray(0.0))
    (theta, _), (regret, policies) = lax.scan(step, init, jax.random.split(key, steps))
    return theta, jnp.cumsum(regret), policies


def run(*, steps: int = 3000, seed: int = 0, trace: bool = False) -> Result:
    rng = np.random.default_rng(seed)
    means = jnp.asarray(rng.normal(0, 1, 10))
    best = int(np.argmax(np.asarray(means)))
    play = jax.jit(_play, static_argnums=(3,))
    del trace  # the curves come with the run
    outcomes, notes = {}, []
    missed, regrets = {}, {}
    for t in TEMPERATURES:
        theta, regret, policies = play(jax.random.key(seed), means, t, steps)
        policy = np.asarray(jsoftmax.softmax(theta, temperature=t))
        outcomes[t] = (policy, float(regret[-1]))
        missed[f"T = {t}"] = 1 - np.asarray(policies)[:, best]
        regrets[f"T = {t}"] = np.asarray(regret)
        notes.append(
            f"T = {t}: π(best arm) = {policy[best]:.3f}, total regret "
            f"{float(regret[-1]):.1f} over {steps} pulls"
        )
    policy, regret = outcomes[DEFAULT_T]
    return Result(
        name="bandit",
        problem="softmax policy gradient on a 10-armed Gaussian bandit",
        found=f"π(arm {best}) = {policy[best]:.4f} at T = {DEFAULT_T}",
        reference=f"best arm {best} (mean {float(means[best]):.3f})",
        how="the known arm means",
        gap=1.0 - float(policy[best]),
        tolerance=0.1,
        iterations=steps,
        notes=notes,
        panels=[
            Panel(
                "probability the policy does not pull the best arm",
                missed,
                ylabel="1 - π(best arm)",
                xlabel="pull",
            ),
            Panel(
                "cumulative regret (best mean - mean of the arm pulled)",
                regrets,
                ylabel="regret",
                xlabel="pull",
                log=False,
            ),
        ],
    )


if __name__ == "__main__":
    jax.config.update("jax_enable_x64", True)
    sys.exit(cli(run, __doc__))
