"""``python -m bench accel``: what each bench case compiles to on an accelerator.

Deviceless ahead-of-time compilation: JAX builds a topology for a TPU v5e chip
(``jax[tpu]``, extra ``accel-tpu``) or an H100 (``jax[cuda12]``, extra
``accel-gpu``; target description ``bench/h100_sxm.txtpb``) on a CPU-only
machine, and compiles every case for it, jsoftmax and its peer (jax.nn with
jax's default flags, or optax), from ``ShapeDtypeStruct`` arguments. From each
compiled program it records:

* ``kernels``: the operations the device launches, read from the compiled HLO
  text: every instruction of the entry computation but parameters, constants,
  tuples, ``get-tuple-element``, bitcasts and the ``*-done`` halves of async
  pairs; ``call`` is walked into, a ``conditional`` counts its costliest
  branch (by estimated cycles, then bytes), a ``while`` its body and condition
  times the known trip count (once when unknown);
* ``conditionals`` and ``while_loops`` met on that walk (a conditional on a
  GPU waits for the predicate on the host);
* ``bytes``: per launched kernel, the bytes of its distinct operands plus those
  of its result, summed over the same walk. A fusion that reads only part of an
  operand (a gather of one label per row) counts all of it, so this is an upper
  bound; XLA:GPU's ``cost_analysis()`` is empty for deviceless programs. On TPU
  XLA's own ``bytes accessed`` is recorded too (``xla_bytes_accessed``);
* ``temp_bytes``: ``memory_analysis().temp_size_in_bytes``;
* ``cycles`` (TPU): the sum of the ``estimated_cycles`` that XLA:TPU writes in
  each launched kernel's backend config.

The table prints jsoftmax / peer for each; results go to
``bench/results/accel-<target>.json`` and ``--markdown`` prints the README
table from those files.
"""

from __future__ import annotations

import argparse
import dataclasses
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

# Before any backend starts: lets the CUDA plugin load on a machine without CUDA.
os.environ.setdefault("JAX_SKIP_CUDA_CONSTRAINTS_CHECK", "1")
HERE = pathlib.Path(__file__).parent
RESULTS = HERE / "results"
TARGETS = {"tpu-v5e": "accel-tpu", "h100": "accel-gpu"}
SHAPES = [(4096, 32768), (32, 1000)]
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


# --- the compiled HLO text --------------------------------------------------

_HEADER = re.compile(r"^(ENTRY )?%(\S+) .*\{$")
_INSTRUCTION = re.compile(r"^\s+(?:ROOT )?%(\S+) = (.*)$")
_ARRAY = re.compile(r"\b(pred|bf16|[fsuc]\d+|f8e\w+)\[([\d,]*)\]")
_NOT_LAUNCHED = set(
    "parameter constant tuple get-tuple-element bitcast after-all add-dependency "
    "opt-barrier domain".split()
)


@dataclasses.dataclass
class Instruction:
    name: str
    shape: str
    opcode: str
    operands: list[str]
    attributes: str
    inside: str  # between the parentheses: the operands, or a parameter's number


