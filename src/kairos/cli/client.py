"""A small HTTP client for the CLI: turns API errors into one readable line."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any, NoReturn

import httpx

__all__ = ["ApiClient", "ApiError"]


class ApiError(Exception):
    """An API call that failed, worded for a person at a terminal."""


class ApiClient:
    def __init__(
        self, base_url: str, token: str | None, *, on_error: Callable[[ApiError], NoReturn]
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=base_url, headers=headers, timeout=30)
        self._base_url = base_url
        self._on_error = on_error

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            self._on_error(
                ApiError(
                    f"cannot reach Kairos at {self._base_url} (--url or KAIROS_URL): {exc};"
                    " is `kairos serve` running there?"
                )
            )
        if response.status_code >= 400:
            self._on_error(ApiError(_describe(response)))
        return response

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        return None if response.status_code == 204 else response.json()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._http.close()


def _describe(response: httpx.Response) -> str:
    if response.status_code == 401:
        return "not authorised: pass a valid token with --token or KAIROS_TOKEN"
    try:
        detail = response.json().get("detail")
    except ValueError:
        detail = None
    if isinstance(detail, list):
        lines = [
            ".".join(str(p) for p in item.get("loc", []) if p != "body")
            + ": "
            + item.get("msg", "")
            for item in detail
        ]
        return f"HTTP {response.status_code}: " + "; ".join(lines)
    return f"HTTP {response.status_code}: {detail or response.text[:200]}"
