"""``python -m bench accel``: what each bench case compiles to on an accelerator.

Deviceless ahead-of-time compilation: JAX builds a topology for a TPU v5e chip
(``jax[tpu]``, extra ``accel-tpu``) or an H100 (``jax[cuda12]``, extra
``accel-gpu``; target description ``bench/h100_sxm.txtpb``) on a CPU-only
machine, and compiles every case for it, jsoftmax and its peer (jax.nn with
jax's default flags, or optax), from ``ShapeDtypeStruct`` arguments. From each
compiled program it records:

* ``kernels``, ``conditionals``, ``while_loops``, ``bytes`` and ``cycles``
  (TPU): read from the compiled HLO text by ``bench/hlo_cost.py``, whose
  docstring says what each counts; on TPU XLA's own ``bytes accessed`` too
  (``xla_bytes_accessed``; XLA:GPU's ``cost_analysis()`` is empty for
  deviceless programs);
* ``temp_bytes``: ``memory_analysis().temp_size_in_bytes``.

The table prints jsoftmax / peer for each; results go to
``bench/results/accel-<target>.json`` and ``--markdown`` prints the README
table from those files.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import re
import sys
import time

import jax
import jax.numpy as jnp
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec

import jsoftmax
from bench import operations
from bench.__main__ import commit
from bench.hlo_cost import parse_hlo
from bench.hlo_cost import program_cost

# Before any backend starts: lets the CUDA plugin load on a machine without CUDA.
os.environ.setdefault("JAX_SKIP_CUDA_CONSTRAINTS_CHECK", "1")
HERE = pathlib.Path(__file__).parent
RESULTS = HERE / "results"
TARGETS = {"tpu-v5e": "accel-tpu", "h100": "accel-gpu"}
# Large rows (reduced in two stages on H100), rows that XLA:GPU can fuse into one
# Triton softmax kernel, and small rows where launches dominate.
SHAPES = [(4096, 32768), (4096, 4096), (32, 1000)]
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
# Cases beyond bench/operations.py: one temperature per row, and a where mask.
EXTRA = {
    "softmax_temperature_fwd": {
        "jsoftmax": lambda x, t: jsoftmax.softmax(x, temperature=t),
        "jax.nn": lambda x, t: jax.nn.softmax(x / t[:, None]),
    },
    "softmax_where_fwd": {
        "jsoftmax": lambda x, where: jsoftmax.softmax(x, where=where),
        "jax.nn": lambda x, where: jax.nn.softmax(x, where=where),
    },
}
OPS = (
    "softmax_fwd softmax_temperature_fwd softmax_where_fwd softmax_fwd_bwd "
    "log_softmax_fwd log_softmax_fwd_bwd logsumexp "
    "int_xent_value_and_grad prob_xent_value_and_grad"
).split()


def implementations(op: str) -> dict:
    """``{"jsoftmax": fn, peer_name: fn}`` for ``op``."""
    if op in EXTRA:
        return EXTRA[op]
    impls = operations.IMPLEMENTATIONS[op]
    if "optax" in impls:
        peer = "optax"
    elif "jax.nn" in impls:
        peer = "jax.nn"
    else:  # softmax: jax.nn with the custom_jvp flag users get by default
        flag = "on" if jax.config.jax_softmax_custom_jvp else "off"
        peer = f"jax.nn (custom_jvp {flag})"
    return {"jsoftmax": impls["jsoftmax"], peer: impls[peer]}


def arguments(op: str, rows: int, cols: int, dtype, sharding) -> tuple:
    """The ``ShapeDtypeStruct`` arguments of ``op`` (as ``operations.inputs``)."""

    def spec(shape, dt):
        return jax.ShapeDtypeStruct(shape, dt, sharding=sharding)

    x = spec((rows, cols), dtype)
    if op in ("softmax_fwd", "log_softmax_fwd", "logsumexp"):
        return (x,)
    if op in ("softmax_fwd_bwd", "log_softmax_fwd_bwd", "prob_xent_value_and_grad"):
        return x, x  # cotangent, or probability labels
    if op == "int_xent_value_and_grad":
        return x, spec((rows,), jnp.int32)
    if op == "softmax_temperature_fwd":
        return x, spec((rows,), dtype)
    if op == "softmax_where_fwd":
        return x, spec((rows, cols), jnp.bool_)
    raise KeyError(op)


def target_devices(target: str):
    """The devices of a one-chip topology of ``target``, built without the chip."""
    from jax.experimental import topologies

    try:
        if target == "tpu-v5e":
            topology = topologies.get_topology_desc(
                "v5e:1x1", "tpu", chips_per_host_bounds=[1, 1, 1]
            )
        else:
            topology = topologies.get_topology_desc(
                "",
                "cuda",
                target_config=(HERE / "h100_sxm.txtpb").read_text(),
                topology="1x1x1",
            )
    except (RuntimeError, NotImplementedError) as error:
        raise SystemExit(
            f"cannot compile for {target} without its JAX plugin ({error}); "
            f"install it with: pip install -e '.[{TARGETS[target]}]'"
        ) from error
    return topology.devices


# --- compiling and reporting ------------------------------------------------


def compile_for(fn, args):
    """``jit(fn)`` compiled for the devices of ``args``' shardings, and seconds."""
    flag = getattr(fn, "softmax_custom_jvp", None)
    previous = jax.config.jax_softmax_custom_jvp
    if flag is not None:
        jax.config.update("jax_softmax_custom_jvp", flag)
    try:
        start = time.perf_counter()
        compiled = jax.jit(fn).trace(*args).lower().compile()
        return compiled, time.perf_counter() - start
    finally:
        jax.config.update("jax_softmax_custom_jvp", previous)


