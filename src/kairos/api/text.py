"""A JSON body holds text: a lone UTF-16 surrogate (``"\\ud800"``) is valid JSON syntax but no
text, and would fail wherever the string goes next (a 422 that echoes it, the database). Every
API route refuses one as a 422 naming the field that holds it (``KairosRoute`` asks, before the
route reads its body), in ``kairos serve`` and in any app that embeds the API alike."""

from __future__ import annotations

import json
import re
from collections import deque
from typing import Any

from kairos.errors import InvalidField

__all__ = ["check_text", "is_json"]

# A surrogate as a JSON escape (\ud800-\udfff), or as the bytes that would encode it in UTF-8
# (which Python's JSON reader takes as well). A match may still be a valid pair (an emoji).
_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}|\xed[\xa0-\xbf]")
_MESSAGE = "holds a lone UTF-16 surrogate (such as \\ud800), which is not text"


def is_json(content_type: str | None) -> bool:
    """The media types FastAPI reads as JSON."""
    media = (content_type or "").partition(";")[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def check_text(body: bytes) -> None:
    """``InvalidField`` naming where a JSON body holds a lone surrogate; nothing if nowhere
    (also when it is not JSON at all: the route says so)."""
    if not _SURROGATE.search(body):
        return  # the usual case: no parsing here
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        return
    pending: deque[tuple[list[str | int], Any]] = deque([([], value)])
    while pending:
        loc, item = pending.popleft()
        if isinstance(item, str) and not _is_text(item):
            raise InvalidField(loc, _MESSAGE)
        if isinstance(item, list):
            pending.extend(([*loc, index], child) for index, child in enumerate(item))
        elif isinstance(item, dict):
            for key, child in item.items():
                if not _is_text(key):
                    raise InvalidField(loc, f"a key {_MESSAGE}")
                pending.append(([*loc, key], child))


def _is_text(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True
