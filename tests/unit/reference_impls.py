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
- lmms-eval's path from a generated answer to a per-sample score (main at commit
  75571cfe0fa36ca5ec2e6aa2bb268f9d38295af3), for the presets scored like it:
  ``lmms_eval/evaluator.py`` lines 1225-1235 (reasoning removal, then
  ``task.process_results``; the block keeps its indentation inside a wrapper of
  ours that stands for the two loops around it), ``lmms_eval/api/task.py``
  lines 1585-1736 (``ConfigurableTask.process_results``, which strips every
  ``generate_until`` answer first; its ``@retry`` decorator is left out),
  ``lmms_eval/tasks/chartqa/utils.py`` (``chartqa_process_results`` and its own
  ``relaxed_correctness``), ``lmms_eval/tasks/ocrbench/utils.py``
  (``_fold_fullwidth_ascii``, ``ocrbench_process_results``),
  ``lmms_eval/tasks/cc_ocr/utils.py`` (``cc_ocr_process_results`` and its
  helpers), ``lmms_eval/tasks/cc_ocr/evaluators/common.py`` and
  ``kie_metric.py`` (the F1 path of ``compute_track``).
"""

# mypy: ignore-errors
# ruff: noqa

import json
import re
from typing import Any, Dict, List, Optional, Union


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

#: pix2struct's function; lmms-eval's ChartQA copy below takes the name ``relaxed_correctness``.
pix2struct_relaxed_correctness = relaxed_correctness


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
    return float(max(pix2struct_relaxed_correctness(t, prediction) for t in answers))


#: lmms-eval's command-line default ``--reasoning_tags``.
LMMS_EVAL_DEFAULT_REASONING_TAGS = [["<think>", "</think>"], ["<analysis>", "</analysis>"]]


def reference_strip_reasoning(text: str) -> str:
    """lmms-eval's reasoning removal with its command line's default tag pairs."""
    return strip_reasoning_tags(text, LMMS_EVAL_DEFAULT_REASONING_TAGS)


# ---- lmms-eval's scoring pipeline (verbatim blocks in wrappers of ours) ----------------
class _Config:
    """Ours: the fields of a task config that ``process_results`` reads (the presets'
    yaml files set no ``doc_to_choice``)."""

    def __init__(self, process_results=None):
        self.process_results = process_results
        self.doc_to_choice = None


class _Instance:
    """Ours: the two fields of an ``Instance`` the evaluator's scoring loop touches."""

    def __init__(self, filtered_resps):
        self.filtered_resps = filtered_resps
        self.raw_filtered_resps = {}


