r"""The centered softmax as a numpyro transform: priors on probability vectors.

:class:`CenteredSoftmaxTransform` maps ``eta ∈ R^n`` to the open simplex of
``n + 1`` entries, ``p = softmax([0, λ·eta])``, with the closed-form log-determinant
of :func:`jsoftmax.centered_softmax_log_det`. Use it where numpyro's
``StickBreakingTransform`` would go: to put a density on ``eta`` whose image on the
simplex is a chosen prior, or to let NUTS move in ``R^n`` while the model reads
``p``. Unlike the stick-breaking map it is symmetric in the non-reference
categories, never clips, and its log-determinant stays finite where ``p``
underflows.

Log-determinant convention: ``log|det ∂(p_1, …, p_n)/∂eta|``, the density on the
simplex with respect to Lebesgue measure on ``n`` of its ``n + 1`` coordinates. That
is the base measure of numpyro's ``Dirichlet.log_prob`` and of its
``StickBreakingTransform`` (which keeps the first ``n`` coordinates; the value does
not depend on which coordinate is dropped, since the dropped one is an affine
function of the rest with unit Jacobian). So a ``TransformedDistribution`` built
on this transform and a ``Dirichlet`` evaluate densities on the same footing.
TensorFlow Probability's ``SoftmaxCentered`` adds ``½·log(n+1)`` and puts its
reference category last.

Needs numpyro: ``pip install 'jsoftmax[numpyro]'`` (``pip install -e '.[numpyro]'``
in a checkout). ``import jsoftmax`` never imports this module.
"""

from __future__ import annotations

try:
    import jax.numpy as jnp
    import numpy as np
    from numpyro.distributions import constraints
    from numpyro.distributions.transforms import Transform
    from numpyro.distributions.util import array_equiv
except ImportError as err:  # pragma: no cover - exercised without the extra
    raise ImportError(
        "jsoftmax.numpyro needs numpyro: pip install 'jsoftmax[numpyro]' "
        f"(pip install -e '.[numpyro]' in a checkout); the import failed with: {err}"
    ) from err

from jsoftmax import _validate
from jsoftmax.simplex import centered_softmax
from jsoftmax.simplex import centered_softmax_log_det
from jsoftmax.simplex import inverse_softmax

__all__ = ["CenteredSoftmaxTransform"]


def _aligned(values, scale):
    """``values`` and ``scale`` broadcast to one batch, ``scale`` in keepdims shape.

    A batched transform (``scale`` of shape ``B``) applies to events of batch
    shape ``B`` or broadcasting with it, as numpyro's transforms do.
    """
    values = jnp.asarray(values)
    scale = jnp.asarray(scale)
    if scale.ndim == 0:
        return values, scale
    batch = jnp.broadcast_shapes(values.shape[:-1], scale.shape)
    values = jnp.broadcast_to(values, batch + values.shape[-1:])
    scale = jnp.broadcast_to(scale, batch)[..., None]
    return values, scale


class CenteredSoftmaxTransform(Transform):
    r"""``eta ↦ softmax([0, λ·eta])``: ``real_vector`` onto the ``simplex``.

    .. math::
        p = \mathrm{softmax}([0, λ·eta]), \qquad
        eta_i = (\log p_i - \log p_0)/λ, \qquad
        \log|\det J| = n \log|λ| + \sum_{i=0}^{n} \log p_i

    The forward map is :func:`jsoftmax.centered_softmax`, the inverse
    :func:`jsoftmax.inverse_softmax` (a zero entry of ``p`` maps to ``∓inf``, as
    the boundary has no finite coordinates), the log-determinant
    :func:`jsoftmax.centered_softmax_log_det` evaluated at ``eta`` (finite for
    every finite ``eta``). Entry 0 of ``p`` is the reference category. See the
    module docstring for the base measure (numpyro's ``Dirichlet``'s).

    The transform is a pytree whose one leaf is ``scale``, so it can be passed
    through ``jit`` and ``vmap``; two transforms are equal when their scales are.

    Args:
      scale: ``λ``, finite and nonzero: a scalar, or an array of batch shape for
        a batch of transforms (one ``λ`` per vector). A concrete 0, NaN or
        infinite value raises ``ValueError``.

    Example:
      >>> import jax.numpy as jnp
      >>> import numpyro.distributions as dist
      >>> from jsoftmax.numpyro import CenteredSoftmaxTransform
      >>> jnp.set_printoptions(precision=4)
      >>> t = CenteredSoftmaxTransform()
      >>> p = t(jnp.array([0.0, 1.0]))
      >>> print(p, t.inv(p))
      [0.2119 0.2119 0.5761] [0. 1.]
      >>> # A logistic-normal prior: a density on the simplex, like Dirichlet's.
      >>> prior = dist.TransformedDistribution(
      ...     dist.Normal(jnp.zeros(2), 1.0).to_event(1), t)
      >>> print(prior.event_shape, round(float(prior.log_prob(p)), 4))
      (3,) 1.3165
    """

    domain = constraints.real_vector
    codomain = constraints.simplex

    def __init__(self, scale=1.0):
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
        self.scale = scale

    def __call__(self, x):
        x, scale = _aligned(x, self.scale)
        return centered_softmax(x, scale)

    def _inverse(self, y):
        y, scale = _aligned(y, self.scale)
        return inverse_softmax(y, scale)

    def log_abs_det_jacobian(self, x, y, intermediates=None):
        """``log|det ∂(p_1..p_n)/∂eta|`` at ``x`` (``y`` is not needed)."""
        del y, intermediates
        x, scale = _aligned(x, self.scale)
        return centered_softmax_log_det(x, scale)

    def forward_shape(self, shape):
        if len(shape) < 1:
            raise ValueError("CenteredSoftmaxTransform needs at least one axis")
        batch = jnp.broadcast_shapes(shape[:-1], jnp.shape(self.scale))
        return batch + (shape[-1] + 1,)

    def inverse_shape(self, shape):
        if len(shape) < 1 or shape[-1] < 1:
            raise ValueError(
                f"CenteredSoftmaxTransform's inverse needs at least one entry on "
                f"the last axis, got shape {tuple(shape)}"
            )
        batch = jnp.broadcast_shapes(shape[:-1], jnp.shape(self.scale))
        return batch + (shape[-1] - 1,)

    def tree_flatten(self):
        return (self.scale,), (("scale",), {})

    def eq(self, other, static: bool = False):
        if not isinstance(other, CenteredSoftmaxTransform):
            return False
        return array_equiv(self.scale, other.scale, static=static)

    def __repr__(self):
        return f"CenteredSoftmaxTransform(scale={self.scale!r})"
