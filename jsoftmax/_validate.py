"""Eager argument checks shared by the public functions.

Everything here runs on Python values and static shapes only: it never forces a
traced value to the host. A check that needs a value (``temperature >= 0``) is
done only when the value is concrete; a traced bad value is left to the private
cores, which turn it into NaN in the affected row.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

Axis = int | Sequence[int] | None

_SIXTEEN_BIT = (jnp.dtype(jnp.float16), jnp.dtype(jnp.bfloat16))
REDUCTIONS = ("none", "mean", "sum")  # the losses' reduction argument


def as_float_array(x, name: str) -> jax.Array:
    """``x`` as an array of a floating dtype; integers and bools promote like jax.nn."""
    x = jnp.asarray(x)
    if jnp.issubdtype(x.dtype, jnp.complexfloating):
        raise TypeError(
            f"{name} must be real, got dtype {x.dtype}: pass the real part or the "
            "magnitude (jsoftmax has no complex softmax)"
        )
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(float_dtype_for(x.dtype))
    return x


def float_dtype_for(dtype) -> jnp.dtype:
    """The float dtype jax.nn computes integer or bool input in: float64 for
    64-bit integers (with x64 on), float32 for every narrower one, x64 or not."""
    dtype = jnp.dtype(dtype)
    if dtype.itemsize == 8:
        return jax.dtypes.canonicalize_dtype(jnp.float64)
    return jnp.dtype(jnp.float32)


def compute_dtype(dtype) -> jnp.dtype:
    """float16 and bfloat16 are computed in float32; wider floats as they are."""
    dtype = jnp.dtype(dtype)
    return jnp.dtype(jnp.float32) if dtype in _SIXTEEN_BIT else dtype


def normalize_axes(
    axis: Axis, ndim: int, name: str = "axis", *, keep_order: bool = False
) -> tuple[int, ...]:
    """A tuple of non-negative axes, sorted unless ``keep_order``; ``None``
    means every axis."""
    if axis is None:
        return tuple(range(ndim))
    axis = _concrete_axis(axis, name, "an int, a tuple of ints or None")
    axes = tuple(axis) if _is_sequence(axis) else (axis,)
    out = []
    for a in axes:
        _check_axis_entry(a, axis, name, "an int, a tuple of ints or None")
        if not -ndim <= a < ndim:
            raise ValueError(
                f"{name}={plain(axis)} is out of range for an array of rank {ndim}"
            )
        out.append(int(a) % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"{name}={plain(axis)} repeats an axis")
    return tuple(out) if keep_order else tuple(sorted(out))


def normalize_axis(axis: int, ndim: int, name: str = "axis") -> int:
    """One non-negative axis (for maps that change the length along it)."""
    axis = _concrete_axis(axis, name, "one int")
    if _is_sequence(axis):
        raise TypeError(
            f"{name} must be one int here (this function works along a single "
            f"axis), got {plain(axis)}"
        )
    _check_axis_entry(axis, axis, name, "an int")
    if not -ndim <= axis < ndim:
        raise ValueError(
            f"{name}={plain(axis)} is out of range for an array of rank {ndim}"
        )
    return int(axis) % ndim


def _concrete_axis(axis, name: str, expected: str):
    """``axis`` with a concrete integer array turned into an int or a list of
    ints; a traced axis (one passed as an argument of a jitted function) raises
    a ``TypeError`` that says how to make it static."""
    if isinstance(axis, jax.core.Tracer) or (
        isinstance(axis, (tuple, list))
        and any(isinstance(a, jax.core.Tracer) for a in axis)
    ):
        raise TypeError(
            f"{name} is a traced value: it decides which axes are reduced, so it "
            "must be known when the function is traced. When jitting a jsoftmax "
            f"function, mark {name} static, e.g. "
            f'jax.jit(jsoftmax.softmax, static_argnames="{name}"), or bind it: '
            f"jax.jit(functools.partial(jsoftmax.softmax, {name}=1)); in your own "
            f"jitted function, make the argument that carries {name} static the "
            "same way"
        )
    if isinstance(axis, (np.ndarray, jax.Array)):
        if not jnp.issubdtype(axis.dtype, jnp.integer) or axis.ndim > 1:
            raise TypeError(
                f"{name} must be {expected}, got an array of dtype {axis.dtype} "
                f"and shape {axis.shape}"
            )
        return np.asarray(axis).tolist()
    return axis


def _is_sequence(axis) -> bool:
    return isinstance(axis, Sequence) and not isinstance(axis, (str, bytes))


def _check_axis_entry(a, axis, name: str, expected: str) -> None:
    """Raise a ``TypeError`` naming ``name`` unless ``a`` is an int."""
    if isinstance(a, (int, np.integer)):
        return
    message = f"{name} must be {expected}, got {plain(axis)}"
    if isinstance(a, (float, np.floating)) and float(a).is_integer():
        fixed = (
            int(a)
            if a is axis
            else tuple(
                int(b) if isinstance(b, (float, np.floating)) else b for b in axis
            )
        )
        message += f": pass {name}={plain(fixed)}"
    raise TypeError(message)


def keepdims_shape(shape: tuple[int, ...], axes: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


def is_concrete(value) -> bool:
    return not isinstance(value, jax.core.Tracer)


def nonnegative(host: np.ndarray) -> str | None:
    """The temperature's rule: ``>= 0`` and not NaN (``inf`` allowed)."""
    bad = np.isnan(host) | (host < 0)
    if bad.any():
        return f"must be >= 0 and not NaN, got {_short(host, bad)}"
    return None