class ConfigurableTaskScoring:
    """Ours: what ``ConfigurableTask.process_results`` reads of a ``generate_until``
    task (its config's ``process_results``, or its metric functions and target)."""

    OUTPUT_TYPE = "generate_until"

    def __init__(self, process_results=None, metrics=None, target_field=None, multiple_target=0):
        self.config = _Config(process_results)
        self._metric_fn_list = dict(metrics or {})
        self._metric_fn_kwargs = {name: {} for name in self._metric_fn_list}
        self._target_field = target_field
        self.multiple_target = multiple_target

    def doc_to_target(self, doc):
        return doc[self._target_field]

    # ---- BEGIN verbatim: lmms-eval lmms_eval/api/task.py L1585-1736 -------------------------
    # fmt: off
    def process_results(self, doc, results, full_docs=None):
        if self.OUTPUT_TYPE in ("generate_until", "generate_visual_cot"):
            if isinstance(results, list) and isinstance(results[0], list):
                results = [res.strip() if res is not None else "" for res in results[0]]
            else:
                results = [res.strip() if res is not None else "" for res in results]

        kwargs = {}
        if full_docs is not None:
            kwargs["full_docs"] = full_docs
        if callable(self.config.process_results):
            return self.config.process_results(doc, results, **kwargs)

        result_dict = {}
        use_metric = list(self._metric_fn_list.keys())
        if self.OUTPUT_TYPE == "loglikelihood":
            ll, is_greedy = results
            return {
                **({"perplexity": ll} if "perplexity" in use_metric else {}),
                **({"acc": int(is_greedy)} if "acc" in use_metric else {}),
            }
        elif self.OUTPUT_TYPE == "multiple_choice":
            lls, is_greedy = zip(*results)

            # retrieve choices in List[str] form, to compute choice lengths, etc.
            choices = self.doc_to_choice(doc)
            completion_len = np.array([float(len(i)) for i in choices])

            if 2 * len(choices) == len(lls) and "acc_mutual_info" in self._metric_fn_list.keys():
                # then we are doing mutual info.
                # this stores the "dryrun" / unconditional answer loglikelihoods
                lls_unconditional = lls[1::2]
                assert len(lls_unconditional) == len(choices)
                # and this stores our "regular" conditional loglikelihoods
                lls = lls[::2]

            # Warning :
            # Here may be different from original lm-eval
            # since we return the actual loss in many model loglikelihood
            # we just use the argmin here
            pred = np.argmin(lls)
            pred_norm = np.argmin(lls / completion_len)

            if self.multiple_input:
                gold = self.doc_to_text(doc)
            else:
                gold = self.doc_to_target(doc)

            gold_index_error = False
            if type(gold) is list:
                gold = [i if i < len(choices) else -100 for i in gold]
                if -100 in gold:
                    gold_index_error = True
            else:
                if type(gold) is int:
                    gold = gold if gold < len(choices) else -100
                elif type(gold) is str:
                    gold = choices.index(gold) if gold in choices else -100

                if gold == -100:
                    gold_index_error = True

            if gold_index_error:
                eval_logger.warning(f"Label index was not in within range of available choices," f"Sample:\n\n{doc}\n\n")

            if self.multiple_target:
                acc = 1.0 if pred in gold else 0.0
                acc_norm = 1.0 if pred_norm in gold else 0.0
                exact_match = int(any([is_greedy[i] if i != -100 else 0 for i in gold]))
            else:
                acc = 1.0 if pred == gold else 0.0
                acc_norm = 1.0 if pred_norm == gold else 0.0
                # TODO: this gets score of 0 on arc_challenge for pythia-70m. need to test that this works properly
                exact_match = int(is_greedy[gold]) if gold != -100 else 0

            result_dict = {
                **({"acc": acc} if "acc" in use_metric else {}),
                **({"f1": (gold, pred)} if "f1" in use_metric else {}),
                **({"mcc": (gold, pred)} if "mcc" in use_metric else {}),
                **({"acc_norm": acc_norm} if "acc_norm" in use_metric else {}),
                **({"exact_match": exact_match} if "exact_match" in use_metric else {}),
            }

            if "acc_mutual_info" in use_metric:
                lls_mutual_info = [ll_c - ll_u for ll_c, ll_u in zip(lls, lls_unconditional)]
                acc_mutual_info = 1.0 if np.argmax(lls_mutual_info) == gold else 0.0
                result_dict["acc_mutual_info"] = acc_mutual_info

        elif "generate_until" in self.OUTPUT_TYPE:
            gold = self.doc_to_target(doc)
            result = [res.strip() if res is not None else "" for res in results]
            if self.config.doc_to_choice is not None:
                # If you set doc_to_choice,
                # it assumes that doc_to_target returns a number.
                choices = self.doc_to_choice(doc)
                gold = choices[gold]
            # we expect multiple_targets to be a list.
            elif self.multiple_target:
                gold = list(gold)
            # elif type(gold) != type(result):
            #     # cast gold to the same type as result
            #     gold = type(result)(gold)

            for metric in self._metric_fn_list.keys():
                if self.multiple_target and metric != "anls":
                    # in the case where we have multiple targets,
                    # return true if any are true
                    # TODO: this may break for multipLe_target, non zero-or-1 metrics
                    scores = []
                    if not isinstance(gold, list):
                        # sometimes, a multiple_target dataset has exceptions where one doc has only one string answer
                        # print(gold)
                        gold = [gold]
                    for gold_option in gold:
                        try:
                            result_score = self._metric_fn_list[metric](
                                references=[gold_option],
                                predictions=result,
                                **self._metric_fn_kwargs[metric],
                            )
                        except TypeError:  # TODO: this is hacky and I don't want to do it
                            result_score = self._metric_fn_list[metric]([gold_option, result])
                        if isinstance(result_score, dict):
                            # TODO: this handles the case where HF evaluate returns a dict.
                            result_score = result_score[metric]
                        scores.append(result_score)
                    if any(scores):
                        result_score = 1.0
                    else:
                        result_score = 0.0
                else:
                    if not isinstance(gold, list):
                        gold = [gold]
                    try:
                        result_score = self._metric_fn_list[metric](
                            references=gold,
                            predictions=result,
                            **self._metric_fn_kwargs[metric],
                        )
                    except TypeError:  # needed for now in order to use a different interface between our own metrics and HF Evaluate metrics
                        result_score = self._metric_fn_list[metric]([gold, result])
                    if isinstance(result_score, dict):
                        # TODO: this handles the case where HF evaluate returns a dict.
                        result_score = result_score[metric]
                result_dict[metric] = result_score
        else:
            raise ValueError(
                f"Passed invalid output_type '{self.OUTPUT_TYPE}' ! Please use one of ",
                "'loglikelihood','generate_until', 'generate_until_multi_round', 'generate_until_agentic', or 'multiple_choice'",
            )

        return result_dict


