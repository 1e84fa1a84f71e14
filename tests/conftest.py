"""Shared setup of the project's own tests.

All tests share one vlmhb cache (the HF backend venv, the tiny model, the
synthetic documents), so the venv is built once per machine, not once per
pytester run (pytester moves HOME, which would otherwise move the cache).
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("VLMHB_CACHE", str(REPO / ".vlmhb-cache"))
