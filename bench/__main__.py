"""``python -m bench``: how close every operation runs to the memory-bandwidth floor.

For every operation × shape × dtype it compiles each implementation once
(timing the compile), then runs them in turns of five timed calls after one
untimed call, until each has ``--runs`` timings, blocking outside jit, and
records each one's median and quartiles. Taking turns makes the ratios between
implementations fair on a machine whose speed drifts (on a 2-core CPU a
baseline's median moved by 25% between back-to-back blocks of runs). It also
records XLA's cost-analysis bytes accessed, the peak memory of
``compiled.memory_analysis()``, the floor bytes (see ``bench/operations.py``),
the achieved bandwidth ``floor / median``, and that as a fraction of the
device's copy bandwidth, measured in the same run by a large device-to-device
copy. Each jsoftmax row also carries ``speedup``: against every non-naive
baseline, the ratio of medians (baseline / jsoftmax) with a 90% bootstrap
interval and a verdict (``slower`` when the whole interval lies below 1,
``faster`` above, else ``tie``), summarised at the end of the table. Results go
to ``bench/results/<device>.json`` (``--quick``: to a temporary folder, unless
``--out`` names a path); each case announces itself on stderr as it starts.

``python -m bench accel`` (``bench/accel.py``) reports what every case compiles
to on a TPU or GPU without one; ``python -m bench accuracy`` runs
``bench/accuracy.py``.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import pathlib
import re
import subprocess
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

from bench import operations

FULL_SHAPES = [(8192, 1024), (4096, 32768), (1024, 131072)]
BIG_SHAPE = (8192, 262144)  # accelerators with the memory for it
QUICK_SHAPES = [(64, 128), (16, 1024)]
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
RESULTS = pathlib.Path(__file__).parent / "results"


def device_name(device) -> str:
    if device.platform == "cpu":
        return "cpu"
    return re.sub(r"[^a-z0-9]+", "-", device.device_kind.lower()).strip("-")


def commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=pathlib.Path(__file__).parent,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def median_seconds(fn, args, runs: int) -> float:
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def interleaved_seconds(fns, args, runs: int, block: int = 5) -> list[np.ndarray]:
    """Per function, ``runs`` wall times, taken in turns of ``block`` calls each.

    Each turn starts with one untimed call: the first call after another
    implementation pays for what that one left behind (on CPU, a call after
    the one-hot baseline ran 35% slower), and the turns share the drift. The
    order rotates from round to round, so that no implementation always runs
    first (an ad-hoc A/B with one call per turn and no untimed call timed
    identical code 12% apart by its slot, bfloat16 CE at 4096x32768 on CPU).
    """
    times = [[] for _ in fns]
    rounds = 0
    while len(times[0]) < runs:
        start_at = rounds % len(fns)
        rounds += 1
        order = list(range(start_at, len(fns))) + list(range(start_at))
        for i in order:
            fn, seconds = fns[i], times[i]
            jax.block_until_ready(fn(*args))
            for _ in range(min(block, runs - len(seconds))):
                start = time.perf_counter()
                jax.block_until_ready(fn(*args))
                seconds.append(time.perf_counter() - start)
    return [np.asarray(seconds) for seconds in times]


def speedup(baseline: np.ndarray, ours: np.ndarray, resamples: int = 2000):
    """``median(baseline) / median(ours)`` with a 90% bootstrap interval.

    Each resample draws both sets of timings with replacement (fixed seed).
    The interval says what this run can resolve: a ratio whose interval
    contains 1 is a tie on this machine, whatever its point value.
    """
    rng = np.random.default_rng(0)
    pick_b = rng.integers(0, len(baseline), (resamples, len(baseline)))
    pick_o = rng.integers(0, len(ours), (resamples, len(ours)))
    ratios = np.median(baseline[pick_b], 1) / np.median(ours[pick_o], 1)
    low, high = np.percentile(ratios, [5, 95])
    return float(np.median(baseline) / np.median(ours)), float(low), float(high)


def verdict(low: float, high: float) -> str:
    if high < 1:
        return "slower"
    return "faster" if low > 1 else "tie"


def speedups(times: dict, ours: np.ndarray) -> dict:
    """:func:`speedup` and :func:`verdict` against every baseline in ``times``
    (implementation name -> timings) but jsoftmax and the naive formulas."""
    result = {}
    for name, seconds in times.items():
        if name == "jsoftmax" or name.startswith("naive"):
            continue
        ratio, low, high = speedup(seconds, ours)
        result[name] = {
            "ratio": ratio,
            "low": low,
            "high": high,
            "verdict": verdict(low, high),
        }
    return result


def copy_bandwidth(runs: int, nbytes: int) -> float:
    """Bytes per second of a device-to-device copy (read + write) of ``nbytes``."""
    x = jnp.arange(nbytes // 4, dtype=jnp.float32)
    copy = jax.jit(lambda x: x * 1 + 0.0)
    seconds = median_seconds(copy, (x,), runs)
    return 2 * x.nbytes / seconds


def compile_one(fn, args):
    flag = getattr(fn, "softmax_custom_jvp", None)
    previous = jax.config.jax_softmax_custom_jvp
    if flag is not None:
        jax.config.update("jax_softmax_custom_jvp", flag)
    try:
        start = time.perf_counter()
        compiled = jax.jit(fn).lower(*args).compile()
        compile_s = time.perf_counter() - start
    finally:
        jax.config.update("jax_softmax_custom_jvp", previous)
    return compiled, compile_s


def cost_bytes(compiled) -> float | None:
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return None if not cost else float(cost.get("bytes accessed", np.nan))


def peak_bytes(compiled) -> int | None:
    stats = compiled.memory_analysis()
    if stats is None:
        return None
    peak = getattr(stats, "peak_memory_in_bytes", 0)
    if peak:
        return int(peak)
    return int(
        stats.argument_size_in_bytes
        + stats.output_size_in_bytes
        + stats.temp_size_in_bytes
        - stats.alias_size_in_bytes
    )


def run(args) -> dict:
    device = jax.devices()[0]
    shapes = QUICK_SHAPES if args.quick else list(FULL_SHAPES)
    if not args.quick and device.platform != "cpu" and args.big:
        shapes.append(BIG_SHAPE)
    if args.shapes:
        shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes]
    runs = 3 if args.quick else args.runs
    ops = args.ops or list(operations.IMPLEMENTATIONS)
    dtypes = args.dtypes or list(DTYPES)
    copy_bw = copy_bandwidth(runs, 1 << 20 if args.quick else 1 << 28)
    header = {
        "device": device_name(device),
        "device_kind": device.device_kind,
        "platform": device.platform,
        "jax_version": jax.__version__,
        "commit": commit(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"
        ),
        "runs": runs,
        "copy_bandwidth_bytes_per_s": copy_bw,
    }
    print(
        f"# {header['device_kind']} ({header['platform']}), "
        f"jax {header['jax_version']}, "
        f"commit {header['commit']}, copy bandwidth {copy_bw / 1e9:.1f} GB/s, "
        f"median of {runs} runs",
        flush=True,
    )
    print(
        f"{'op':<26} {'impl':<28} {'shape':>12} {'dtype':>8} {'median ms':>10} "
        f"{'GB/s':>7} {'of copy':>8} {'XLA B/floor':>11} {'peak MB':>8}",
        flush=True,
    )
    results = []
    done, total = 0, len(ops) * len(shapes) * len(dtypes)
    start = time.perf_counter()
    for op in ops:
        for shape in shapes:
            for dtype_name in dtypes:
                label = f"{op} {'x'.join(map(str, shape))} {dtype_name}"
                progress(done, total, start, label)
                done += 1
                dtype = DTYPES[dtype_name]
                inputs = operations.inputs(op, *shape, dtype)
                floor = operations.floor_bytes(op, *shape, dtype)
                impls = operations.IMPLEMENTATIONS[op]
                compiled = {impl: compile_one(fn, inputs) for impl, fn in impls.items()}
                times = interleaved_seconds(
                    [executable for executable, _ in compiled.values()], inputs, runs
                )
                timings = dict(zip(compiled, times, strict=True))
                for (impl, (executable, compile_s)), seconds in zip(
                    compiled.items(), times, strict=True
                ):
                    median = float(np.median(seconds))
                    xla_bytes = cost_bytes(executable)
                    row = {
                        "op": op,
                        "impl": impl,
                        "shape": list(shape),
                        "dtype": dtype_name,
                        "device": header["device"],
                        "median_s": median,
                        "q25_s": float(np.percentile(seconds, 25)),
                        "q75_s": float(np.percentile(seconds, 75)),
                        "compile_s": compile_s,
                        "floor_bytes": floor,
                        "xla_bytes_accessed": xla_bytes,
                        "peak_bytes": peak_bytes(executable),
                        "achieved_bytes_per_s": floor / median,
                        "fraction_of_copy_bandwidth": floor / median / copy_bw,
                    }
                    if impl == "jsoftmax":
                        row["speedup"] = speedups(timings, seconds)
                    results.append(row)
                    ratio = "-" if xla_bytes is None else f"{xla_bytes / floor:.2f}"
                    peak = row["peak_bytes"]
                    print(
                        f"{op:<26} {impl:<28} {'x'.join(map(str, shape)):>12} "
                        f"{dtype_name:>8} {median * 1e3:>10.3f} "
                        f"{row['achieved_bytes_per_s'] / 1e9:>7.1f} "
                        f"{row['fraction_of_copy_bandwidth']:>8.2f} {ratio:>11} "
                        f"{'-' if peak is None else f'{peak / 2**20:.0f}':>8}",
                        flush=True,
                    )
    summarize(results)
    return {"header": header, "results": results}


def progress(done: int, total: int, start: float, case: str) -> None:
    """One line on stderr before each case: how far the run is and how long it took."""
    elapsed = time.perf_counter() - start
    print(
        f"# [{done + 1}/{total}] {case} (elapsed {elapsed:.0f} s)",
        file=sys.stderr,
        flush=True,
    )


def summarize(results) -> None:
    """Print every jsoftmax-against-baseline ratio and count the verdicts."""
    counts = {"slower": 0, "tie": 0, "faster": 0}
    print("# jsoftmax speedup (baseline median / jsoftmax median, 90% interval)")
    for row in results:
        for other, s in row.get("speedup", {}).items():
            counts[s["verdict"]] += 1
            print(
                f"{row['op']:<26} {'x'.join(map(str, row['shape'])):>12} "
                f"{row['dtype']:>8} vs {other:<24} {s['ratio']:.2f}x "
                f"({s['low']:.2f}-{s['high']:.2f}) {s['verdict']}"
            )
    print("# " + ", ".join(f"{n} {v}" for v, n in counts.items()), flush=True)


def plot(report: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in report["results"] if r["dtype"] == "float32"]
    ops = sorted({r["op"] for r in rows})
    fig, axes = plt.subplots(1, len(ops), figsize=(4 * len(ops), 3.5), squeeze=False)
    for ax, op in zip(axes[0], ops, strict=True):
        for impl in sorted({r["impl"] for r in rows if r["op"] == op}):
            points = sorted(
                (r["shape"][1], r["achieved_bytes_per_s"] / 1e9)
                for r in rows
                if r["op"] == op and r["impl"] == impl
            )
            ax.plot(*zip(*points, strict=True), marker="o", label=impl)
        ax.axhline(
            report["header"]["copy_bandwidth_bytes_per_s"] / 1e9,
            color="gray",
            linestyle="--",
            label="copy",
        )
        ax.set_xscale("log")
        ax.set_title(op, fontsize=9)
        ax.set_xlabel("row width")
        ax.set_ylabel("GB/s (floor bytes / time)")
        ax.legend(fontsize=6)
    fig.suptitle(f"{report['header']['device_kind']}, float32")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["accel"]:
        from bench import accel

        return accel.main(argv[1:])
    if argv[:1] == ["accuracy"]:
        try:
            accuracy = importlib.import_module("bench.accuracy")
        except ModuleNotFoundError as error:
            if error.name != "bench.accuracy":
                raise
            print(
                "python -m bench accuracy: bench/accuracy.py is missing from "
                f"this checkout ({error})",
                file=sys.stderr,
            )
            return 2
        return accuracy.main(argv[1:])
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Subcommands: `python -m bench accel --help` (deviceless "
        "accelerator programs), `python -m bench accuracy --help`.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny shapes, 3 runs (smoke test; writes to a temporary folder "
        "unless --out is given)",
    )
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--out", help="JSON path (default bench/results/<device>.json)")
    parser.add_argument("--plot", help="PNG of achieved bandwidth against row width")
    parser.add_argument("--ops", nargs="*", choices=list(operations.IMPLEMENTATIONS))
    parser.add_argument("--dtypes", nargs="*", choices=list(DTYPES))
    parser.add_argument("--shapes", nargs="*", help="ROWSxCOLS, e.g. 4096x32768")
    parser.add_argument(
        "--big", action="store_true", help=f"add {BIG_SHAPE} on accelerators"
    )
    args = parser.parse_args(argv)
    report = run(args)
    name = f"{report['header']['device']}.json"
    if args.out:
        out = pathlib.Path(args.out)
    elif args.quick:  # a smoke test never replaces the committed results
        out = pathlib.Path(tempfile.mkdtemp(prefix="bench-quick-")) / name
    else:
        out = RESULTS / name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"# wrote {out}")
    if args.plot:
        plot(report, args.plot)
        print(f"# wrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