# fmt: on
# ---- END verbatim -----------------------------------------------------------------------


def lmms_eval_score_doc(task, doc, requests, filter_key, reasoning_tags):
    """Ours: ``evaluate()``'s scoring of one document under one filter key (the three
    loops stand for those around the block: tasks, filter keys, documents)."""
    for task_output in [task]:
        for filter_key in [filter_key]:
            for doc_id, doc in [(0, doc)]:
                # ---- BEGIN verbatim: lmms-eval lmms_eval/evaluator.py L1225-1235 ------------------------
                # fmt: off
                # Strip reasoning tags before scoring
                if reasoning_tags is not None:
                    for req in requests:
                        raw_resp = req.filtered_resps[filter_key]
                        req.raw_filtered_resps[filter_key] = raw_resp
                        if isinstance(raw_resp, str):
                            req.filtered_resps[filter_key] = strip_reasoning_tags(raw_resp, reasoning_tags)
                        elif isinstance(raw_resp, list):
                            req.filtered_resps[filter_key] = [strip_reasoning_tags(r, reasoning_tags) if isinstance(r, str) else r for r in raw_resp]

                metrics = task.process_results(doc, [req.filtered_resps[filter_key] for req in requests])
                # fmt: on
                # ---- END verbatim -----------------------------------------------------------------------
                return metrics


# ---- BEGIN verbatim: lmms-eval lmms_eval/tasks/chartqa/utils.py L12-62 ------------------
# fmt: off
def chartqa_process_results(doc, results):
    pred = results[0]
    type = doc["type"]
    score = relaxed_correctness(pred, doc["answer"])
    score = 1.0 if score else 0.0
    return_dict = {"relaxed_overall": score}
    if type == "human_test":
        return_dict["relaxed_human_split"] = score
    else:
        return_dict["relaxed_augmented_split"] = score
    return return_dict


def relaxed_correctness(prediction, target, max_relative_change: float = 0.05) -> bool:
    """Calculates relaxed correctness.

    The correctness tolerates certain error ratio defined by max_relative_change.
    See https://arxiv.org/pdf/2203.10244.pdf, end of section 5.1:
    “Following Methani et al. (2020), we use a relaxed accuracy measure for the
    numeric answers to allow a minor inaccuracy that may result from the automatic
    data extraction process. We consider an answer to be correct if it is within
    5% of the gold answer. For non-numeric answers, we still need an exact match
    to consider an answer to be correct.”

    This funcion is taken from https://github.com/QwenLM/Qwen-VL/blob/34b4c0ee7b07726371b960911f249fe61b362ca3/eval_mm/evaluate_vqa.py#L113
    Args:
      target: List of target string.
      prediction: List of predicted string.
      max_relative_change: Maximum relative change.

    Returns:
      Whether the prediction was correct given the specified tolerance.
    """

    def _to_float(text: str):
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


# ---- BEGIN verbatim: lmms-eval lmms_eval/tasks/ocrbench/utils.py L20-31 -----------------
# fmt: off
def _fold_fullwidth_ascii(text: str) -> str:
    """Fold fullwidth ASCII and ideographic space without broader NFKC changes."""
    folded = []
    for char in text:
        codepoint = ord(char)
        if 0xFF01 <= codepoint <= 0xFF5E:
            folded.append(chr(codepoint - 0xFEE0))
        elif codepoint == 0x3000:
            folded.append(" ")
        else:
            folded.append(char)
    return "".join(folded)
