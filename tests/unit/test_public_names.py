"""Every module says what it exports, and exports exactly what it defines in public."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys
from types import ModuleType

import pytest

import kairos

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(kairos.__path__, "kairos.")
    if ".migrations" not in info.name and not info.name.endswith("__main__")
)


def _defined_here(module: ModuleType) -> set[str]:
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and value.__module__ == module.__name__
    }


# Route modules export their router alone: their handlers are public only to FastAPI.
ROUTE_MODULES = {
    "kairos.web.accounts",
    "kairos.web.bulk",
    "kairos.web.jobs",
    "kairos.web.overview",
    "kairos.web.pages",
    "kairos.web.runs",
}


@pytest.mark.parametrize(
    "name",
    [m for m in MODULES if not m.startswith("kairos.api.routes.") and m not in ROUTE_MODULES],
)
def test_all_lists_every_public_definition(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{name} has no __all__"
    assert sorted(set(exported)) == sorted(exported), f"{name}.__all__ repeats a name"
    missing = [n for n in exported if not hasattr(module, n)]
    assert missing == [], f"{name}.__all__ names what it lacks: {missing}"
    assert _defined_here(module) <= set(exported), f"{name} hides public definitions"


def test_the_package_exports_its_version_and_the_library() -> None:
    assert kairos.__all__ == ["Kairos", "RunContext", "__version__"]
    assert kairos.__version__
    from kairos.library import Kairos
    from kairos.tasks import RunContext

    assert kairos.Kairos is Kairos
    assert kairos.RunContext is RunContext


def test_importing_the_package_alone_stays_light() -> None:
    """The ``kairos`` command imports the package on every call; the library (FastAPI, the
    engine) is imported when ``Kairos`` is first asked for."""
    code = "import sys, kairos; print('kairos.library' in sys.modules, 'fastapi' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False"]
