"""``python -m bench accel`` and ``bench/hlo_cost.py``: reading compiled HLO.

The parser is checked on a hand-written module in the form XLA:TPU prints and on
programs compiled here for the CPU; the deviceless TPU and H100 compiles run
only where their extras (``.[accel-tpu]``, ``.[accel-gpu]``) are installed.
"""

import importlib.util

import jax
import jax.numpy as jnp
import pytest
from jax import lax

from bench import accel
from bench import hlo_cost

# A TPU-like module: a fusion with estimated cycles, an async copy, a
# conditional whose second branch costs more, and a while loop that runs its
# body three times.
MODULE = """\
HloModule jit_f, entry_computation_layout={(f32[8,128]{1,0})->f32[8,128]{1,0}}

%fused_computation (param_0: f32[8,128]) -> f32[8] {
  %param_0 = f32[8,128]{1,0:T(8,128)} parameter(0)
  %constant.1 = f32[]{:T(128)} constant(0)
  ROOT %reduce.1 = f32[8]{0} reduce(%param_0, %constant.1), dimensions={1}
}

%gather_computation (param_0.1: f32[8,128], param_1.1: s32[8,1]) -> f32[8] {
  %param_0.1 = f32[8,128]{1,0} parameter(0)
  %param_1.1 = s32[8,1]{1,0} parameter(1)
  ROOT %gather.1 = f32[8]{0} gather(%param_0.1, %param_1.1), offset_dims={}
}

%cheap (arg.0: (f32[8,128], pred[])) -> (f32[8,128]) {
  %arg.0 = (f32[8,128]{1,0}, pred[]) parameter(0)
  %gte.0 = f32[8,128]{1,0} get-tuple-element(%arg.0), index=0
  %negate.0 = f32[8,128]{1,0} negate(%gte.0), backend_config={"estimated_cycles":"10"}
  ROOT %tuple.0 = (f32[8,128]{1,0}) tuple(%negate.0)
}

%costly (arg.1: (f32[8,128], pred[])) -> (f32[8,128]) {
  %arg.1 = (f32[8,128]{1,0}, pred[]) parameter(0)
  %gte.1 = f32[8,128]{1,0} get-tuple-element(%arg.1), index=0
  %exp.1 = f32[8,128]{1,0} exponential(%gte.1), backend_config={"estimated_cycles":"30"}
  %log.1 = f32[8,128]{1,0} log(%exp.1), backend_config={"estimated_cycles":"30"}
  ROOT %tuple.1 = (f32[8,128]{1,0}) tuple(%log.1)
}

%cond (c.0: s32[]) -> pred[] {
  %c.0 = s32[] parameter(0)
  %k.0 = s32[] constant(3)
  ROOT %lt.0 = pred[] compare(%c.0, %k.0), direction=LT
}

%body (b.0: s32[]) -> s32[] {
  %b.0 = s32[] parameter(0)
  %one = s32[] constant(1)
  ROOT %add.0 = s32[] add(%b.0, %one)
}

ENTRY %main.9 (x.1: f32[8,128], i.1: s32[8,1]) -> f32[8,128] {
  %x.1 = f32[8,128]{1,0:T(8,128)} parameter(0), sharding={replicated}
  %i.1 = s32[8,1]{1,0} parameter(1)
  %fusion = f32[8]{0:T(1024)} fusion(%x.1), kind=kLoop, calls=%fused_computation, \
backend_config={"window_config":{"estimated_cycles":"100","iteration_bounds":["1"]}}
  %gather_fusion = f32[8]{0} fusion(%x.1, %i.1), kind=kCustom, calls=%gather_computation
  %copy-start = (f32[8]{0}, f32[8]{0}, u32[]) copy-start(%fusion)
  %copy-done = f32[8]{0} copy-done(%copy-start)
  %p = pred[] compare(%copy-done, %gather_fusion), direction=GT
  %bitcast.1 = f32[1024]{0} bitcast(%x.1)
  %tuple.2 = (f32[8,128]{1,0}, pred[]) tuple(%x.1, %p)
  %conditional = (f32[8,128]{1,0}) conditional(%p, %tuple.2, %tuple.2), \
branch_computations={%cheap, %costly}
  %zero = s32[] constant(0)
  %while = s32[] while(%zero), condition=%cond, body=%body, \
backend_config={"known_trip_count":{"n":"3"}}
  ROOT %out = f32[8,128]{1,0} get-tuple-element(%conditional), index=0
}
"""

N = 8 * 128 * 4  # bytes of f32[8,128]


def test_shape_bytes():
    assert hlo_cost.shape_bytes("f32[8,128]{1,0:T(8,128)}") == N
    assert hlo_cost.shape_bytes("(bf16[4,2]{1,0}, pred[3], s32[])") == 16 + 3 + 4
    assert hlo_cost.shape_bytes("f32[]") == 4
    assert hlo_cost.shape_bytes("f8e4m3fn[10]") == 10
    assert hlo_cost.shape_bytes("c64[2]") == 16


