"""The adapters are siblings over the ``Scheduler`` facade: the web UI and the HTTP API never
import each other (``kairos.library`` composes them), neither reads ``request.app.state`` (in an
app that embeds Kairos, the app is not Kairos's), and nothing outside the engine and the store
reaches past the facade into ``scheduler.store``."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import kairos

PACKAGE = Path(kairos.__file__).parent
APP_FACTORY = "kairos.api.app"
"""``kairos serve``'s own app: it fills its ``state`` for the code that made it."""


def _modules() -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield name, ast.parse(path.read_text(encoding="utf-8"), str(path))


def _imports(tree: ast.Module) -> set[str]:
    """Every module ``tree`` imports; ``from kairos import web`` counts as ``kairos.web``."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None and not node.level:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _app_state_reads(tree: ast.Module) -> list[int]:
    """Lines that read ``<something>.app.state``."""
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr == "state"
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "app"
    ]


def _store_reaches(tree: ast.Module) -> list[int]:
    """Lines that read ``.store`` on a scheduler (``scheduler.store``, ``self._scheduler.store``,
    ``request.app.state.scheduler.store``)."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "store":
            owner = node.value
            name = owner.id if isinstance(owner, ast.Name) else getattr(owner, "attr", "")
            if "scheduler" in name.lower():
                lines.append(node.lineno)
    return lines


MODULES = dict(_modules())


def test_the_walk_finds_the_adapters() -> None:
    assert {"kairos.api.app", "kairos.api.routes.jobs", "kairos.web.pages", "kairos.metrics"} <= (
        MODULES.keys()
    )


@pytest.mark.parametrize("name", [n for n in MODULES if _within(n, "kairos.web")])
def test_the_web_ui_does_not_import_the_api(name: str) -> None:
    upward = sorted(m for m in _imports(MODULES[name]) if _within(m, "kairos.api"))
    assert upward == [], f"{name} imports {upward}"


@pytest.mark.parametrize("name", [n for n in MODULES if _within(n, "kairos.api")])
def test_the_api_does_not_import_the_web_ui(name: str) -> None:
    sideways = sorted(m for m in _imports(MODULES[name]) if _within(m, "kairos.web"))
    assert sideways == [], f"{name} imports {sideways}"


@pytest.mark.parametrize(
    "name",
    [
        n
        for n in MODULES
        if (_within(n, "kairos.api") or _within(n, "kairos.web")) and n != APP_FACTORY
    ],
)
def test_routes_and_pages_do_not_read_the_apps_state(name: str) -> None:
    assert _app_state_reads(MODULES[name]) == [], f"{name} reads request.app.state"


def test_a_read_of_the_apps_state_is_seen() -> None:
    source = "x = request.app.state.scheduler\ny = app.state\nz = request.state.x"
    assert _app_state_reads(ast.parse(source)) == [1]


@pytest.mark.parametrize(
    "name",
    [n for n in MODULES if not (_within(n, "kairos.engine") or _within(n, "kairos.store"))],
)
def test_only_the_engine_touches_the_schedulers_store(name: str) -> None:
    assert _store_reaches(MODULES[name]) == [], f"{name} reads scheduler.store"


@pytest.mark.parametrize(
    "source",
    [
        "x = scheduler.store.list_nodes()",
        "x = self._scheduler.store",
        "x = request.app.state.scheduler.store.get_meta('k')",
    ],
)
def test_a_reach_into_the_store_is_seen(source: str) -> None:
    assert _store_reaches(ast.parse(source)) == [1]


def test_a_store_of_something_else_is_not_a_reach() -> None:
    assert _store_reaches(ast.parse("x = self._store.get_job('j'); y = app.store")) == []


@pytest.mark.parametrize(
    ("source", "module"),
    [
        ("import kairos.api.schemas", "kairos.api.schemas"),
        ("from kairos.api.schemas import job_out", "kairos.api.schemas"),
        ("from kairos import web", "kairos.web"),
    ],
)
def test_an_import_is_seen(source: str, module: str) -> None:
    assert module in _imports(ast.parse(source))
