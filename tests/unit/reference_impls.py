"""Verbatim copies of the reference evaluators the built-in metrics must match.

Test-only. The functions between the ``BEGIN/END verbatim`` markers are copied
unchanged (code, comments, indentation); only the typed wrappers at the bottom
are ours. Sources:

- ANLS: EvolvingLMMs-Lab/lmms-eval, ``lmms_eval/api/metrics.py``
  (``levenshtein_distance``, ``anls``; main at commit 75571cfe0fa36ca5ec2e6aa2bb268f9d38295af3),
  https://github.com/EvolvingLMMs-Lab/lmms-eval/blob/main/lmms_eval/api/metrics.py
  itself from Qwen-VL ``eval_mm/infographicsvqa_eval.py``, the RRC DocVQA /
  InfographicVQA official evaluation. The ``@register_metric`` decorator is
  left out (it only registers the function in lmms-eval).
- Reasoning removal: EvolvingLMMs-Lab/lmms-eval, ``lmms_eval/api/reasoning.py``
  (``strip_reasoning_tags``; main at commit 75571cfe0fa36ca5ec2e6aa2bb268f9d38295af3),
  applied by its evaluator to every generated answer with the command line's
  default pairs ``[["<think>", "</think>"], ["<analysis>", "</analysis>"]]``.
- Relaxed accuracy: google-research/pix2struct, ``pix2struct/metrics.py``
  (``relaxed_correctness`` with its nested ``_to_float``; main at commit
  945f27e936c9464d9d7c133f1bd1f4f383be9e99),
  https://github.com/google-research/pix2struct/blob/main/pix2struct/metrics.py
  (lmms-eval's ``lmms_eval/tasks/chartqa/utils.py`` has the same body with the
  arguments in (prediction, target) order).
"""

# mypy: ignore-errors
# ruff: noqa

from typing import Optional


# ---- BEGIN verbatim: lmms-eval lmms_eval/api/metrics.py ---------------------------------
# fmt: off
def levenshtein_distance(s1, s2):
    if len(s1) > len(s2):
        s1, s2 = s2, s1

    distances = range(len(s1) + 1)
    for i2, c2 in enumerate(s2):
        distances_ = [i2 + 1]
        for i1, c1 in enumerate(s1):
            if c1 == c2:
                distances_.append(distances[i1])
            else:
                distances_.append(1 + min((distances[i1], distances[i1 + 1], distances_[-1])))
        distances = distances_
    return distances[-1]


def anls(
    references,
    predictions,
    thresh_hold=0.5,
):
    """https://github.com/QwenLM/Qwen-VL/blob/master/eval_mm/infographicsvqa_eval.py"""
    values = []
    # Unwrap predictions if it's a nested list
    pred = predictions[0] if isinstance(predictions[0], str) else predictions[0][0]

    for answer in references:
        # preprocess both the answers - gt and prediction
        gt_answer = " ".join(answer.strip().lower().split())
        det_answer = " ".join(pred.strip().lower().split())

        dist = levenshtein_distance(gt_answer, det_answer)
        length = max(len(answer.upper()), len(pred.upper()))
        values.append(0.0 if length == 0 else float(dist) / float(length))

    question_result = 1 - min(values)

    if question_result < thresh_hold:
        question_result = 0
    return {"anls": question_result}
# fmt: on
# ---- END verbatim -----------------------------------------------------------------------


# ---- BEGIN verbatim: pix2struct pix2struct/metrics.py -----------------------------------
# fmt: off
def relaxed_correctness(target: str,
                        prediction: str,
                        max_relative_change: float = 0.05) -> bool:
  """Calculates relaxed correctness.

  The correctness tolerates certain error ratio defined by max_relative_change.
  See https://arxiv.org/pdf/2203.10244.pdf, end of section 5.1:
  “Following Methani et al. (2020), we use a relaxed accuracy measure for the
  numeric answers to allow a minor inaccuracy that may result from the automatic
  data extraction process. We consider an answer to be correct if it is within
  5% of the gold answer. For non-numeric answers, we still need an exact match
  to consider an answer to be correct.”

  Args:
    target: Target string.
    prediction: Predicted string.
    max_relative_change: Maximum relative change.

  Returns:
    Whether the prediction was correct given the specified tolerance.
  """

  def _to_float(text: str) -> Optional[float]:
    try:
      if text.endswith("%"):
        # Convert percentages to floats.
        return float(text.rstrip("%")) / 100.0
      else:
        return float(text)
    except ValueError:
      return None

  prediction_float = _to_float(prediction)
  target_float = _to_float(target)
  if prediction_float is not None and target_float:
    relative_change = abs(prediction_float - target_float) / abs(target_float)
    return relative_change <= max_relative_change
  else:
    return prediction.lower() == target.lower()
# fmt: on
# ---- END verbatim -----------------------------------------------------------------------


# ---- BEGIN verbatim: lmms-eval lmms_eval/api/reasoning.py -------------------------------
# fmt: off
from typing import List


def strip_reasoning_tags(text: str, tag_pairs: List[List[str]]) -> str:
    """Remove reasoning tag blocks from model output.

    Args:
        text: Raw model output string
        tag_pairs: List of [start_tag, end_tag] pairs,
                   e.g. [["<think>", "</think>"], ["<reasoning>", "</reasoning>"]]

    Returns:
        Cleaned text with reasoning blocks removed.

    Note:
        Tag matching is case-sensitive (``<THINK>`` is not treated as ``<think>``),
        and an unclosed opening tag with no matching closing tag is left untouched
        and passes through unstripped.
    """
    result = text
    for start_tag, end_tag in tag_pairs:
        while start_tag in result and end_tag in result:
            start = result.find(start_tag)
            end = result.find(end_tag, start)
            if start != -1 and end != -1:
                result = result[:start] + result[end + len(end_tag) :]
            else:
                break
        # Some chat templates prefill the opening reasoning tag in the prompt,
        # so the model completion may contain only the closing tag plus the
        # final answer. In that case, keep the suffix after the final closing
        # tag so downstream scorers see the answer instead of the reasoning.
        if end_tag in result and start_tag not in result:
            result = result.rsplit(end_tag, 1)[-1]
    return result.strip()
# fmt: on
# ---- END verbatim -----------------------------------------------------------------------


# ---- typed wrappers (ours) --------------------------------------------------------------
def reference_anls(prediction: str, answers: list[str]) -> float:
    """lmms-eval's per-question ANLS (the ``anls`` key of its result)."""
    return float(anls(answers, [prediction])["anls"])


def reference_relaxed_accuracy(prediction: str, answers: list[str]) -> float:
    """pix2struct's per-question score: max over the targets (``aggregate_metrics``)."""
    return float(max(relaxed_correctness(t, prediction) for t in answers))


#: lmms-eval's command-line default ``--reasoning_tags``.
LMMS_EVAL_DEFAULT_REASONING_TAGS = [["<think>", "</think>"], ["<analysis>", "</analysis>"]]


def reference_strip_reasoning(text: str) -> str:
    """lmms-eval's reasoning removal with its command line's default tag pairs."""
    return strip_reasoning_tags(text, LMMS_EVAL_DEFAULT_REASONING_TAGS)
