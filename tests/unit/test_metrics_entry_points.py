"""ENTRY_POINTS.txt names every built-in metric under its own ``name``."""

from __future__ import annotations

import importlib
import tomllib
from importlib.metadata import entry_points as installed_entry_points
from pathlib import Path

import pytest

import pytest_vlmhb.metrics
from pytest_vlmhb.metrics import builtin_entry_points
from pytest_vlmhb.metrics.base import Metric

METRICS_DIR = Path(pytest_vlmhb.metrics.__file__).parent
PYPROJECT = METRICS_DIR.parent.parent / "pyproject.toml"


def entry_points() -> dict[str, str]:
    """ENTRY_POINTS.txt as the package reads it (package data, not a repo path)."""
    return builtin_entry_points()


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
        "mpdocvqa_anls",
        "mpdocvqa_accuracy",
        "slidevqa_anls",
        "slidevqa_em",
        "slidevqa_f1",
    }


def test_installed_registrations_cover_every_builtin() -> None:
    """The installed distribution's vlmhb.metrics group (what the registry loads)."""
    group = {ep.name: ep.value for ep in installed_entry_points(group="vlmhb.metrics")}
    for name, target in entry_points().items():
        assert group.get(name) == target, name


def test_a_malformed_line_names_its_line_number(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "ENTRY_POINTS.txt").write_text('anls = "pytest_vlmhb.metrics.anls:ANLS"\n\nbad\n')
    monkeypatch.setattr(pytest_vlmhb.metrics, "files", lambda _: tmp_path)
    with pytest.raises(ValueError, match=r"ENTRY_POINTS.txt:3: .*'bad'"):
        builtin_entry_points()


def test_pyproject_agrees() -> None:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    assert project["entry-points"]["vlmhb.metrics"] == entry_points()


def test_pyproject_ships_entry_points_txt() -> None:
    data = tomllib.loads(PYPROJECT.read_text())["tool"]["setuptools"]["package-data"]
    assert "ENTRY_POINTS.txt" in data.get("pytest_vlmhb.metrics", [])
