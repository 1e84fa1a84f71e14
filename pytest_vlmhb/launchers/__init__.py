"""Launchers: where a backend's server runs (local venv, external URL, ...)."""
