"""``bench-table``: a table read from a committed ``bench/results/*.json`` file.

The benchmark page shows the numbers the benchmarks wrote, never copies of them:
each table is rendered at build time from the JSON file named in the directive,
with the file's header (device, jax version, commit, date) as its caption. A file
that is missing or has no results fails the build (with ``-W``).

    ```{bench-table} cpu.json
    ```
"""

from __future__ import annotations

import json
from pathlib import Path

from docutils import nodes
from sphinx.util.docutils import SphinxDirective

RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results"
MIB = 1 << 20


def _table(header: list[str], rows: list[list[str]]) -> nodes.table:
    table = nodes.table(classes=["bench-table"])
    group = nodes.tgroup(cols=len(header))
    table += group
    group.extend(nodes.colspec(colwidth=1) for _ in header)

    def row(cells):
        line = nodes.row()
        for cell in cells:
            entry = nodes.entry()
            entry += nodes.paragraph(text=cell)
            line += entry
        return line

    thead = nodes.thead()
    thead += row(header)
    tbody = nodes.tbody()
    tbody.extend(row(cells) for cells in rows)
    group += thead
    group += tbody
    return table


def _shape(shape) -> str:
    if isinstance(shape, dict):
        return ", ".join(f"{k}={v}" for k, v in shape.items())
    return "×".join(str(n) for n in shape)


def _speedup(entry: dict) -> str:
    interval = f"({entry['low']:.2f}–{entry['high']:.2f})"
    text = f"{entry['ratio']:.2f}× {interval} {entry['verdict']}"
    if entry.get("memory_ratio") is not None:
        text += f"; memory {entry['memory_ratio']:.2f}×"
    return text


def _timings(data: dict) -> tuple[list[str], list[list[str]]]:
    """cpu.json, forms-cpu.json: jsoftmax's median and its speedup per baseline."""
    results = [r for r in data["results"] if r.get("speedup")]
    baselines = list(dict.fromkeys(b for r in results for b in r["speedup"]))
    has_graph = any("graph" in r for r in results)
    has_fraction = any("fraction_of_copy_bandwidth" in r for r in results)
    header = ["operation", "shape", "dtype"]
    header += ["graph"] if has_graph else []
    header += ["jsoftmax median"]
    header += ["of copy bandwidth"] if has_fraction else []
    header += [f"vs {b}" for b in baselines]
    rows = []
    for r in results:
        cells = [r["op"], _shape(r["shape"]), r.get("dtype", "")]
        if has_graph:
            cells.append(
                f"{r.get('graph', '')} (max degree {r['max_degree']})"
                if "max_degree" in r
                else r.get("graph", "")
            )
        cells.append(f"{r['median_s'] * 1e3:.3g} ms")
        if has_fraction:
            fraction = r.get("fraction_of_copy_bandwidth")
            cells.append("" if fraction is None else f"{fraction:.2f}")
        cells += [
            _speedup(r["speedup"][b]) if b in r["speedup"] else "–" for b in baselines
        ]
        rows.append(cells)
    return header, rows


def _accel(data: dict) -> tuple[list[str], list[list[str]]]:
    """accel-<target>.json: what XLA compiled, jsoftmax against its peer."""
    header = [
        "case",
        "shape",
        "dtype",
        "peer",
        "kernels (jsoftmax/peer)",
        "conditionals",
        "bytes ratio",
        "temp memory ratio",
        "cycles ratio",
    ]

    def ratio(value):
        return "–" if value is None else f"{value:.3g}"

    rows = []
    for r in data["results"]:
        mine, peer = r["jsoftmax"], r[r["peer"]]
        rows.append(
            [
                r["op"],
                _shape(r["shape"]),
                r["dtype"],
                r["peer"],
                f"{mine['kernels']}/{peer['kernels']}",
                f"{mine['conditionals']}/{peer['conditionals']}",
                ratio(r["ratio"].get("bytes")),
                ratio(r["ratio"].get("temp_bytes"))
                if peer.get("temp_bytes")
                else "– (peer: none)",
                ratio(r["ratio"].get("cycles")),
            ]
        )
    return header, rows


