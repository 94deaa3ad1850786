"""``python -m jsoftmax.examples [NAME ...] [--seed S] [--plot DIR]``.

Runs the examples (all of them, or the ones named) and exits non-zero if any
misses its tolerance. Each example optimises probability vectors through
``jsoftmax``'s unconstrained map with optax and checks the answer against an
independent reference. Runs on the CPU unless ``JAX_PLATFORMS`` says otherwise,
in float64.

Exit status: 0 when every example meets its tolerance, 1 when one does not, 2 for
a usage error (an unknown name, or ``--plot`` without matplotlib: checked before
anything runs).
"""

import argparse
import ast
import importlib.util
import inspect
import os
import sys
import time

from jsoftmax import examples

_USAGE_ERROR = 2


def _summary(name: str) -> str:
    """The first line of an example's docstring, read without importing it."""
    spec = importlib.util.find_spec(f"{examples.__name__}.{name}")
    if spec is None or spec.origin is None:
        return ""
    with open(spec.origin, encoding="utf-8") as source:
        doc = ast.get_docstring(ast.parse(source.read())) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def _parser() -> argparse.ArgumentParser:
    listing = "\n".join(f"  {name:<13} {_summary(name)}" for name in examples.NAMES)
    parser = argparse.ArgumentParser(
        prog="python -m jsoftmax.examples",
        description="Run the self-checking optax examples (all, or those named); "
        "exit non-zero if any misses its tolerance.",
        epilog=f"examples:\n{listing}\n\n"
        "One example alone, with its own options: "
        "python -m jsoftmax.examples.NAME [--steps N] [--seed S] [--plot FILE].\n"
        "The edge-case tour beside jax.nn: python -m jsoftmax.examples.tour.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help="examples to run, in the order given (default: all, listed below)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of every example (default 0)"
    )
    parser.add_argument(
        "--plot",
        metavar="DIR",
        help="write each example's curves to DIR/NAME.png (needs matplotlib: "
        "pip install -e '.[plot]'; without it, exit status 2 before running)",
    )
    return parser


def main(argv=None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in examples.NAMES]
    if unknown:
        parser.print_usage(sys.stderr)
        print(
            f"unknown example(s) {', '.join(unknown)}; "
            f"choose from {', '.join(examples.NAMES)}",
            file=sys.stderr,
        )
        return _USAGE_ERROR
    import jax

    jax.config.update("jax_enable_x64", True)
    from jsoftmax.examples import _common

    if args.plot and not _common.have_matplotlib():
        print(_common.PLOT_EXTRA, file=sys.stderr)
        return _USAGE_ERROR
    if args.plot:
        os.makedirs(args.plot, exist_ok=True)
    names = args.names or list(examples.NAMES)
    start = time.perf_counter()
    results = []
    for i, name in enumerate(names, 1):
        print(f"[{i}/{len(names)}] {name} ...", flush=True)
        run = examples.load(name).run
        kwargs = {"seed": args.seed}
        if args.plot and "trace" in inspect.signature(run).parameters:
            kwargs["trace"] = True
        result = _common.timed(run, **kwargs)
        _common.report(result)
        if args.plot:
            path = os.path.join(args.plot, f"{name}.png")
            if _common.plot(result, path):
                print(f"     wrote {path}")
        results.append(result)
    failed = [r.name for r in results if not r.ok]
    print()
    header = f"{'example':<14} {'gap':>9} {'tolerance':>9} {'iterations':>10}"
    print(f"{header} {'seconds':>8}  status")
    for r in results:
        iterations = "-" if r.iterations is None else str(r.iterations)
        print(
            f"{r.name:<14} {r.gap:>9.1e} {r.tolerance:>9.0e} {iterations:>10} "
            f"{r.seconds:>8.1f}  {'ok' if r.ok else 'FAIL'}"
        )
    print(
        f"{len(results) - len(failed)} passed, {len(failed)} failed "
        f"in {time.perf_counter() - start:.0f} s"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    # `python -m` has imported jsoftmax (and jax) already, so setting the
    # environment variable here would be too late: the CPU default goes through
    # jax.config, before any backend starts.
    if "JAX_PLATFORMS" not in os.environ:
        import jax

        jax.config.update("jax_platforms", "cpu")
    sys.exit(main())