# fmt: on
# ---- END verbatim -----------------------------------------------------------------------


# ---- BEGIN verbatim: lmms-eval lmms_eval/tasks/ocrbench/utils.py L47-79 -----------------
# fmt: off
def ocrbench_process_results(doc, results):
    pred = results[0].strip()
    gt_ans = doc["answer"]
    dataset_name = doc["dataset"]

    score = 0
    if dataset_name == "HME100k":
        if type(gt_ans) == list:
            for j in range(len(gt_ans)):
                answer = gt_ans[j].strip().replace("\n", " ").replace(" ", "")
                predict = pred.strip().replace("\n", " ").replace(" ", "")
                if answer in predict:
                    score = 1
        else:
            answer = gt_ans.strip().replace("\n", " ").replace(" ", "")
            predict = pred.strip().replace("\n", " ").replace(" ", "")
            if answer in predict:
                score = 1
    else:
        if type(gt_ans) == list:
            for j in range(len(gt_ans)):
                answer = _fold_fullwidth_ascii(gt_ans[j]).lower().strip().replace("\n", " ")
                predict = _fold_fullwidth_ascii(pred).lower().strip().replace("\n", " ")
                if answer in predict:
                    score = 1
        else:
            answer = _fold_fullwidth_ascii(gt_ans).lower().strip().replace("\n", " ")
            predict = _fold_fullwidth_ascii(pred).lower().strip().replace("\n", " ")
            if answer in predict:
                score = 1
    return {
        "ocrbench_accuracy": {"question_type": doc["question_type"], "score": score, "prediction": pred, "ground_truth": gt_ans},
    }
# fmt: on
# ---- END verbatim -----------------------------------------------------------------------


# ---- BEGIN verbatim: lmms-eval lmms_eval/tasks/cc_ocr/utils.py L59-99 -------------------
# fmt: off
def _resolve_track(l2_category: str) -> str:
    l2 = str(l2_category or "").strip()
    if l2 in {"doc", "table", "formula", "molecular"}:
        return "doc_parsing"
    if l2 in {"constrained_category", "open_category"}:
        return "kie"
    if l2.endswith("_text"):
        return "multi_scene_ocr"
    return "multi_lan_ocr"


def _resolve_op(track: str, l2_category: str) -> str:
    """For doc_parsing, l2-category is the op label; empty for other tracks."""
    if track == "doc_parsing":
        return str(l2_category or "").strip()
    return ""


_METRIC_KEYS_BY_TRACK = {
    "multi_scene_ocr": ("macro_f1", "micro_f1"),
    "multi_lan_ocr": ("macro_f1", "micro_f1"),
    "doc_parsing": ("doc_score", "table_teds", "formula_score", "molecular_score", "overall_score"),
    "kie": ("f1_score", "acc"),
}


def cc_ocr_process_results(doc, results):
    pred = results[0] if results else ""
    l2_category = doc.get("l2-category", "")
    track = _resolve_track(l2_category)
    payload = {
        "pred": pred,
        "gt": doc.get("answer", ""),
        "image_name": doc.get("image_name", ""),
        "subset": doc.get("split", ""),
        "l2_category": l2_category,
        "op": _resolve_op(track, l2_category),
        "track": track,
    }
    keys = _METRIC_KEYS_BY_TRACK.get(track, ())
    return {key: payload for key in keys}
# fmt: on
# ---- END verbatim -----------------------------------------------------------------------


# ---- BEGIN verbatim: lmms-eval lmms_eval/tasks/cc_ocr/evaluators/common.py L21-79 -------
# fmt: off
def fullwidth_to_halfwidth(text: str) -> str:
    """CJK-aware full-width to half-width conversion (matches KIE evaluator)."""
    result = ""
    for char in text:
        code_point = ord(char)
        if code_point == 0x3000:
            code_point = 0x0020
        elif 0xFF01 <= code_point <= 0xFF5E:
            code_point -= 0xFEE0
        result += chr(code_point)
    result = result.replace("、", ",")
    return result


