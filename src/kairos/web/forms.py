"""The job form: a job's fields as a browser sends them, to and from a ``JobSpec``.

The form covers what people set most (trigger, zone, target, concurrency, retries, breaker,
tags). The target is an HTTP call or a python function (a task, its ``args`` and ``kwargs`` as
JSON); anything else a job has (a target's ``secret_headers``, a retry policy's delays, webhooks,
history) is kept as it was when the form is saved. A trigger the simple fields cannot show
(APScheduler-style fields, start and end dates, jitter) is edited as JSON.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from kairos.models import (
    CronTriggerSpec,
    DateTriggerSpec,
    HttpTarget,
    IntervalTriggerSpec,
    JobSpec,
)
from kairos.targets import PythonTarget

__all__ = ["FieldError", "JobForm", "form_field"]

UNITS = {"seconds": 1, "minutes": 60, "hours": 3_600, "days": 86_400}
TRIGGER_KINDS = ("cron", "interval", "date", "json")
TARGET_KINDS = ("http", "python")
_HTTP_FIELDS = ("url", "method", "headers", "body")
_PYTHON_FIELDS = ("task", "args", "kwargs")
_CHECKBOXES = ("coalesce", "paused")


class FieldError(ValueError):
    """A form field that cannot be read; ``name`` is the form's field name."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name
        self.message = message


@dataclass
class JobForm:
    id: str = ""
    trigger_kind: str = "cron"
    expression: str = "0 * * * *"
    every: str = "5"
    every_unit: str = "minutes"
    run_date: str = ""
    trigger_json: str = ""
    timezone: str = "UTC"
    target_kind: str = "http"
    url: str = ""
    method: str = "POST"
    headers: str = ""
    body: str = ""
    task: str = ""
    args: str = "[]"
    kwargs: str = "{}"
    timeout: str = ""
    max_instances: str = "1"
    misfire_grace_time: str = "60"
    coalesce: bool = True
    paused: bool = False
    max_attempts: str = "1"
    max_consecutive_failures: str = ""
    auto_resume_after: str = ""
    tags: str = ""
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict, repr=False)
    """The job as it was, secrets masked: what the form does not cover is kept from it."""

    @classmethod
    def from_browser(cls, data: Mapping[str, Any], base: JobSpec | None = None) -> JobForm:
        values: dict[str, Any] = {}
        for item in fields(cls):
            if item.name == "extra":
                continue
            if item.name in _CHECKBOXES:
                values[item.name] = item.name in data
            elif item.name in data:
                values[item.name] = str(data[item.name]).strip()
        form = cls(**values)
        form.extra = {} if base is None else base.masked().model_dump(mode="json")
        return form

    @classmethod
    def from_spec(cls, job_id: str, spec: JobSpec) -> JobForm:
        shown = spec.masked()
        target = shown.target
        http = target if isinstance(target, HttpTarget) else None
        python = target if isinstance(target, PythonTarget) else None
        form = cls(
            id=job_id,
            timezone=shown.timezone,
            target_kind=target.type,
            url="" if http is None else str(http.url),
            method="POST" if http is None else http.method,
            headers="" if http is None else "\n".join(f"{k}: {v}" for k, v in http.headers.items()),
            body="" if http is None else _body_text(http.body),
            task="" if python is None else python.task,
            args="[]" if python is None else json.dumps(python.args, ensure_ascii=False),
            kwargs="{}" if python is None else json.dumps(python.kwargs, ensure_ascii=False),
            timeout=_number(target.timeout),
            max_instances=str(shown.max_instances),
            misfire_grace_time=_number(shown.misfire_grace_time),
            coalesce=shown.coalesce,
            paused=shown.paused,
            max_attempts=str(shown.retry.max_attempts) if shown.retry else "1",
            max_consecutive_failures=_number(shown.max_consecutive_failures),
            auto_resume_after=_number(shown.auto_resume_after),
            tags=", ".join(shown.tags),
            description=shown.description,
            extra=shown.model_dump(mode="json"),
        )
        form._show_trigger(shown)
        return form

    def values(self) -> dict[str, Any]:
        """The fields, for a template."""
        shown = asdict(self)
        del shown["extra"]
        return shown

    def spec_fields(self) -> dict[str, Any]:
        """The job's fields as a ``JobSpec`` takes them (the job as it was, changed where the
        form says); ``FieldError`` for a field that cannot be read at all."""
        kept = dict(self.extra)
        kept.pop("paused", None)
        retry = kept.get("retry")
        attempts = _int(self.max_attempts, "max_attempts") or 1
        if retry or attempts > 1:
            retry = {**(retry or {}), "max_attempts": attempts}
        return kept | {
            "trigger": self.trigger(),
            "timezone": self.timezone or "UTC",
            "target": self.target(kept.get("target") or {}),
            "max_instances": _int(self.max_instances, "max_instances") or 1,
            "misfire_grace_time": _float(self.misfire_grace_time, "misfire_grace_time"),
            "coalesce": self.coalesce,
            "paused": self.paused,
            "retry": retry,
            "max_consecutive_failures": _int(
                self.max_consecutive_failures, "max_consecutive_failures"
            ),
            "auto_resume_after": _float(self.auto_resume_after, "auto_resume_after"),
            "tags": [t.strip() for t in self.tags.replace(",", " ").split() if t.strip()],
            "description": self.description,
        }

    def target(self, kept: Mapping[str, Any]) -> dict[str, Any]:
        """The target the form describes; of an HTTP target it replaces (``kept``), what the
        form does not show (``secret_headers``, politeness limits) stays."""
        timeout = _float(self.timeout, "timeout")
        if self.target_kind == "python":
            args = _json(self.args, "args", list, '["example.com", 2]')
            kwargs = _json(self.kwargs, "kwargs", dict, '{"depth": 2}')
            return {
                "type": "python",
                "task": self.task,
                "args": args,
                "kwargs": kwargs,
                "timeout": timeout,
            }
        if self.target_kind != "http":
            raise FieldError("target_kind", f"one of {', '.join(TARGET_KINDS)}")
        target = dict(kept) if kept.get("type", "http") == "http" else {}
        return target | {
            "type": "http",
            "url": self.url,
            "method": self.method or "POST",
            "headers": _headers(self.headers),
            "body": _body(self.body),
            "timeout": timeout,
        }

    def trigger(self) -> dict[str, Any]:
        kind = self.trigger_kind
        if kind == "cron":
            return {"type": "cron", "expression": self.expression}
        if kind == "interval":
            every = _float(self.every, "every")
            if every is None:
                raise FieldError("every", "say how often")
            unit = UNITS.get(self.every_unit)
            if unit is None:
                raise FieldError("every_unit", f"one of {', '.join(UNITS)}")
            return {"type": "interval", "seconds": every * unit}
        if kind == "date":
            if not self.run_date:
                raise FieldError("run_date", "say when")
            return {"type": "date", "run_date": self.run_date}
        if kind == "json":
            try:
                trigger = json.loads(self.trigger_json)
            except ValueError as exc:
                raise FieldError("trigger_json", f"not JSON: {exc}") from None
            except RecursionError:
                raise FieldError("trigger_json", "nested too deep") from None
            if not isinstance(trigger, dict):
                raise FieldError("trigger_json", 'a JSON object, like {"type": "cron", ...}')
            return trigger
        raise FieldError("trigger_kind", f"one of {', '.join(TRIGGER_KINDS)}")

    def _show_trigger(self, spec: JobSpec) -> None:
        trigger = spec.trigger
        simple_bounds = getattr(trigger, "start_date", None) is None and (
            getattr(trigger, "end_date", None) is None and getattr(trigger, "jitter", None) is None
        )
        if isinstance(trigger, CronTriggerSpec) and trigger.expression and simple_bounds:
            self.trigger_kind, self.expression = "cron", trigger.expression
        elif isinstance(trigger, IntervalTriggerSpec) and simple_bounds:
            self.trigger_kind = "interval"
            self.every, self.every_unit = _in_unit(trigger.total_seconds)
        elif isinstance(trigger, DateTriggerSpec):
            self.trigger_kind, self.run_date = "date", trigger.run_date.isoformat()
        else:
            self.trigger_kind = "json"
        self.trigger_json = json.dumps(trigger.model_dump(mode="json", exclude_none=True))