def finite(host: np.ndarray) -> str | None:
    """The forward maps' scale: any finite value (0 gives the uniform point)."""
    bad = ~np.isfinite(host)
    if bad.any():
        return f"must be finite, got {_short(host, bad)}"
    return None


def finite_nonzero(host: np.ndarray) -> str | None:
    """The inverse maps' scale: finite and not 0 (they divide by it)."""
    bad = ~np.isfinite(host) | (host == 0)
    if bad.any():
        return f"must be finite and nonzero, got {_short(host, bad)}"
    return None


def real_array(value, name: str):
    """``value`` as an array of a real (float or integer) dtype. ``None``, a
    string or anything else that is not a number raises ``TypeError`` naming
    ``name`` (with a hint for strings that spell a number)."""
    if value is None or isinstance(value, (str, bytes)):
        raise TypeError(
            f"{name} must be a real number or array, got {plain(value)}"
            + _number_hint(value, name)
        )
    if not isinstance(value, jax.Array):
        try:
            value = jnp.asarray(value)
        except (TypeError, ValueError) as error:
            raise TypeError(
                f"{name} must be a real number or array, got {plain(value):.80}"
            ) from error
    if not jnp.issubdtype(value.dtype, jnp.floating) and not jnp.issubdtype(
        value.dtype, jnp.integer
    ):
        raise TypeError(
            f"{name} must be a real number or array, got dtype {value.dtype}"
        )
    return value


def row_parameter(value, shape, axes, dtype, name: str, *, check=nonnegative):
    """A per-row parameter (temperature, scale) as an array that broadcasts on ``x``.

    Accepts a scalar, an array broadcastable to the keepdims shape, or an array of
    exactly the reduced shape (one value per row). Returns a scalar array or an
    array of full rank, so strict rank promotion never trips. A concrete value
    that ``check`` rejects raises ``ValueError`` naming ``name``.
    """
    value = real_array(value, name)
    if is_concrete(value):
        problem = check(np.asarray(value, dtype=np.float64))
        if problem:
            raise ValueError(f"{name} {problem}")
    kd = keepdims_shape(tuple(shape), axes)
    reduced = tuple(n for i, n in enumerate(shape) if i not in axes)
    if value.ndim == 0:
        pass
    elif value.shape == reduced and value.ndim != len(shape):
        value = jnp.expand_dims(value, axes)
    elif value.ndim == len(shape) and _broadcasts_to(value.shape, kd):
        pass
    else:
        raise ValueError(
            f"{name} of shape {value.shape} is neither a scalar, nor one value per row "
            f"(shape {reduced}), nor broadcastable to the keepdims shape {kd}"
        )
    return value.astype(dtype)


