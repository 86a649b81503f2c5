"""One real stack (Envoy + every service + the simulator, as processes) for the e2e tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from lockgate.stack.ephemeral import EphemeralStack


@pytest.fixture(scope="session")
def stack():
    with EphemeralStack(config=Path(__file__).parent / "gateway.yaml") as running:
        yield running


@pytest.fixture(scope="session")
def separate_stack():
    """A second stack in the `separate` layout: each service in its own process,
    Envoy's ext_authz asking auth about every call."""
    with EphemeralStack(config=Path(__file__).parent / "gateway.yaml",
                        extra_env={"LOCKGATE_PROCESSES": "separate"}) as running:
        yield running
