"""What every example shares: its result row, the command line, the table, the plot."""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Callable

import numpy as np


@dataclasses.dataclass
class Result:
    """One example's outcome; ``ok`` when ``gap <= tolerance``."""

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

    @property
    def ok(self) -> bool:
        return bool(np.isfinite(self.gap) and self.gap <= self.tolerance)


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


def plot(result: Result, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for label, values in result.curves.items():
        values = np.maximum(np.asarray(values, np.float64), 1e-300)
        ax.semilogy(np.arange(1, len(values) + 1), values, label=label)
    ax.set_xlabel("iteration")
    ax.set_ylabel("gap")
    ax.set_title(f"{result.name}: {result.problem}", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def cli(run: Callable[..., Result], description: str, argv=None) -> int:
    """``python -m jsoftmax.examples.NAME [--steps N] [--seed S] [--plot FILE]``."""
    parser = argparse.ArgumentParser(description=description.strip().splitlines()[0])
    parser.add_argument(
        "--steps", type=int, default=None, help="iterations (example default)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--plot", help="write convergence curves to this PNG (needs matplotlib)"
    )
    args = parser.parse_args(argv)
    kwargs = {"seed": args.seed}
    if args.steps is not None:
        kwargs["steps"] = args.steps
    result = timed(run, **kwargs)
    report(result)
    if args.plot:
        plot(result, args.plot)
        print(f"     wrote {args.plot}")
    return 0 if result.ok else 1
