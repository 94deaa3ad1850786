"""What every example shares: its result row, the command line, the table, the plot."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import sys
import time
from collections.abc import Callable
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

PLOT_EXTRA = "--plot needs matplotlib: pip install -e '.[plot]'"


@dataclasses.dataclass
class Panel:
    """One plot panel: named curves against the iteration count.

    On a logarithmic axis (``log=True``) a curve ends at its first value at or
    below ``floor`` (drawn at ``floor``): below about 1e-16 a relative error is
    rounding, and zeros or negative rounding noise have no place on a log axis.
    """

    title: str
    curves: dict[str, Sequence[float]]
    ylabel: str
    xlabel: str = "iteration"
    log: bool = True
    floor: float = 1e-16


@dataclasses.dataclass
class Result:
    """One example's outcome; ``ok`` when ``gap <= tolerance``.

    ``panels`` are what ``--plot`` draws; an example that only fills ``curves``
    gets one panel of them, labelled "gap".
    """

    name: str
    problem: str
    found: str
    reference: str
    how: str  # how the reference was obtained, independently of jsoftmax's map
    gap: float
    tolerance: float
    iterations: int | None = None
    baselines: dict[str, int | None] = dataclasses.field(default_factory=dict)
    notes: list[str] = dataclasses.field(default_factory=list)
    curves: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    seconds: float = 0.0
    panels: list[Panel] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(np.isfinite(self.gap) and self.gap <= self.tolerance)

    def plot_panels(self) -> list[Panel]:
        if self.panels:
            return self.panels
        if self.curves:
            return [Panel(self.problem, self.curves, ylabel="gap")]
        return []


def fmt(values, digits: int = 4) -> str:
    return np.array2string(
        np.asarray(values, np.float64),
        precision=digits,
        separator=", ",
        suppress_small=True,
        max_line_width=200,
    )


def timed(run: Callable[..., Result], **kwargs) -> Result:
    start = time.perf_counter()
    result = run(**kwargs)
    result.seconds = time.perf_counter() - start
    return result


def report(result: Result) -> None:
    status = "ok " if result.ok else "FAIL"
    print(f"{status} {result.name}: {result.problem}")
    print(f"     found      {result.found}")
    print(f"     reference  {result.reference}  ({result.how})")
    iterations = "-" if result.iterations is None else str(result.iterations)
    print(
        f"     gap {result.gap:.2e} (tolerance {result.tolerance:.0e}), "
        f"iterations {iterations}, {result.seconds:.1f} s"
    )
    if result.baselines:
        shown = ", ".join(
            f"{k} {'-' if v is None else v}" for k, v in result.baselines.items()
        )
        print(f"     iterations of the alternatives: {shown}")
    for note in result.notes:
        print(f"     {note}")


# --------------------------------------------------------------------------- #
# Curves for the plots
# --------------------------------------------------------------------------- #
def trajectory(
    fun: Callable[..., jax.Array],
    eta0,
    optimizer: optax.GradientTransformation,
    *,
    steps: int,
    gtol: float,
    measure: Callable[[jax.Array], jax.Array],
    args: tuple = (),
) -> np.ndarray:
    """``measure(eta)`` after each update of :func:`jsoftmax.optim.minimize`'s loop.

    The same iteration (``value``, ``grad`` and ``value_fn`` passed to the
    optimizer, the same gradient-norm stop), written as a ``lax.scan`` that
    records every step, for ``--plot``. The curve has one value per update
    applied: as many as ``minimize`` reports as ``steps``.
    """
    optimizer = optax.with_extra_args_support(optimizer)

    @jax.jit
    def scan(eta0, args):
        objective = lambda eta: fun(eta, *args)  # noqa: E731
        value_and_grad = jax.value_and_grad(objective)

        def body(carry, _):
            eta, state, value, grad, done = carry
            updates, new_state = optimizer.update(
                grad, state, eta, value=value, grad=grad, value_fn=objective
            )
            new_eta = optax.apply_updates(eta, updates)
            new_value, new_grad = value_and_grad(new_eta)
            # once the gradient is small enough, stay put (as minimize stops)
            keep = lambda old, new: jnp.where(done, old, new)  # noqa: E731
            carry = (
                keep(eta, new_eta),
                jax.tree.map(keep, state, new_state),
                keep(value, new_value),
                keep(grad, new_grad),
                done | (optax.tree_utils.tree_norm(new_grad) <= gtol),
            )
            return carry, (measure(carry[0]), done)

        value, grad = value_and_grad(eta0)
        done = optax.tree_utils.tree_norm(grad) <= gtol
        init = (eta0, optimizer.init(eta0), value, grad, done)
        _, (measured, was_done) = lax.scan(body, init, None, length=steps)
        return measured, was_done

    measured, was_done = scan(jnp.asarray(eta0), tuple(args))
    applied = int(np.sum(~np.asarray(was_done)))
    return np.asarray(measured)[:applied]


def _drawn(values: np.ndarray, panel: Panel) -> tuple[np.ndarray, bool]:
    """The part of a curve that is drawn, and whether it reached the floor."""
    if not panel.log:
        return values, False
    below = np.nonzero(~(values > panel.floor))[0]  # NaN counts as below
    if below.size == 0:
        return values, False
    end = int(below[0])
    return np.append(values[:end], panel.floor), True


def figure(result: Result):
    """A matplotlib figure of ``result``'s panels (None if it has none)."""
    panels = result.plot_panels()
    if not panels:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    styles = ("-", "--", ":", "-.")
    fig, axes = plt.subplots(
        len(panels), 1, figsize=(6.4, 0.6 + 3.4 * len(panels)), squeeze=False
    )
    for ax, panel in zip(axes[:, 0], panels, strict=True):
        floored = False
        for i, (label, values) in enumerate(panel.curves.items()):
            values, hit = _drawn(np.asarray(values, np.float64), panel)
            floored |= hit
            # a later curve is dashed and thinner: coinciding curves stay visible
            ax.plot(
                np.arange(1, len(values) + 1),
                values,
                styles[i % len(styles)],
                linewidth=2.4 - 0.4 * (i % 4),
                label=label,
            )
        if panel.log:
            ax.set_yscale("log")
        ax.set_xlabel(panel.xlabel)
        ax.set_ylabel(panel.ylabel)
        title = panel.title
        if floored:
            title += f"\n(a curve ends where it reaches {panel.floor:.0e}: rounding)"
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=8)
        ax.grid(True, which="major", alpha=0.3)
    fig.suptitle(f"{result.name}: {result.problem}", fontsize=10)
    fig.tight_layout()
    return fig


