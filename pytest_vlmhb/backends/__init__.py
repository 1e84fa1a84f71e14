"""Backends: the server software behind an OpenAI-compatible endpoint."""
