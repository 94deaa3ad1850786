"""Error messages of the public functions: each names the argument and the fix.

A wrong call should fail at once with a message a user can act on: which argument,
what it got (as the user wrote it: ``-1.0``, not ``np.float32(-1.0)``) and what to
pass instead. And the public signatures show public types only.
"""

import builtins
import functools
import inspect
import re
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jsoftmax
from jsoftmax import optim
from jsoftmax import vocab_parallel

KEY = jax.random.key(0)
X = jnp.array([[0.5, -1.0, 2.0], [3.0, 0.0, -0.5]])


def _np_softmax(x, axis):
    x = np.asarray(x, np.float64)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


# Every public function that takes an axis, called with it positionally where the
# signature allows it (as jax.jit would trace it) and by keyword otherwise.
AXIS_CALLS = {
    "softmax": lambda x, a: jsoftmax.softmax(x, a),
    "log_softmax": lambda x, a: jsoftmax.log_softmax(x, a),
    "logsumexp": lambda x, a: jsoftmax.logsumexp(x, a),
    "softmax_jacobian": lambda x, a: jsoftmax.softmax_jacobian(x, axis=a),
    "sample": lambda x, a: jsoftmax.sample(KEY, x, a),
    "gumbel_softmax": lambda x, a: jsoftmax.gumbel_softmax(KEY, x, a),
    "centered_softmax": lambda x, a: jsoftmax.centered_softmax(x, axis=a),
    "log_centered_softmax": lambda x, a: jsoftmax.log_centered_softmax(x, axis=a),
    "inverse_softmax": lambda x, a: jsoftmax.inverse_softmax(x, axis=a),
    "inverse_log_softmax": lambda x, a: jsoftmax.inverse_log_softmax(x, axis=a),
    "centered_softmax_log_det": lambda x, a: jsoftmax.centered_softmax_log_det(
        x, axis=a
    ),
    "centered_softmax_jacobian": lambda x, a: jsoftmax.centered_softmax_jacobian(
        x, axis=a
    ),
    "centered_softmax_hessian": lambda x, a: jsoftmax.centered_softmax_hessian(
        x, axis=a
    ),
    "softmax_normalize": lambda x, a: jsoftmax.softmax_normalize(x, a),
    "softmax_cross_entropy": lambda x, a: jsoftmax.softmax_cross_entropy(
        x, jnp.full(x.shape, 1.0 / 3), a
    ),
    "softmax_cross_entropy_with_integer_labels": lambda x, a: (
        jsoftmax.softmax_cross_entropy_with_integer_labels(x, jnp.array([0, 2]), a)
    ),
}


# --------------------------------------------------------------------------- #
# A traced axis: jax.jit(f)(x, 1)
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("name", sorted(AXIS_CALLS))
def test_traced_axis_says_to_make_it_static(name):
    call = AXIS_CALLS[name]
    with pytest.raises(TypeError) as info:
        jax.jit(call)(X, 1)
    message = str(info.value)
    assert "axis is a traced value" in message
    assert 'static_argnames="axis"' in message
    assert "functools.partial" in message
    assert "iteration over a 0-d array" not in message


def test_traced_axis_of_softmax_itself():
    # The exact call from the issue, and a tuple axis (each entry becomes a tracer).
    for axis in (1, (0, 1)):
        with pytest.raises(TypeError, match=re.escape("jax.jit(jsoftmax.softmax")):
            jax.jit(jsoftmax.softmax)(X, axis)


def test_the_fixes_the_traced_axis_message_gives_work():
    expected = _np_softmax(X, 0)
    static = jax.jit(jsoftmax.softmax, static_argnames="axis")(X, 0)
    bound = jax.jit(functools.partial(jsoftmax.softmax, axis=0))(X)
    np.testing.assert_allclose(static, expected, rtol=1e-6)
    np.testing.assert_allclose(bound, expected, rtol=1e-6)
    # A tuple axis is hashable, so it can be static too.
    both = jax.jit(jsoftmax.softmax, static_argnames="axis")(X, (0, 1))
    np.testing.assert_allclose(both, _np_softmax(X.reshape(-1), 0).reshape(2, 3))


