"""What a ``RedisStore`` needs of its server beyond the data: errors in the store's terms, the
server's clock, the schema's version and the installation id that tells a wiped store."""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import Iterator
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
        await stats.rebuild(client, k)  # 2: the run ledger's summaries
        await client.set(k.schema, 2)
    installation = await client.get(k.installation)
    return str(installation or fresh)


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
