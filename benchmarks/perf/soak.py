"""On-demand soak benchmark: thousands of samples through the real HF server.

    python benchmarks/perf/soak.py [--samples 5000] [--images 5000] [--out DIR]

Writes ``--samples`` docvqa samples over ``--images`` distinct generated
page images, then runs the plugin on them (``pytest`` in a subprocess,
launcher=local, backend=hf, the built-in tiny model) and checks:

- no sample is lost: answers.csv and the results store hold every sample,
  none with an error;
- the harness process's peak RSS grows by less than 200 MB between the
  first samples and the end of the run (images are read per request and
  released, never held).

The RSS figures come from a conftest hook in the run (``ru_maxrss``) after
item 50 and at session end. Results: printed and written to
``<out>/soak.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[2]
SUITE = (REPO / "benchmarks" / "test_vlmhb.py").read_text()
RSS_PROBE = (
    "import json, resource\n"
    "seen = {'items': 0}\n"
    "def _rss_mb():\n"
    "    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
    "def pytest_runtest_logfinish(nodeid, location):\n"
    "    seen['items'] += 1\n"
    "    if seen['items'] == 50:\n"
    "        seen['early_peak_rss_mb'] = _rss_mb()\n"
    "def pytest_sessionfinish(session):\n"
    "    seen['final_peak_rss_mb'] = _rss_mb()\n"
    "    open('rss.json', 'w').write(json.dumps(seen))\n"
)
RSS_LIMIT_MB = 200.0


def write_dataset(root: Path, samples: int, images: int) -> None:
    data = root / "data"
    data.mkdir(parents=True)
    for i in range(images):
        page = Image.new("L", (224, 160), 255)
        ImageDraw.Draw(page).text((10, 10 + (i % 120)), f"INVOICE {i:05d}", fill=0)
        page.save(data / f"p{i:05d}.png")
    with (data / "m.jsonl").open("w") as manifest:
        for i in range(samples):
            manifest.write(
                json.dumps(
                    {
                        "id": f"s{i:05d}",
                        "image": f"p{i % images:05d}.png",
                        "question": "What is the invoice number?",
                        "answers": [f"INVOICE {i % images:05d}"],
                    }
                )
                + "\n"
            )
    (root / "test_vlmhb.py").write_text(SUITE)
    (root / "conftest.py").write_text(RSS_PROBE)
    (root / "models.csv").write_text("name,source\ntiny,builtin:tiny-idefics3\n")
    (root / "tasks.csv").write_text("name,type,data\nvqa,docvqa,data/m.jsonl\n")
    (root / "user_config.csv").write_text(
        "model,task,backend,launcher,concurrency,max_tokens\ntiny,vqa,hf,local,8,8\n"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--out", type=Path, default=REPO / "vlmhb-perf")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="vlmhb-soak-"))
    write_dataset(root, args.samples, args.images)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.setdefault("VLMHB_CACHE", str(REPO / ".vlmhb-cache"))
    start = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--vlmhb-config=user_config.csv",
            "--vlmhb-request-timeout=120",
        ],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    out = root / "vlmhb-results"
    with (out / "answers.csv").open(newline="", encoding="utf-8") as f:
        answers = list(csv.DictReader(f))
    stored = sum(
        1
        for p in (out / "results").glob("*.jsonl")
        for line in p.read_text().splitlines()
        if '"key"' in line
    )
    rss = json.loads((root / "rss.json").read_text())
    growth = rss["final_peak_rss_mb"] - rss["early_peak_rss_mb"]
    result = {
        "samples": args.samples,
        "images": args.images,
        "pytest_exit": proc.returncode,
        "answers_rows": len(answers),
        "stored_records": stored,
        "errors": sum(1 for r in answers if r["error"]),
        "lost": args.samples - len({r["sample_id"] for r in answers if not r["error"]}),
        "early_peak_rss_mb": round(rss["early_peak_rss_mb"], 1),
        "final_peak_rss_mb": round(rss["final_peak_rss_mb"], 1),
        "rss_growth_mb": round(growth, 1),
        "wall_s": round(wall, 1),
        "samples_per_s": round(args.samples / wall, 1),
        "run_dir": str(root),
    }
    result["passed"] = result["lost"] == 0 and stored >= args.samples and growth < RSS_LIMIT_MB
    (args.out / "soak.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    if proc.returncode != 0:
        print(proc.stdout[-3000:], proc.stderr[-3000:], sep="\n")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
