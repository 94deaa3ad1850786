"""jsoftmax: fast, numerically trustworthy softmax functions for JAX."""

from jsoftmax import optim
from jsoftmax.binary import sigmoid_binary_cross_entropy
from jsoftmax.gumbel import gumbel_softmax
from jsoftmax.linear_ce import linear_cross_entropy
from jsoftmax.losses import softmax_cross_entropy
from jsoftmax.losses import softmax_cross_entropy_with_integer_labels
from jsoftmax.sampling import sample
from jsoftmax.segment import segment_logsumexp
from jsoftmax.segment import segment_softmax
from jsoftmax.simplex import centered_softmax
from jsoftmax.simplex import centered_softmax_hessian
from jsoftmax.simplex import centered_softmax_jacobian
from jsoftmax.simplex import centered_softmax_log_det
from jsoftmax.simplex import inverse_log_softmax
from jsoftmax.simplex import inverse_softmax
from jsoftmax.simplex import log_centered_softmax
from jsoftmax.simplex import softmax_normalize
from jsoftmax.softmax import log_softmax
from jsoftmax.softmax import logsumexp
from jsoftmax.softmax import softmax
from jsoftmax.softmax import softmax_jacobian

__version__ = "0.1.0"

__all__ = [
    "centered_softmax",
    "centered_softmax_hessian",
    "centered_softmax_jacobian",
    "centered_softmax_log_det",
    "gumbel_softmax",
    "inverse_log_softmax",
    "inverse_softmax",
    "linear_cross_entropy",
    "log_centered_softmax",
    "log_softmax",
    "logsumexp",
    "optim",
    "sample",
    "segment_logsumexp",
    "segment_softmax",
    "sigmoid_binary_cross_entropy",
    "softmax",
    "softmax_cross_entropy",
    "softmax_cross_entropy_with_integer_labels",
    "softmax_jacobian",
    "softmax_normalize",
]
