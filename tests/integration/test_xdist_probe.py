"""Under -n, every xdist worker sees the same plan as its controller, however
the machine's services answer each of them.

``launcher=auto`` (the default for a model without an endpoint) picks docker
when a daemon answers a 5 s ping, else local. A worker that pings on its own
can get another answer than its controller and its sibling (a daemon busy
building images, a loaded machine): its cases then carry another launcher,
hence other xdist groups and node ids, and xdist aborts the run with
"Different tests were collected". Workers take the controller's answer.
"""

from __future__ import annotations

import pytest

from tests.helpers import page_manifest, run, setup_suite

# A daemon that answers everyone but worker gw1, whose ping times out. Items
# are skipped in setup: only the collection and the scheduling matter here.
CONFTEST = """
import os

import docker
import pytest


class _Api:
    base_url = "http+docker://localhost"


class _Client:
    api = _Api()

    def ping(self):
        return True

    def version(self):
        return {"Version": "0-fake"}

    def close(self):
        pass


def _from_env(**kwargs):
    if os.environ.get("PYTEST_XDIST_WORKER") == "gw1":
        raise docker.errors.DockerException("Read timed out. (read timeout=5)")
    return _Client()


docker.from_env = _from_env


def pytest_runtest_setup(item):
    pytest.skip("collection and scheduling only")
"""


def test_workers_take_the_controllers_docker_answer(pytester: pytest.Pytester) -> None:
    page_manifest(pytester, 4)
    setup_suite(
        pytester,
        "model,task,backend\ntiny,vqa,hf\n",  # launcher: auto
        tasks="name,type,data\nvqa,docvqa,data/m.jsonl\n",
    )
    pytester.makeconftest(CONFTEST)
    result = run(pytester, "-n", "2", "-v")
    result.stdout.no_fnmatch_line("*Different tests were collected*")
    result.assert_outcomes(skipped=4)
    result.stdout.fnmatch_lines(["*[[]gw?[]]*SKIPPED*test_sample?tiny:vqa:hf/s0?@tiny|hf|docker*"])
