"""Task types that exist for one public benchmark's scoring rule."""

from __future__ import annotations

from .base import TaskType
from .lines import OCRBenchLine


class OCRBenchTask(TaskType):
    """OCRBench: its rule needs the source dataset of each question (HME100k)."""

    name = "ocrbench"
    line_model = OCRBenchLine
    input_fields = ("question",)
    reference_fields = ("answers", "dataset")
    default_metrics = ("ocrbench",)
    default_prompt = "{question}"
    default_max_tokens = 128
