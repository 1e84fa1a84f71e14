"""OCRBench accuracy, as lmms-eval scores it.

Follows ``ocrbench_process_results`` and ``ocrbench_aggregate_accuracy`` of
lmms-eval ``lmms_eval/tasks/ocrbench/utils.py`` at commit
75571cfe0fa36ca5ec2e6aa2bb268f9d38295af3 (v0.7.2 + 41; includes #1278, HME100k
prediction case kept, and #1415, full-width ASCII folded):

* the prediction is ``strip()``-ed;
* questions from the ``HME100k`` dataset: each reference and the prediction
  are stripped, newlines turned into spaces and then ALL spaces removed; case
  is kept on both sides;
* every other question: full-width ASCII (U+FF01..U+FF5E) and the ideographic
  space folded to ASCII, lower-cased, stripped, newlines turned into spaces;
* the question scores 1 when any reference is a substring of the prediction,
  else 0 (an empty reference is a substring of everything: lmms-eval's rule).

lmms-eval reports the sum over the 1,000 questions ("Final Score (Total
1000)") and returns it divided by 1000; the case aggregate here is that mean,
so the total out of 1000 is ``1000 * ocrbench`` on the full set. The
reference field ``answers`` is a list of strings (or one string), ``dataset``
the row's source dataset name.
"""

from __future__ import annotations

from collections.abc import Iterable

from .base import MeanMetric, Reference

HME = "HME100k"


def fold_fullwidth_ascii(text: str) -> str:
    """Full-width ASCII and the ideographic space -> ASCII; nothing else changes."""
    out = []
    for char in text:
        code = ord(char)
        if 0xFF01 <= code <= 0xFF5E:
            out.append(chr(code - 0xFEE0))
        elif code == 0x3000:
            out.append(" ")
        else:
            out.append(char)
    return "".join(out)


def _hme(text: str) -> str:
    return text.strip().replace("\n", " ").replace(" ", "")


def _plain(text: str) -> str:
    return fold_fullwidth_ascii(text).lower().strip().replace("\n", " ")


def ocrbench_score(prediction: str, answers: str | Iterable[str], dataset: str) -> int:
    """1 when a reference answer occurs in the prediction under OCRBench's rule."""
    pred = prediction.strip()
    refs = [answers] if isinstance(answers, str) else list(answers)
    norm = _hme if dataset == HME else _plain
    predict = norm(pred)
    return int(any(norm(str(answer)) in predict for answer in refs))


class OCRBench(MeanMetric):
    """Share of OCRBench questions answered (x1000 = lmms-eval's final score)."""

    name = "ocrbench"

    def score(self, prediction: str, reference: Reference) -> float:
        return float(
            ocrbench_score(prediction, reference["answers"], str(reference.get("dataset") or ""))
        )
