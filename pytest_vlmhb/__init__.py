"""VLMHyperBench: a pytest plugin that benchmarks Vision-Language Models.

Kept import-light on purpose: the HF server and the tiny-model builder run
inside a backend's own virtualenv and import this package too.
"""

__version__ = "0.1.0"
