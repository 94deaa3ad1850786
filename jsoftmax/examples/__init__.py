"""Optax examples that solve simplex-constrained problems through the unconstrained map.

``python -m jsoftmax.examples`` runs them all (``--help`` lists them);
``python -m jsoftmax.examples NAME...`` runs some; ``python -m jsoftmax.examples.NAME``
runs one (``--steps``, ``--seed``, ``--plot FILE``). Each module is short and meant
to be copied from; each checks its answer against an independent reference.

Importing this package imports none of the examples: ``ALL`` (the modules, in
``NAMES`` order) is imported on first use. That keeps ``python -m
jsoftmax.examples.NAME`` free of runpy's "found in sys.modules" warning, which a
package that imports its own submodules triggers.
"""

import importlib

# One entry per example module, in the order `python -m jsoftmax.examples` runs them.
NAMES = (
    "multinomial",
    "portfolio",
    "mixture",
    "temperature",
    "entropy",
    "bandit",
    "why_softmax",
    "language_model",
)


def load(name: str):
    """The example module ``jsoftmax.examples.<name>`` (``name`` in ``NAMES``)."""
    if name not in NAMES:
        raise ValueError(f"unknown example {name!r}; the examples are {NAMES}")
    return importlib.import_module(f"{__name__}.{name}")


def __getattr__(attribute: str):
    if attribute == "ALL":
        return tuple(load(name) for name in NAMES)
    if attribute in NAMES:  # `jsoftmax.examples.bandit` without importing it first
        return load(attribute)
    raise AttributeError(f"module {__name__!r} has no attribute {attribute!r}")
