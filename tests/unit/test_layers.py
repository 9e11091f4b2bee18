"""Layers import one way (errors, models -> triggers, executors, store -> engine -> adapters):
read from the source, so an upward import fails here before it makes a cycle."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import kairos

PACKAGE = Path(kairos.__file__).parent

ABOVE_THE_STORE = (
    "kairos.engine",
    "kairos.policies",
    "kairos.api",
    "kairos.web",
    "kairos.auth",
    "kairos.metrics",
    "kairos.cli",
    "kairos.__main__",
)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports, anywhere in it (in functions too), relative ones
    resolved."""
    here = module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def within(module: str, layers: tuple[str, ...]) -> bool:
    return any(module == layer or module.startswith(f"{layer}.") for layer in layers)


def upward(package: str, above: tuple[str, ...]) -> dict[str, list[str]]:
    """Of the modules under ``package``, those that import something in ``above``."""
    wrong: dict[str, list[str]] = {}
    for path in sorted((PACKAGE.parent / package.replace(".", "/")).rglob("*.py")):
        hits = sorted(m for m in imports(path) if within(m, above))
        if hits:
            wrong[module_name(path)] = hits
    return wrong


def test_the_store_imports_nothing_above_itself() -> None:
    assert upward("kairos.store", ABOVE_THE_STORE) == {}


def test_the_check_sees_imports_of_every_kind() -> None:
    base = imports(PACKAGE / "store" / "base.py")
    assert {"kairos.models", "kairos.models.JobRecord", "abc"} <= base
    sql = imports(PACKAGE / "store" / "sql" / "ledger.py")
    assert "kairos.store.claims.ClaimPolicy" in sql
    # The engine does import the store: the same check, turned round, finds it.
    assert "kairos.engine.policies" in upward("kairos.engine", ("kairos.store",))


CLIENT_MAY_IMPORT = ("kairos.api.schemas", "kairos.api.admin_schemas")


def test_the_client_imports_only_the_apis_wire_models() -> None:
    """``kairos.client`` runs in scripts and other programs: the API's wire models, never the
    engine, the store, the routes or FastAPI."""
    heavy = ("kairos.engine", "kairos.store", "kairos.api", "kairos.web", "kairos.cli", "fastapi")
    wrong = {
        name: [m for m in hits if not within(m, CLIENT_MAY_IMPORT)]
        for name, hits in upward("kairos.client", heavy).items()
    }
    assert {name: hits for name, hits in wrong.items() if hits} == {}


def test_importing_the_client_loads_neither_the_engine_nor_fastapi() -> None:
    code = (
        "import sys, kairos.client\n"
        "heavy = ('fastapi', 'starlette', 'sqlalchemy', 'uvicorn', 'kairos.engine',"
        " 'kairos.store', 'kairos.api.app', 'kairos.api.routes')\n"
        "print(sorted(m for m in sys.modules if m.startswith(heavy)))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert loaded.stdout.strip() == "[]"