def measure(compiled) -> dict:
    """The module docstring's numbers for one compiled program."""
    computations, entry = parse_hlo(compiled.as_text())
    cost = program_cost(computations, entry)
    analysis = compiled.cost_analysis()
    analysis = analysis[0] if isinstance(analysis, list) else analysis
    memory = compiled.memory_analysis()
    return {
        "kernels": len(cost.kernels),
        "conditionals": cost.conditionals,
        "while_loops": cost.while_loops,
        "bytes": cost.bytes,
        "xla_bytes_accessed": (analysis or {}).get("bytes accessed"),
        "temp_bytes": None if memory is None else int(memory.temp_size_in_bytes),
        "cycles": cost.cycles or None,
        "kernel_list": cost.kernels,
    }


def ratio(ours, peer):
    """``ours / peer``: 1 when both are 0, None when only the peer is 0 or unknown."""
    if ours is None or peer is None:
        return None
    if peer == 0:
        return 1.0 if ours == 0 else None
    return ours / peer


def compare(ours: dict, peer: dict) -> dict:
    return {
        key: ratio(ours[key], peer[key]) for key in ("bytes", "temp_bytes", "cycles")
    }


def _fmt(value) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if value >= 100 else f"{value:.2f}"


def run(target: str, ops, shapes, dtypes, hlo_dir=None) -> dict:
    devices = target_devices(target)
    sharding = NamedSharding(Mesh(devices, ("d",)), PartitionSpec())
    header = {
        "target": target,
        "device_kind": devices[0].device_kind,
        "jax_version": jax.__version__,
        "commit": commit(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"
        ),
        "method": "see bench/accel.py's docstring",
    }
    print(
        f"# {target}: {header['device_kind']}, jax {jax.__version__}, "
        f"commit {header['commit']}; jsoftmax/peer, ratios jsoftmax / peer",
        flush=True,
    )
    print(
        f"{'case':<25} {'shape':>10} {'dtype':>8} {'peer':<24} {'kernels':>7} "
        f"{'cond':>5} {'bytes':>6} {'temp':>6} {'cycles':>6} {'s':>5}",
        flush=True,
    )
    results = []
    start = time.perf_counter()
    for op in ops:
        impls = implementations(op)
        for shape in shapes:
            for dtype_name in dtypes:
                args = arguments(op, *shape, DTYPES[dtype_name], sharding)
                row = {"op": op, "shape": list(shape), "dtype": dtype_name}
                tick = time.perf_counter()
                for impl, fn in impls.items():
                    compiled, seconds = compile_for(fn, args)
                    row[impl] = measure(compiled) | {"compile_s": seconds}
                    if hlo_dir:
                        name = f"{op}-{'x'.join(map(str, shape))}-{dtype_name}-{impl}"
                        path = pathlib.Path(hlo_dir, re.sub(r"[^\w.-]+", "_", name))
                        path.parent.mkdir(parents=True, exist_ok=True)
                        path.with_name(path.name + ".hlo").write_text(
                            compiled.as_text()
                        )
                peer_name = list(impls)[1]
                ours, peer = row["jsoftmax"], row[peer_name]
                row["peer"], row["ratio"] = peer_name, compare(ours, peer)
                results.append(row)
                r = row["ratio"]
                print(
                    f"{op:<25} {'x'.join(map(str, shape)):>10} {dtype_name:>8} "
                    f"{peer_name:<24} {ours['kernels']:>3}/{peer['kernels']:<3} "
                    f"{ours['conditionals']}/{peer['conditionals']:<3} "
                    f"{_fmt(r['bytes']):>6} {_fmt(r['temp_bytes']):>6} "
                    f"{_fmt(r['cycles']):>6} {time.perf_counter() - tick:>5.1f}",
                    flush=True,
                )
    print(f"# {len(results)} cases in {time.perf_counter() - start:.0f} s", flush=True)
    return {"header": header, "results": results}


