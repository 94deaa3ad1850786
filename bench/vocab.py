"""``python -m bench.vocab [--quick] [--target T] [--out PATH]``: large-vocabulary CE.

Compares :func:`jsoftmax.linear_cross_entropy` with the naive path
(``optax.softmax_cross_entropy_with_integer_labels(x @ w, labels).mean()``) and,
where it installs, tokamax's ``linear_softmax_cross_entropy_loss`` (XLA path),
all as ``value_and_grad`` in ``x`` and ``w``:

* temporary memory of the compiled program (``memory_analysis()
  .temp_size_in_bytes``; compile only, nothing runs) at N=8192, D=2048,
  V=131072 in float32 and bfloat16, against the size of the naive logits;
* CPU time at N=2048, D=512, V=32768 (float32), the implementations taking
  turns, medians;
* values and gradients against the naive path (float32 tolerance).

tokamax is looked for in this interpreter, then in ``--tokamax-python`` (an
interpreter of a separate virtual environment, since tokamax may pin other jax
versions); if neither imports it, the JSON says why and skips it. Results go to
``bench/results/vocab-cpu.json`` (``--quick``: small sizes, a temporary file
unless ``--out``).

``--target tpu-v5e|h100`` compiles the same ``value_and_grad`` programs for a
TPU v5e chip or an H100 without the device (``bench/accel.py``'s deviceless
topologies; run it with an interpreter that has ``jax[tpu]`` / ``jax[cuda12]``)
at N=8192, D=2048, V=131072 and records, per program, temporary memory,
kernels launched and bytes moved. ``linear_cross_entropy`` is compiled at the
target's :func:`~jsoftmax.linear_ce.default_block_size` (passed explicitly: on
a CPU host ``jax.default_backend()`` is ``"cpu"``) and at each ``--blocks``
size. Kernels and bytes walk the compiled HLO as ``bench/hlo_cost.py`` does, with
two changes that matter for a blockwise loop: a ``while`` without XLA's known
trip count (TPU) counts its body ``ceil(V/B) - 1`` times (the trips of both
block loops), and an in-place ``dynamic-update-slice`` (a block of ``dw``
written into the carried ``[D, V]`` gradient) or a ``dynamic-slice`` (a block
of ``w`` read) counts the block's bytes, not the whole buffer's. tokamax is
imported from ``--tokamax-site`` (a site-packages folder appended after this
interpreter's own, so its jax and plugins stay in charge). Results go to
``bench/results/vocab-<target>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jsoftmax
from bench import hlo_cost
from jsoftmax.linear_ce import default_block_size

RESULTS = pathlib.Path(__file__).parent / "results"
REPO = pathlib.Path(__file__).parent.parent
MEMORY_SHAPE = (8192, 2048, 131072)
TIME_SHAPE = (2048, 512, 32768)
QUICK_MEMORY_SHAPE = (1024, 256, 16384)
QUICK_TIME_SHAPE = (256, 128, 4096)
TARGET_PLATFORM = {"tpu-v5e": "tpu", "h100": "gpu"}
TARGET_BLOCKS = (512, 1024, 2048, 4096, 8192)
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}

# Run by tokamax_temp_bytes in another interpreter: prints tokamax's XLA path's
# numbers as JSON (argv: spec, repository root, site-packages to append or "").
_TOKAMAX_SCRIPT = """
import json, sys
sys.path.insert(0, sys.argv[2])
if sys.argv[3]:
    sys.path.append(sys.argv[3])
