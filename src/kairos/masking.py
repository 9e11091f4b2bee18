"""Secrets in job specs: the mask the API shows for them, a URL's password, and the rule that
a secret kept by the mask only goes to the origin (scheme, host, port) it was given for."""

from __future__ import annotations

from pydantic import AnyHttpUrl

from kairos.errors import InvalidField

__all__ = ["SECRET_MASK", "kept_password", "masked_url", "same_origin"]

SECRET_MASK = "***"
"""What the API shows for a secret (a secret header's value, a URL's password, a webhook's
secret); sent back in a replacement, it keeps the stored value."""


def _with_password(url: AnyHttpUrl, password: str) -> AnyHttpUrl:
    """``url``, which has a password, with ``password`` (percent-encoded) in its place."""
    # The URL is in its normal form: "@" and ":" within the user and password are encoded.
    scheme, _, rest = str(url).partition("://")
    userinfo, _, location = rest.partition("@")
    user = userinfo.partition(":")[0]
    return AnyHttpUrl(f"{scheme}://{user}:{password}@{location}")


def masked_url(url: AnyHttpUrl) -> AnyHttpUrl:
    """``url`` as the API shows it: its password, if it has one, as ``"***"``."""
    return url if url.password is None else _with_password(url, SECRET_MASK)


def kept_password(url: AnyHttpUrl, stored: AnyHttpUrl | None) -> AnyHttpUrl:
    """``url``, its password ``"***"`` replaced by the one of ``stored``; ``InvalidField`` on
    ``url`` if there is none, or if ``url`` goes to another origin than ``stored``."""
    if url.password != SECRET_MASK:
        return url
    if stored is None or stored.password is None:
        message = (
            f"the password is {SECRET_MASK!r}, which keeps the one stored, "
            "but there is none: send the password itself"
        )
        raise InvalidField(["url"], message)
    same_origin(["url"], url, stored)
    return _with_password(url, stored.password)


def same_origin(loc: list[str], url: AnyHttpUrl, before: AnyHttpUrl) -> None:
    """``InvalidField`` on ``loc`` unless ``url`` has the origin (scheme, host, port) of
    ``before``, the stored URL: a secret kept by ``"***"`` never goes to a host it was not
    given for."""
    if _origin(url) != _origin(before):
        raise InvalidField(
            loc,
            f"{SECRET_MASK!r} keeps a stored secret only for the origin it was given for "
            f"({_origin_text(before)}), and the URL now goes to {_origin_text(url)}: "
            "the secret must be sent again for a new host",
        )


def _origin(url: AnyHttpUrl) -> tuple[str, str, int | None]:
    return url.scheme, (url.host or "").lower(), url.port


def _origin_text(url: AnyHttpUrl) -> str:
    scheme, host, port = _origin(url)
    return f"{scheme}://{host}:{port}"
