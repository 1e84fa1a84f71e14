"""ENTRY_POINTS.txt names every built-in metric under its own ``name``."""

from __future__ import annotations

import importlib
import re
import tomllib
from pathlib import Path

import pytest

import pytest_vlmhb.metrics
from pytest_vlmhb.metrics.base import Metric

METRICS_DIR = Path(pytest_vlmhb.metrics.__file__).parent
PYPROJECT = METRICS_DIR.parent.parent / "pyproject.toml"
LINE = re.compile(r'^(\w+) = "([\w.]+):(\w+)"$')


def entry_points() -> dict[str, str]:
    lines = (METRICS_DIR / "ENTRY_POINTS.txt").read_text().splitlines()
    found = {}
    for line in filter(None, lines):
        match = LINE.match(line)
        assert match, line
        found[match[1]] = f"{match[2]}:{match[3]}"
    return found


def load(target: str) -> type[Metric]:
    module, _, attr = target.partition(":")
    cls = getattr(importlib.import_module(module), attr)
    assert isinstance(cls, type) and issubclass(cls, Metric)
    return cls


@pytest.mark.parametrize(("name", "target"), sorted(entry_points().items()))
def test_entry_point_resolves_to_a_metric_of_that_name(name: str, target: str) -> None:
    metric = load(target)()  # instantiable: no abstract method left
    assert metric.name == name


def test_all_builtin_metrics_listed() -> None:
    assert set(entry_points()) == {
        "anls",
        "exact_match",
        "relaxed_accuracy",
        "cer",
        "wer",
        "f1",
        "kie_precision",
        "kie_recall",
        "accuracy",
        "ocrbench",
        "ccocr_kie_f1",
    }


def test_pyproject_agrees_when_present() -> None:
    if not PYPROJECT.exists():
        pytest.skip("no pyproject.toml")
    project = tomllib.loads(PYPROJECT.read_text()).get("project", {})
    group = project.get("entry-points", {}).get("vlmhb.metrics")
    if group is None:
        pytest.skip("pyproject has no vlmhb.metrics entry points yet")
    assert group == entry_points()
