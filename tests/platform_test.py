"""The accelerators' programs, run on the CPU.

Some passes compile differently per platform (``lax.platform_dependent``: the
CPU's plain program, repaired by a ``lax.cond``, and its min/max arithmetic;
the accelerators' one program of selects, and their reading of ``x`` in
log_softmax's rule). Here every branch meant for GPUs and TPUs runs on the CPU
(``_rows.ACCELERATOR_BRANCHES_ON_CPU`` names the platform: "tpu" takes the
default branches, "cuda" also the GPUs' own), over the edge rows of DESIGN.md and
every temperature edge, and must give what the CPU's branches give: the same
NaN and infinite entries, values and derivatives to a few roundings.
"""

from __future__ import annotations

import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

import jsoftmax
from jsoftmax import _rows

inf, nan = np.inf, np.nan
ROWS = np.array(
    [
        [0.5, -1.0, 2.0, 3.0, -0.25, 1.0],  # ordinary
        [1.0, 3.0, 3.0, -inf, 0.0, -2.0],  # tie at the max, a -inf entry
        [-inf] * 6,  # all -inf
        [inf, 1.0, -inf, 0.0, 2.0, 3.0],  # one +inf
        [inf, inf, 0.0, 1.0, -inf, 2.0],  # two +inf
        [1.0, nan, 0.0, -inf, 2.0, 3.0],  # NaN
        [40.0, 0.0, -3.0, 1.0, -inf, 2.0],  # a dominant entry (tail < 1e-17)
        [3e38, -3e38, 0.0, 1.0, 2.0, -1e9],  # a span beyond the float range
        [0.0, -1e9, -1e9, 1.0, -inf, 0.5],  # masked with -1e9
    ],
    np.float32,
)
# One temperature per row (traced, as every T: -0.0, a huge one, a negative
# one), and scalars that meet every edge row.
TEMPERATURES = {
    "per row": np.array([1.0, 0.0, -0.0, 0.7, inf, 1e-30, 1e35, 2.0, -1.0])[:, None],
    "1": 1.0,
    "0": 0.0,
    "inf": inf,
    "1e-30": 1e-30,
}
LABELS = np.array([3, 3, 0, 0, 1, 0, 0, 1, 0])


def _cotangent(dtype):
    """The cotangent pulled back through the row functions of 2-d output."""
    return jax.random.normal(jax.random.key(3), ROWS.shape, jnp.float32).astype(dtype)


def _programs(dtype, temperature):
    """Values and gradients (w.r.t. ``x`` and ``T``) of every row function."""
    x = jnp.asarray(ROWS, dtype)
    t = jnp.asarray(temperature, jnp.float32)
    w = _cotangent(dtype)
    probabilities = jax.nn.softmax(w.astype(jnp.float32) * 3).astype(dtype)

    def pulled(fn):
        def run(x, t):
            out, pullback = jax.vjp(fn, x, t)
            return (out, *pullback(jnp.ones_like(out) if out.ndim < 2 else w))

        return run

    functions = {
        "softmax": lambda x, t: jsoftmax.softmax(x, temperature=t),
        "log_softmax": lambda x, t: jsoftmax.log_softmax(x, temperature=t),
        "logsumexp": lambda x, t: jsoftmax.logsumexp(x, temperature=t),
        "integer CE": lambda x, t: jsoftmax.softmax_cross_entropy_with_integer_labels(
            x, jnp.asarray(LABELS), temperature=t
        ),
        "smoothed integer CE": lambda x, t: (
            jsoftmax.softmax_cross_entropy_with_integer_labels(
                x, jnp.asarray(LABELS), temperature=t, label_smoothing=0.1
            )
        ),
        "probability CE": lambda x, t: jsoftmax.softmax_cross_entropy(
            x, probabilities, temperature=t
        ),
    }
    # One program for all of them (one compile per choice of branches).
    outputs = jax.jit(
        lambda x, t: {name: pulled(fn)(x, t) for name, fn in functions.items()}
    )(x, t)
    return {
        name: [np.asarray(v, np.float64) for v in values]
        for name, values in outputs.items()
    }


@pytest.fixture
def accelerator_branches(monkeypatch):
    """Traces with the branches of the platform it is given ("tpu", "cuda";
    None: the CPU's own), caches cleared so that nothing compiled for one
    choice serves another."""

    def choose(platform):
        jax.clear_caches()
        monkeypatch.setattr(_rows, "ACCELERATOR_BRANCHES_ON_CPU", platform)

    yield choose
    choose(None)


