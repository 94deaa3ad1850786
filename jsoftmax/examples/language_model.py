"""A language model's output layer trained without ever holding its logits.

Synthetic tokens: features ``x`` and next tokens drawn from a hidden softmax
model over a vocabulary of a few thousand classes. The output layer ``w, b`` is
trained with ``optax.sgd`` (momentum) through ``jsoftmax.linear_cross_entropy``,
which goes over the vocabulary block by block, and, step for step from the same start,
through the naive path ``optax.softmax_cross_entropy_with_integer_labels(x @ w
+ b, labels)``, which holds the ``[N, V]`` logits forward and backward. The
parameters must agree after every step; the compiled temporary memory of each
training step shows what the blocks save.
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


def _naive_loss(params, x, labels):
    logits = x @ params["w"] + params["b"][None, :]
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def _blockwise_loss(params, x, labels, block_size):
    return jsoftmax.linear_cross_entropy(
        x, params["w"], labels, bias=params["b"], block_size=block_size
    )


def _train_step(loss, optimizer):
    @jax.jit
    def step(params, state, x, labels):
        value, grads = jax.value_and_grad(loss)(params, x, labels)
        updates, state = optimizer.update(grads, state, params)
        return optax.apply_updates(params, updates), state, value

    return step


def _temp_mib(step, *args) -> float:
    compiled = step.lower(*args).compile()
    return compiled.memory_analysis().temp_size_in_bytes / 2**20


def run(
    *,
    steps: int = 20,
    seed: int = 0,
    tokens: int = 1024,
    features: int = 64,
    vocabulary: int = 4000,
    block_size: int = 512,
) -> Result:
    dtype = jnp.float32
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.normal(size=(tokens, features)), dtype)
    teacher = rng.normal(size=(features, vocabulary)) * 0.5
    logits = np.asarray(x, np.float64) @ teacher
    gumbel = rng.gumbel(size=logits.shape)
    labels = jnp.asarray(np.argmax(logits + gumbel, axis=-1), jnp.int32)
    params = {
        "w": jnp.asarray(rng.normal(size=(features, vocabulary)) * 0.01, dtype),
        "b": jnp.zeros((vocabulary,), dtype),
    }
    # Plain momentum, not adam: adam divides each gradient by its own size, so
    # entries near 1e-10 would turn float32 rounding into whole steps.
    optimizer = optax.sgd(2.0, momentum=0.9)
    blockwise = _train_step(
        lambda p, x, y: _blockwise_loss(p, x, y, block_size), optimizer
    )
    naive = _train_step(_naive_loss, optimizer)
    state = optimizer.init(params)
    temp_blockwise = _temp_mib(blockwise, params, state, x, labels)
    temp_naive = _temp_mib(naive, params, state, x, labels)

    ours, ours_state = params, state
    theirs, their_state = params, state
    gap, losses, reference_losses = 0.0, [], []
    for _ in range(steps):
        ours, ours_state, loss = blockwise(ours, ours_state, x, labels)
        theirs, their_state, reference_loss = naive(theirs, their_state, x, labels)
        losses.append(float(loss))
        reference_losses.append(float(reference_loss))
        for name in ("w", "b"):
            scale = float(jnp.max(jnp.abs(theirs[name]))) or 1.0
            diff = float(jnp.max(jnp.abs(ours[name] - theirs[name])))
            gap = max(gap, diff / scale)
        gap = max(gap, abs(float(loss) - float(reference_loss)) / losses[0])
    return Result(
        name="language_model",
        problem=(
            f"output layer {features}x{vocabulary} on {tokens} synthetic tokens, "
            f"{steps} momentum steps"
        ),
        found=f"loss {losses[0]:.4f} -> {losses[-1]:.4f} (linear_cross_entropy)",
        reference=f"loss {float(reference_loss):.4f} (naive x @ w + b, optax CE)",
        how="the naive path trained step for step from the same start",
        gap=gap,
        tolerance=1e-4,
        iterations=steps,
        notes=[
            "gap: largest difference of w or b (relative to their size) or of the "
            "loss (relative to the first) over all steps",
            f"compiled temporary memory of one training step: blockwise "
            f"{temp_blockwise:.1f} MiB, naive {temp_naive:.1f} MiB "
            f"(logits {tokens * vocabulary * 4 / 2**20:.1f} MiB)",
        ],
        curves={"loss": losses},
        panels=[
            Panel(
                "training loss, step for step",
                {
                    "linear_cross_entropy (blocks)": losses,
                    "naive x @ w + b, optax CE": reference_losses,
                },
                ylabel="mean cross-entropy",
            )
        ],
    )


if __name__ == "__main__":
    sys.exit(cli(run, __doc__))
