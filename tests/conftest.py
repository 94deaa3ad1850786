"""Shared fixtures; the jax settings (8 CPU devices, x64, strict ranks) are in ../conftest.py."""

import jax
import pytest


@pytest.fixture(scope="session")
def cpu_devices():
    devices = jax.devices("cpu")
    if len(devices) < 8:
        pytest.fail(f"expected 8 host CPU devices, got {len(devices)}: XLA_FLAGS set too late")
    return devices[:8]