def form_field(loc: Sequence[str | int], trigger_kind: str, target_kind: str) -> str:
    """The form field that a validation error's ``loc`` (in a job body) is about:
    ``target.kwargs.depth`` is about ``kwargs``, ``target.url`` about ``url``."""
    head = str(loc[0]) if loc else ""
    if head == "trigger":
        return {"cron": "expression", "interval": "every", "date": "run_date"}.get(
            trigger_kind, "trigger_json"
        )
    if head == "target":
        shown = _PYTHON_FIELDS if target_kind == "python" else _HTTP_FIELDS
        inner = str(loc[1]) if len(loc) > 1 else ""
        if inner == "type":
            return "target_kind"
        return inner if inner in (*shown, "timeout") else shown[0]
    if head == "retry":
        return "max_attempts"
    known = {item.name for item in fields(JobForm)}
    return head if head in known else "form"


def _json(text: str, name: str, kind: type[list[Any]] | type[dict[str, Any]], example: str) -> Any:
    """The JSON array or object a text area holds (empty: an empty one)."""
    if not text:
        return kind()
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise FieldError(name, f"not JSON: {exc}") from None
    except RecursionError:
        raise FieldError(name, "nested too deep") from None
    if not isinstance(value, kind):
        raise FieldError(name, f"a JSON {'array' if kind is list else 'object'}, like {example}")
    return value


def _headers(text: str) -> dict[str, str]:
    headers = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise FieldError("headers", f"line {number}: write 'Name: value'")
        headers[name.strip()] = value.strip()
    return headers


def _body(text: str) -> Any:
    """JSON if it reads as JSON, else the text as it is; empty: no body."""
    if not text:
        return None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return text
    return value if isinstance(value, dict | list) else text


def _body_text(body: Any) -> str:
    if body is None:
        return ""
    return body if isinstance(body, str) else json.dumps(body, indent=2)


def _int(text: str, name: str) -> int | None:
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise FieldError(name, "a whole number") from None


def _float(text: str, name: str) -> float | None:
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise FieldError(name, "a number") from None


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def _in_unit(seconds: float) -> tuple[str, str]:
    for unit in ("days", "hours", "minutes"):
        if seconds >= UNITS[unit] and seconds % UNITS[unit] == 0:
            return f"{seconds / UNITS[unit]:g}", unit
    return f"{seconds:g}", "seconds"
