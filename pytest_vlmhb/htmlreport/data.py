"""The data island of report.html: every sample row, as compact JSON.

Layout (arrays keep 10,000 rows small; the page's script reads it)::

    {"cases":   [{"id", "model", "backend", "launcher", "task", "type",
                  "metrics": [...], "primary", "lower"}, ...],
     "samples": [[sample_id, category, prompt, reference, pages], ...],
     "rows":    [[case, sample, answer, raw_answer, scores, ttft_ms, e2e_ms,
                  error, outcome], ...]}

``pages`` is a list of ``[thumbnail, view]`` paths relative to report.html, or
a string saying why the sample has none; ``raw_answer`` is null when it equals
the scored ``answer``; ``scores`` follow the case's ``metrics``; ``outcome``
is ``g``, ``b`` or ``e``. Samples are shared by the cases that sent the same
sample. Every string is masked with :func:`redact.redact`, and the JSON text
has no ``<`` (written ``\\u003c``), so no answer can close the script element.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ..cases import Plan
from ..redact import redact
from ..thumbs import SampleThumbs
from .outcome import classify, lower_is_better, primary_metric

_OUTCOME_CODE = {"good": "g", "bad": "b", "error": "e"}


@dataclass(frozen=True)
class CaseMeta:
    """What the page needs to know of a case."""

    id: str
    model: str
    backend: str
    launcher: str
    task: str
    task_type: str
    metrics: tuple[str, ...]

    @property
    def primary(self) -> str | None:
        return primary_metric(self.metrics)

    def as_json(self) -> dict[str, Any]:
        primary = self.primary
        return {
            "id": self.id,
            "model": self.model,
            "backend": self.backend,
            "launcher": self.launcher,
            "task": self.task,
            "type": self.task_type,
            "metrics": list(self.metrics),
            "primary": primary,
            "lower": lower_is_better(primary) if primary else False,
        }


def case_metas(plan: Plan) -> list[CaseMeta]:
    """The plan's cases, in config-row order."""
    return [
        CaseMeta(
            id=c.id,
            model=c.model.name,
            backend=c.backend,
            launcher=c.launcher,
            task=c.task.name,
            task_type=c.task.type,
            metrics=tuple(c.task.metrics),
        )
        for c in plan.cases
    ]


def text(value: object) -> str | None:
    """A cell as text (None for a missing cell)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)


def number(value: object, digits: int = 4) -> float | None:
    """A cell as a finite rounded float (None for a missing or non-numeric cell)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return round(float(value), digits) if math.isfinite(value) else None


def _metas_for(answers: pd.DataFrame, cases: Sequence[CaseMeta]) -> list[CaseMeta]:
    """The given cases, plus one (without metrics) for each case id only the answers name."""
    out = list(cases)
    known = {c.id for c in out}
    for row in answers.drop_duplicates("case_id").to_dict("records"):
        case_id = str(row["case_id"])
        if case_id not in known:
            known.add(case_id)
            out.append(
                CaseMeta(
                    id=case_id,
                    model=str(row.get("model") or ""),
                    backend=str(row.get("backend") or ""),
                    launcher=str(row.get("launcher") or ""),
                    task=str(row.get("task") or ""),
                    task_type="",
                    metrics=(),
                )
            )
    return out


def _pages(thumbs: SampleThumbs | None) -> list[list[str]] | str:
    if thumbs is None:
        return "no document recorded for this sample"
    if thumbs.problem is not None or not thumbs.pages:
        return thumbs.problem or "no page"
    return [[page.thumb, page.view] for page in thumbs.pages]


def island(
    answers: pd.DataFrame,
    cases: Sequence[CaseMeta],
    thumbs: Mapping[tuple[str, str], SampleThumbs],
) -> dict[str, Any]:
    """The island's object from answers.csv's rows (as :func:`results.load` reads them)."""
    metas = _metas_for(answers, cases) if len(answers) else list(cases)
    index = {meta.id: i for i, meta in enumerate(metas)}
    samples: list[list[Any]] = []
    sample_index: dict[str, int] = {}
    rows: list[list[Any]] = []
    for row in answers.to_dict("records"):
        case_id, sample_id = str(row["case_id"]), str(row["sample_id"])
        meta = metas[index[case_id]]
        entry = [
            text(sample_id),
            text(row.get("category")),
            text(row.get("prompt")),
            text(row.get("reference")),
            _pages(thumbs.get((case_id, sample_id))),
        ]
        key = json.dumps([meta.task, *entry])
        position = sample_index.setdefault(key, len(samples))
        if position == len(samples):
            samples.append(entry)
        scores = {name: number(row.get(name)) for name in meta.metrics}
        error = text(row.get("error"))
        answer, raw = text(row.get("answer")), text(row.get("raw_answer"))
        rows.append(
            [
                index[case_id],
                position,
                answer,
                None if raw == answer else raw,
                [scores[name] for name in meta.metrics],
                number(row.get("ttft_ms"), 1),
                number(row.get("e2e_ms"), 1),
                error,
                _OUTCOME_CODE[classify(scores, error, meta.metrics)],
            ]
        )
    data: dict[str, Any] = masked(
        {"cases": [meta.as_json() for meta in metas], "samples": samples, "rows": rows}
    )
    return data


def masked(value: Any) -> Any:
    """``value`` with every string in it (keys included) masked by :func:`redact`."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {masked(k): masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v) for v in value]
    return value


def island_json(data: Mapping[str, Any]) -> str:
    """The island's text: compact JSON without ``<`` (so ``</script>`` cannot occur)."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False).replace(
        "<", "\\u003c"
    )


def outcome_counts(data: Mapping[str, Any]) -> dict[str, int]:
    """Rows per outcome code (``g``, ``b``, ``e``)."""
    counts = dict.fromkeys(_OUTCOME_CODE.values(), 0)
    for row in data["rows"]:
        counts[row[-1]] += 1
    return counts
