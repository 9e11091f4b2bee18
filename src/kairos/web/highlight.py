"""JSON coloured on the server: spans around keys, strings, numbers and literals, so a response
excerpt reads at a glance with no script and nothing fetched from elsewhere."""

from __future__ import annotations

import json
import re

from markupsafe import Markup, escape

__all__ = ["json_excerpt"]

# A key is a string followed by a colon. A string may be cut off by the end of an excerpt.
_TOKEN = re.compile(
    r'(?P<key>"(?:[^"\\\n]|\\.)*"(?=\s*:))'
    r'|(?P<string>"(?:[^"\\\n]|\\.)*"?)'
    r"|(?P<number>-?\b\d+(?:\.\d+)?(?:[eE][+-]?\d+)?\b)"
    r"|(?P<literal>\b(?:true|false|null)\b)"
)


def json_excerpt(text: str) -> Markup | None:
    """``text`` coloured as JSON (indented when it parses whole), or None when it is not JSON.
    An excerpt is the start of a response, so JSON cut short is coloured as it stands."""
    stripped = text.strip()
    if not stripped.startswith(("{", "[")):
        return None
    try:
        stripped = json.dumps(json.loads(stripped), indent=2, ensure_ascii=False)
    except ValueError:
        pass  # cut short, or not JSON after all: coloured as it is
    except RecursionError:
        return None
    return _colour(stripped)


def _colour(text: str) -> Markup:
    parts: list[Markup] = []
    done = 0
    for token in _TOKEN.finditer(text):
        parts.append(escape(text[done : token.start()]))
        kind = token.lastgroup
        parts.append(Markup('<span class="json-{}">{}</span>').format(kind, token.group()))
        done = token.end()
    parts.append(escape(text[done:]))
    return Markup("").join(parts)