# --------------------------------------------------------------------------- #
# Axis of the wrong type or range
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("name", sorted(AXIS_CALLS))
@pytest.mark.parametrize("axis", [-1.0, np.float32(-1.0)], ids=["float", "float32"])
def test_float_axis_names_axis_and_the_int_to_pass(name, axis):
    with pytest.raises(TypeError) as info:
        AXIS_CALLS[name](jnp.abs(X) + 0.1, axis)
    message = str(info.value)
    assert "axis must be" in message
    assert message.endswith("got -1.0: pass axis=-1")
    assert "np." not in message


def test_float_entry_in_axis_tuple():
    with pytest.raises(TypeError, match=re.escape("got (0, 1.0): pass axis=(0, 1)")):
        jsoftmax.softmax(X, (0, 1.0))
    # A non-integral float has no int to suggest; the message still names axis.
    with pytest.raises(TypeError, match=r"^axis must be an int, .* got 1\.5$"):
        jsoftmax.softmax(X, 1.5)
    with pytest.raises(TypeError, match=re.escape("axis must be an int, a tuple")):
        jsoftmax.softmax(X, "1")


@pytest.mark.parametrize(
    "name",
    ["softmax_jacobian", "sample", "gumbel_softmax", "centered_softmax"],
)
def test_tuple_axis_where_one_axis_is_taken(name):
    with pytest.raises(TypeError, match=re.escape("axis must be one int here")):
        AXIS_CALLS[name](X, (0, 1))


def test_out_of_range_axis_prints_the_plain_int():
    with pytest.raises(ValueError) as info:
        jsoftmax.softmax(X, np.int64(5))
    assert str(info.value) == "axis=5 is out of range for an array of rank 2"
    with pytest.raises(ValueError, match=re.escape("axis=(0, -2) repeats an axis")):
        jsoftmax.softmax(X, (0, np.int32(-2)))


def test_concrete_integer_array_axis_is_accepted():
    np.testing.assert_allclose(
        jsoftmax.softmax(X, jnp.array(0)), _np_softmax(X, 0), rtol=1e-6
    )
    np.testing.assert_allclose(
        jsoftmax.softmax(X, np.array([0, 1])),
        _np_softmax(X.reshape(-1), 0).reshape(2, 3),
        rtol=1e-6,
    )
    with pytest.raises(TypeError, match="axis must be .* got an array of dtype"):
        jsoftmax.softmax(X, jnp.array(1.0))


# --------------------------------------------------------------------------- #
# Temperature and scale that are not numbers
# --------------------------------------------------------------------------- #
TEMPERATURE_CALLS = {
    "softmax": lambda t: jsoftmax.softmax(X, temperature=t),
    "log_softmax": lambda t: jsoftmax.log_softmax(X, temperature=t),
    "logsumexp": lambda t: jsoftmax.logsumexp(X, temperature=t),
    "softmax_jacobian": lambda t: jsoftmax.softmax_jacobian(X, temperature=t),
    "sample": lambda t: jsoftmax.sample(KEY, X, temperature=t),
    "gumbel_softmax": lambda t: jsoftmax.gumbel_softmax(KEY, X, temperature=t),
    "softmax_cross_entropy": lambda t: jsoftmax.softmax_cross_entropy(
        X, jnp.full(X.shape, 1.0 / 3), temperature=t
    ),
    "softmax_cross_entropy_with_integer_labels": lambda t: (
        jsoftmax.softmax_cross_entropy_with_integer_labels(
            X, jnp.array([0, 2]), temperature=t
        )
    ),
}


@pytest.mark.parametrize("name", sorted(TEMPERATURE_CALLS))
def test_string_temperature_names_the_number_to_pass(name):
    with pytest.raises(TypeError) as info:
        TEMPERATURE_CALLS[name]("1")
    assert str(info.value) == (
        "temperature must be a real number or array, got '1': pass the number, "
        "temperature=1.0"
    )