def remove_unnecessary_spaces(text: str) -> str:
    """Normalize spacing around CJK / ASCII / punctuation boundaries."""
    text = re.sub(r"(?<=[\u4e00-\u9fff])\s+(?=[\u4e00-\u9fff])", "", text)
    text = re.sub(r"(?<=[\u4e00-\u9fff])\s+(?=[a-zA-Z0-9])", "", text)
    text = re.sub(r"(?<=[a-zA-Z0-9])\s+(?=[\u4e00-\u9fff])", "", text)
    text = re.sub(r"(?<![0-9])\s*([,.!?:;])\s*", r"\1 ", text)
    text = re.sub(r"(?<=[0-9])(?=[a-zA-Z])", " ", text)
    text = re.sub(r"(?<=[a-zA-Z])(?=[0-9])", " ", text)
    text = re.sub(r"\s+", " ", text)
    return text


def post_process_to_json(qwen_info_str: str, file_name: str = None) -> Union[Dict, List, None]:
    """Extract a JSON object from a model response that may wrap it in ```json ... ```."""
    if not isinstance(qwen_info_str, str):
        return None
    try:
        if "```json" in qwen_info_str:
            if "```" not in qwen_info_str.split("```json", 1)[1]:
                qwen_info_str = qwen_info_str + "```"
            m = re.search(r"```json(.*?)```", qwen_info_str, re.DOTALL)
            if m is None:
                return None
            json_str = m.group(1).strip().replace("\n", "")
        else:
            json_str = qwen_info_str.strip().replace("\n", "")
        return json.loads(json_str)
    except Exception:
        return None


def normalize_values_of_nested_dict(d: Any, normalize_func) -> Any:
    """Recursively normalize string leaves of a nested dict/list."""
    if isinstance(d, dict):
        return {k: normalize_values_of_nested_dict(v, normalize_func) for k, v in d.items()}
    if isinstance(d, list):
        return [normalize_values_of_nested_dict(x, normalize_func) if isinstance(x, (dict, list)) else normalize_func(x) if isinstance(x, str) else x for x in d]
    if isinstance(d, str):
        return normalize_func(d)
    return d


def kie_normalize_text(text: str) -> str:
    """Full pipeline used for KIE string normalization."""
    return remove_unnecessary_spaces(fullwidth_to_halfwidth(str(text)))
# fmt: on
# ---- END verbatim -----------------------------------------------------------------------


# ---- BEGIN verbatim: lmms-eval lmms_eval/tasks/cc_ocr/evaluators/kie_metric.py L21-54 ---
# fmt: off
def _flatten(data: dict) -> List:
    """Turn nested dict/list into a flat list of (dotted_key, value)."""
    out = []

    def rec(value, key=""):
        if isinstance(value, dict):
            for k, v in value.items():
                rec(v, f"{key}.{k}" if key else k)
        elif isinstance(value, list):
            for item in value:
                rec(item, key)
        else:
            out.append((key, value))

    rec(data)
    return out


def _normalize_dict(data: Any) -> Any:
    """Sort keys, wrap scalars in list — matches Donut normalize_dict semantics."""
    if isinstance(data, dict):
        new_data = {}
        for k in sorted(data.keys(), key=lambda k: (len(k), k)):
            value = _normalize_dict(data[k])
            if value:
                if not isinstance(value, list):
                    value = [value]
                new_data[k] = value
        return new_data
    if isinstance(data, list):
        if all(isinstance(item, dict) for item in data):
            return [x for x in (_normalize_dict(item) for item in data) if x]
        return [str(item).strip() for item in data if isinstance(item, (str, int, float)) and str(item).strip()]
    return [str(data).strip()]
# fmt: on
# ---- END verbatim -----------------------------------------------------------------------


# ---- BEGIN verbatim: lmms-eval lmms_eval/tasks/cc_ocr/evaluators/kie_metric.py L122-136 ---
# fmt: off
def _cal_f1_over_samples(preds: Dict[str, Any], answers: Dict[str, Any]) -> float:
    total_tp = 0
    total_fn_fp = 0
    for fname, ans in answers.items():
        pred = preds.get(fname, {})
        pred_flat = _flatten(_normalize_dict(pred))
        ans_flat = _flatten(_normalize_dict(ans))
        for field in pred_flat:
            if field in ans_flat:
                total_tp += 1
                ans_flat.remove(field)
            else:
                total_fn_fp += 1
        total_fn_fp += len(ans_flat)
    return total_tp / (total_tp + total_fn_fp / 2 + 1e-6)
