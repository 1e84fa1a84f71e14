"""``launcher=auto``: docker when a daemon answers, else an isolated local venv.

Resolved once per process (the answer is cached) and announced in one line.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import cache

from ..backends.base import Backend
from ..config import ModelSpec, Settings
from ..envs import Progress
from .base import AUTO, Launcher, RunningServer, load_launcher

DOCKER = "docker"
LOCAL = "local"


@dataclass(frozen=True)
class AutoChoice:
    """Which launcher ``auto`` means in this process, and why."""

    launcher: str
    reason: str

    @property
    def line(self) -> str:
        return f"launcher=auto -> {self.launcher}: {self.reason}"


def choose(docker_status: tuple[bool, str]) -> AutoChoice:
    """The choice for a daemon probe result ``(answers, sentence)``."""
    answers, why = docker_status
    if answers:
        return AutoChoice(DOCKER, f"{why} (launcher=local runs in a venv instead)")
    return AutoChoice(LOCAL, f"{why}; servers run in isolated local venvs")


@cache
def resolve() -> AutoChoice:
    """The choice of this process; announced once (by the process that pinged, not
    by xdist workers, which take their controller's answer)."""
    from .docker_daemon import adopted_status, daemon_status

    choice = choose(daemon_status())
    if adopted_status() is None:
        print(f"[vlmhb] {choice.line}", file=sys.stderr, flush=True)
    return choice


class AutoLauncher(Launcher):
    """Picks docker or local while the config loads; cases carry the launcher picked."""

    name = AUTO

    @classmethod
    def resolve(cls, model: ModelSpec) -> str:
        """docker when a daemon answers, else local (the same for every model)."""
        return resolve().launcher  # the module's cached choice

    def start(
        self, backend: Backend, model: ModelSpec, settings: Settings, progress: Progress
    ) -> RunningServer:
        """Starts the server with the launcher picked (for direct use)."""
        launcher = load_launcher(self.resolve(model))()
        return launcher.start(backend, model, settings, progress)
