"""Every recipe against the software it configures.

vLLM: every flag a recipe passes (its free ``vllm_args`` and the flags of its
dedicated fields) exists in the pinned vLLM's own server argument parser, and
each recipe's whole argv parses to the values the recipe meant; every
auto-matched architecture is one that vLLM serves (or is known to be dropped).
HF: every ``hf_model_class`` exists in the HF venv's transformers, and the
native families' model types are ones its AutoModelForImageTextToText loads.

One subprocess per venv answers for all recipes (vLLM's parser takes about
10 s to import). The venvs are the backends' own, built once into the shared
cache (``VLMHB_CACHE``) like the other integration tests': under ``CI=true``
on a fresh machine they are built, never skipped.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pytest_vlmhb.backends.hf import HFBackend
from pytest_vlmhb.backends.vllm import VLLMBackend
from pytest_vlmhb.envs import clean_env, ensure_env, venv_python
from pytest_vlmhb.recipes import DEFAULT_HF_MODEL_CLASS, Recipe, load_recipes

pytestmark = pytest.mark.vllm

#: The flags the integration code makes from a recipe's dedicated fields.
DEDICATED_FLAGS = (
    "--max-model-len",
    "--mm-processor-kwargs",
    "--trust-remote-code",
    "--limit-mm-per-prompt",
)
#: Architectures with a recipe that the pinned vLLM no longer serves (its
#: registry lists them as removed): their recipes are for the HF backend.
DROPPED_BY_VLLM = {"MllamaForConditionalGeneration": "0.10.2"}
MARKER = "VLMHB-RESULT "

# Runs inside the vLLM venv: the server's own parser (as
# vllm.entrypoints.openai.api_server builds it), every option string, and each
# recipe's argv parsed, with the parsed value of each flag it passes.
VLLM_PROBE = r"""
import contextlib, io, json, sys
from vllm.utils.argparse_utils import FlexibleArgumentParser
try:
    from vllm.entrypoints.launchers.cli_args import make_arg_parser
except ImportError:  # vLLM before the launchers/ package
    from vllm.entrypoints.openai.cli_args import make_arg_parser
from vllm.model_executor.models.registry import ModelRegistry

parser = make_arg_parser(FlexibleArgumentParser())
actions = {s: a for a in parser._actions for s in a.option_strings}
results = {}
for name, argv in json.loads(sys.stdin.read()).items():
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            ns = parser.parse_args(argv)
    except SystemExit:
        results[name] = {"error": err.getvalue().strip()[-2000:]}
        continue
    flags = {}
    for word in argv:
        flag = word.split("=", 1)[0]
        if flag.startswith("--") and flag in actions:
            action = actions[flag]
            flags[flag] = {
                "takes_value": action.nargs != 0,
                "value": getattr(ns, action.dest),
            }
    results[name] = {"flags": flags}
print("VLMHB-RESULT " + json.dumps({
    "options": sorted(actions),
    "results": results,
    "architectures": sorted(ModelRegistry.get_supported_archs()),
}, default=repr))
"""

HF_PROBE = r"""
import json, sys
import transformers
from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES
names = json.loads(sys.stdin.read())
print("VLMHB-RESULT " + json.dumps({
    "version": transformers.__version__,
    "missing": sorted(n for n in names if not hasattr(transformers, n)),
    "image_text_to_text": sorted(MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES),
}))
"""


def _cache() -> Path:
    return Path(os.environ["VLMHB_CACHE"])


def _probe(python: Path, script: str, stdin: object) -> dict[str, Any]:
    proc = subprocess.run(
        [str(python), "-c", script],
        input=json.dumps(stdin),
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=300,
        check=False,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith(MARKER)]
    assert proc.returncode == 0 and lines, (
        proc.returncode,
        proc.stdout[-3000:],
        proc.stderr[-3000:],
    )
    result: dict[str, Any] = json.loads(lines[-1][len(MARKER) :])
    return result


def _argv(recipe: Recipe) -> list[str]:
    """What a server start with this recipe passes, after ``--model``."""
    argv = ["--model", "x", "--limit-mm-per-prompt", '{"image":1}', *recipe.vllm_argv()]
    if recipe.needs_remote_code:  # the user's choice, never the recipe's: parse it too
        argv.append("--trust-remote-code")
    return argv


def _expected(word: str) -> Any:
    """A flag's value as vLLM should parse it: JSON where it is JSON, else the text."""
    try:
        return json.loads(word)
    except ValueError:
        return word


@pytest.fixture(scope="module")
def vllm_probe() -> dict[str, Any]:
    backend = VLLMBackend()
    env = ensure_env(_cache(), backend.name, backend.requirements(), print, backend.uninstall())
    argvs = {name: _argv(recipe) for name, recipe in load_recipes().items()}
    return _probe(venv_python(env), VLLM_PROBE, argvs)


def test_every_vllm_flag_exists_in_the_pinned_parser(vllm_probe: dict[str, Any]) -> None:
    options = set(vllm_probe["options"])
    assert set(DEDICATED_FLAGS) <= options
    missing = {
        name: flags
        for name, recipe in load_recipes().items()
        if (
            flags := sorted(
                {w.split("=", 1)[0] for w in recipe.vllm_argv() if w.startswith("--")} - options
            )
        )
    }
    assert not missing, f"flags the pinned vLLM does not know: {missing}"


@pytest.mark.parametrize("name", sorted(load_recipes()))
def test_each_recipes_argv_parses_to_its_values(vllm_probe: dict[str, Any], name: str) -> None:
    result = vllm_probe["results"][name]
    assert "error" not in result, result.get("error")
    flags = result["flags"]
    words = _argv(load_recipes()[name])[2:]  # past --model x
    i = 0
    while i < len(words):
        flag, _, inline = words[i].partition("=")
        parsed = flags[flag]
        if not parsed["takes_value"]:
            assert parsed["value"] is True, (flag, parsed)
            i += 1
            continue
        value = inline or words[i + 1]
        i += 1 if inline else 2
        assert parsed["value"] == _expected(value), (flag, value, parsed["value"])


def test_auto_matched_architectures_are_served_by_the_pinned_vllm(
    vllm_probe: dict[str, Any],
) -> None:
    served = set(vllm_probe["architectures"])
    claimed = {
        arch: recipe.name
        for recipe in load_recipes().values()
        if recipe.auto_match
        for arch in recipe.architectures
    }
    unserved = {arch: name for arch, name in claimed.items() if arch not in served}
    assert set(unserved) <= set(DROPPED_BY_VLLM), unserved


@pytest.fixture(scope="module")
def hf_probe() -> dict[str, Any]:
    backend = HFBackend()
    env = ensure_env(_cache(), backend.name, backend.requirements(), print, backend.uninstall())
    classes = sorted({recipe.hf_model_class for recipe in load_recipes().values()})
    return _probe(venv_python(env), HF_PROBE, classes)


@pytest.mark.server
def test_every_hf_class_exists_in_the_hf_venvs_transformers(hf_probe: dict[str, Any]) -> None:
    assert not hf_probe["missing"], (hf_probe["version"], hf_probe["missing"])


@pytest.mark.server
def test_native_families_load_with_the_default_auto_class(hf_probe: dict[str, Any]) -> None:
    known = set(hf_probe["image_text_to_text"])
    unknown = {
        recipe.name: sorted(set(recipe.model_types) - known)
        for recipe in load_recipes().values()
        if recipe.hf_model_class == DEFAULT_HF_MODEL_CLASS and not recipe.needs_remote_code
        if set(recipe.model_types) - known
    }
    assert not unknown, (hf_probe["version"], unknown)
