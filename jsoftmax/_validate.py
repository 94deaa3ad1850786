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
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out = []
    for a in axes:
        if not isinstance(a, (int, np.integer)):
            raise TypeError(
                f"{name} must be an int, a tuple of ints or None, got {axis!r}"
            )
        if not -ndim <= a < ndim:
            raise ValueError(
                f"{name}={axis!r} is out of range for an array of rank {ndim}"
            )
        out.append(int(a) % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"{name}={axis!r} repeats an axis")
    return tuple(out) if keep_order else tuple(sorted(out))


def normalize_axis(axis: int, ndim: int, name: str = "axis") -> int:
    """One non-negative axis (for maps that change the length along it)."""
    if not isinstance(axis, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {axis!r}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"{name}={axis!r} is out of range for an array of rank {ndim}")
    return int(axis) % ndim


def keepdims_shape(shape: tuple[int, ...], axes: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


def is_concrete(value) -> bool:
    return not isinstance(value, jax.core.Tracer)


def nonnegative(host: np.ndarray) -> str | None:
    """The temperature's rule: ``>= 0`` and not NaN (``inf`` allowed)."""
    if np.isnan(host).any() or (host < 0).any():
        return f"must be >= 0 and not NaN, got {_short(host)}"
    return None


def finite(host: np.ndarray) -> str | None:
    """The forward maps' scale: any finite value (0 gives the uniform point)."""
    if not np.isfinite(host).all():
        return f"must be finite, got {_short(host)}"
    return None


def finite_nonzero(host: np.ndarray) -> str | None:
    """The inverse maps' scale: finite and not 0 (they divide by it)."""
    if not np.isfinite(host).all() or (host == 0).any():
        return f"must be finite and nonzero, got {_short(host)}"
    return None


def row_parameter(value, shape, axes, dtype, name: str, *, check=nonnegative):
    """A per-row parameter (temperature, scale) as an array that broadcasts on ``x``.

    Accepts a scalar, an array broadcastable to the keepdims shape, or an array of
    exactly the reduced shape (one value per row). Returns a scalar array or an
    array of full rank, so strict rank promotion never trips. A concrete value
    that ``check`` rejects raises ``ValueError`` naming ``name``.
    """
    value = jnp.asarray(value) if not isinstance(value, jax.Array) else value
    if not jnp.issubdtype(value.dtype, jnp.floating) and not jnp.issubdtype(
        value.dtype, jnp.integer
    ):
        raise TypeError(
            f"{name} must be a real number or array, got dtype {value.dtype}"
        )
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


def broadcasts(src: tuple[int, ...], dst: tuple[int, ...]) -> bool:
    """NumPy broadcasting of ``src`` onto ``dst`` (lower rank lines up at the end)."""
    if len(src) > len(dst):
        return False
    return _broadcasts_to((1,) * (len(dst) - len(src)) + tuple(src), tuple(dst))


def _broadcasts_to(src: tuple[int, ...], dst: tuple[int, ...]) -> bool:
    if len(src) != len(dst):
        return False
    return all(s in (1, d) for s, d in zip(src, dst, strict=True))


def _short(host: np.ndarray) -> str:
    return (
        repr(host.item())
        if host.size == 1
        else f"an array with min {np.nanmin(host)!r}"
    )