def _vocab_memory(data: dict) -> tuple[list[str], list[list[str]]]:
    header = [
        "shape",
        "dtype",
        "block",
        "naive optax CE",
        "tokamax (XLA path)",
        "linear_cross_entropy",
        "naive logits alone",
    ]
    rows = []
    for r in data["memory"]:
        temp = r["temp_bytes"]
        rows.append(
            [
                _shape(r["shape"]),
                r["dtype"],
                str(r["block_size"]),
                f"{temp['naive'] / MIB:.0f} MiB",
                f"{temp['tokamax'] / MIB:.0f} MiB" if temp.get("tokamax") else "–",
                f"{temp['jsoftmax'] / MIB:.0f} MiB",
                f"{r['naive_logits_bytes'] / MIB:.0f} MiB",
            ]
        )
    return header, rows


def _vocab_time(data: dict) -> tuple[list[str], list[list[str]]]:
    t = data["time"]
    header = [
        "shape",
        "dtype",
        "block",
        "runs",
        "naive median",
        "jsoftmax median",
        "speed vs naive",
        "value rel. error",
        "dx max rel.",
        "dw max rel.",
    ]
    errors = t["errors_vs_naive"]
    rows = [
        [
            _shape(t["shape"]),
            t["dtype"],
            str(t["block_size"]),
            str(t["runs"]),
            f"{t['median_seconds']['naive']:.2f} s",
            f"{t['median_seconds']['jsoftmax']:.2f} s",
            f"{t['speed_vs_naive']:.2f}×",
            f"{errors['value_rel']:.2g}",
            f"{errors['dx_max_rel']:.2g}",
            f"{errors['dw_max_rel']:.2g}",
        ]
    ]
    return header, rows


def _accuracy(data: dict) -> tuple[list[str], list[list[str]]]:
    """accuracy-<device>.json: each implementation's worst error over the families."""
    header = [
        "function",
        "dtype",
        "implementation",
        "max ulp",
        "p99 ulp",
        "worst median ulp",
        "max row-scale ulp",
        "false zeros",
        "non-finite",
    ]

    def at(r, key):
        if r.get(key) is None:
            return "–"
        return f"{r[key]:.3g} ({r[f'{key}_at']})"

    rows = [
        [
            r["function"],
            r["dtype"],
            r["impl"],
            at(r, "max_ulp"),
            at(r, "p99_ulp"),
            at(r, "median_ulp"),
            at(r, "max_row_ulp"),
            str(r["false_zeros"]),
            str(r["nonfinite"]),
        ]
        for r in data["worst"]
    ]
    return header, rows


KINDS = {
    "accuracy": _accuracy,
    "timings": _timings,
    "accel": _accel,
    "vocab-memory": _vocab_memory,
    "vocab-time": _vocab_time,
}


def _caption(data: dict, name: str) -> str:
    header = data.get("header", data)
    parts = [f"bench/results/{name}"]
    for key, label in (
        ("device_kind", "device"),
        ("device", "device"),
        ("jax_version", "jax"),
        ("jax", "jax"),
        ("commit", "commit"),
        ("date", "date"),
        ("runs", "runs"),
    ):
        value = header.get(key)
        if value is not None and not any(p.startswith(f"{label} ") for p in parts):
            parts.append(f"{label} {value}")
    return ", ".join(parts)


class BenchTable(SphinxDirective):
    required_arguments = 1
    option_spec = {"kind": str}

    def run(self):
        name = self.arguments[0]
        path = RESULTS / name
        self.env.note_dependency(str(path))
        default = "timings"
        for prefix in ("accel", "accuracy"):
            if name.startswith(f"{prefix}-"):
                default = prefix
        kind = self.options.get("kind", default)
        try:
            data = json.loads(path.read_text())
            header, rows = KINDS[kind](data)
        except (OSError, KeyError, TypeError, ValueError) as error:
            raise self.error(f"bench-table {name} ({kind}): {error!r}") from error
        if not rows:
            raise self.error(f"bench-table {name}: no results")
        table = _table(header, rows)
        title = nodes.title(text=_caption(data, name))
        table.insert(0, title)
        return [table]


def setup(app):
    app.add_directive("bench-table", BenchTable)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
