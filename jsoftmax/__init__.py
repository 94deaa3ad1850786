"""jsoftmax: fast, numerically trustworthy softmax functions for JAX."""

from jsoftmax.sampling import sample
from jsoftmax.softmax import log_softmax
from jsoftmax.softmax import logsumexp
from jsoftmax.softmax import softmax
from jsoftmax.softmax import softmax_jacobian

__version__ = "0.1.0"

__all__ = [
    "log_softmax",
    "logsumexp",
    "sample",
    "softmax",
    "softmax_jacobian",
]
