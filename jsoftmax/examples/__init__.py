"""Optax examples that solve simplex-constrained problems through the unconstrained map.

``python -m jsoftmax.examples`` runs them all; ``python -m jsoftmax.examples.NAME``
runs one (``--steps``, ``--seed``, ``--plot FILE``). Each module is short and meant
to be copied from; each checks its answer against an independent reference.
"""

from jsoftmax.examples import bandit
from jsoftmax.examples import entropy
from jsoftmax.examples import mixture
from jsoftmax.examples import multinomial
from jsoftmax.examples import portfolio
from jsoftmax.examples import temperature
from jsoftmax.examples import why_softmax

ALL = (multinomial, portfolio, mixture, temperature, entropy, bandit, why_softmax)
