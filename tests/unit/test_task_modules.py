"""``KAIROS_TASKS`` / ``kairos serve --tasks``: the tasks of the modules named."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from kairos.errors import InvalidTask
from kairos.tasks import TaskRegistry


@pytest.fixture
def modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def write(where: Path, name: str, source: str) -> None:
    (where / f"{name}.py").write_text(textwrap.dedent(source))


def test_registries_at_a_modules_top_level_give_their_tasks(modules: Path) -> None:
    write(
        modules,
        "app_tasks_a",
        """
        from kairos.tasks import TaskRegistry

        class App:  # holds its registry as ``tasks``, as a Kairos object does
            def __init__(self):
                self.tasks = TaskRegistry()

        app = App()
        plain = TaskRegistry()

        @app.tasks.task()
        def crawl(url: str) -> None: ...

        @plain.task("index")
        def build_index() -> None: ...
        """,
    )
    registry = TaskRegistry.from_modules(["app_tasks_a"])
    assert registry.names() == {"crawl", "index"}


def test_a_module_without_a_registry_or_that_fails_to_import_is_named(modules: Path) -> None:
    write(modules, "app_tasks_none", "def crawl() -> None: ...\n")
    write(modules, "app_tasks_broken", "raise RuntimeError('no config')\n")
    with pytest.raises(InvalidTask, match="'app_tasks_none': the module holds no task registry"):
        TaskRegistry.from_modules(["app_tasks_none"])
    with pytest.raises(InvalidTask, match=r"'app_tasks_broken': cannot import.*no config"):
        TaskRegistry.from_modules(["app_tasks_broken"])
    with pytest.raises(InvalidTask, match="'app_tasks_missing': cannot import"):
        TaskRegistry.from_modules(["app_tasks_missing"])


def test_one_task_name_for_two_functions_across_modules_is_refused(modules: Path) -> None:
    for name in ("app_tasks_b", "app_tasks_c"):
        write(
            modules,
            name,
            """
            from kairos.tasks import TaskRegistry

            tasks = TaskRegistry()

            @tasks.task()
            def crawl() -> None: ...
            """,
        )
    with pytest.raises(InvalidTask, match="'crawl': already registered"):
        TaskRegistry.from_modules(["app_tasks_b", "app_tasks_c"])
