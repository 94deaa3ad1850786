"""``python -m bench.forms``: gumbel_softmax and segment_softmax against the forms
users write by hand today.

* ``gumbel_softmax`` against ``jax.nn.softmax((logits + gumbel) / T)`` (and, for
  ``hard=True``, the one-hot of its arg-max with ``one_hot - stop_gradient(y) +
  y``), forward and forward+backward;
* ``segment_softmax`` over the incoming edges of each node of a graph against
  the padded dense softmax (segments scattered into ``[nodes, max_degree,
  heads]`` with ``-inf`` padding, ``jax.nn.softmax`` over axis 1, gathered back;
  the positions inside each segment are precomputed and passed in, as a user
  would) and against the segment-ops form ``exp(x - segment_max[ids]) /
  segment_sum[ids]`` (as in jraph), on a graph with even degrees and on one
  with power-law degrees (a few hubs, so the padding is mostly empty).

Each case compiles every implementation, records the compiled temporary memory
(``compiled.memory_analysis().temp_size_in_bytes``), then times them in
interleaved turns (``bench.__main__.interleaved_seconds``) and reports medians,
quartiles and jsoftmax's speedup over each peer with a 90% bootstrap interval.
Results go to ``bench/results/forms-cpu.json`` (``--quick``: a temporary file
unless ``--out`` is given).
"""

from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import tempfile

import jax
import jax.numpy as jnp
import numpy as np

import jsoftmax
from bench.__main__ import commit
from bench.__main__ import device_name
from bench.__main__ import interleaved_seconds
from bench.__main__ import speedup
from bench.__main__ import verdict

RESULTS = pathlib.Path(__file__).parent / "results"
TEMPERATURE = 0.5


# --------------------------------------------------------------------------- #
# Gumbel-softmax
# --------------------------------------------------------------------------- #
def _hand_gumbel(key, x):
    noise = jax.random.gumbel(key, x.shape, x.dtype)
    return jax.nn.softmax((x + noise) / TEMPERATURE)


def _hand_gumbel_hard(key, x):
    y = _hand_gumbel(key, x)
    one_hot = jax.nn.one_hot(jnp.argmax(y, -1), x.shape[-1], dtype=y.dtype)
    return one_hot - jax.lax.stop_gradient(y) + y


def _ours_gumbel(key, x):
    return jsoftmax.gumbel_softmax(key, x, temperature=TEMPERATURE)


def _ours_gumbel_hard(key, x):
    return jsoftmax.gumbel_softmax(key, x, temperature=TEMPERATURE, hard=True)


def _with_backward(fn):
    """``(..., x, g) -> (y, dx)``: forward and the pullback of ``g``."""

    def run(*args):
        *rest, x, g = args
        y, pullback = jax.vjp(lambda x: fn(*rest, x), x)
        return y, pullback(g)[0]

    return run


def gumbel_cases(shapes):
    for rows, cols in shapes:
        x = jax.random.normal(jax.random.key(0), (rows, cols), jnp.float32)
        g = jax.random.normal(jax.random.key(1), (rows, cols), jnp.float32)
        key = jax.random.key(2)
        shape = [rows, cols]
        yield (
            "gumbel_fwd",
            shape,
            {"jsoftmax": _ours_gumbel, "hand-written": _hand_gumbel},
            (key, x),
        )
        yield (
            "gumbel_fwd_bwd",
            shape,
            {
                "jsoftmax": _with_backward(_ours_gumbel),
                "hand-written": _with_backward(_hand_gumbel),
            },
            (key, x, g),
        )
        yield (
            "gumbel_hard_fwd_bwd",
            shape,
            {
                "jsoftmax": _with_backward(_ours_gumbel_hard),
                "hand-written": _with_backward(_hand_gumbel_hard),
            },
            (key, x, g),
        )


# --------------------------------------------------------------------------- #
# Segment softmax
# --------------------------------------------------------------------------- #
def graph(nodes, kind, seed=0):
    """Receiver of each edge (sorted) and the edge's position among them."""
    rng = np.random.default_rng(seed)
    if kind == "even":
        degrees = rng.poisson(16, nodes)
    else:  # power law: most nodes have a few edges, a few hubs have hundreds
        degrees = np.minimum((rng.pareto(1.2, nodes) + 1) * 4, 512).astype(int)
    receivers = np.repeat(np.arange(nodes), degrees)
    starts = np.concatenate([[0], np.cumsum(degrees)[:-1]])
    positions = np.arange(len(receivers)) - np.repeat(starts, degrees)
    return receivers.astype(np.int32), positions.astype(np.int32), int(degrees.max())