def _term_sizes(t, cotangent, log_p):
    """Per part, the size of the terms whose differences the derivatives
    are: ``|g|/T`` for d/dx (log_softmax at a dominant entry, ``g/T - p·Σg/T``,
    is 0 in one program and a rounding of 1e30-sized terms in the other at
    ``T = 1e-30``), ``Σ|g|·|log p|/T`` for d/dT (tied rows: 0 up to a rounding
    of ``log p``; bfloat16: the CPU's rule reads ``p`` off the rounded ``log
    p``, the accelerators' off ``x``). Rows of one per-row ``T``, else one
    sum over the rows for a scalar one."""
    t = np.asarray(t, np.float64)
    inverse_t = np.abs(np.where(t == 0, 0, 1 / np.where(t == 0, 1, t)))
    g = np.maximum(np.abs(cotangent), 1)
    along_t = g * np.maximum(np.abs(np.where(np.isfinite(log_p), log_p, 0)), 1)
    along_t = np.sum(along_t, -1, keepdims=t.ndim > 0)
    if t.ndim == 0:
        along_t = np.sum(along_t)
    return {
        "d/dx": inverse_t * np.max(g, -1, keepdims=True),
        "d/dT": inverse_t * along_t,
    }


def _assert_same(cpu, accel, tolerance, what, floor=None):
    """Same NaN and infinite entries; finite ones within ``tolerance`` of the
    row's largest entry. With ``floor`` (per row: log_softmax's derivatives,
    whose rules differ by branch), of the larger of that and ``floor``, the
    size of the terms that the entries are differences of, plus a few
    smallest normals."""
    np.testing.assert_array_equal(np.isnan(accel), np.isnan(cpu), err_msg=what)
    np.testing.assert_array_equal(
        np.where(np.isinf(cpu), cpu, 0), np.where(np.isinf(accel), accel, 0), what
    )
    finite = np.isfinite(cpu)
    scale = np.max(np.abs(np.where(finite, cpu, 0)), axis=-1, keepdims=True)
    error = np.abs(np.where(finite, accel - cpu, 0))
    tiny = np.finfo(np.float32).tiny
    if floor is None:
        bound = tolerance * np.maximum(scale, tiny)
    else:
        # Plus a few smallest normals: where the backend flushes subnormals, a
        # term below that is 0 in one order of the arithmetic and not in the
        # other (log_softmax's d/dx at T = 1e35: entries of 1e-38 next to 1e-35).
        bound = tolerance * np.maximum(scale, floor) + 4 * tiny
    assert np.all(error <= np.broadcast_to(bound, error.shape)), what


# Every temperature with the default accelerator branches; the GPUs' own
# branches differ in how softmax's rule reads a 16-bit y and in log_softmax's
# rule on rows of up to 16384 entries (it sums exp z itself).
BRANCH_CASES = [
    (dtype, temperature, platform)
    for dtype in (jnp.float32, jnp.bfloat16)
    for temperature in TEMPERATURES
    for platform in ("tpu", "cuda")
]


@pytest.mark.parametrize(("dtype", "temperature", "platform"), BRANCH_CASES)
def test_accelerator_branches_give_the_cpu_results(
    accelerator_branches, dtype, temperature, platform
):
    t = TEMPERATURES[temperature]
    accelerator_branches(None)
    cpu = _programs(dtype, t)
    accelerator_branches(platform)
    accel = _programs(dtype, t)
    # Outputs round to the dtype; the programs may sum in another order.
    tolerance = 4 * float(jnp.finfo(dtype).eps)
    cotangent = np.asarray(_cotangent(dtype), np.float64)
    floors = _term_sizes(t, cotangent, cpu["log_softmax"][0])
    for name in cpu:
        parts = zip(("value", "d/dx", "d/dT"), cpu[name], accel[name], strict=True)
        for part, c, a in parts:
            what = f"{name} {part} T={temperature}"
            floor = floors.get(part) if name == "log_softmax" else None
            _assert_same(c, a, tolerance, what, floor)


