"""Root conftest: the doctests in jsoftmax/ run with the same settings as tests/."""

import importlib.util
import os

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()

# Two test processes (pytest -n 2) share one GPU: neither takes 75% of its
# memory up front.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")

# The optional bijector modules import their library: without it installed, the
# doctest collection skips them (their tests skip with importorskip).
collect_ignore = [
    f"jsoftmax/{name}.py"
    for name in ("numpyro", "distrax")
    if importlib.util.find_spec(name) is None
]
