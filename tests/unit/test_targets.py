"""Targets are told apart by ``type``, and their errors are named as a client wrote them."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from kairos.errors import InvalidField
from kairos.models import HttpTarget, JobSpec

TRIGGER = {"type": "interval", "seconds": 60}


def spec(target: Any) -> JobSpec:
    return JobSpec.model_validate({"trigger": TRIGGER, "target": target})


def errors(target: Any) -> list[tuple[tuple[str | int, ...], str]]:
    with pytest.raises(ValidationError) as caught:
        spec(target)
    return [(error["loc"], error["msg"]) for error in caught.value.errors()]


def test_a_target_without_a_type_is_http() -> None:
    assert isinstance(spec({"url": "http://example.com/"}).target, HttpTarget)
    stored = spec({"url": "http://example.com/"}).model_dump_json()
    assert JobSpec.from_stored(stored).target.type == "http"


def test_an_unknown_type_is_named_at_target_type() -> None:
    assert errors({"type": "ftp", "url": "http://example.com/"}) == [
        (("target", "type"), "Input should be 'http' or 'python'")
    ]


def test_errors_inside_a_target_name_its_field_not_its_kind() -> None:
    assert errors({"type": "http", "url": "ftp://x", "method": "FETCH"}) == [
        (("target", "url"), "URL scheme should be 'http' or 'https'"),
        (
            ("target", "method"),
            "Input should be 'GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD' or 'OPTIONS'",
        ),
    ]
    assert errors("http://example.com/") == [
        (("target",), "Input should be a valid dictionary or instance of HttpTarget")
    ]


@pytest.mark.parametrize(
    "body", [{"a": ["\ud800"]}, ["ok", {"\udc00": 1}], "\ud800"], ids=["value", "key", "text"]
)
def test_a_body_that_is_no_text_is_refused_before_it_is_stored(body: Any) -> None:
    (found,) = {loc for loc, _ in errors({"url": "http://example.com/", "body": body})}
    assert found[:2] == ("target", "body")
    assert spec({"url": "http://example.com/", "body": {"a": ["\U0001f600"]}}).model_dump_json()


def test_the_target_keeps_its_masked_secrets_from_the_stored_one() -> None:
    masked = spec({"url": "http://example.com/", "headers": {"Authorization": "***"}})
    stored = spec({"url": "http://example.com/", "headers": {"Authorization": "Bearer s"}})
    assert masked.keeping_secrets(stored).target.headers == {"Authorization": "Bearer s"}
    with pytest.raises(InvalidField) as caught:
        masked.keeping_secrets(None)
    assert tuple(caught.value.loc) == ("target", "headers")