# fmt: on
# ---- END verbatim -----------------------------------------------------------------------


# ---- BEGIN verbatim: lmms-eval lmms_eval/tasks/cc_ocr/evaluators/kie_metric.py L147-195 ---
# fmt: off
def _parse_pred_and_gt(sample: Dict) -> (Dict, Dict):
    pred_raw = sample["pred"]
    pred_json = post_process_to_json(pred_raw, file_name=sample.get("image_name"))
    if pred_json is None:
        pred_json = {}

    gt_raw = sample["gt"]
    if isinstance(gt_raw, str):
        try:
            gt_json = json.loads(gt_raw)
        except Exception:
            gt_json = {}
    elif isinstance(gt_raw, list) and gt_raw and isinstance(gt_raw[0], str):
        try:
            gt_json = json.loads(gt_raw[0])
        except Exception:
            gt_json = {}
    else:
        gt_json = gt_raw or {}

    pred_json = normalize_values_of_nested_dict(pred_json, kie_normalize_text)
    gt_json = normalize_values_of_nested_dict(gt_json, kie_normalize_text)
    return pred_json, gt_json


def compute_track(results: List[Dict], key: str) -> float:
    """Aggregate F1 or accuracy over the whole track (mean of per-subset scores)."""
    if not results:
        return 0.0
    by_subset: Dict[str, List[Dict]] = {}
    for r in results:
        by_subset.setdefault(r["subset"], []).append(r)

    subset_scores = {}
    for subset, samples in by_subset.items():
        preds, gts = {}, {}
        for s in samples:
            p, g = _parse_pred_and_gt(s)
            fname = s["image_name"]
            preds[fname] = p
            gts[fname] = g
        if key == "f1_score":
            subset_scores[subset] = _cal_f1_over_samples(preds, gts)
        elif key == "acc":
            subset_scores[subset] = _cal_acc_over_samples(preds, gts)
        else:
            raise ValueError(f"unknown KIE metric key: {key}")

    return sum(subset_scores.values()) / (len(subset_scores) + 1e-9)
# fmt: on
# ---- END verbatim -----------------------------------------------------------------------


# ---- typed wrappers of the pipeline (ours) ----------------------------------------------
def lmms_eval_generated_answer_scores(
    task: ConfigurableTaskScoring,
    doc: dict[str, Any],
    generated: str,
    reasoning_tags: list[list[str]] | None,
) -> dict[str, Any]:
    """One generated answer scored as lmms-eval scores it: the default filter
    (``take_first``: the answer itself), the evaluator's reasoning removal with
    ``reasoning_tags`` (None: off, as ``--reasoning_tags none``), then
    ``task.process_results`` (which strips the answer first)."""
    return lmms_eval_score_doc(task, doc, [_Instance({"none": generated})], "none", reasoning_tags)


def lmms_eval_docvqa_task(answers: list[str]) -> ConfigurableTaskScoring:
    """docvqa_val / infovqa_val: no process_results of their own; metric ``anls``,
    ``doc_to_target: "answers"`` (a list, so ``multiple_target`` is its length)."""
    return ConfigurableTaskScoring(
        metrics={"anls": anls}, target_field="answers", multiple_target=len(answers)
    )


def lmms_eval_kie_f1(payloads: list[dict[str, Any]]) -> float:
    """CC-OCR KIE's ``f1_score`` aggregate (``compute_track(results, "f1_score")``)."""
    return float(compute_track(payloads, key="f1_score"))


# ---- multi-page presets (appended) ------------------------------------------------------
# Sources: EvolvingLMMs-Lab/lmms-eval main at commit 75571cfe0fa36ca5ec2e6aa2bb268f9d38295af3:
# ``lmms_eval/tasks/multidocvqa/utils.py`` (multidocvqa_val: doc_to_text, doc_to_visual,
# process_results, the ANLS / accuracy aggregations and their ``Evaluator``; the yaml's
# default lmms_eval_specific_kwargs are below the blocks) and
# ``lmms_eval/tasks/slidevqa/utils.py`` (slidevqa_val: grid packing, prompt, scoring).
# Their ``levenshtein_distance`` is lmms_eval/api/metrics.py's, copied above.
import ast
import math
from PIL import Image