def plot(result: Result, path: str) -> bool:
    """Write ``result``'s panels to the PNG ``path``; False if it has none."""
    fig = figure(result)
    if fig is None:
        return False
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


# --------------------------------------------------------------------------- #
# Command line of one example
# --------------------------------------------------------------------------- #
def cli(run: Callable[..., Result], description: str, argv=None) -> int:
    """``python -m jsoftmax.examples.NAME [--steps N] [--seed S] [--plot FILE]``.

    Exit status: 0 when the example meets its tolerance, 1 when it does not, 2
    when ``--plot`` is asked for without matplotlib (checked before running).
    """
    parser = argparse.ArgumentParser(description=description.strip().splitlines()[0])
    parser.add_argument(
        "--steps", type=int, default=None, help="iterations (example default)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--plot",
        metavar="FILE",
        help="write the convergence curves to this PNG (needs matplotlib: "
        "pip install -e '.[plot]'; without it, exit status 2 before running)",
    )
    args = parser.parse_args(argv)
    if args.plot and not have_matplotlib():
        print(PLOT_EXTRA, file=sys.stderr)
        return 2
    kwargs = {"seed": args.seed}
    if args.steps is not None:
        kwargs["steps"] = args.steps
    if args.plot and "trace" in inspect.signature(run).parameters:
        kwargs["trace"] = True  # record the curves (examples that need extra work)
    result = timed(run, **kwargs)
    report(result)
    if args.plot:
        if plot(result, args.plot):
            print(f"     wrote {args.plot}")
        else:
            print(f"     {result.name} records no curves: nothing plotted")
    return 0 if result.ok else 1
