"""Shared setup of the project's own tests.

All tests share one vlmhb cache (the HF backend venv, the tiny model, the
synthetic documents), so the venv is built once per machine, not once per
pytester run (pytester moves HOME, which would otherwise move the cache).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("VLMHB_CACHE", str(REPO / ".vlmhb-cache"))
# No test reaches the model hub: hub ids resolve from offline caches the tests make.
os.environ["HF_HUB_OFFLINE"] = "1"

#: What pytest-xdist sets in its workers' environment.
OUTER_XDIST_VARIABLES = (
    "PYTEST_XDIST_WORKER",
    "PYTEST_XDIST_WORKER_COUNT",
    "PYTEST_XDIST_TESTRUNUID",
)


@pytest.fixture(autouse=True)
def _nested_runs_are_sessions_of_their_own(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pytester run is a session of its own, not a worker of the xdist run this
    test may run in: the outer worker's ``PYTEST_XDIST_*`` variables are dropped
    (a nested controller that inherits ``PYTEST_XDIST_WORKER=gw1`` looks like gw1)."""
    if "pytester" in request.fixturenames:
        for name in OUTER_XDIST_VARIABLES:
            monkeypatch.delenv(name, raising=False)