# ---- BEGIN verbatim: lmms-eval lmms_eval/tasks/multidocvqa/utils.py L10-44 ---------------
# fmt: off
def multidocvqa_doc_to_text(doc, lmms_eval_specific_kwargs):
    question = doc["question"]
    pre_prompt = lmms_eval_specific_kwargs["pre_prompt"]
    post_prompt = lmms_eval_specific_kwargs["post_prompt"]

    return f"{pre_prompt}{question}{post_prompt}"


def multidocvqa_doc_to_visual(doc):
    return [doc[f"image_{i}"].convert("RGB") for i in range(1, 21) if doc[f"image_{i}"] is not None]


def multidocvqa_process_results(doc, results):
    pred_answer = results[0]
    answer = ast.literal_eval(doc["answers"])

    return {"anls": {"questionId": int(doc["questionId"]), "answer": answer, "pred_answer": pred_answer}, "accuracy": {"questionId": int(doc["questionId"]), "answer": answer, "pred_answer": pred_answer}}


def multidocvqa_aggregate_results_anls(results):
    keys = {k for result in results for k in result}
    results = {key: [result.get(key, None) for result in results] for key in keys}
    evaluator = Evaluator(case_sensitive=False)
    metric = evaluator.get_metrics(results["answer"], results["pred_answer"])

    return sum(metric["anls"]) / len(metric["anls"])


def multidocvqa_aggregate_results_accuracy(results):
    keys = {k for result in results for k in result}
    results = {key: [result.get(key, None) for result in results] for key in keys}
    evaluator = Evaluator(case_sensitive=False)
    metric = evaluator.get_metrics(results["answer"], results["pred_answer"])

    return sum(metric["accuracy"]) / len(metric["accuracy"])
# fmt: on
# ---- END verbatim -----------------------------------------------------------------------


# ---- BEGIN verbatim: lmms-eval lmms_eval/tasks/multidocvqa/utils.py L64-109 --------------
# fmt: off
class Evaluator:
    def __init__(self, case_sensitive=False):
        self.case_sensitive = case_sensitive
        self.get_edit_distance = levenshtein_distance
        self.anls_threshold = 0.5

    def get_metrics(self, gt_answers, preds):
        batch_accuracy = []
        batch_anls = []
        for batch_idx in range(len(preds)):
            gt = [self._preprocess_str(gt_elm) for gt_elm in gt_answers[batch_idx]]
            pred = self._preprocess_str(preds[batch_idx])

            batch_accuracy.append(self._calculate_accuracy(gt, pred))
            batch_anls.append(self._calculate_anls(gt, pred))

        return {"accuracy": batch_accuracy, "anls": batch_anls}

    def _preprocess_str(self, string):
        if not self.case_sensitive:
            string = string.lower()

        return string.strip()

    def _calculate_accuracy(self, gt, pred):
        if pred == "none":
            return 0

        for gt_elm in gt:
            if gt_elm == pred:
                return 1

        return 0

    def _calculate_anls(self, gt, pred):
        if len(pred) == 0:
            return 0

        if pred == "none":
            return 0

        answers_similarity = [1 - self.get_edit_distance(gt_elm, pred) / max(len(gt_elm), len(pred)) for gt_elm in gt]
        max_similarity = max(answers_similarity)

        anls = max_similarity if max_similarity >= self.anls_threshold else 0
        return anls
# fmt: on
# ---- END verbatim -----------------------------------------------------------------------


# ---- BEGIN verbatim: lmms-eval lmms_eval/tasks/slidevqa/utils.py L17-96 ------------------
# fmt: off
PAGE_COLUMNS = tuple(f"page_{index}" for index in range(1, 21))


def slidevqa_doc_to_visual(doc: dict[str, Any]) -> list[Image.Image]:
    """Return SlideVQA pages as up to five grid images."""
    pages = [doc[column].convert("RGB") for column in PAGE_COLUMNS if doc.get(column) is not None]
    if not pages:
        raise ValueError(f"Slide deck {doc.get('deck_name')!r} has no images")
    return concat_images(pages)