@pytest.mark.parametrize("name", sorted(TEMPERATURE_CALLS))
def test_none_temperature_names_the_default(name):
    with pytest.raises(TypeError) as info:
        TEMPERATURE_CALLS[name](None)
    message = str(info.value)
    assert message.startswith("temperature must be a real number or array, got None")
    assert "temperature=1.0" in message


def test_other_non_numbers_name_the_argument():
    with pytest.raises(TypeError, match="^temperature must be a real number.*'abc'"):
        jsoftmax.softmax(X, temperature="abc")
    with pytest.raises(TypeError, match=r"^temperature must be a real number"):
        jsoftmax.softmax(X, temperature=object())
    with pytest.raises(TypeError, match=r"^scale must be a real number.*scale=1\.0"):
        jsoftmax.centered_softmax(X, None)


def test_rejected_values_print_plainly():
    with pytest.raises(ValueError) as info:
        jsoftmax.softmax(X, temperature=np.float32(-1.0))
    assert str(info.value) == "temperature must be >= 0 and not NaN, got -1.0"
    # An array points at its first bad entry, not at np.float64(...) of its min.
    with pytest.raises(ValueError) as info:
        jsoftmax.softmax(X, temperature=jnp.array([2.0, -3.0]))
    assert str(info.value) == (
        "temperature must be >= 0 and not NaN, got -3.0 at index (1,) of an array "
        "of shape (2,)"
    )
    with pytest.raises(ValueError) as info:
        jsoftmax.inverse_softmax(jnp.abs(X), np.float64(0.0))
    assert str(info.value) == "scale must be finite and nonzero, got 0.0"
    with pytest.raises(ValueError) as info:
        jsoftmax.centered_softmax(X, jnp.array([1.0, np.inf]))
    assert str(info.value) == (
        "scale must be finite, got inf at index (1,) of an array of shape (2,)"
    )
    with pytest.raises(ValueError) as info:
        jsoftmax.softmax_cross_entropy_with_integer_labels(
            X, jnp.array([0, 1, 2]), np.int64(-1)
        )
    assert "without axis -1)" in str(info.value)
    with pytest.raises(TypeError) as info:
        jsoftmax.softmax_cross_entropy_with_integer_labels(
            X, jnp.array([0, 1]), ignore_index=np.float32(1.0)
        )
    assert str(info.value) == "ignore_index must be an int or None, got 1.0"
    with pytest.raises(ValueError) as info:
        jsoftmax.sample(KEY, X, shape=(np.int64(4), np.int64(3)))
    assert str(info.value) == "shape=(4, 3) must end with the batch shape (2,)"


# --------------------------------------------------------------------------- #
# sigmoid_binary_cross_entropy: labels that do not broadcast
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("labels_shape", [(4,), (3, 2), (2, 2, 3)])
def test_sigmoid_bce_shape_mismatch_names_both_shapes(labels_shape):
    with pytest.raises(ValueError) as info:
        jsoftmax.sigmoid_binary_cross_entropy(X, jnp.ones(labels_shape))
    assert str(info.value).startswith(
        f"labels of shape {labels_shape} do not broadcast to logits of shape (2, 3): "
        "give labels the shape of logits"
    )


def test_sigmoid_bce_broadcasting_labels_still_work():
    labels = np.array([1.0, 0.0, 0.5])
    x = np.asarray(X, np.float64)
    expected = labels * np.log1p(np.exp(-x)) + (1 - labels) * np.log1p(np.exp(x))
    np.testing.assert_allclose(
        jsoftmax.sigmoid_binary_cross_entropy(X, jnp.asarray(labels)),
        expected,
        rtol=1e-12,
    )


# --------------------------------------------------------------------------- #
# Public signatures show public types
# --------------------------------------------------------------------------- #
PUBLIC_FUNCTIONS = [
    getattr(jsoftmax, name)
    for name in jsoftmax.__all__
    if callable(getattr(jsoftmax, name))
] + [
    optim.minimize,
    optim.natural_gradient,
    vocab_parallel.vocab_parallel_integer_cross_entropy,
]


