"""Logging set-up: human-readable lines by default, JSON lines with ``KAIROS_LOG_FORMAT=json``.

A line about a run carries the run's identity as ``extra`` fields (``run_fields``): the text
format appends them as ``key=value``, the JSON format has them as keys, so every such line can be
found by job id, run id, scheduled time or attempt.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any, Literal

from kairos.clock import from_us

__all__ = ["JsonFormatter", "TextFormatter", "configure", "run_fields"]

RUN_FIELDS = ("job_id", "run_id", "scheduled_for", "attempt")


def run_fields(job_id: str, run_id: int, scheduled_for_us: int, attempt: int) -> dict[str, Any]:
    """``extra=`` for a log call about one run."""
    return {
        "job_id": job_id,
        "run_id": run_id,
        "scheduled_for": from_us(scheduled_for_us).isoformat(),
        "attempt": attempt,
    }


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = [f"{name}={getattr(record, name)}" for name in RUN_FIELDS if hasattr(record, name)]
        if not fields:
            return line
        head, newline, trace = line.partition("\n")  # keep a traceback below the fields
        return f"{head} [{' '.join(fields)}]{newline}{trace}"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({name: getattr(record, name) for name in RUN_FIELDS if hasattr(record, name)})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure(level: str, fmt: Literal["text", "json"]) -> None:
    """One handler on the root logger (uvicorn's loggers pass their lines to it too)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
