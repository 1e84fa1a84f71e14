"""What the installed-but-inactive plugin costs every pytest run (not collected by pytest).

    python benchmarks/perf/import_cost.py [--rounds 30]

Runs ``pytest --collect-only -q`` on a folder with one trivial test, with the
plugin loaded (no ``--vlmhb-config``: inactive) and with ``-p no:vlmhb``,
interleaved round by round (these 2-core machines are noisy). Reports the
median of the per-round differences and their ratio, and ``-X importtime``'s
cumulative import time of ``pytest_vlmhb.plugin``. Target: under 20 ms.
Results are printed and written to ``<out>/import_cost.json``.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _run(folder: Path, *extra: str) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *extra],
        cwd=folder,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - start


def import_time_ms() -> float:
    """Cumulative ``-X importtime`` of the plugin module after pytest is imported."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import pytest; import pytest_vlmhb.plugin"],
        capture_output=True,
        text=True,
        check=True,
    )
    for line in proc.stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \| pytest_vlmhb\.plugin$", line)
        if match:
            return int(match.group(1)) / 1000.0
    raise RuntimeError("pytest_vlmhb.plugin not in the -X importtime output")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--out", type=Path, default=Path("vlmhb-perf"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "test_one.py").write_text("def test_one():\n    pass\n")
        _run(folder)  # warm the file cache
        on, off = [], []
        for round_no in range(args.rounds):
            pair = [("on", ()), ("off", ("-p", "no:vlmhb"))]
            for label, extra in pair if round_no % 2 == 0 else reversed(pair):
                (on if label == "on" else off).append(_run(folder, *extra))
    deltas = [(a - b) * 1000.0 for a, b in zip(on, off, strict=True)]
    imports = sorted(import_time_ms() for _ in range(9))
    result = {
        "rounds": args.rounds,
        "pytest_with_plugin_ms_median": round(statistics.median(on) * 1000.0, 1),
        "pytest_without_plugin_ms_median": round(statistics.median(off) * 1000.0, 1),
        "added_ms_median": round(statistics.median(deltas), 1),
        "ratio_median": round(statistics.median(a / b for a, b in zip(on, off, strict=True)), 3),
        "plugin_import_ms_median": round(statistics.median(imports), 1),
        "target_ms": 20.0,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "import_cost.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
