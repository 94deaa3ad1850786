"""Long-only minimum-variance portfolio: four ways to stay on the simplex.

Minimise ``wᵀΣw`` over weights ``w >= 0, Σw = 1``. Two cases:

* interior: the optimum has every weight positive, so it is the closed form
  ``Σ⁻¹1 / 1ᵀΣ⁻¹1`` (the reference);
* boundary: an extra, volatile asset correlated with the others gets weight 0.
  The reference is projected gradient with a row-wise Euclidean projection onto
  the simplex (written below), run to convergence.

Iterations to a relative objective gap of 1e-6 are reported for: the map with
L-BFGS (``jsoftmax.optim.minimize``), the map with the natural gradient
(``jsoftmax.optim.natural_gradient`` + ``optax.sgd``), projected gradient, and
exponentiated gradient.
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

GAP = 1e-6


def project_to_simplex(v):
    """Euclidean projection of each row of ``v`` onto the probability simplex.

    Sort descending, find the largest ``k`` with ``u_k > (Σ_{i<=k} u_i - 1)/k``,
    shift by that threshold and clip at 0 (Held, Wolfe and Crowder, 1974).
    """
    u = -jnp.sort(-v, axis=-1)
    cumulative = jnp.cumsum(u, axis=-1) - 1
    k = jnp.arange(1, v.shape[-1] + 1, dtype=v.dtype)
    active = u - cumulative / k > 0
    rho = jnp.sum(active, axis=-1, keepdims=True)
    threshold = jnp.take_along_axis(cumulative, rho - 1, axis=-1) / rho
    return jnp.maximum(v - threshold, 0)


def _variance(w, cov):
    return w @ cov @ w


def _first_below(gaps, tol):
    hits = np.nonzero(np.asarray(gaps) <= tol)[0]
    return int(hits[0]) + 1 if hits.size else None


def _covariances(seed, assets):
    rng = np.random.default_rng(seed)
    vols = rng.uniform(0.15, 0.25, assets)
    corr = np.full((assets, assets), 0.2) + 0.8 * np.eye(assets)
    cov = corr * np.outer(vols, vols)
    # boundary case: a volatile asset strongly correlated with the least risky one
    low = int(np.argmin(vols))
    extra_vol = 0.45
    cross = cov[:, low] * 0.95 * extra_vol / vols[low]
    boundary = np.block(
        [[cov, cross[:, None]], [cross[None, :], np.array([[extra_vol**2]])]]
    )
    return cov, boundary


def _trajectories(cov, w0, steps, lipschitz):
    """Objective after each step of projected (step 1/L) and exponentiated
    (step 2/L, the natural gradient's) gradient."""

    def projected(w, _):
        w = project_to_simplex(w - 2 * cov @ w / lipschitz)
        return w, _variance(w, cov)

    def exponentiated(w, _):
        w = w * jnp.exp(-(2 / lipschitz) * 2 * cov @ w)
        w = w / jnp.sum(w)
        return w, _variance(w, cov)

    w_pg, f_pg = lax.scan(projected, w0, None, length=steps)
    _, f_eg = lax.scan(exponentiated, w0, None, length=steps)
    return w_pg, f_pg, f_eg


def _natural(cov, eta0, steps, lr):
    tx = optax.chain(jsoftmax.optim.natural_gradient(), optax.sgd(lr))
    objective = lambda eta: _variance(jsoftmax.centered_softmax(eta), cov)  # noqa: E731

    def body(carry, _):
        eta, state = carry
        updates, state = tx.update(jax.grad(objective)(eta), state, eta)
        eta = optax.apply_updates(eta, updates)
        return (eta, state), objective(eta)

    (eta, _), values = lax.scan(body, (eta0, tx.init(eta0)), None, length=steps)
    return eta, values


def _map_objective(eta, cov):
    return _variance(jsoftmax.centered_softmax(eta), cov)


def _solve_case(cov, steps):
    n = cov.shape[0]
    cov = jnp.asarray(cov)
    lipschitz = 2 * float(np.linalg.eigvalsh(np.asarray(cov)).max())
    w0 = jnp.full(n, 1.0 / n)
    w_pg, f_pg, f_eg = jax.jit(_trajectories, static_argnums=(2, 3))(
        cov, w0, steps, lipschitz
    )
    eta0 = jnp.zeros(n - 1)
    lbfgs = jsoftmax.optim.minimize(
        _map_objective, eta0, optax.lbfgs(), max_steps=steps, gtol=1e-10, args=(cov,)
    )
    # the same step as exponentiated gradient: the two trajectories coincide
    eta_nat, f_nat = jax.jit(_natural, static_argnums=(2, 3))(
        cov, eta0, steps, 2.0 / lipschitz
    )
    return w_pg, np.asarray(f_pg), np.asarray(f_eg), lbfgs, np.asarray(f_nat)


def _lbfgs_values(cov, steps):
    """The objective after each L-BFGS step of ``_solve_case`` (for ``--plot``)."""
    cov = jnp.asarray(cov)
    return trajectory(
        _map_objective,
        jnp.zeros(cov.shape[0] - 1),
        optax.lbfgs(),
        steps=steps,
        gtol=1e-10,
        measure=lambda eta: _map_objective(eta, cov),
        args=(cov,),
    )


def _panel(case, rel, f_lbfgs, f_nat, f_pg, f_eg):
    curves = {} if f_lbfgs is None else {"map + L-BFGS (gtol 1e-10)": rel(f_lbfgs)}
    curves.update(
        {
            "projected gradient": rel(f_pg),
            "exponentiated gradient": rel(f_eg),
            # drawn last, dashed: it lies on exponentiated gradient's curve
            "map + natural gradient (= exponentiated gradient)": rel(f_nat),
        }
    )
    return Panel(
        f"{case}: relative objective gap after each step",
        curves,
        ylabel="|f - f*| / f*",
    )


def run(*, steps: int = 800, seed: int = 0, trace: bool = False) -> Result:
    cov, boundary = _covariances(seed, 10)
    notes, panels = [], []
    # interior case: closed form
    ones = np.ones(len(cov))
    closed = np.linalg.solve(cov, ones)
    closed /= closed.sum()
    assert (closed > 0).all(), "the interior case must have an interior optimum"
    _, f_pg, f_eg, lbfgs, f_nat = _solve_case(cov, steps)
    f_star = float(closed @ cov @ closed)
    w_map = np.asarray(jsoftmax.centered_softmax(lbfgs.params))
    interior_gap = float(np.max(np.abs(w_map - closed)))
    rel = lambda f: np.abs(np.asarray(f) - f_star) / f_star  # noqa: E731
    baselines = {
        "interior: map+natural gradient": _first_below(rel(f_nat), GAP),
        "projected gradient": _first_below(rel(f_pg), GAP),
        "exponentiated gradient": _first_below(rel(f_eg), GAP),
    }
    f_lbfgs = _lbfgs_values(cov, steps) if trace else None
    panels.append(_panel("interior (10 assets)", rel, f_lbfgs, f_nat, f_pg, f_eg))
    notes.append(
        f"interior: map+L-BFGS {int(lbfgs.steps)} steps to gtol 1e-10, "
        f"max|w - Σ⁻¹1/1ᵀΣ⁻¹1| = {interior_gap:.1e}"
    )
    # boundary case: projected gradient to convergence is the reference
    w_pg, f_pg, f_eg, lbfgs_b, f_nat = _solve_case(boundary, 3 * steps)
    reference = np.asarray(w_pg)
    f_ref = float(reference @ boundary @ reference)
    w_map_b = np.asarray(jsoftmax.centered_softmax(lbfgs_b.params))
    boundary_gap = float(np.max(np.abs(w_map_b - reference)))
    rel_b = lambda f: np.abs(np.asarray(f) - f_ref) / f_ref  # noqa: E731
    baselines.update(
        {
            "boundary: map+L-BFGS": int(lbfgs_b.steps),
            "boundary: map+natural gradient": _first_below(rel_b(f_nat), GAP),
            "boundary: projected gradient": _first_below(rel_b(f_pg), GAP),
            "boundary: exponentiated gradient": _first_below(rel_b(f_eg), GAP),
        }
    )
    f_lbfgs = _lbfgs_values(boundary, 3 * steps) if trace else None
    panels.append(
        _panel(
            "boundary (11 assets, one at weight 0)", rel_b, f_lbfgs, f_nat, f_pg, f_eg
        )
    )
    notes.append(
        f"boundary: extra asset weight {w_map_b[-1]:.1e} (reference "
        f"{reference[-1]:.1e}), max|w - w_ref| = {boundary_gap:.1e}"
    )
    return Result(
        name="portfolio",
        problem="long-only minimum variance, 10 assets (interior) and 11 (boundary)",
        found=fmt(w_map, 3),
        reference=fmt(closed, 3),
        how="closed form Σ⁻¹1/1ᵀΣ⁻¹1; boundary case: projected gradient to convergence",
        gap=max(interior_gap, boundary_gap),
        tolerance=1e-6,
        iterations=int(lbfgs.steps),
        baselines=baselines,
        notes=notes,
        panels=panels,
    )


if __name__ == "__main__":
    jax.config.update("jax_enable_x64", True)
    sys.exit(cli(run, __doc__))
