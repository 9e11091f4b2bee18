"""References in job specs: how they parse, where they may stand, and how they are shown."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from kairos.models import JobSpec
from kairos.references import Reference, Template, parse, render_json

ENV, SECRET = Reference("env", "CRAWLER_TOKEN"), Reference("secret", "crawler.token")


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("plain", None),
        ("${HOME} is plain text", None),
        ("${env:CRAWLER_TOKEN}", (ENV,)),
        ("Bearer ${secret:crawler.token}", ("Bearer ", SECRET)),
        ("${env:CRAWLER_TOKEN}:${secret:crawler.token}!", (ENV, ":", SECRET, "!")),
        ("$${env:CRAWLER_TOKEN}", ("${env:CRAWLER_TOKEN}",)),
        ("a $${b} ${env:CRAWLER_TOKEN}", ("a ${b} ", ENV)),
    ],
)
def test_references_are_read_from_text(text: str, parts: tuple[Any, ...] | None) -> None:
    assert parse(text) == (None if parts is None else Template(parts))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("${env:CRAWLER_TOKEN", "is not closed"),
        ("${env:1ABC}", "environment variable's name"),
        ("${env:}", "environment variable's name"),
        ("${secret:has space}", "not a secret name"),
        ("${secret:" + "x" * 65 + "}", "not a secret name"),
    ],
)
def test_a_malformed_reference_is_refused_saying_why(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse(text)


def test_rendering_replaces_references_in_every_string_of_a_json_body() -> None:
    body = {"token": "${env:CRAWLER_TOKEN}", "list": ["x", "${secret:crawler.token}"], "n": 1}
    values = {ENV: "e-value", SECRET: "s-value"}
    assert render_json(body, values.__getitem__) == {
        "token": "e-value",
        "list": ["x", "s-value"],
        "n": 1,
    }


def spec(**fields: Any) -> dict[str, Any]:
    target = {"url": "https://api.example.com/crawl"} | fields.pop("target", {})
    return {"trigger": {"type": "interval", "minutes": 5}, "target": target} | fields


def test_each_malformed_reference_is_named_by_its_field() -> None:
    document = spec(
        target={
            "headers": {"Authorization": "Bearer ${secret:bad name}"},
            "body": {"a": ["${env:"]},
        },
        on_failure={"url": "https://hooks.example.com/", "secret": "${env:9}"},
    )
    with pytest.raises(ValidationError) as caught:
        JobSpec.model_validate(document)
    locs = [error["loc"] for error in caught.value.errors()]
    assert locs == [
        ("target", "headers", "Authorization"),
        ("target", "body", "a", 0),
        ("on_failure", "secret"),
    ]


def test_a_spec_knows_where_its_references_are() -> None:
    job = JobSpec.model_validate(
        spec(
            target={"headers": {"X-Token": "${env:CRAWLER_TOKEN}", "X-Plain": "p"}, "body": "b"},
            on_pause={"url": "https://hooks.example.com/", "secret": "${secret:crawler.token}"},
        )
    )
    assert [(loc, t.references) for loc, t in job.templates] == [
        (("target", "headers", "X-Token"), [ENV]),
        (("on_pause", "secret"), [SECRET]),
    ]
    assert JobSpec.model_validate(spec()).templates == []


def test_references_are_shown_as_written_and_literal_secrets_masked() -> None:
    headers = {"Authorization": "Bearer ${secret:crawler.token}", "X-Key": "k-123"}
    hooks = {
        "on_failure": {"url": "https://hooks.example.com/", "secret": "${env:CRAWLER_TOKEN}"},
        "on_pause": {"url": "https://hooks.example.com/", "secret": "literal"},
    }
    document = spec(target={"headers": headers, "secret_headers": ["X-Key"]}, **hooks)
    shown = JobSpec.model_validate(document).masked().model_dump(mode="json")
    assert shown["target"]["headers"] == {
        "Authorization": "Bearer ${secret:crawler.token}",
        "X-Key": "***",
    }
    assert shown["on_failure"]["secret"] == "${env:CRAWLER_TOKEN}"
    assert shown["on_pause"]["secret"] == "***"


def test_a_resolved_target_carries_values_and_a_copy_finds_its_own_references() -> None:
    job = JobSpec.model_validate(
        spec(target={"headers": {"A": "${env:CRAWLER_TOKEN}"}, "body": "$${env:X}"})
    )
    values = {ENV: "e-value"}
    resolved = job.target.resolved(values.__getitem__)
    assert resolved.model_dump()["headers"] == {"A": "e-value"}
    assert resolved.model_dump()["body"] == "${env:X}"
    # Found again in the copy, from its own values: the escape is gone, so a reference shows.
    assert resolved.templates == [(("body",), Template((Reference("env", "X"),)))]


def test_finding_references_changes_neither_equality_nor_what_a_copy_finds() -> None:
    document = spec(target={"headers": {"A": "${env:CRAWLER_TOKEN}"}})
    looked, fresh = JobSpec.model_validate(document), JobSpec.model_validate(document)
    assert looked.templates
    assert looked == fresh
    changed = looked.target.model_copy(update={"headers": {"A": "plain"}})
    assert changed.templates == []
