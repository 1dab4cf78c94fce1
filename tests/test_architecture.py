"""The rules of the code's shape (docs/architecture.md), checked on every run so that they
hold: layers point one way, SQL lives in repositories, LiteLLM behind routing, migrations
frozen, modules small."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "services" / "plume"
MAX_LINES = 500

# The layers, lowest first; a module may import from its own layer and those below. The
# first pattern that matches a module's name (relative to `plume.`) gives its layer.
LAYERS: list[tuple[str, list[str]]] = [
    (
        "kit",
        [
            r"config",
            r"errors",
            r"db",
            r"dates",
            r"french",
            r"hashing",
            r"models(\..+)?",
            r"web\.(transaction|pagination|validation|middleware|sse|spreadsheet)",
            r"runtime\.(log|periodic|embedded|migrations|repository|draining|memory)",
            r"metrics\.registry",
        ],
    ),
    (
        "data",
        [
            r".+\.repository",
            r".+\.schemas",
            r"routing\.(config|types|tokens|impact|offline)",
            r"drafting\.document",
            r"organizations\.(identifiers|policy)",
            r"credentials\.secrets",
            r"quotas\.periods",
        ],
    ),
    (
        "domain",
        [
            r"organizations\.(service|gauges)",
            r"credentials\.(auth|service|minting)",
            r"oauth\.(service|tokens|bearer|minting)",
            r"identity\.(oidc|state|sessions|service|pages|administration)",
            r"workspace\.(forms|pages|uploads|charts)",
            r"quotas\.(guard|service|wording|gauges|defaults)",
            r"audit\.(trail|refusals|chain|signing|service)",
            r"usage\.(reports|processing)",
            r"routing\.(policy|router|attempts|transport)",
            r"privacy\.(detection|pseudonyms)",
            r"drafting\.(prompts|offline|letters|decisions|competence|erasure|seance|publicity|checker(\..+)?|actes|legal_bases|finishing|gauges|parsing(\..+)?|export(\..+)?)",
        ],
    ),
    (
        "orchestration",
        [
            r"calls\.(context|unit|settlement|idempotency|streaming|sweeper|privacy|inflight|recovery)",
            r"drafting\.(service|synthese|records|jobs|retention)",
            r"chat\.service",
            r"metrics\.observer",
            r"runtime\.demo",
        ],
    ),
    (
        "http",
        [
            r".+\.endpoints",
            r"calls\.dependencies",
            r"web\.(errors|health|openapi|docs)",
            r"workspace\.(access|admin|admin_reports|operator)",
        ],
    ),
    ("composition", [r"app", r"cli"]),
]
RANK = {name: rank for rank, (name, _) in enumerate(LAYERS)}

# Where SQL may be sent: repositories, the tenant context (db.py) and the creation of the
# embedded server's database.
SQL_CALL = re.compile(r"\b(session|connection|driver)\.(execute|scalar|scalars|get)\(")
SQL_ALLOWED = {"db.py", "runtime/embedded.py"}

# The only importers of third-party engines Plume keeps behind one interface.
CONFINED = {
    "litellm": {
        "routing/router.py",
        "routing/offline.py",
        "routing/tokens.py",
        "routing/transport.py",
    },
    "ecologits": {"routing/impact.py"},
}


@dataclass(frozen=True)
class Module:
    name: str  # relative to `plume.`: "calls.unit", "app"
    path: Path
    tree: ast.Module

    @property
    def relative(self) -> str:
        return self.path.relative_to(PACKAGE).as_posix()


def _has_code(tree: ast.Module) -> bool:
    return any(
        not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))
        for node in tree.body
    )


def _modules() -> list[Module]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        tree = ast.parse(path.read_text(encoding="utf-8"))
        if not parts or (path.name == "__init__.py" and not _has_code(tree)):
            continue  # a package's docstring alone
        found.append(Module(".".join(parts), path, tree))
    return found


MODULES = _modules()
NAMES = {module.name for module in MODULES}


def layer_of(name: str) -> str:
    for layer, patterns in LAYERS:
        if any(re.fullmatch(pattern, name) for pattern in patterns):
            return layer
    raise AssertionError(f"plume.{name} belongs to no layer: add it to LAYERS")


def _imported(module: Module) -> list[tuple[str, int]]:
    """The plume modules `module` imports at run time (not for type checking), with lines."""
    guarded = {
        id(node)
        for stmt in ast.walk(module.tree)
        if isinstance(stmt, ast.If) and "TYPE_CHECKING" in ast.unparse(stmt.test)
        for node in ast.walk(stmt)
    }
    imported = []
    for node in ast.walk(module.tree):
        if id(node) in guarded or not isinstance(node, ast.ImportFrom | ast.Import):
            continue
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif node.module == "plume":
            targets = [f"plume.{alias.name}" for alias in node.names]
        else:
            base = node.module or ""
            targets = [
                f"{base}.{alias.name}"
                if f"{base}.{alias.name}".removeprefix("plume.") in NAMES
                else base
                for alias in node.names
            ]
        for target in targets:
            if target.startswith("plume."):
                name = target.removeprefix("plume.")
                while name and name not in NAMES:
                    name = name.rpartition(".")[0]
                if name and name != module.name:
                    imported.append((name, node.lineno))
    return imported


def test_every_module_has_a_layer() -> None:
    for module in MODULES:
        layer_of(module.name)


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.name)
def test_imports_point_down_the_layers(module: Module) -> None:
    """A module uses its own layer and those below: the kit knows no domain, a domain no
    HTTP, and only the application and the command line put everything together."""
    own = RANK[layer_of(module.name)]
    upward = [
        f"line {line}: plume.{name} ({layer_of(name)})"
        for name, line in _imported(module)
        if RANK[layer_of(name)] > own
    ]
    assert not upward, f"plume.{module.name} ({layer_of(module.name)}) imports {upward}"


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.name)
def test_a_package_uses_its_siblings_services_not_their_repositories(module: Module) -> None:
    """Only a repository may build on another package's repository (the settlement's
    statement spans usage, the ledger and the audit chain)."""
    if module.name.endswith(".repository"):
        return
    package = module.name.split(".")[0]
    foreign = [
        f"line {line}: plume.{name}"
        for name, line in _imported(module)
        if name.endswith(".repository") and name.split(".")[0] != package
    ]
    assert not foreign, f"plume.{module.name} reaches into {foreign}"


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.name)
def test_sql_is_sent_from_repositories_only(module: Module) -> None:
    if module.relative.endswith("repository.py") or module.relative in SQL_ALLOWED:
        return
    lines = module.path.read_text(encoding="utf-8").splitlines()
    calls = [
        f"line {n}: {text.strip()}" for n, text in enumerate(lines, 1) if SQL_CALL.search(text)
    ]
    assert not calls, f"SQL outside a repository in plume.{module.name}: {calls}"


@pytest.mark.parametrize(("engine", "allowed"), sorted(CONFINED.items()))
def test_third_party_engines_stay_behind_their_interface(engine: str, allowed: set[str]) -> None:
    importers = set()
    for module in MODULES:
        for node in ast.walk(module.tree):
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            if any(name == engine or name.startswith(engine + ".") for name in names):
                importers.add(module.relative)
    assert importers <= allowed, f"{engine} imported by {sorted(importers - allowed)}"


def test_no_module_is_over_500_lines() -> None:
    long = {
        module.relative: lines
        for module in MODULES
        if (lines := len(module.path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not long, f"split by responsibility: {long}"


def test_migrations_are_frozen() -> None:
    """A revision embeds what it creates: replaying history never depends on today's code."""
    importers = [
        path.name
        for path in sorted((ROOT / "migrations" / "versions").glob("*.py"))
        if re.search(r"^\s*(from|import)\s+plume\b", path.read_text(encoding="utf-8"), re.M)
    ]
    assert not importers, f"migrations importing plume: {importers}"


def test_endpoints_are_imported_by_the_application_only() -> None:
    """Routes are leaves: nothing but the application calls into them."""
    importers = [
        f"plume.{module.name} imports plume.{name}"
        for module in MODULES
        if layer_of(module.name) != "composition"
        for name, _ in _imported(module)
        if name.endswith(".endpoints")
    ]
    assert not importers, importers
