"""What a ``RedisStore`` needs of its server beyond the data: errors in the store's terms, the
server's clock, the schema's version and the installation id that tells a wiped store."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from kairos.errors import StoreUnavailable
from kairos.store.redis import stats
from kairos.store.redis.keys import SCHEMA_VERSION, Keys

__all__ = ["command", "guarded", "migrate", "scored", "server_now_us", "wiped_reason"]

log = logging.getLogger("kairos.store.redis")
_MIGRATION_LEASE_MS = 10 * 60 * 1000
"""How long a migrating process holds the others off; a migration taking longer is made again
by another (from the start), so this is far above what a million runs take."""
_MIGRATION_POLL_S = 0.2
_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end"


@contextlib.contextmanager
def guarded(where: str) -> Iterator[None]:
    """Raise Redis's failures to reach or write as ``StoreUnavailable``, naming ``where``."""
    try:
        yield
    except (RedisConnectionError, RedisTimeoutError) as exc:
        raise StoreUnavailable(f"cannot reach Redis at {where}: {exc}") from exc
    except ResponseError as exc:
        text = str(exc)
        if text.startswith(("READONLY", "OOM", "MISCONF", "LOADING", "NOAUTH", "WRONGPASS")):
            raise StoreUnavailable(f"Redis at {where} refuses writes: {text}") from exc
        raise


async def command(client: Redis, *args: Any) -> Any:
    """One Redis command, its reply as the server gives it (strings decoded)."""
    return await client.execute_command(*args)  # type: ignore[no-untyped-call]


def scored(reply: list[Any]) -> list[tuple[str, float]]:
    """A ``WITHSCORES`` reply as (member, score) pairs: flat in RESP2, paired in RESP3."""
    if reply and isinstance(reply[0], list):
        return [(str(member), float(score)) for member, score in reply]
    return [(str(m), float(s)) for m, s in zip(reply[::2], reply[1::2], strict=True)]


async def server_now_us(client: Redis) -> int:
    """Redis's clock, the one every node's heartbeat is judged by."""
    seconds, micros = await client.time()
    return int(seconds) * 1_000_000 + int(micros)


async def migrate(client: Redis, k: Keys, where: str) -> str:
    """Bring the keys' layout up to ``SCHEMA_VERSION`` and return the installation id, made
    now if the store is new."""
    fresh = secrets.token_hex(16)
    await client.set(k.installation, fresh, nx=True)
    await client.set(k.schema, SCHEMA_VERSION, nx=True)
    version = int(await client.get(k.schema) or SCHEMA_VERSION)
    if version > SCHEMA_VERSION:
        raise StoreUnavailable(
            f"the Kairos data in Redis at {where} has layout {version}, newer than this"
            f" version of Kairos knows ({SCHEMA_VERSION}); upgrade Kairos"
        )
    # Layouts before the current one are migrated here, one step a version.
    if version < 2:
        await _step(client, k, 2, stats.rebuild)  # 2: the run ledger's summaries
    installation = await client.get(k.installation)
    return str(installation or fresh)


async def _step(
    client: Redis, k: Keys, version: int, change: Callable[[Redis, Keys], Awaitable[None]]
) -> None:
    """Move the layout to ``version`` by ``change``, in one process: the others starting at the
    same time wait until it is done (or, if that process died, until its lease ends and one of
    them makes the change again; each change starts by clearing what a half-made one left)."""
    token = secrets.token_hex(8)
    while int(await client.get(k.schema) or 0) < version:
        if not await client.set(k.migrating, token, nx=True, px=_MIGRATION_LEASE_MS):
            await asyncio.sleep(_MIGRATION_POLL_S)
            continue
        try:
            log.info("migrating the Kairos data in Redis to layout %d", version)
            await change(client, k)
            await client.set(k.schema, version)
        finally:
            await client.eval(_RELEASE, 1, k.migrating, token)


async def wiped_reason(client: Redis, k: Keys, installation: str, where: str) -> str | None:
    """Why the store is not the one opened (its data is gone), or None if it is."""
    found = await client.get(k.installation)
    if found == installation:
        return None
    reason = (
        f"the Kairos data in Redis at {where} is gone (its installation key"
        f" {k.installation!r} {'is missing' if found is None else 'changed'}: Redis restarted"
        " without persistence, or the keys were deleted); jobs, runs and users are lost. Restore"
        " them (kairos apply...), then restart Kairos; run Redis with appendonly yes to keep them"
    )
    log.error("%s", reason)
    return reason