from bench import vocab
print(json.dumps(vocab.tokamax_worker(json.loads(sys.argv[1]))))
"""


def naive(x, w, labels):
    return optax.softmax_cross_entropy_with_integer_labels(x @ w, labels).mean()


def ours(x, w, labels):
    return jsoftmax.linear_cross_entropy(x, w, labels)


def _abstract(rows, dim, vocab, dtype, sharding=None):
    return (
        jax.ShapeDtypeStruct((rows, dim), dtype, sharding=sharding),
        jax.ShapeDtypeStruct((dim, vocab), dtype, sharding=sharding),
        jax.ShapeDtypeStruct((rows,), jnp.int32, sharding=sharding),
    )


def temp_bytes(fn, args) -> int:
    compiled = jax.jit(jax.value_and_grad(fn, (0, 1))).lower(*args).compile()
    return int(compiled.memory_analysis().temp_size_in_bytes)


def tokamax_loss(x, w, labels):
    import tokamax

    return tokamax.linear_softmax_cross_entropy_loss(
        x, labels, w, reduction="mean", implementation="xla"
    )


def tokamax_worker(spec: dict) -> dict:
    """tokamax's numbers for ``spec`` (shape, dtype, target): run in the
    interpreter that imports it."""
    import tokamax

    rows, dim, vocab = spec["shape"]
    dtype = DTYPES[spec["dtype"]]
    version = getattr(tokamax, "__version__", "?")
    out = {"jax": jax.__version__, "tokamax": version}
    if spec["target"] is None:
        return out | {
            "temp_bytes": temp_bytes(tokamax_loss, _abstract(*spec["shape"], dtype))
        }
    sharding = _target_sharding(spec["target"])
    args = _abstract(rows, dim, vocab, dtype, sharding)
    return out | target_measure(tokamax_loss, args, trips=1)


def tokamax_temp_bytes(shape, dtype_name, python, target=None, site=None):
    """``(numbers, note)``: tokamax's XLA path (``{"temp_bytes": ...}``, with
    kernels and bytes for a target), or None and why not."""
    spec = json.dumps({"shape": list(shape), "dtype": dtype_name, "target": target})
    if site:
        python = sys.executable
    else:
        try:
            import tokamax  # noqa: F401

            python = sys.executable
        except ImportError:
            if not python:
                return None, (
                    "tokamax does not import here and no --tokamax-python "
                    "or --tokamax-site"
                )
    try:
        run = subprocess.run(
            [python, "-c", _TOKAMAX_SCRIPT, spec, str(REPO), site or ""],
            capture_output=True,
            text=True,
            timeout=300,
            # This process already holds libtpu for the deviceless topology.
            env=os.environ | {"ALLOW_MULTIPLE_LIBTPU_LOAD": "1"},
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return None, f"tokamax run failed: {error}"
    if run.returncode != 0:
        return None, "tokamax failed: " + run.stderr.strip().splitlines()[-1]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    where = f"{python}" + (f" + {site}" if site else "")
    note = f"tokamax {out.pop('tokamax')} XLA path, jax {out.pop('jax')} ({where})"
    return out, note


def memory(shape, tokamax_python):
    rows, dim, vocab = shape
    out = []
    for name, dtype in DTYPES.items():
        args = _abstract(rows, dim, vocab, dtype)
        size = jnp.dtype(dtype).itemsize
        logits = rows * vocab * size
        w_bytes = dim * vocab * size
        entry = {
            "shape": {"N": rows, "D": dim, "V": vocab},
            "dtype": name,
            "block_size": default_block_size(rows, vocab),
            "naive_logits_bytes": logits,
            "w_bytes": w_bytes,
            "temp_bytes": {"naive": temp_bytes(naive, args), "jsoftmax": None},
        }
        entry["temp_bytes"]["jsoftmax"] = temp_bytes(ours, args)
        tokamax, note = tokamax_temp_bytes(shape, name, tokamax_python)
        entry["temp_bytes"]["tokamax"] = tokamax and tokamax["temp_bytes"]
        entry["tokamax_note"] = note
        beyond_w = max(0, entry["temp_bytes"]["jsoftmax"] - w_bytes)
        entry["jsoftmax_beyond_w_over_logits"] = beyond_w / logits
        entry["target_met"] = beyond_w <= logits / 16
        out.append(entry)
    return out


# --- deviceless compiles for an accelerator (--target) ----------------------


def _target_sharding(target):
    from jax.sharding import Mesh
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec

    from bench import accel

    return NamedSharding(Mesh(accel.target_devices(target), ("d",)), PartitionSpec())


_WHILE = re.compile(r"^\s+(?:ROOT )?%\S+ = .*\) while\(.*$", re.MULTILINE)


def _with_trips(text: str, trips: int) -> str:
    """HLO text whose ``while`` loops without a known trip count get ``trips``."""

    def add(match):
        line = match.group(0)
        if "known_trip_count" in line:
            return line
        return line + f', backend_config={{"known_trip_count":{{"n":"{trips}"}}}}'

    return _WHILE.sub(add, text)


def _param_read(computations, body: str, number: int) -> int | None:
    """Bytes that computation ``body`` reads of its parameter ``number`` when it
    only slices it (``dynamic-slice``, ``gather``, nested fusions that do) or
    updates it in place (``dynamic-update-slice``: 0 read); None otherwise."""
    instructions = computations.get(body, [])
    param = next(
        (
            i
            for i in instructions
            if i.opcode == "parameter" and i.inside.strip() == str(number)
        ),
        None,
    )
    if param is None:
        return None
    total = 0
    for user in (i for i in instructions if param.name in i.operands):
        first = user.operands[0] == param.name
        if user.opcode in ("dynamic-slice", "gather") and first:
            total += hlo_cost.shape_bytes(user.shape)
        elif user.opcode == "dynamic-update-slice" and first:
            pass
        elif user.opcode == "fusion":
            called = hlo_cost._called(user, "calls")
            read = (
                _param_read(computations, called[0], user.operands.index(param.name))
                if called
                else None
            )
            if read is None:
                return None
            total += read
        else:
            return None
    return total


def _written(computations, body: str, name: str) -> int:
    """Bytes a fusion writes for its result ``name`` (in ``body``): the update
    of a ``dynamic-update-slice`` into a parameter, else the whole result."""
    instructions = {i.name: i for i in computations[body]}
    ins = instructions[name]
    if ins.opcode == "tuple":
        return sum(_written(computations, body, o) for o in ins.operands)
    buffer = instructions.get(ins.operands[0]) if ins.operands else None
    if (
        ins.opcode == "dynamic-update-slice"
        and buffer is not None
        and buffer.opcode == "parameter"
    ):
        return hlo_cost.shape_bytes(instructions[ins.operands[1]].shape)
    return hlo_cost.shape_bytes(ins.shape)


def _kernel_bytes(computations, ins, shapes, counted: int) -> int:
    """Bytes of one launched kernel: ``counted`` (``bench.hlo_cost``'s, which
    charges every operand and result whole) with sliced operands and in-place
    updates charged by the block they touch."""
    size = hlo_cost.shape_bytes
    if ins.opcode == "dynamic-update-slice":
        update = size(shapes[ins.operands[1]])
        return counted - size(shapes[ins.operands[0]]) - size(ins.shape) + 2 * update
    if ins.opcode == "dynamic-slice":
        return counted - size(shapes[ins.operands[0]]) + size(ins.shape)
    called = hlo_cost._called(ins, "calls") if ins.opcode == "fusion" else []
    if not called:
        return counted
    total = 0
    for number, operand in enumerate(ins.operands):
        if operand in shapes and operand not in ins.operands[:number]:
            read = _param_read(computations, called[0], number)
            total += size(shapes[operand]) if read is None else read
    root = computations[called[0]][-1]
    return total + _written(computations, called[0], root.name)


def target_measure(fn, args, trips: int) -> dict:
    """Temporary memory, kernels launched and bytes moved by the compiled
    ``value_and_grad(fn)`` (module docstring), and compile seconds."""
    start = time.perf_counter()
    compiled = jax.jit(jax.value_and_grad(fn, (0, 1))).lower(*args).compile()
    seconds = time.perf_counter() - start
    computations, entry = hlo_cost.parse_hlo(_with_trips(compiled.as_text(), trips))
    cost = hlo_cost.program_cost(computations, entry)
    everything = {i.name: i for body in computations.values() for i in body}
    shapes = {name: i.shape for name, i in everything.items()}
    total = 0
    for label, counted, _ in cost.kernels:
        name = label.removeprefix("while> ").removeprefix("cond> ").split(" ")[0]
        ins = everything.get(name)
        total += (
            counted
            if ins is None
            else _kernel_bytes(computations, ins, shapes, counted)
        )
    memory = compiled.memory_analysis()
    return {
        "temp_bytes": int(memory.temp_size_in_bytes),
        "kernels": len(cost.kernels),
        "bytes": total,
        "while_loops": cost.while_loops,
        "conditionals": cost.conditionals,
        "cycles": cost.cycles or None,
        "compile_s": round(seconds, 1),
    }


def target_report(target, shape, blocks, tokamax_python, tokamax_site) -> list:
    from jsoftmax.linear_ce import default_block_size as block_for

    rows, dim, vocab = shape
    sharding = _target_sharding(target)
    default = block_for(rows, vocab, TARGET_PLATFORM[target])
    out = []
    for name, dtype in DTYPES.items():
        args = _abstract(rows, dim, vocab, dtype, sharding)
        size = jnp.dtype(dtype).itemsize
        entry = {
            "shape": {"N": rows, "D": dim, "V": vocab},
            "dtype": name,
            "block_size": default,
            "naive_logits_bytes": rows * vocab * size,
            "w_bytes": dim * vocab * size,
            "naive": target_measure(naive, args, trips=1),
            "blocks": {},
        }
        for block in sorted({default, *blocks}):
            block = min(block, vocab)

            def ours_at(x, w, labels, block=block):
                return jsoftmax.linear_cross_entropy(x, w, labels, block_size=block)

            trips = -(-vocab // block) - 1
            entry["blocks"][str(block)] = target_measure(ours_at, args, trips)
            _progress(target, name, f"block {block}", entry["blocks"][str(block)])
        _progress(target, name, "naive", entry["naive"])
        tokamax, note = tokamax_temp_bytes(
            shape, name, tokamax_python, target, tokamax_site
        )
        entry["tokamax"], entry["tokamax_note"] = tokamax, note
        ours = entry["blocks"][str(default)]
        entry["jsoftmax"] = ours
        entry["temp_bytes"] = {
            "naive": entry["naive"]["temp_bytes"],
            "jsoftmax": ours["temp_bytes"],
            "tokamax": tokamax and tokamax["temp_bytes"],
        }
        out.append(entry)
    return out


def _progress(target, dtype, what, m):
    print(
        f"  {target} {dtype:8} {what:11} temp {m['temp_bytes'] / 2**20:7.0f} MiB  "
        f"bytes {m['bytes'] / 2**30:6.2f} GiB  kernels {m['kernels']:5}  "
        f"cycles {m['cycles'] or '-'}  compile {m['compile_s']} s",
        flush=True,
    )


def timing(shape, runs):
    rows, dim, vocab = shape
    keys = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(keys[0], (rows, dim), jnp.float32)
    w = jax.random.normal(keys[1], (dim, vocab), jnp.float32) / np.sqrt(dim)
    labels = jax.random.randint(keys[2], (rows,), 0, vocab)
    fns = {
        name: jax.jit(jax.value_and_grad(fn, (0, 1)))
        for name, fn in (("naive", naive), ("jsoftmax", ours))
    }
    results = {
        name: jax.block_until_ready(fn(x, w, labels)) for name, fn in fns.items()
    }
    times = {name: [] for name in fns}
    for turn in range(runs):
        order = list(fns) if turn % 2 == 0 else list(fns)[::-1]
        for name in order:
            start = time.perf_counter()
            jax.block_until_ready(fns[name](x, w, labels))
            times[name].append(time.perf_counter() - start)
    medians = {name: float(np.median(t)) for name, t in times.items()}
    (value, grads), (ref_value, ref_grads) = results["jsoftmax"], results["naive"]
    errors = {
        "value_rel": float(abs(value - ref_value) / abs(ref_value)),
        "dx_max_rel": _max_rel(grads[0], ref_grads[0]),
        "dw_max_rel": _max_rel(grads[1], ref_grads[1]),
    }
    return {
        "shape": {"N": rows, "D": dim, "V": vocab},
        "dtype": "float32",
        "block_size": default_block_size(rows, vocab),
        "runs": runs,
        "median_seconds": medians,
        "speed_vs_naive": medians["naive"] / medians["jsoftmax"],
        "errors_vs_naive": errors,
        "equal_to_float32_tolerance": bool(
            np.allclose(value, ref_value, rtol=1e-5)
            and all(
                np.allclose(g, r, rtol=1e-4, atol=1e-4 * float(jnp.max(jnp.abs(r))))
                for g, r in zip(grads, ref_grads, strict=True)
            )
        ),
    }


def _max_rel(got, want):
    return float(jnp.max(jnp.abs(got - want)) / jnp.max(jnp.abs(want)))


def _commit():
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


def _print(report):
    mib = 2**20
    print("temporary memory of value_and_grad (MiB, compiled, not run)")
    print(f"{'dtype':9} {'naive':>9} {'jsoftmax':>9} {'tokamax':>9} beyond-w/logits")
    for e in report["memory"]:
        t = e["temp_bytes"]
        tok = "-" if t["tokamax"] is None else f"{t['tokamax'] / mib:9.0f}"
        print(
            f"{e['dtype']:9} {t['naive'] / mib:9.0f} {t['jsoftmax'] / mib:9.0f} "
            f"{tok:>9} {e['jsoftmax_beyond_w_over_logits']:.4f} "
            f"(target 1/16 = 0.0625: {'met' if e['target_met'] else 'MISSED'})"
        )
    print(f"     tokamax: {report['memory'][0]['tokamax_note']}")
    t = report["time"]
    print(
        f"CPU time {t['shape']}: naive {t['median_seconds']['naive']:.3f} s, "
        f"jsoftmax {t['median_seconds']['jsoftmax']:.3f} s, "
        f"speed {t['speed_vs_naive']:.2f}x of naive; errors {t['errors_vs_naive']}"
    )


def _print_target(report):
    mib = 2**20
    print(f"# {report['target']} ({report['device']}), compiled, not run")
    print(
        f"{'dtype':9} {'program':16} {'temp MiB':>9} {'GiB moved':>9} "
        f"{'kernels':>7} {'TPU cycles':>11}"
    )
    for e in report["memory"]:
        programs = {"naive": e["naive"]}
        if e["tokamax"]:
            programs["tokamax"] = e["tokamax"]
        programs |= {f"jsoftmax B={b}": m for b, m in e["blocks"].items()}
        for name, m in programs.items():
            print(
                f"{e['dtype']:9} {name:16} {m['temp_bytes'] / mib:9.0f} "
                f"{m['bytes'] / 2**30:9.2f} {m['kernels']:7} {m['cycles'] or '-':>11}"
            )
    print(
        f"     default block {report['memory'][0]['block_size']}; "
        f"{report['memory'][0]['tokamax_note']}"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes")
    parser.add_argument("--out", help="JSON path")
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument(
        "--tokamax-python", help="python of a venv with tokamax (XLA path memory)"
    )
    parser.add_argument(
        "--target",
        choices=list(TARGET_PLATFORM),
        help="compile for this accelerator without it (no timing)",
    )
    parser.add_argument(
        "--blocks",
        nargs="*",
        type=int,
        default=list(TARGET_BLOCKS),
        help="block sizes compiled with --target, besides the default",
    )
    parser.add_argument(
        "--tokamax-site",
        help="site-packages folder with tokamax, appended to this interpreter's path",
    )
    args = parser.parse_args(argv)
    if args.out:
        out = pathlib.Path(args.out)
    elif args.quick:
        out = pathlib.Path(tempfile.gettempdir()) / "vocab-quick.json"
    elif args.target:
        out = RESULTS / f"vocab-{args.target}.json"
    else:
        out = RESULTS / "vocab-cpu.json"
    report = {
        "jax": jax.__version__,
        "optax": optax.__version__,
        "commit": _commit(),
        "command": "python -m bench.vocab " + " ".join(argv or sys.argv[1:]),
    }
    memory_shape = QUICK_MEMORY_SHAPE if args.quick else MEMORY_SHAPE
    if args.target:
        from bench import accel

        report["target"] = args.target
        report["device"] = accel.target_devices(args.target)[0].device_kind
        report["method"] = "see bench/vocab.py's docstring (--target)"
        report["memory"] = target_report(
            args.target,
            memory_shape,
            args.blocks,
            args.tokamax_python,
            args.tokamax_site,
        )
        _print_target(report)
    else:
        report["device"] = jax.devices()[0].device_kind
        report["memory"] = memory(memory_shape, args.tokamax_python)
        report["time"] = timing(
            QUICK_TIME_SHAPE if args.quick else TIME_SHAPE,
            args.runs or (3 if args.quick else 7),
        )
        _print(report)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