def markdown(reports: dict) -> str:
    """The README's table from ``{target: report}``: kernels and conditionals as
    jsoftmax/peer, the rest as ratios (``-``: the peer needs none)."""
    targets = list(reports)
    head = (
        "| case | shape | dtype | "
        + " | ".join(
            f"{t} kernels | {t} cond | {t} bytes | {t} temp"
            + (f" | {t} cycles" if t.startswith("tpu") else "")
            for t in targets
        )
        + " |"
    )
    lines = [head, "|" + "---|" * (head.count(" | ") + 1)]
    first = reports[targets[0]]["results"]
    for i, row in enumerate(first):
        cells = [row["op"], "x".join(map(str, row["shape"])), row["dtype"]]
        for t in targets:
            other = reports[t]["results"][i]
            ours, peer, r = other["jsoftmax"], other[other["peer"]], other["ratio"]
            cells += [
                f"{ours['kernels']}/{peer['kernels']}",
                f"{ours['conditionals']}/{peer['conditionals']}",
                _fmt(r["bytes"]),
                _fmt(r["temp_bytes"]),
            ] + ([_fmt(r["cycles"])] if t.startswith("tpu") else [])
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench accel", description=__doc__.splitlines()[0]
    )
    add = parser.add_argument
    add("--target", nargs="+", choices=list(TARGETS))
    add("--out", help="JSON path (one target; default results/accel-<target>.json)")
    add("--ops", nargs="*", choices=OPS, default=OPS)
    add("--dtypes", nargs="*", choices=list(DTYPES), default=list(DTYPES))
    add("--shapes", nargs="*", help="ROWSxCOLS (default 4096x32768 4096x4096 32x1000)")
    add("--hlo", help="folder for each compiled program's HLO text")
    add("--markdown", action="store_true", help="print the README table from results")
    args = parser.parse_args(argv)
    if args.markdown:
        reports = {
            t: json.loads((RESULTS / f"accel-{t}.json").read_text())
            for t in args.target or TARGETS
        }
        print(markdown(reports))
        return 0
    if not args.target:
        parser.error("--target is required")
    if args.out and len(args.target) > 1:
        parser.error("--out names one file: give one --target")
    shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes or []] or SHAPES
    for target in args.target:
        report = run(target, args.ops, shapes, args.dtypes, args.hlo)
        out = pathlib.Path(args.out) if args.out else RESULTS / f"accel-{target}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=1) + "\n")
        print(f"# wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