def _closing(text: str, start: int) -> int:
    """Index of the parenthesis that closes the one at ``text[start]``."""
    depth = 0
    for i in range(start, len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            return i
    raise ValueError(f"unbalanced parentheses: {text[start : start + 80]}")


def parse_hlo(text: str) -> tuple[dict[str, list[Instruction]], str]:
    """An HLO module's text as computations (name -> instructions), and the entry."""
    computations, entry, current = {}, None, None
    for line in text.splitlines():
        header = _HEADER.match(line)
        if header:
            current = computations.setdefault(header.group(2), [])
            entry = header.group(2) if header.group(1) else entry
            continue
        match = _INSTRUCTION.match(line)
        if match is None or current is None:
            continue
        name, rest = match.groups()
        end = _closing(rest, 0) + 1 if rest.startswith("(") else rest.index(" ")
        shape, rest = rest[:end], rest[end:].lstrip()
        opcode = rest[: rest.index("(")]
        close = _closing(rest, len(opcode))
        inside = rest[len(opcode) + 1 : close]
        operands = re.findall(r"%([^\s,()]+)", inside)
        attributes = rest[close + 1 :]
        current.append(Instruction(name, shape, opcode, operands, attributes, inside))
    if entry is None:
        raise ValueError("no ENTRY computation in the HLO text")
    return computations, entry


def shape_bytes(shape: str) -> int:
    """Bytes of every array in an HLO shape (tuples summed; pred is one byte)."""
    total = 0
    for element, dims in _ARRAY.findall(shape):
        bits = {"pred": 8, "bf16": 16}.get(element) or (
            8 if element.startswith("f8") else int(element[1:])
        )
        count = 1
        for d in filter(None, dims.split(",")):
            count *= int(d)
        total += count * bits // 8
    return total


@dataclasses.dataclass
class Cost:
    kernels: list = dataclasses.field(default_factory=list)  # [label, bytes, cycles]
    conditionals: int = 0
    while_loops: int = 0

    @property
    def bytes(self) -> int:
        return sum(k[1] for k in self.kernels)

    @property
    def cycles(self) -> int:
        return sum(k[2] for k in self.kernels)

    def add(self, other: Cost, times: int = 1, prefix: str = "") -> None:
        self.kernels += [[prefix + k[0], *k[1:]] for k in other.kernels] * times
        self.conditionals += other.conditionals * times
        self.while_loops += other.while_loops * times


def _called(ins: Instruction, key: str) -> list[str]:
    match = re.search(key + r"=(\{[^}]*\}|%[^\s,]+)", ins.attributes)
    return re.findall(r"%([^\s,{}]+)", match.group(1)) if match else []


def _label(ins: Instruction) -> str:
    kind = re.search(r"kind=(k\w+)", ins.attributes)
    target = re.search(r'custom_call_target="([^"]+)"', ins.attributes)
    op_name = re.search(r'op_name="([^"]*)"', ins.attributes)
    where = op_name.group(1).rsplit("/", 1)[-1] if op_name else ""
    what = kind.group(1) if kind else target.group(1) if target else ins.opcode
    return f"{ins.name} [{what}] {where} {ins.shape.split('{')[0]}"


def _read_bytes(computations: dict, ins: Instruction, operand: str) -> int | None:
    """Bytes that fusion ``ins`` reads of ``operand`` where only ``gather`` or
    ``dynamic-slice`` read it inside the fusion (their results' bytes), else None."""
    called = _called(ins, "calls") if ins.opcode == "fusion" else []
    body = computations.get(called[0], []) if called else []
    number = str(ins.operands.index(operand))
    for param in body:
        if param.opcode == "parameter" and param.inside == number:
            users = [i for i in body if param.name in i.operands]
            if users and all(
                u.opcode in ("gather", "dynamic-slice") and u.operands[0] == param.name
                for u in users
            ):
                return sum(shape_bytes(u.shape) for u in users)
    return None


def _kernel(computations: dict, ins: Instruction, shapes: dict) -> list:
    """``[label, bytes, cycles]`` of one launched instruction."""
    nbytes = 0
    for operand in dict.fromkeys(o for o in ins.operands if o in shapes):
        read = _read_bytes(computations, ins, operand)
        nbytes += shape_bytes(shapes[operand]) if read is None else read
    # copy-start's result is (destination, source, context): the copy writes once.
    nbytes += nbytes if ins.opcode == "copy-start" else shape_bytes(ins.shape)
    cycles = re.search(r'"estimated_cycles":"(\d+)"', ins.attributes)
    return [_label(ins), nbytes, int(cycles[1]) if cycles else 0]


def program_cost(computations: dict, name: str) -> Cost:
    """The :class:`Cost` of running computation ``name`` once (module docstring)."""
    instructions = computations[name]
    shapes = {ins.name: ins.shape for ins in instructions}
    cost = Cost()
    for ins in instructions:
        if ins.opcode in _NOT_LAUNCHED or ins.opcode.endswith(("-done", "-update")):
            continue
        if ins.opcode == "call":
            for callee in _called(ins, "to_apply"):
                cost.add(program_cost(computations, callee))
        elif ins.opcode == "conditional":
            keys = ("true_computation", "false_computation", "branch_computations")
            branches = [
                program_cost(computations, branch)
                for key in keys
                for branch in _called(ins, key)
            ]
            costliest = max(branches, key=lambda c: (c.cycles, c.bytes))
            cost.add(costliest, prefix="cond> ")
            cost.conditionals += 1
        elif ins.opcode == "while":
            trips = re.search(r'"known_trip_count":\{"n":"(\d+)"', ins.attributes)
            for callee in _called(ins, "condition") + _called(ins, "body"):
                callee_cost = program_cost(computations, callee)
                cost.add(callee_cost, int(trips[1]) if trips else 1, prefix="while> ")
            cost.while_loops += 1
        else:
            cost.kernels.append(_kernel(computations, ins, shapes))
    return cost


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
    add("--shapes", nargs="*", help="ROWSxCOLS (default 4096x32768 32x1000)")
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
