"""``python -m jsoftmax.examples``: run every example; exit non-zero if any is off.

Each example optimises probability vectors through ``jsoftmax``'s unconstrained
map with optax and checks the answer against an independent reference. Runs on
the CPU unless ``JAX_PLATFORMS`` says otherwise, in float64.
"""

import os
import sys
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

from jsoftmax.examples import ALL  # noqa: E402
from jsoftmax.examples import _common  # noqa: E402


def main() -> int:
    start = time.perf_counter()
    results = []
    for i, module in enumerate(ALL, 1):
        name = module.__name__.rsplit(".", 1)[-1]
        print(f"[{i}/{len(ALL)}] {name} ...", flush=True)
        result = _common.timed(module.run)
        _common.report(result)
        results.append(result)
    failed = [r.name for r in results if not r.ok]
    print()
    header = f"{'example':<13} {'gap':>9} {'tolerance':>9} {'iterations':>10}"
    print(f"{header} {'seconds':>8}  status")
    for r in results:
        iterations = "-" if r.iterations is None else str(r.iterations)
        print(
            f"{r.name:<13} {r.gap:>9.1e} {r.tolerance:>9.0e} {iterations:>10} "
            f"{r.seconds:>8.1f}  {'ok' if r.ok else 'FAIL'}"
        )
    print(
        f"{len(results) - len(failed)} passed, {len(failed)} failed "
        f"in {time.perf_counter() - start:.0f} s"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
