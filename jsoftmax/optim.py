r"""Optimising probability vectors in ``eta``-space with optax.

* :func:`natural_gradient`: an optax ``GradientTransformation`` that multiplies
  the ``eta``-gradient by the inverse Fisher information of
  :func:`jsoftmax.centered_softmax`, in O(n). Chained before ``optax.sgd(α)`` it
  is exactly exponentiated gradient with step ``α`` on ``p``, for every ``λ``.
* :func:`minimize`: a jitted ``lax.while_loop`` that runs any optax optimizer on
  a function of ``eta`` and stops on the gradient norm.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax import lax

from jsoftmax import _validate
from jsoftmax.simplex import centered_softmax

__all__ = ["minimize", "natural_gradient"]


def natural_gradient(scale=1.0, axis: int = -1) -> optax.GradientTransformation:
    r"""Precondition ``eta``-gradients by the inverse Fisher information of the map.

    For ``p = centered_softmax(eta, λ)`` with ``q = p_{1..n}`` the Fisher
    information in ``eta`` is ``F = λ² (diag q - q qᵀ)``; by Sherman–Morrison

    .. math::
        F^{-1} g = \frac{1}{λ^2}\left(\frac{g}{q} + \frac{\sum_j g_j}{p_0}\right),

    an O(n) product. With ``g = ∇_eta H(p)`` this is ``(∂H/∂p_{i} - ∂H/∂p_0)/λ``,
    so ``eta ← eta - α F^{-1} g`` moves ``p`` exactly as exponentiated gradient
    ``p_i ← p_i e^{-α ∂H/∂p_i} / Z`` does, whatever ``λ`` is.

    The transformation reads ``params`` (``eta``) to compute ``p``; it keeps no
    state. Chain it before a learning-rate step, e.g.
    ``optax.chain(natural_gradient(), optax.sgd(0.1))``.

    Args:
      scale: ``λ`` of the map the parameters go through.
      axis: the axis of ``eta`` holding the ``n`` coordinates.

    Returns:
      An ``optax.GradientTransformation``.

    Example:
      >>> import jax.numpy as jnp, optax
      >>> import jsoftmax
      >>> jnp.set_printoptions(precision=4)
      >>> eta = jnp.zeros(2)
      >>> tx = jsoftmax.optim.natural_gradient()
      >>> step, _ = tx.update(jnp.array([1.0, -1.0]), tx.init(eta), eta)
      >>> print(step)  # g/q + Σg/p0 with q = p0 = 1/3
      [ 3. -3.]
    """
    try:
        axis = operator.index(axis)
    except TypeError:
        raise TypeError(
            f"axis must be one int, got {_validate.plain(axis)}: natural_gradient "
            "preconditions along the single axis of eta that holds the n "
            "coordinates (map over the others, e.g. with jax.vmap)"
        ) from None

    def init_fn(params):
        del params
        return optax.EmptyState()

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError("natural_gradient needs params (eta) to compute p")

        def precondition(g, eta):
            p = centered_softmax(eta, scale, axis=axis)
            moved_p = jnp.moveaxis(p, axis, -1)
            moved_g = jnp.moveaxis(g, axis, -1)
            total = jnp.sum(moved_g, -1, keepdims=True)
            natural = (moved_g / moved_p[..., 1:] + total / moved_p[..., :1]) / (
                scale * scale
            )
            return jnp.moveaxis(natural, -1, axis).astype(g.dtype)

        return jax.tree.map(precondition, updates, params), state

    return optax.GradientTransformation(init_fn, update_fn)


class MinimizeResult(NamedTuple):
    """What :func:`minimize` returns."""

    params: jax.Array
    steps: jax.Array
    grad_norm: jax.Array
    value: jax.Array


def minimize(
    fun: Callable[[jax.Array], jax.Array],
    eta0,
    optimizer: optax.GradientTransformation,
    *,
    max_steps: int,
    gtol: float,
    args: tuple = (),
) -> MinimizeResult:
    r"""Minimise ``fun(eta)`` with an optax optimizer until ``‖∇fun‖ <= gtol``.

    One jitted ``lax.while_loop``: no host round trip per step. The gradient-norm
    stop is not optional: once the optimum of a simplex problem sits on the
    boundary, ``eta`` runs off to infinity and L-BFGS through the map keeps going
    until its gradients underflow. The optimizer receives ``value``, ``grad`` and
    ``value_fn`` as extra arguments, so ``optax.lbfgs()`` works as it is.

    Args:
      fun: scalar objective of ``eta``.
      eta0: starting point.
      optimizer: any optax transformation.
      max_steps: upper bound on the number of updates.
      gtol: stop once the Euclidean norm of the gradient is at most this.
      args: extra arrays passed as ``fun(eta, *args)``; they are traced, so a
        loop that changes them (a penalty weight, a multiplier) compiles once.

    Returns:
      ``MinimizeResult(params, steps, grad_norm, value)``; ``steps`` counts the
      updates applied (0 if ``eta0`` already satisfies ``gtol``).

    Example:
      >>> import jax.numpy as jnp, optax
      >>> import jsoftmax
      >>> counts = jnp.array([2.0, 3.0, 5.0])
      >>> nll = lambda eta: -jnp.sum(counts * jsoftmax.log_centered_softmax(eta))
      >>> result = jsoftmax.optim.minimize(nll, jnp.zeros(2), optax.lbfgs(),
      ...                                  max_steps=100, gtol=1e-10)
      >>> print(jnp.round(jsoftmax.centered_softmax(result.params), 6))
      [0.2 0.3 0.5]
    """
    if not isinstance(max_steps, int) or max_steps < 0:
        raise ValueError(
            f"max_steps must be a non-negative int, got {_validate.plain(max_steps)}"
        )
    if not gtol >= 0:
        raise ValueError(f"gtol must be >= 0, got {_validate.plain(gtol)}")
    eta0 = _validate.as_float_array(eta0, "eta0")
    solve = _solver(fun, optimizer, max_steps, float(gtol))
    return solve(eta0, tuple(args))


@functools.lru_cache(maxsize=64)
def _solver(fun, optimizer, max_steps, gtol):
    """The jitted loop for one (fun, optimizer, max_steps, gtol): calling
    :func:`minimize` again with the same objects reuses its compilation."""
    optimizer = optax.with_extra_args_support(optimizer)

    @jax.jit
    def solve(eta0, args):
        objective = lambda eta: fun(eta, *args)  # noqa: E731
        value_and_grad = jax.value_and_grad(objective)
        value, grad = value_and_grad(eta0)

        def not_done(carry):
            _, _, _, grad, step = carry
            return (optax.tree_utils.tree_norm(grad) > gtol) & (step < max_steps)

        def body(carry):
            eta, state, value, grad, step = carry
            updates, state = optimizer.update(
                grad, state, eta, value=value, grad=grad, value_fn=objective
            )
            eta = optax.apply_updates(eta, updates)
            value, grad = value_and_grad(eta)
            return eta, state, value, grad, step + 1

        carry = (eta0, optimizer.init(eta0), value, grad, jnp.asarray(0))
        eta, _, value, grad, steps = lax.while_loop(not_done, body, carry)
        return MinimizeResult(eta, steps, optax.tree_utils.tree_norm(grad), value)

    return solve
