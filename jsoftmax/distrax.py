r"""The centered softmax as a distrax bijector: distributions on probability vectors.

:class:`CenteredSoftmax` maps ``eta ∈ R^n`` to the open simplex of ``n + 1``
entries, ``p = softmax([0, λ·eta])``, with the closed-form log-determinant of
:func:`jsoftmax.centered_softmax_log_det`. With ``distrax.Transformed`` it turns a
distribution on ``R^n`` (a Gaussian: the logistic normal) into one on the simplex.

Log-determinant convention: ``log|det ∂(p_1, …, p_n)/∂eta|``, densities on the
simplex with respect to Lebesgue measure on ``n`` of its ``n + 1`` coordinates (the
measure of the usual Dirichlet density; it does not matter which coordinate is
dropped). distrax's own ``Bijector`` docs leave the measure to the bijector;
TensorFlow Probability's ``SoftmaxCentered`` (also usable in distrax) measures the
simplex by its surface in ``R^{n+1}``, which adds ``½·log(n+1)``, and puts its
reference category last: ``tfb.SoftmaxCentered()(λ·eta)`` is
``CenteredSoftmax(λ)(eta)`` with entry 0 moved to the end, and its
``forward_log_det_jacobian(λ·eta)`` equals ours ``+ ½·log(n+1) - n·log|λ|``.

Needs distrax: ``pip install 'jsoftmax[distrax]'`` (``pip install -e '.[distrax]'``
in a checkout). ``import jsoftmax`` never imports this module.
"""

from __future__ import annotations

try:
    import distrax
    import jax.numpy as jnp
    import numpy as np
except ImportError as err:  # pragma: no cover - exercised without the extra
    raise ImportError(
        "jsoftmax.distrax needs distrax: pip install 'jsoftmax[distrax]' "
        f"(pip install -e '.[distrax]' in a checkout); the import failed with: {err}"
    ) from err

from jsoftmax import _validate
from jsoftmax.simplex import centered_softmax
from jsoftmax.simplex import centered_softmax_log_det
from jsoftmax.simplex import inverse_softmax

__all__ = ["CenteredSoftmax"]


def _aligned(values, scale):
    """``values`` and ``scale`` broadcast to one batch, ``scale`` in keepdims shape."""
    values = jnp.asarray(values)
    scale = jnp.asarray(scale)
    if scale.ndim == 0:
        return values, scale
    batch = jnp.broadcast_shapes(values.shape[:-1], scale.shape)
    values = jnp.broadcast_to(values, batch + values.shape[-1:])
    scale = jnp.broadcast_to(scale, batch)[..., None]
    return values, scale


class CenteredSoftmax(distrax.Bijector):
    r"""``eta ↦ softmax([0, λ·eta])``, a bijector from ``R^n`` onto the open simplex.

    .. math::
        p = \mathrm{softmax}([0, λ·eta]), \qquad
        eta_i = (\log p_i - \log p_0)/λ, \qquad
        \log|\det J| = n \log|λ| + \sum_{i=0}^{n} \log p_i

    ``event_ndims_in = event_ndims_out = 1``; the event grows from ``n`` to
    ``n + 1`` entries, entry 0 being the reference category. The forward map is
    :func:`jsoftmax.centered_softmax`, the inverse :func:`jsoftmax.inverse_softmax`
    (a zero entry of ``p`` maps to ``∓inf``), and both log-determinants are
    :func:`jsoftmax.centered_softmax_log_det` at ``eta`` (finite for every finite
    ``eta``, also where ``p`` underflows). See the module docstring for the base
    measure and the conversion from TFP's ``SoftmaxCentered``.

    Args:
      scale: ``λ``, finite and nonzero: a scalar, or an array of batch shape (one
        ``λ`` per vector). A concrete 0, NaN or infinite value raises
        ``ValueError``. An array scale is a pytree leaf (traced under ``jit``); a
        Python float is static.

    Example:
      >>> import distrax
      >>> import jax.numpy as jnp
      >>> from jsoftmax.distrax import CenteredSoftmax
      >>> jnp.set_printoptions(precision=4)
      >>> bijector = CenteredSoftmax()
      >>> p, log_det = bijector.forward_and_log_det(jnp.array([0.0, 1.0]))
      >>> print(p, bijector.inverse(p), round(float(log_det), 4))
      [0.2119 0.2119 0.5761] [0. 1.] -3.6543
      >>> normal = distrax.MultivariateNormalDiag(jnp.zeros(2))
      >>> prior = distrax.Transformed(normal, bijector)  # logistic normal
      >>> print(prior.event_shape, round(float(prior.log_prob(p)), 4))
      (3,) 1.3165
    """

    def __init__(self, scale=1.0):
        super().__init__(event_ndims_in=1, event_ndims_out=1)
        scale_array = jnp.asarray(scale)
        if not jnp.issubdtype(scale_array.dtype, jnp.floating) and not jnp.issubdtype(
            scale_array.dtype, jnp.integer
        ):
            raise TypeError(
                f"scale must be a real number or array, got dtype {scale_array.dtype}"
            )
        if _validate.is_concrete(scale):
            problem = _validate.finite_nonzero(np.asarray(scale, np.float64))
            if problem:
                raise ValueError(f"scale {problem}")
        self._scale = scale

    @property
    def scale(self):
        """``λ``."""
        return self._scale

    def forward(self, x):
        self._check_forward_input_shape(x)
        x, scale = _aligned(x, self._scale)
        return centered_softmax(x, scale)

    def inverse(self, y):
        self._check_inverse_input_shape(y)
        y, scale = _aligned(y, self._scale)
        return inverse_softmax(y, scale)

    def forward_log_det_jacobian(self, x):
        self._check_forward_input_shape(x)
        x, scale = _aligned(x, self._scale)
        return centered_softmax_log_det(x, scale)

    def inverse_log_det_jacobian(self, y):
        return -self.forward_log_det_jacobian(self.inverse(y))

    def forward_and_log_det(self, x):
        return self.forward(x), self.forward_log_det_jacobian(x)

    def inverse_and_log_det(self, y):
        x = self.inverse(y)
        return x, -self.forward_log_det_jacobian(x)

    def same_as(self, other) -> bool:
        """Whether ``other`` is a ``CenteredSoftmax`` with an equal concrete scale."""
        if not isinstance(other, CenteredSoftmax):
            return False
        if not (
            _validate.is_concrete(self._scale) and _validate.is_concrete(other._scale)
        ):
            return False
        return bool(np.array_equal(np.asarray(self._scale), np.asarray(other._scale)))
