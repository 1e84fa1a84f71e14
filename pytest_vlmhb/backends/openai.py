"""Any other OpenAI-compatible API, reached only through launcher=external."""

from __future__ import annotations

from .base import Backend


class OpenAIBackend(Backend):
    """An already running OpenAI-compatible endpoint; nothing to start."""

    name = "openai"
    health_path = "/models"
    metrics_path = None
