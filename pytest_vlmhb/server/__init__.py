"""OpenAI-compatible HTTP server around a transformers vision-language model.

Runs inside a backend's own virtualenv (torch, transformers, fastapi, uvicorn)
and imports nothing of the plugin core: ``python -m pytest_vlmhb.server --model DIR``.
"""

#: The transformers class that loads a model unless ``--model-class`` names another.
DEFAULT_MODEL_CLASS = "AutoModelForImageTextToText"