def _public(obj) -> bool:
    """Not a module-level alias: ``Axis = int | Sequence[int] | None`` shows up in
    a signature as just ``Axis``, which a reader cannot look up."""
    return not isinstance(obj, (types.UnionType, types.GenericAlias))


@pytest.mark.parametrize("function", PUBLIC_FUNCTIONS, ids=lambda f: f.__name__)
def test_signature_shows_public_types(function):
    signature = inspect.signature(function)
    annotations = [p.annotation for p in signature.parameters.values()]
    annotations.append(signature.return_annotation)
    namespace = vars(inspect.getmodule(function))
    for annotation in annotations:
        if annotation is inspect.Parameter.empty:
            continue
        assert isinstance(annotation, str), annotation  # postponed annotations
        for dotted in re.findall(r"[A-Za-z_][\w.]*", annotation):
            if dotted == "None":
                continue
            head, *rest = dotted.split(".")
            assert not any(part.startswith("_") for part in (head, *rest)), (
                f"{function.__name__}: {annotation}"
            )
            obj = namespace.get(head, getattr(builtins, head, None))
            assert obj is not None, f"{function.__name__}: unknown name {head}"
            for part in rest:
                obj = getattr(obj, part)
            assert _public(obj), f"{function.__name__}: {dotted} in {annotation}"


def test_axis_annotations_read_as_what_they_take():
    for function in (
        jsoftmax.softmax,
        jsoftmax.log_softmax,
        jsoftmax.logsumexp,
        jsoftmax.softmax_cross_entropy,
        jsoftmax.softmax_normalize,
    ):
        annotation = inspect.signature(function).parameters["axis"].annotation
        assert annotation == "int | Sequence[int] | None", function.__name__


# --------------------------------------------------------------------------- #
# Segment, linear cross-entropy, Gumbel and optim arguments
# --------------------------------------------------------------------------- #
SEGMENT_X = jnp.array([1.0, 2.0, 3.0])
SEGMENT_IDS = jnp.array([0, 0, 1])
LINEAR = (jnp.ones((2, 3)), jnp.ones((3, 4)), jnp.array([0, 3]))
MORE_TEMPERATURE_CALLS = {
    "segment_softmax": lambda t: jsoftmax.segment_softmax(
        SEGMENT_X, SEGMENT_IDS, temperature=t
    ),
    "segment_logsumexp": lambda t: jsoftmax.segment_logsumexp(
        SEGMENT_X, SEGMENT_IDS, temperature=t
    ),
    "linear_cross_entropy": lambda t: jsoftmax.linear_cross_entropy(
        *LINEAR, temperature=t
    ),
    "vocab_parallel_integer_cross_entropy": lambda t: (
        vocab_parallel.vocab_parallel_integer_cross_entropy(
            X, jnp.array([0, 2]), None, temperature=t
        )
    ),
}


@pytest.mark.parametrize("name", sorted(MORE_TEMPERATURE_CALLS))
def test_none_temperature_of_segment_and_linear_functions(name):
    with pytest.raises(TypeError) as info:
        MORE_TEMPERATURE_CALLS[name](None)
    assert str(info.value) == (
        "temperature must be a real number or array, got None: pass a number "
        "(temperature=1.0 leaves it unscaled)"
    )


@pytest.mark.parametrize("name", sorted(MORE_TEMPERATURE_CALLS))
def test_string_and_object_temperature_of_segment_and_linear_functions(name):
    with pytest.raises(TypeError) as info:
        MORE_TEMPERATURE_CALLS[name]("2")
    assert str(info.value) == (
        "temperature must be a real number or array, got '2': pass the number, "
        "temperature=2.0"
    )
    with pytest.raises(TypeError, match=r"^temperature must be a real number"):
        MORE_TEMPERATURE_CALLS[name](object())
    with pytest.raises(TypeError, match=r"^temperature must be .* got dtype bool"):
        MORE_TEMPERATURE_CALLS[name](jnp.array(True))


