"""Schemathesis against `plume serve`, with every check: whatever it sends, Plume answers
with a status, content type, headers and body its OpenAPI description documents, never a
500; once with a tenant admin's key, once with the operator's.

A bounded number of examples per operation keeps the run under two minutes; the summaries
are written to the test's directory (and shown when the test fails).
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from plume.web.pagination import encode_cursor
from tests.support.database import DatabaseServer
from tests.support.factories import fresh_insee
from tests.support.processes import PLUME, run_plume, wait_until_ready
from tests.support.servers import free_port
from tests.support.settings import TEST_SECRET

# Slow lane: `plume serve` as a subprocess, and two Schemathesis runs against it.
pytestmark = pytest.mark.slow

SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))
EXAMPLES = 10
SEED = 20261206

# Business rules the description cannot state in JSON Schema: a schema-valid request may
# break one, and is then rightly a 422 naming the field. (`positive_data_acceptance`
# otherwise expects every schema-valid request to succeed.)
_ACCEPTED = ["2xx", "401", "403", "404", "409", "422", "429", "5xx"]
CONFIG = f"""
[generation]
# Plume refuses the NUL character in any text (PostgreSQL cannot store it): a 422, as the
# description's introduction says.
allow-x00 = false

[phases.stateful]
# Links are inferred from field names (the receipt key's `key_id` is not an API key's id):
# a link whose values the API refuses is dropped rather than followed again.
link-calibration = true

# The token endpoint (first: its own expectations): Schemathesis sends a key, never a
# client's secret, so a schema-valid form is RFC 6749's 401 `invalid_client`.
[[operations]]
include-path = "/oauth/token"
checks.positive_data_acceptance.expected-statuses = ["200", "400", "401"]

[parameters]
# A cursor is opaque: only one Plume gave is accepted (else a 422 naming `cursor`).
"query.cursor" = "{encode_cursor(datetime(2100, 1, 1, tzinfo=UTC), uuid.UUID(int=0))}"

# `to` may not precede `from`.
[[operations]]
include-path = ["/v1/usage", "/v1/admin/usage", "/v1/audit"]
checks.positive_data_acceptance.expected-statuses = {_ACCEPTED}

# A key's `expires_at` must be in the future.
[[operations]]
include-path-regex = "api-keys$"
include-method = "POST"
checks.positive_data_acceptance.expected-statuses = {_ACCEPTED}

# Quotas: a limit of at most 14 whole digits and 6 decimals, whole for requests and tokens,
# one per metric and period; an EPCI's communes may not share more than it has.
[[operations]]
include-path-regex = "quotas$"
include-method = "PUT"
checks.positive_data_acceptance.expected-statuses = {_ACCEPTED}

# Organisations: a commune needs an INSEE code, an EPCI a SIREN, a parent of the right
# kind; the operator cannot be suspended.
[[operations]]
include-path = ["/v1/admin/organizations", "/v1/admin/organizations/{{organization_id}}"]
include-method = ["POST", "PATCH"]
checks.positive_data_acceptance.expected-statuses = {_ACCEPTED}

# Drafts and chat: texts are trimmed (a blank one is refused), an end date may not precede
# the start, a request must fit the model's context window.
[[operations]]
include-path = ["/v1/drafts", "/v1/chat/completions"]
include-method = "POST"
checks.positive_data_acceptance.expected-statuses = {_ACCEPTED}
"""


@pytest.fixture(scope="module")
def served(
    database_server: DatabaseServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, dict[str, str], Path]]:
    """`plume serve` on a database of its own (Schemathesis writes what it likes), with the
    offline provider; the keys of a commune's tenant admin and of the operator."""
    directory = tmp_path_factory.mktemp("schemathesis")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLUME_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(
        PLUME_ENV="test",
        PLUME_DATABASE_URL=database_server.create(),
        PLUME_SECRET_KEY=TEST_SECRET,
        PLUME_STATE_DIR=str(directory),
        PLUME_LOG_LEVEL="WARNING",
    )
    keys = {"operator": run_plume(env, "bootstrap")}
    insee = fresh_insee()
    run_plume(
        env, "orgs", "create", "--kind", "commune", "--name", "Fuzzville", "--insee-code", insee
    )
    keys["tenant_admin"] = run_plume(
        env, "keys", "create", "--organization", insee, "--role", "tenant_admin", "--name", "st"
    )
    port = free_port()
    log = (directory / "plume.log").open("wb")
    server = subprocess.Popen(
        [PLUME, "serve", "--port", str(port)], env=env, stdout=log, stderr=log
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(f"{base}/readyz", server)
        yield base, keys, directory
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


# The tenant admin first: the operator's run may suspend its commune.
@pytest.mark.parametrize("role", ["tenant_admin", "operator"])
def test_schemathesis_finds_nothing(served: tuple[str, dict[str, str], Path], role: str) -> None:
    base, keys, directory = served
    config = directory / "schemathesis.toml"
    config.write_text(CONFIG)
    result = subprocess.run(
        [
            SCHEMATHESIS,
            "--config-file",
            str(config),
            "run",
            f"{base}/openapi.json",
            "--checks",
            "all",
            "--header",
            f"Authorization: Bearer {keys[role]}",
            "--max-examples",
            str(EXAMPLES),
            "--seed",
            str(SEED),
            # One worker: Hypothesis is not thread-safe everywhere (flaky draws with two).
            "--workers",
            "1",
            "--no-shrink",
        ],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = result.stdout + result.stderr
    (directory / f"summary-{role}.txt").write_text(output)
    assert result.returncode == 0, output[-20000:]
    summary = output[output.rfind("= SUMMARY =") :]
    assert "Failures:" not in summary, summary
    assert "Errors:" not in summary, summary
