"""Readers of the files in ``deploy/`` for the tests that check them: a Dockerfile's stages and
instructions, a systemd unit's directives, and what a PromQL query names (metrics, labels)."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import promql_parser as promql
import yaml

__all__ = [
    "DEPLOY",
    "REPO",
    "Stage",
    "dashboard_queries",
    "kairos_variables",
    "load_yaml",
    "read_dockerfile",
    "read_unit",
    "result_labels",
    "selectors",
]

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
PROMETHEUS_TARGET_LABELS = frozenset({"job", "instance"})
"""Labels Prometheus adds to every scraped sample."""


def load_yaml(path: Path) -> Any:
    with path.open() as stream:
        return yaml.safe_load(stream)


def kairos_variables(text: str) -> set[str]:
    """Every ``KAIROS_*`` name a file mentions."""
    return set(re.findall(r"\bKAIROS_[A-Z0-9_]+\b", text))


@dataclass(frozen=True)
class Instruction:
    keyword: str
    flags: tuple[str, ...]
    """Leading ``--name=value`` options (``RUN --mount=...``, ``HEALTHCHECK --interval=...``)."""
    arguments: str


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def env(self) -> dict[str, str]:
        variables: dict[str, str] = {}
        for instruction in self.all("ENV"):
            for pair in shlex.split(instruction.arguments):
                name, sep, value = pair.partition("=")
                assert sep, f"ENV {pair!r}: write ENV NAME=value"
                variables[name] = value
        return variables

    def exec_form(self, keyword: str) -> list[str]:
        """The JSON (exec) form of the stage's last ``keyword`` instruction (``CMD``, or the
        command of a ``HEALTHCHECK CMD [...]``)."""
        instruction = self.all(keyword)[-1]
        text = instruction.arguments
        if keyword == "HEALTHCHECK":
            assert text.startswith("CMD "), "HEALTHCHECK takes CMD [...]"
            text = text.removeprefix("CMD ")
        argv = json.loads(text)
        assert isinstance(argv, list), f"{keyword} must be in exec form"
        return [str(arg) for arg in argv]


def read_dockerfile(path: Path) -> tuple[dict[str, str], list[Stage]]:
    """The global ``ARG`` defaults and the stages, with continuation lines joined and
    ``${ARG}`` in ``FROM`` resolved."""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in _logical_lines(path.read_text()):
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        flags: list[str] = []
        while rest.startswith("--"):
            flag, _, rest = rest.partition(" ")
            flags.append(flag)
        if keyword == "FROM":
            base, _, name = rest.partition(" AS ")
            for arg, value in args.items():
                base = base.replace(f"${{{arg}}}", value)
            stages.append(Stage(base.strip(), name.strip() or None))
        elif keyword == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name] = default
        else:
            assert stages, f"{keyword} before the first FROM"
            stages[-1].instructions.append(Instruction(keyword, tuple(flags), rest.strip()))
    return args, stages


def _logical_lines(text: str) -> list[str]:
    lines, pending = [], ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1].strip() + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    return lines


def read_unit(path: Path) -> dict[str, list[tuple[str, str]]]:
    """A systemd unit's sections, each a list of ``(key, value)`` in order (keys repeat)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        key, sep, value = line.partition("=")
        assert current is not None, f"line {number}: a directive before any [Section]"
        assert sep, f"line {number} is neither a [Section] nor Key=value"
        current.append((key.strip(), value.strip()))
    return sections


def dashboard_queries(path: Path) -> list[str]:
    """Every PromQL query of a Grafana dashboard: its panels' targets and its variables'."""
    dashboard = json.loads(path.read_text())
    queries = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        if variable["type"] == "query" and isinstance(query, dict):
            queries.append(_label_values_selector(query["query"]))
    return queries


def _label_values_selector(query: str) -> str:
    """``label_values(metric, label)``, Grafana's, as the selector ``metric{label!=""}``."""
    found = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", query)
    assert found, f"unexpected variable query {query!r}"
    return f'{found[1]}{{{found[2]}!=""}}'


def selectors(expr: promql.Expr) -> list[tuple[str, dict[str, str]]]:
    """The metric name and ``{label: value}`` matchers of each series a query reads."""
    found: list[tuple[str, dict[str, str]]] = []

    def visit(node: promql.Expr) -> None:
        if isinstance(node, promql.VectorSelector):
            matchers = {m.name: m.value for m in node.matchers.matchers if m.name != "__name__"}
            found.append((str(node.name), matchers))

    promql.walk(expr, visit)
    return found


def result_labels(expr: promql.Expr, metric_labels: dict[str, set[str]]) -> set[str]:
    """The labels a query's result series carry (those an alert's annotations may name).
    ``metric_labels`` gives each metric's own labels."""
    if isinstance(expr, promql.VectorSelector):
        return metric_labels[str(expr.name)] | PROMETHEUS_TARGET_LABELS
    if isinstance(expr, promql.MatrixSelector):
        return result_labels(expr.vector_selector, metric_labels)
    if isinstance(expr, promql.ParenExpr):
        return result_labels(expr.expr, metric_labels)
    if isinstance(expr, promql.AggregateExpr):
        modifier = expr.modifier
        if modifier is None:
            return set()
        if modifier.type == promql.AggModifierType.By:
            return set(modifier.labels)
        return result_labels(expr.expr, metric_labels) - set(modifier.labels)
    if isinstance(expr, promql.Call):
        vectors = [a for a in expr.args if not isinstance(a, promql.NumberLiteral)]
        inner = result_labels(vectors[-1], metric_labels)
        return inner - {"le"} if expr.func.name == "histogram_quantile" else inner
    if isinstance(expr, promql.BinaryExpr):
        if isinstance(expr.rhs, promql.NumberLiteral):
            return result_labels(expr.lhs, metric_labels)
        if isinstance(expr.lhs, promql.NumberLiteral):
            return result_labels(expr.rhs, metric_labels)
        return result_labels(expr.lhs, metric_labels) & result_labels(expr.rhs, metric_labels)
    if isinstance(expr, promql.NumberLiteral):
        return set()
    raise AssertionError(f"no rule for the labels of {type(expr).__name__}: {expr}")