def where_mask(where, shape, name: str = "where"):
    """``where`` as a boolean array broadcast to ``shape`` (or None)."""
    if where is None:
        return None
    where = jnp.asarray(where)
    if where.dtype != jnp.bool_:
        raise TypeError(f"{name} must be a boolean array, got dtype {where.dtype}")
    # NumPy broadcasting, as jax.nn: a lower-rank mask lines up with the
    # trailing axes (a (K,) mask applies to every row of a (B, K) x).
    padded = (1,) * (len(shape) - where.ndim) + tuple(where.shape)
    if where.ndim > len(shape) or not _broadcasts_to(padded, tuple(shape)):
        raise ValueError(
            f"{name} of shape {where.shape} does not broadcast to {tuple(shape)}"
        )
    return jnp.broadcast_to(where, shape)


def class_mask(where, shape):
    """The losses' ``where``: a per-class mask of the logits' rank.

    A lower-rank mask is ambiguous here (``[batch]`` would silently act as a
    per-class mask when ``batch == K``), so it raises.
    """
    if where is not None and jnp.ndim(where) != len(shape):
        raise ValueError(
            f"where of shape {jnp.shape(where)} must have the rank of logits "
            f"{tuple(shape)}: it masks classes, per example. For a mask shared by "
            "every example add the batch axes (where[None, :]); to leave whole "
            "examples out use ignore_index, or reduction='none' and weight the "
            "per-example losses yourself."
        )
    return where_mask(where, shape)


def check_label_smoothing(label_smoothing) -> float:
    """The losses' ``label_smoothing`` as a float in ``[0, 1]``."""
    if not is_concrete(label_smoothing):
        raise TypeError("label_smoothing must be a Python float, not a traced value")
    alpha = float(label_smoothing)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {alpha!r}")
    return alpha


def check_reduction(reduction) -> str:
    """The losses' ``reduction``: one of ``REDUCTIONS``."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    return reduction


def broadcasts(src: tuple[int, ...], dst: tuple[int, ...]) -> bool:
    """NumPy broadcasting of ``src`` onto ``dst`` (lower rank lines up at the end)."""
    if len(src) > len(dst):
        return False
    return _broadcasts_to((1,) * (len(dst) - len(src)) + tuple(src), tuple(dst))


def _broadcasts_to(src: tuple[int, ...], dst: tuple[int, ...]) -> bool:
    if len(src) != len(dst):
        return False
    return all(s in (1, d) for s, d in zip(src, dst, strict=True))


def _number_hint(value, name: str) -> str:
    """How to fix a ``None`` or string where a number belongs."""
    if isinstance(value, str):
        try:
            return f": pass the number, {name}={float(value)!r}"
        except ValueError:
            pass
    return f": pass a number ({name}=1.0 leaves it unscaled)"


def plain(value) -> str:
    """``value`` as a user wrote it: ``-1.0``, ``(0, 1)``, not ``np.float32(-1.0)``."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (tuple, list)):
        inner = ", ".join(plain(v) for v in value)
        if isinstance(value, list):
            return f"[{inner}]"
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    return repr(value)


def _short(host: np.ndarray, bad: np.ndarray | None = None) -> str:
    """A rejected value for a message: the scalar itself, the first entry of an
    array that ``bad`` flags, or (without ``bad``) the array's range."""
    if host.size == 1:
        return plain(host.reshape(()).item())
    if bad is None:
        if np.isnan(host).any():
            return f"an array of shape {host.shape} holding NaN"
        return (
            f"an array of shape {host.shape} with min {plain(host.min().item())} "
            f"and max {plain(host.max().item())}"
        )
    index = tuple(int(i) for i in np.argwhere(bad)[0])
    return (
        f"{plain(host[index].item())} at index {plain(index)} of an array of shape "
        f"{host.shape}"
    )
