"""The Terraform of infra/ (Scaleway), checked offline. `terraform validate` needs the
provider plugins, which cannot be downloaded here (`terraform init` fails): instead,
`terraform fmt`, every file parsed (python-hcl2), exact versions, what a module is given
against what it declares, no secret in a file, and the values the Helm chart shares with it.
checkov runs on it in test_checkov.py."""

from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import hcl2
import pytest
import yaml

from tests.deploy.chart import CHART, INFRA, KUBERNETES_VERSION
from tests.support.tools import require_tool

ENVIRONMENT = INFRA / "environments" / "production"
MODULES = INFRA / "modules"
TERRAFORM_VERSION = "= 1.11.4"
SCALEWAY_VERSION = "= 2.79.0"


def unquote(value: Any) -> Any:
    """python-hcl2 keeps a string literal's quotes; expressions come as ${…}."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


@cache
def parsed(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        result: dict[str, Any] = hcl2.load(handle)
    return result


def blocks(directory: Path, kind: str) -> dict[str, dict[str, Any]]:
    """The named blocks of one kind (variable, module, resource type…) in a directory."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(directory.glob("*.tf")):
        for block in parsed(path).get(kind, []):
            for name, body in block.items():
                found[unquote(name)] = body
    return found


def terraform_blocks(directory: Path) -> list[dict[str, Any]]:
    return [b for path in directory.glob("*.tf") for b in parsed(path).get("terraform", [])]


def every_tf() -> list[Path]:
    return sorted(INFRA.rglob("*.tf"))


def test_terraform_fmt_finds_nothing_to_change() -> None:
    terraform = require_tool("terraform", what="Terraform")
    result = subprocess.run(
        [terraform, "fmt", "-check", "-recursive", "-diff", str(INFRA)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_file_parses() -> None:
    files = every_tf()
    assert len(files) >= 16
    for path in files:
        assert isinstance(parsed(path), dict), path


@pytest.mark.parametrize(
    "directory",
    [ENVIRONMENT, *sorted(p for p in MODULES.iterdir() if p.is_dir() and p.name != "checkov")],
    ids=lambda p: p.name,
)
def test_terraform_and_the_provider_are_pinned_exactly(directory: Path) -> None:
    (settings,) = terraform_blocks(directory)
    assert unquote(settings["required_version"]) == TERRAFORM_VERSION
    (providers,) = settings["required_providers"]
    assert {name for name in providers if not name.startswith("__")} == {"scaleway"}
    assert unquote(providers["scaleway"]["source"]) == "scaleway/scaleway"
    assert unquote(providers["scaleway"]["version"]) == SCALEWAY_VERSION


def test_the_state_is_remote_in_a_scaleway_bucket_without_credentials() -> None:
    (settings,) = terraform_blocks(ENVIRONMENT)
    (backend,) = settings["backend"]
    s3 = backend['"s3"']
    assert unquote(s3["endpoints"]["s3"]).endswith(".scw.cloud")
    assert unquote(s3["region"]) == "fr-par"
    assert not {"access_key", "secret_key", "token", "profile"} & set(s3)


def test_modules_are_given_only_what_they_declare_and_all_they_require() -> None:
    modules = blocks(ENVIRONMENT, "module")
    assert set(modules) == {"network", "kubernetes", "database", "storage"}
    for name, body in modules.items():
        source = (ENVIRONMENT / unquote(body["source"])).resolve()
        assert source.is_dir(), source
        declared = blocks(source, "variable")
        given = {k for k in body if k not in {"source", "__is_block__", "__comments__"}}
        assert given <= set(declared), f"{name}: {given - set(declared)} not declared"
        required = {v for v, spec in declared.items() if "default" not in spec}
        assert required <= given, f"{name}: {required - given} not given"
        # Every output the environment reads exists in the module.
        for path in ENVIRONMENT.glob("*.tf"):
            text = path.read_text(encoding="utf-8")
            for output in re.findall(rf"module\.{name}\.(\w+)", text):
                assert output in blocks(source, "output"), f"module.{name}.{output}"


def test_no_secret_is_written_in_a_file() -> None:
    secret = re.compile(r"(password|secret|token|access_key|secret_key)\s*=\s*\"", re.IGNORECASE)
    for path in every_tf():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            assert not secret.search(line), f"{path}:{number}: {line.strip()}"
    for directory in [ENVIRONMENT, *MODULES.iterdir()]:
        if not directory.is_dir():
            continue
        for name, spec in blocks(directory, "variable").items():
            if spec.get("sensitive"):
                assert spec.get("default") is None, f"{directory.name}: {name} has a default"
    assert not list(INFRA.rglob("*.tfvars")), "tfvars hold values: keep them out of the repo"
    assert not list(INFRA.rglob("*.tfstate*"))


def test_the_managed_database_cannot_be_destroyed_by_accident() -> None:
    (instance,) = blocks(MODULES / "database", "resource")["scaleway_rdb_instance"].values()
    (lifecycle,) = instance["lifecycle"]
    assert lifecycle["prevent_destroy"] is True
    assert instance["is_ha_cluster"] is True


def test_the_chart_and_the_infrastructure_agree() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    variables = blocks(ENVIRONMENT, "variable")
    # The chart is validated for the Kubernetes version the cluster runs.
    major_minor = ".".join(KUBERNETES_VERSION.split(".")[:2])
    assert unquote(variables["kubernetes_version"]["default"]) == major_minor
    # A managed database lives on the private network the NetworkPolicy lets pods reach.
    assert (
        unquote(variables["private_subnet"]["default"])
        == values["networkPolicy"]["externalDatabaseCidr"]
    )
    # CloudNativePG backs up to the bucket the storage module makes, at its endpoint.
    backup = values["postgresql"]["cloudnativepg"]["backup"]
    bucket = backup["destinationPath"].removeprefix("s3://").rstrip("/")
    environment = unquote(variables["environment"]["default"])
    assert bucket == f"smn-plume-{environment}-pg-backups"
    assert backup["endpointURL"] == "https://s3.fr-par.scw.cloud"
    assert unquote(variables["database_mode"]["default"]) == values["postgresql"]["mode"]