@pytest.mark.parametrize("name", sorted(MORE_TEMPERATURE_CALLS))
def test_numeric_temperature_still_accepted(name):
    # The new checks reject only non-numbers: numpy scalars and ints still work.
    value = MORE_TEMPERATURE_CALLS[name](np.float32(2.0))
    assert bool(jnp.all(jnp.isfinite(value)))
    value = MORE_TEMPERATURE_CALLS[name](2)
    assert bool(jnp.all(jnp.isfinite(value)))


def test_numpy_scalars_print_plainly_in_more_messages():
    with pytest.raises(TypeError) as info:
        jsoftmax.linear_cross_entropy(*LINEAR, block_size=np.float32(2.0))
    assert str(info.value) == "block_size must be an int or None, got 2.0"
    with pytest.raises(ValueError) as info:
        jsoftmax.linear_cross_entropy(*LINEAR, z_loss=np.float32(-1.0))
    assert str(info.value) == "z_loss must be >= 0, got -1.0"
    with pytest.raises(ValueError) as info:
        jsoftmax.linear_cross_entropy(*LINEAR, logit_softcap=np.float64(-2.0))
    assert str(info.value) == "logit_softcap must be > 0, got -2.0"
    with pytest.raises(TypeError) as info:
        jsoftmax.linear_cross_entropy(*LINEAR, ignore_index=np.float32(-100.0))
    assert str(info.value) == "ignore_index must be an int or None, got -100.0"
    with pytest.raises(TypeError) as info:
        vocab_parallel.vocab_parallel_integer_cross_entropy(
            X, jnp.array([0, 2]), None, ignore_index=np.float64(-1.0)
        )
    assert str(info.value) == "ignore_index must be an int or None, got -1.0"
    with pytest.raises(TypeError) as info:
        jsoftmax.segment_softmax(
            SEGMENT_X, SEGMENT_IDS, indices_are_sorted=np.bool_(True)
        )
    assert str(info.value) == "indices_are_sorted must be a bool, got True"
    with pytest.raises(TypeError) as info:
        jsoftmax.gumbel_softmax(KEY, X, hard=np.float32(1.0))
    assert str(info.value) == "hard must be a bool, got 1.0"
    with pytest.raises(TypeError) as info:
        jsoftmax.gumbel_softmax(KEY, X, hard=np.bool_(True))
    assert str(info.value) == "hard must be a bool, got True"


def _quadratic(eta):
    return jnp.sum(eta**2)


def test_minimize_numpy_scalars_print_plainly():
    import optax

    with pytest.raises(ValueError) as info:
        optim.minimize(
            _quadratic, jnp.ones(2), optax.sgd(0.1), max_steps=np.int64(3), gtol=0.0
        )
    assert str(info.value) == "max_steps must be a non-negative int, got 3"
    with pytest.raises(ValueError) as info:
        optim.minimize(
            _quadratic, jnp.ones(2), optax.sgd(0.1), max_steps=3, gtol=np.float32(-1)
        )
    assert str(info.value) == "gtol must be >= 0, got -1.0"


@pytest.mark.parametrize("axis", [(0, 1), [0], None, 1.0])
def test_natural_gradient_rejects_a_non_int_axis_when_built(axis):
    with pytest.raises(TypeError) as info:
        optim.natural_gradient(axis=axis)
    message = str(info.value)
    assert message.startswith(f"axis must be one int, got {_plain(axis)}: ")
    assert "natural_gradient" in message


def test_natural_gradient_int_axes_still_work():
    eta = jnp.zeros((2, 3))
    g = jnp.array([[1.0, -1.0, 0.0], [0.5, 0.0, -0.5]])
    rows = optim.natural_gradient(axis=np.int64(-1))
    columns = optim.natural_gradient(axis=0)
    step_rows, _ = rows.update(g, rows.init(eta), eta)
    step_columns, _ = columns.update(g.T, columns.init(eta.T), eta.T)
    np.testing.assert_allclose(step_rows, step_columns.T, rtol=1e-12)


def _plain(axis):
    from jsoftmax import _validate

    return _validate.plain(axis)
