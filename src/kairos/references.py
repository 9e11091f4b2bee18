"""References to secrets in job specs: ``${env:NAME}`` and ``${secret:name}``.

A header value, a string body, a string inside a JSON body or a webhook's secret may hold
references in place of the values themselves; they are stored and shown as written, and
replaced by their values only when the target is called. ``${env:NAME}`` is read from the
server's environment, ``${secret:name}`` from the secrets Kairos keeps (``/secrets``).

Only ``${env:`` and ``${secret:`` begin a reference; any other ``${`` is plain text. ``$${``
writes a literal ``${`` (so ``$${env:HOME}`` is sent as ``${env:HOME}``). Pure: no I/O here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any, Literal, NamedTuple

__all__ = [
    "ENV_NAME_PATTERN",
    "SECRET_NAME_PATTERN",
    "Reference",
    "Template",
    "check_secret_name",
    "parse",
    "references_in_json",
    "render_json",
]

ENV_NAME_PATTERN = r"[A-Za-z_][A-Za-z0-9_]*"
SECRET_NAME_PATTERN = r"[A-Za-z0-9_.:-]{1,64}"
_ENV_NAME = re.compile(ENV_NAME_PATTERN)
_SECRET_NAME = re.compile(SECRET_NAME_PATTERN)
# What may start a reference or an escape; anything else is text, read in one piece.
_SPECIAL = re.compile(r"\$\$\{|\$\{(env|secret):")


class Reference(NamedTuple):
    kind: Literal["env", "secret"]
    name: str

    def __str__(self) -> str:
        return f"${{{self.kind}:{self.name}}}"


class Template(NamedTuple):
    """A string with references: its parts in order, text and references."""

    parts: tuple[str | Reference, ...]

    @property
    def references(self) -> list[Reference]:
        return [part for part in self.parts if isinstance(part, Reference)]

    def render(self, value_of: Callable[[Reference], str]) -> str:
        """The string with each reference replaced by ``value_of(reference)``."""
        return "".join(part if isinstance(part, str) else value_of(part) for part in self.parts)


def check_secret_name(name: str) -> str:
    """``name`` if it may name a secret, else ``ValueError`` saying what a name may be."""
    if not _SECRET_NAME.fullmatch(name):
        raise ValueError(f"{name[:80]!r} is not a secret name: 1-64 letters, digits and _ . : -")
    return name


def parse(text: str) -> Template | None:
    """The template ``text`` is, or None when it holds no reference and no escape (the usual
    case: such a string is sent as it is). ``ValueError`` saying what is wrong with a
    malformed reference (an unclosed one, a bad name)."""
    if "${" not in text:
        return None
    parts: list[str | Reference] = []
    position = 0
    literal: list[str] = []
    for match in _SPECIAL.finditer(text):
        if match.start() < position:
            continue  # inside a reference already read
        literal.append(text[position : match.start()])
        if match.group(1) is None:
            literal.append("${")
            position = match.end()
            continue
        close = text.find("}", match.end())
        if close < 0:
            raise ValueError(f"{match.group(0)} at {match.start()} is not closed by '}}'")
        kind: Literal["env", "secret"] = "env" if match.group(1) == "env" else "secret"
        name = text[match.end() : close]
        _check_name(kind, name)
        if text_before := "".join(literal):
            parts.append(text_before)
        literal = []
        parts.append(Reference(kind, name))
        position = close + 1
    literal.append(text[position:])
    rest = "".join(literal)
    if rest:
        parts.append(rest)
    if not any(isinstance(part, Reference) for part in parts) and rest == text:
        return None  # "${" but no reference and no escape: plain text
    return Template(tuple(parts))


def _check_name(kind: str, name: str) -> None:
    if kind == "env" and not _ENV_NAME.fullmatch(name):
        raise ValueError(
            f"${{env:{name[:80]}}}: an environment variable's name is letters, digits and _ "
            "(not a digit first)"
        )
    if kind == "secret":
        try:
            check_secret_name(name)
        except ValueError as exc:
            raise ValueError(f"${{secret:{name[:80]}}}: {exc}") from None


def references_in_json(value: Any) -> Iterator[tuple[tuple[str | int, ...], Template]]:
    """Each string in a JSON value (an object's values, an array's items) that holds
    references, with its path; ``ValueError`` from ``parse`` carries the path in its
    ``args[1]``."""
    stack: list[tuple[tuple[str | int, ...], Any]] = [((), value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            try:
                template = parse(item)
            except ValueError as exc:
                raise ValueError(str(exc), path) from None
            if template is not None:
                yield path, template
        elif isinstance(item, dict):
            stack.extend(((*path, key), child) for key, child in item.items())
        elif isinstance(item, list):
            stack.extend(((*path, index), child) for index, child in enumerate(item))


def render_json(value: Any, value_of: Callable[[Reference], str]) -> Any:
    """``value`` with each string's references replaced (see ``Template.render``)."""
    if isinstance(value, str):
        template = parse(value)
        return value if template is None else template.render(value_of)
    if isinstance(value, dict):
        return {key: render_json(child, value_of) for key, child in value.items()}
    if isinstance(value, list):
        return [render_json(child, value_of) for child in value]
    return value