def _segment_cases_for(nodes, kind, heads):
    receivers, positions, longest = graph(nodes, kind)
    edges = len(receivers)
    x = jax.random.normal(jax.random.key(3), (edges, heads), jnp.float32)
    g = jax.random.normal(jax.random.key(4), (edges, heads), jnp.float32)
    ids, pos = jnp.asarray(receivers), jnp.asarray(positions)

    def ours(ids, pos, x):
        return jsoftmax.segment_softmax(x, ids, nodes, indices_are_sorted=True)

    def padded(ids, pos, x):
        dense = jnp.full((nodes, longest, heads), -jnp.inf, x.dtype)
        dense = dense.at[ids, pos].set(x, unique_indices=True)
        return jax.nn.softmax(dense, axis=1)[ids, pos]

    def segment_ops(ids, pos, x):
        top = jax.ops.segment_max(x, ids, nodes, indices_are_sorted=True)
        e = jnp.exp(x - top[ids])
        return e / jax.ops.segment_sum(e, ids, nodes, indices_are_sorted=True)[ids]

    impls = {"jsoftmax": ours, "padded dense": padded, "segment ops": segment_ops}
    shape = [edges, heads]
    extra = {"graph": kind, "nodes": nodes, "max_degree": longest}
    yield "segment_fwd", shape, impls, (ids, pos, x), extra
    yield (
        "segment_fwd_bwd",
        shape,
        {name: _with_backward(fn) for name, fn in impls.items()},
        (ids, pos, x, g),
        extra,
    )


def segment_cases(nodes, heads):
    for kind in ("even", "power-law"):
        yield from _segment_cases_for(nodes, kind, heads)


# --------------------------------------------------------------------------- #
# Driver
# --------------------------------------------------------------------------- #
def temp_bytes(fn, args) -> int:
    return int(jax.jit(fn).lower(*args).compile().memory_analysis().temp_size_in_bytes)


def run_case(op, shape, impls, args, runs, extra=None):
    fns = {name: jax.jit(fn) for name, fn in impls.items()}
    memory = {name: temp_bytes(fn, args) for name, fn in impls.items()}
    names = list(fns)
    times = dict(
        zip(
            names, interleaved_seconds([fns[n] for n in names], args, runs), strict=True
        )
    )
    rows = []
    for name in names:
        t = times[name]
        row = {
            "op": op,
            "impl": name,
            "shape": shape,
            "dtype": "float32",
            "median_s": float(np.median(t)),
            "q25_s": float(np.percentile(t, 25)),
            "q75_s": float(np.percentile(t, 75)),
            "temp_bytes": memory[name],
            **(extra or {}),
        }
        if name == "jsoftmax":
            row["speedup"] = {}
            for peer in names[1:]:
                ratio, low, high = speedup(times[peer], t)
                row["speedup"][peer] = {
                    "ratio": ratio,
                    "low": low,
                    "high": high,
                    "verdict": verdict(low, high),
                    "memory_ratio": memory[peer] / max(memory[name], 1),
                }
        rows.append(row)
    return rows


def _print(rows):
    for row in rows:
        line = (
            f"{row['op']:<20} {str(row['shape']):<16} {row.get('graph', ''):<10} "
            f"{row['impl']:<14} {row['median_s'] * 1e3:9.2f} ms "
            f"{row['temp_bytes'] / 2**20:9.1f} MiB"
        )
        for peer, s in row.get("speedup", {}).items():
            line += (
                f"  vs {peer}: {s['ratio']:.2f}x [{s['low']:.2f}, {s['high']:.2f}]"
                f" {s['verdict']}, memory {s['memory_ratio']:.1f}x"
            )
        print(line, flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.forms", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small shapes, few runs")
    parser.add_argument("--out", type=pathlib.Path, default=None)
    parser.add_argument("--runs", type=int, default=None)
    args = parser.parse_args(argv)
    if args.quick:
        shapes, nodes, heads, runs = [(64, 128)], 256, 2, args.runs or 5
        out = args.out or pathlib.Path(tempfile.mkdtemp()) / "forms-quick.json"
    else:
        shapes, nodes, heads, runs = [(4096, 1024), (256, 32768)], 16384, 4, 20
        runs = args.runs or runs
        out = args.out or RESULTS / f"forms-{device_name(jax.devices()[0])}.json"
    results = []
    for op, shape, impls, case_args in gumbel_cases(shapes):
        rows = run_case(op, shape, impls, case_args, runs)
        _print(rows)
        results += rows
    for op, shape, impls, case_args, extra in segment_cases(nodes, heads):
        rows = run_case(op, shape, impls, case_args, runs, extra)
        _print(rows)
        results += rows
    device = jax.devices()[0]
    header = {
        "device": device_name(device),
        "device_kind": device.device_kind,
        "jax_version": jax.__version__,
        "commit": commit(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"
        ),
        "runs": runs,
        "temperature": TEMPERATURE,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"header": header, "results": results}, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
