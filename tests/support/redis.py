"""Redis for tests: the local server under a key prefix of each test's own, and throwaway
servers a test starts (and stops) itself.

``KAIROS_TEST_REDIS_URL`` points at the server (default: the local one). Without a server the
tests that need one are skipped, except under ``CI=true``, where a missing server is a failure.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import pytest
import redis
from redis.asyncio import Redis

__all__ = ["REDIS_URL", "redis_server", "redis_store_url", "require_redis"]

REDIS_URL = os.environ.get("KAIROS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def require_redis() -> None:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=5).ping()
    except redis.RedisError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Redis is required under CI but unreachable: {exc}")
        pytest.skip(f"no Redis server at {REDIS_URL}: {exc}")


@asynccontextmanager
async def redis_store_url() -> AsyncIterator[str]:
    """A store URL with a fresh key prefix; its keys are deleted afterwards."""
    require_redis()
    prefix = f"kairos-test-{uuid.uuid4().hex[:12]}:"
    try:
        yield f"{REDIS_URL}?prefix={prefix}"
    finally:
        client = Redis.from_url(REDIS_URL)
        async with client:
            doomed = [key async for key in client.scan_iter(match=f"{prefix}*", count=1000)]
            if doomed:
                await client.delete(*doomed)


@contextmanager
def redis_server() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A redis-server of the test's own, with no persistence, on a free port: its URL and its
    process (stop it to see what a restart does)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        wait_for_redis(url)
        yield url, process
    finally:
        process.terminate()
        process.wait(10)


def wait_for_redis(url: str, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            redis.Redis.from_url(url, socket_connect_timeout=1).ping()
            return
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