def test_the_switch_reaches_the_accelerator_branches(accelerator_branches):
    # The CPU's program repairs flagged rows in a conditional; the
    # accelerators' is one program of selects, without one.
    x = jnp.asarray(ROWS)
    conditionals = {}
    for platform in (None, "tpu", "cuda"):
        accelerator_branches(platform)
        text = jax.jit(jsoftmax.softmax).lower(x).compile().as_text()
        conditionals[platform] = text.count(" conditional(")
    assert conditionals == {None: 1, "tpu": 0, "cuda": 0}


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_linear_cross_entropy_branches_agree(accelerator_branches, dtype):
    # 16-bit weights are moved as their bits on CPU only; the values and
    # gradients are the same either way.
    keys = jax.random.split(jax.random.key(5), 3)
    x = jax.random.normal(keys[0], (8, 16), jnp.float32).astype(dtype)
    w = (jax.random.normal(keys[1], (16, 40), jnp.float32) / 4).astype(dtype)
    labels = jax.random.randint(keys[2], (8,), 0, 40)

    def loss(x, w):
        return jsoftmax.linear_cross_entropy(
            x, w, labels, label_smoothing=0.1, block_size=16
        )

    results = {}
    for platform in (None, "tpu"):
        accelerator_branches(platform)
        value, grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(x, w)
        results[platform] = [np.asarray(v, np.float64) for v in (value, *grads)]
    for cpu, accel in zip(results[None], results["tpu"], strict=True):
        np.testing.assert_allclose(accel, cpu, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_gpu_branches_on_rows_wider_than_one_triton_kernel(accelerator_branches, dtype):
    # Rows of more than 16384 entries take the GPUs' other form of
    # log_softmax's rule (the mask by arithmetic, the forward's row sum):
    # every edge row, tiled, at every temperature edge.
    x = jnp.asarray(np.tile(ROWS, (1, 2731)), dtype)  # 9 x 16386
    g = jax.random.normal(jax.random.key(9), x.shape, jnp.float32).astype(dtype)

    def run(x, t):
        value, pullback = jax.vjp(
            lambda x, t: jsoftmax.log_softmax(x, temperature=t), x, t
        )
        return (value, *pullback(g))

    for name in ("per row", "1", "0", "inf", "1e-30"):
        t = jnp.asarray(TEMPERATURES[name], jnp.float32)
        results = {}
        for platform in (None, "cuda"):
            accelerator_branches(platform)
            outs = jax.jit(run)(x, t)
            results[platform] = [np.asarray(v, np.float64) for v in outs]
        floors = _term_sizes(
            TEMPERATURES[name], np.asarray(g, np.float64), results[None][0]
        )
        parts = zip(
            ("value", "d/dx", "d/dT"), results[None], results["cuda"], strict=True
        )
        for part, cpu, gpu in parts:
            tolerance = 4 * float(jnp.finfo(dtype).eps)
            what = f"log_softmax {part} T={name}"
            _assert_same(cpu, gpu, tolerance, what, floors.get(part))


_ENTRIES = [-np.inf, np.inf, np.nan, -1e9, -3e38, 3e38, -40.0, -1.0, 0.0, 2.0, 2.0]


@given(st.data())
# (the fixture only switches branches; each example sets both choices)
@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
def test_accelerator_branches_on_wide_rows_with_ties_and_edges(
    accelerator_branches, data
):
    # Rows up to 4097 wide drawn from ties, ±inf, NaN, -1e9 masking and a
    # span beyond the float range, at every temperature edge: the same NaN and
    # infinite entries, values and derivatives from both choices of branches.
    width = data.draw(st.sampled_from([1, 3, 4096, 4097]))
    platform = data.draw(st.sampled_from(["tpu", "cuda"]))
    values = st.sampled_from(_ENTRIES)
    rows = data.draw(hnp.arrays(np.float32, (3, width), elements=values))
    t = data.draw(st.sampled_from([1.0, 0.0, -0.0, 0.7, np.inf, 1e-30, 1e35]))
    labels = jnp.asarray(
        data.draw(st.lists(st.integers(0, width - 1), min_size=3, max_size=3))
    )
    x = jnp.asarray(rows)
    g = jax.random.normal(jax.random.key(7), x.shape, jnp.float32)

    def run(x, t):
        out = {}
        for name, fn in (("softmax", jsoftmax.softmax), ("lsm", jsoftmax.log_softmax)):
            value, pullback = jax.vjp(lambda x, t: fn(x, temperature=t), x, t)  # noqa: B023
            out[name] = (value, *pullback(g))
        loss = lambda x, t: jnp.sum(  # noqa: E731
            jsoftmax.softmax_cross_entropy_with_integer_labels(x, labels, temperature=t)
        )
        out["CE"] = (loss(x, t), *jax.grad(loss, argnums=(0, 1))(x, t))
        return out

    results = {}
    for choice in (None, platform):
        accelerator_branches(choice)
        results[choice] = jax.jit(run)(x, jnp.float32(t))
    log_p = np.asarray(results[None]["lsm"][0], np.float64)
    floors = _term_sizes(t, np.asarray(g, np.float64), log_p)
    for name in results[None]:
        parts = ("value", "d/dx", "d/dT")
        cases = zip(parts, results[None][name], results[platform][name], strict=True)
        for part, cpu, accel in cases:
            _assert_same(
                np.asarray(cpu, np.float64),
                np.asarray(accel, np.float64),
                4 * float(jnp.finfo(jnp.float32).eps),
                f"{name} {part} T={t}",
                floors.get(part) if name == "lsm" else None,
            )
