"""An already running OpenAI-compatible endpoint (nothing to start or stop)."""

from __future__ import annotations

from ..backends.base import Backend
from ..config import ModelSpec, Settings
from ..endpoint_headers import expand_headers
from ..envs import Progress
from ..errors import ServerError
from .base import Launcher, RunningServer, api_key


class ExternalLauncher(Launcher):
    """Uses the model's ``endpoint``; the API key comes from ``api_key_env`` only."""

    name = "external"

    @classmethod
    def check_model(cls, model: ModelSpec) -> str | None:
        """Why not: the model has no ``endpoint``."""
        if model.endpoint:
            return None
        return f"launcher 'external' needs an endpoint for model {model.name!r} in models.csv"

    def start(
        self, backend: Backend, model: ModelSpec, settings: Settings, progress: Progress
    ) -> RunningServer:
        base = model.endpoint
        if not base:
            raise ServerError(str(self.check_model(model)))
        key = api_key(model)
        headers = {
            **({"Authorization": f"Bearer {key}"} if key else {}),
            **expand_headers(model.endpoint_headers, model.name),
        }
        root = base.removesuffix("/v1")
        progress(f"using external endpoint {base} for {model.name} ({backend.name})")
        return RunningServer(
            base_url=base,
            root_url=root,
            served_name=model.served_name,
            headers=headers,
            provenance={"endpoint": base, "source": model.source},
        )
