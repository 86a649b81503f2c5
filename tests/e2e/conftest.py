"""One real stack (Envoy + every service + the simulator, as processes) for the e2e tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from lockgate.stack.ephemeral import EphemeralStack


@pytest.fixture(scope="session")
def stack():
    with EphemeralStack(config=Path(__file__).parent / "gateway.yaml") as running:
        yield running