def test_parse_hand_written_module():
    computations, entry = hlo_cost.parse_hlo(MODULE)
    assert entry == "main.9"
    assert set(computations) >= {"fused_computation", "cheap", "costly", "main.9"}
    fusion = next(i for i in computations[entry] if i.name == "fusion")
    assert (fusion.opcode, fusion.operands) == ("fusion", ["x.1"])
    conditional = next(i for i in computations[entry] if i.name == "conditional")
    assert conditional.shape.startswith("(f32[8,128]")
    assert conditional.operands == ["p", "tuple.2", "tuple.2"]

    cost = hlo_cost.program_cost(computations, entry)
    labels = [k[0] for k in cost.kernels]
    # fusion, gather fusion, copy-start, compare, the costly branch's two ops,
    # and condition + body of the while, three times each.
    assert len(labels) == 6 + 2 * 3, labels
    assert sum(label.startswith("cond> ") for label in labels) == 2
    assert any(label.startswith("cond> exp.1") for label in labels)
    assert not any("negate" in label for label in labels)
    assert sum(label.startswith("while> ") for label in labels) == 6
    assert (cost.conditionals, cost.while_loops) == (1, 1)
    assert cost.cycles == 100 + 30 + 30
    fusion_bytes = N + 8 * 4
    gather_bytes = 8 * 4 + 8 * 4 + 8 * 4  # the 8 gathered values, labels, result
    copy_bytes = 2 * 8 * 4
    compare_bytes = 2 * 8 * 4 + 1
    branch_bytes = 2 * (N + N)
    while_bytes = 3 * (4 + 4 + 1) + 3 * (4 + 4 + 4)
    assert (
        cost.bytes
        == (fusion_bytes + gather_bytes + copy_bytes + compare_bytes + branch_bytes)
        + while_bytes
    )


def _cpu_cost(fn, *args):
    text = jax.jit(fn).lower(*args).compile().as_text()
    return hlo_cost.program_cost(*hlo_cost.parse_hlo(text))


def test_cpu_elementwise_program_reads_and_writes_once():
    x = jax.ShapeDtypeStruct((64, 128), jnp.float32)
    cost = _cpu_cost(lambda x: jnp.exp(x) * 2, x)
    assert len(cost.kernels) == 1
    assert cost.bytes == 2 * 64 * 128 * 4
    assert (cost.conditionals, cost.while_loops, cost.cycles) == (0, 0, 0)


def test_cpu_conditional_counts_its_costliest_branch():
    p = jax.ShapeDtypeStruct((), jnp.bool_)
    x = jax.ShapeDtypeStruct((64, 128), jnp.float32)

    def f(p, x):
        return lax.cond(p, lambda x: jnp.sort(x, 1).sum(1), lambda x: x.sum(1), x)

    cost = _cpu_cost(f, p, x)
    assert cost.conditionals == 1
    branch = [k for k in cost.kernels if k[0].startswith("cond> ")]
    assert any("sort" in k[0] for k in branch), cost.kernels
    # the sort reads and writes x, then the sum reads the sorted copy
    assert sum(k[1] for k in branch) >= 3 * 64 * 128 * 4


def test_cpu_while_loop_and_gather():
    n = jax.ShapeDtypeStruct((), jnp.int32)
    x = jax.ShapeDtypeStruct((64, 128), jnp.float32)
    cost = _cpu_cost(lambda n, x: lax.fori_loop(0, n, lambda i, x: jnp.sin(x), x), n, x)
    assert cost.while_loops == 1 and cost.conditionals == 0
    assert any(k[0].startswith("while> ") and "sin" in k[0] for k in cost.kernels)

    labels = jax.ShapeDtypeStruct((64,), jnp.int32)
    cost = _cpu_cost(
        lambda x, i: jnp.take_along_axis(x, i[:, None], 1, mode="clip") * 2, x, labels
    )
    # one value per row is read, not the whole row
    assert cost.bytes < 64 * 128 * 4
    assert cost.bytes >= 3 * 64 * 4


def test_ratio():
    assert accel.ratio(3, 2) == 1.5
    assert accel.ratio(0, 0) == 1.0
    assert accel.ratio(5, 0) is None and accel.ratio(None, 1) is None


def _has(module):
    return importlib.util.find_spec(module) is not None


@pytest.mark.slow
@pytest.mark.parametrize(
    "target, plugin", [("tpu-v5e", "libtpu"), ("h100", "jax_cuda12_plugin")]
)
def test_deviceless_report(target, plugin):
    if not _has(plugin):
        pytest.skip(f"needs pip install -e '.[{accel.TARGETS[target]}]'")
    report = accel.run(
        target, ["softmax_fwd", "softmax_fwd_bwd"], [(32, 1000)], ["float32"]
    )
    assert report["header"]["target"] == target
    rows = report["results"]
    assert [r["op"] for r in rows] == ["softmax_fwd", "softmax_fwd_bwd"]
    for row in rows:
        ours, peer = row["jsoftmax"], row[row["peer"]]
        for m in (ours, peer):
            assert m["kernels"] >= 1 and m["kernels"] == len(m["kernel_list"])
            assert m["bytes"] >= 2 * 32 * 1000 * 4
            assert m["temp_bytes"] >= 0
            assert (m["cycles"] or 0) > 0 if target == "tpu-v5e" else not m["cycles"]
        assert row["ratio"]["bytes"] == pytest.approx(ours["bytes"] / peer["bytes"])