def concat_images(images: list[Image.Image], max_concat: int = 5, column_num: int = 2) -> list[Image.Image]:
    """Concatenate deck pages into grids."""
    interval = max(math.ceil(len(images) / max_concat), 1)
    grids = []

    for start in range(0, len(images), interval):
        batch = images[start : start + interval]
        rows = math.ceil(len(batch) / column_num)
        grid = Image.new("RGB", (batch[0].width * column_num, batch[0].height * rows), "white")

        for index, image in enumerate(batch):
            grid.paste(image, ((index % column_num) * image.width, (index // column_num) * image.height))
        grids.append(grid)

    return grids


def slidevqa_doc_to_text(doc: dict[str, Any], lmms_eval_specific_kwargs: dict[str, str] | None = None) -> str:
    """Build the short-answer SlideVQA prompt."""
    kwargs = lmms_eval_specific_kwargs or {}
    return f"{kwargs.get('pre_prompt', '')}{doc['question']}{kwargs.get('post_prompt', '')}"


def slidevqa_doc_to_messages(doc: dict[str, Any], lmms_eval_specific_kwargs: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Build interleaved chat messages for multi-image models."""
    content = [{"type": "image", "url": image} for image in slidevqa_doc_to_visual(doc)]
    content.append({"type": "text", "text": slidevqa_doc_to_text(doc, lmms_eval_specific_kwargs)})
    return [{"role": "user", "content": content}]


def normalize_answer(answer: Any) -> str:
    """Normalize a SlideVQA answer."""
    if answer is None or (isinstance(answer, float) and math.isnan(answer)):
        return "not answerable"
    return re.sub("\n", "", str(answer)).lower()


def anls_score(answer: str, prediction: str, threshold: float = 0.5) -> float:
    """Compute thresholded ANLS for one answer/prediction pair."""
    length = max(len(answer), len(prediction))
    if length == 0:
        return 0.0
    score = 1.0 - levenshtein_distance(answer, prediction) / length
    return score if score > threshold else 0.0


def word_f1(answer: str, prediction: str) -> float:
    """Compute whitespace-token overlap F1."""
    answer_words = answer.strip().split()
    prediction_words = prediction.strip().split()
    if not answer_words or not prediction_words:
        return 0.0

    recall = sum(word in answer_words for word in prediction_words) / len(answer_words)
    precision = sum(word in answer_words for word in prediction_words) / len(prediction_words)
    if recall + precision <= 1e-4:
        return 0.0
    return 2 * recall * precision / (recall + precision)


def slidevqa_process_results(doc: dict[str, Any], results: list[str]) -> dict[str, float]:
    """Score one SlideVQA prediction."""
    answer = normalize_answer(doc.get("answer"))
    prediction = str(results[0]).lower()
    return {
        "anls": anls_score(answer, prediction),
        "em": float(answer.strip() == prediction.strip()),
        "f1": word_f1(answer, prediction),
    }
# fmt: on
# ---- END verbatim -----------------------------------------------------------------------


# ---- typed wrappers of the multi-page tasks (ours) --------------------------------------
#: lmms_eval/tasks/multidocvqa/multidocvqa_val.yaml L20-23 (lmms_eval_specific_kwargs.default)
MULTIDOCVQA_KWARGS = {
    "pre_prompt": "",
    "post_prompt": "\nAnswer the question using a single word or phrase.",
}
#: lmms_eval/tasks/slidevqa/_default_template_slidevqa_yaml L14-17
SLIDEVQA_KWARGS = {
    "pre_prompt": "",
    "post_prompt": "\nAnswer using only the short answer, without explanation.",
}


def lmms_eval_multidocvqa_scores(payloads: list[dict[str, Any]]) -> tuple[float, float]:
    """multidocvqa_val's (anls, accuracy) aggregates over ``process_results`` payloads."""
    anls_payloads = [p["anls"] for p in payloads]
    accuracy_payloads = [p["accuracy"] for p in payloads]
    return (
        float(multidocvqa_aggregate_results_anls(anls_payloads)),
        float(multidocvqa_aggregate_results_accuracy(accuracy_payloads)),
    )
