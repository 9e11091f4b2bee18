"""Redis for tests: the local server under a key prefix of each test's own, and throwaway
servers a test starts, kills and starts again itself.

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
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import redis
from redis.asyncio import Redis

__all__ = ["REDIS_URL", "ThrowawayRedis", "redis_store_url", "require_redis", "wait_for_redis"]

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


class ThrowawayRedis:
    """A redis-server of the test's own on a free port, to stop and start again: with no
    persistence (as the local server runs) its data goes with it; with ``appendonly`` (in
    ``directory``, every write synced) its data survives."""

    def __init__(self, directory: Path, *, appendonly: bool = False) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed")
        self.binary = binary
        self.directory = directory
        self.appendonly = appendonly
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ThrowawayRedis:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> ThrowawayRedis:
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if self.appendonly else []
        where = ["--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory)]
        self.process = subprocess.Popen(
            [self.binary, *where, "--save", "", *persistence],
            stdout=subprocess.DEVNULL,
        )
        wait_for_redis(self.url)
        return self

    def stop(self) -> None:
        """Kill the server (SIGKILL: as a crash)."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None


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
