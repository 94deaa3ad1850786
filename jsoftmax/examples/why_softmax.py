"""Why softmax, and not a normalisation that also sums to one?

The same linear 3-class classifier is trained twice with the same Adam steps:
with softmax + cross-entropy, and with the L1 normalisation ``p = |z| / Σ|z|`` +
cross-entropy. Both produce probability vectors; only one gives the multinomial
likelihood with the bounded, well-scaled gradient ``softmax - onehot``. With L1
the gradient ``-sign(z_y)/|z_y| + sign(z)/Σ|z|`` explodes as a true-class score
crosses 0, a wrong class can win with a large negative score (``|z|`` forgets the
sign), and every ``p`` is 0 on the hyperplanes ``z_c = 0``. The reference is the
accuracy of the Bayes classifier of the (known) generating Gaussians.
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

CENTRES = np.array([[2.0, 0.0], [-1.0, 1.7], [-1.0, -1.7]])


def _data(rng, n):
    labels = rng.integers(0, 3, n)
    return rng.normal(CENTRES[labels], 1.0), labels


def _scores(params, x):
    weights, bias = params
    return x @ weights + bias[None, :]


def softmax_loss(params, x, y):
    return jsoftmax.softmax_cross_entropy_with_integer_labels(
        _scores(params, x), y, reduction="mean"
    )


def l1_probabilities(z):
    magnitude = jnp.abs(z)
    return magnitude / jnp.sum(magnitude, -1, keepdims=True)


def l1_loss(params, x, y):
    p = l1_probabilities(_scores(params, x))
    return -jnp.mean(jnp.log(jnp.take_along_axis(p, y[:, None], -1)))


def _train(loss, x, y, steps, seed):
    key = jax.random.key(seed)
    params = (0.1 * jax.random.normal(key, (2, 3)), jnp.zeros(3))
    tx = optax.adam(0.05)

    def step(carry, _):
        params, state = carry
        value, grad = jax.value_and_grad(loss)(params, x, y)
        updates, state = tx.update(grad, state, params)
        norm = optax.tree_utils.tree_norm(grad)
        return (optax.apply_updates(params, updates), state), (value, norm)

    (params, _), (values, norms) = lax.scan(
        step, (params, tx.init(params)), None, length=steps
    )
    return params, values, norms


def _evaluate(probabilities, y):
    p = np.asarray(probabilities)
    accuracy = float(np.mean(p.argmax(-1) == y))
    picked = p[np.arange(len(y)), y]
    with np.errstate(divide="ignore"):
        log_loss = float(-np.mean(np.log(picked)))
    return accuracy, log_loss


def run(*, steps: int = 600, seed: int = 0, trace: bool = False) -> Result:
    del trace  # the curves come with the run
    rng = np.random.default_rng(seed)
    x_train, y_train = _data(rng, 600)
    x_test, y_test = _data(rng, 4000)
    bayes = float(
        np.mean(np.argmin(((x_test[:, None] - CENTRES) ** 2).sum(-1), -1) == y_test)
    )
    train = jax.jit(_train, static_argnums=(0, 3, 4))
    xs, ys = jnp.asarray(x_train), jnp.asarray(y_train)
    soft_params, soft_losses, soft_norms = train(softmax_loss, xs, ys, steps, seed)
    l1_params, l1_losses, l1_norms = train(l1_loss, xs, ys, steps, seed)
    soft_acc, soft_ll = _evaluate(
        jsoftmax.softmax(_scores(soft_params, x_test)), y_test
    )
    l1_acc, l1_ll = _evaluate(l1_probabilities(_scores(l1_params, x_test)), y_test)
    # per-example gradient of the L1 loss in the scores: unbounded near z_y = 0
    z = jnp.linspace(-1e-3, 1e-3, 5)
    grad_l1 = jax.vmap(
        jax.grad(lambda s: -jnp.log(l1_probabilities(jnp.stack([s, 1.0, 1.0]))[0]))
    )(z)
    grad_soft = jax.vmap(
        jax.grad(
            lambda s: jsoftmax.softmax_cross_entropy_with_integer_labels(
                jnp.stack([s, 1.0, 1.0]), jnp.asarray(0)
            )
        )
    )(z)
    return Result(
        name="why_softmax",
        problem="linear 3-class classifier: softmax vs L1 normalisation",
        found=f"softmax accuracy {soft_acc:.4f}, log-loss {soft_ll:.4f}",
        reference=f"Bayes accuracy {bayes:.4f}",
        how="Bayes rule of the known generating Gaussians",
        gap=max(bayes - soft_acc, 0.0),
        tolerance=0.01,
        iterations=steps,
        notes=[
            f"L1 |z|/Σ|z|: accuracy {l1_acc:.4f}, log-loss {l1_ll:.4f}",
            f"largest training gradient norm: softmax {float(np.max(soft_norms)):.3g}, "
            f"L1 {float(np.max(l1_norms)):.3g}",
            f"d loss / d z_y near z_y = 0: softmax {np.asarray(grad_soft).round(3)}, "
            f"L1 {np.asarray(grad_l1).round(0)} (flips sign, grows like 1/|z_y|)",
        ],
        panels=[
            Panel(
                "training loss (mean cross-entropy on the 600 training points)",
                {
                    "softmax": np.asarray(soft_losses),
                    "L1 |z|/Σ|z|": np.asarray(l1_losses),
                },
                ylabel="loss",
                xlabel="Adam step",
                log=False,
            ),
            Panel(
                "norm of the training gradient",
                {
                    "softmax": np.asarray(soft_norms),
                    "L1 |z|/Σ|z|": np.asarray(l1_norms),
                },
                ylabel="‖∇ loss‖",
                xlabel="Adam step",
            ),
        ],
    )


if __name__ == "__main__":
    jax.config.update("jax_enable_x64", True)
    sys.exit(cli(run, __doc__))
