"""Kernels, conditionals, loops and bytes of a compiled XLA program, from its text.

:func:`parse_hlo` reads the HLO text of a compiled module (``compiled.as_text()``)
into its computations; :func:`program_cost` walks the entry computation and
returns a :class:`Cost`:

* ``kernels``: the operations the device launches, each as ``[label, bytes,
  cycles]``: every instruction but parameters, constants, tuples,
  ``get-tuple-element``, bitcasts, barriers and the ``*-update`` / ``*-done``
  parts of async operations; ``call`` is walked into, a ``conditional`` counts
  its costliest branch (by estimated cycles, then bytes), a ``while`` its body
  and condition times the known trip count (once when unknown);
* ``conditionals`` and ``while_loops`` met on that walk (a conditional on a
  GPU waits for the predicate on the host);
* ``bytes``: per launched kernel, the bytes of its distinct operands plus those
  of its result. A fusion operand read only by ``gather`` or ``dynamic-slice``
  counts their results' bytes; any other operand counts whole, even where the
  fusion reads part of it, so this is an upper bound;
* ``cycles``: the sum of the ``estimated_cycles`` that XLA:TPU writes in each
  launched kernel's backend config (0 elsewhere).

``python -m bench accel`` (``bench/accel.py``) and ``python -m bench.vocab
--target`` (``bench/vocab.py``) measure their programs with it.
"""

from __future__ import annotations

import dataclasses
import re

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
