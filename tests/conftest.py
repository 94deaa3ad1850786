"""Shared fixtures.

The jax settings (8 CPU devices, x64, strict ranks) live in ../conftest.py so that
the doctests in jsoftmax/ run under them too."""

import jax
import pytest


@pytest.fixture(scope="session")
def cpu_devices():
    devices = jax.devices("cpu")
    if len(devices) < 8:
        pytest.fail(
            f"expected 8 host CPU devices, got {len(devices)}: XLA_FLAGS set too late"
        )
    return devices[:8]
