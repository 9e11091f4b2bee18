"""``NodeBook``: the nodes sharing a Redis store, their heartbeats by Redis's clock, and the
takeover of those gone silent.

Each node also keeps a connection of its own open, named after it (its liveness connection).
Redis drops it the moment the node's process dies (SIGKILL, OOM), so the others know at once
that its runs are no longer in flight and stop counting them toward ``max_instances``, instead
of skipping the job's fires until its lease runs out. Taking its runs over still waits for the
lease: a connection can also be cut while its process lives on.
"""

from __future__ import annotations

import hashlib
from abc import abstractmethod
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.asyncio import Redis

from kairos.store.base import NodeInfo
from kairos.store.claims import ClaimPolicy
from kairos.store.redis import codec, ledger
from kairos.store.redis.connection import command, guarded, scored, server_now_us
from kairos.store.redis.keys import Keys
from kairos.store.redis.tx import Tx

__all__ = ["NodeBook", "tasks_of"]

T = TypeVar("T")


def tasks_of(row: str | None) -> frozenset[str]:
    """The tasks in a node's row (none: the node is not registered)."""
    return frozenset() if row is None else frozenset(codec.loads(row)[2])


class NodeBook:
    client: Redis
    k: Keys
    _where: str
    _url: str
    _liveness: dict[str, Redis]

    @abstractmethod
    async def _tx(self, change: Callable[[Tx], Awaitable[T]]) -> T: ...

    @abstractmethod
    async def check_installation(self) -> None: ...

    async def heartbeat(
        self, node_id: str, hostname: str, tasks: frozenset[str] = frozenset()
    ) -> None:
        """Also where a wiped store is noticed: the beat is refused, saying why."""
        await self.check_installation()
        with guarded(self._where):
            await self._hold_liveness(node_id)
            now_us = await server_now_us(self.client)

        async def change(tx: Tx) -> None:
            raw = await tx.read("HGET", tx.k.nodes, node_id)
            started_us = now_us if raw is None else codec.loads(raw)[1]
            row = codec.dumps([hostname, started_us, sorted(tasks)])
            if row != raw:  # a beat alone leaves the row be: claims read it
                tx.write("HSET", tx.k.nodes, node_id, row)
            tx.write("ZADD", tx.k.beats, now_us, node_id)

        await self._tx(change)

    def _liveness_name(self, node_id: str) -> str:
        digest = hashlib.sha256(f"{self.k.prefix}{node_id}".encode()).hexdigest()[:24]
        return f"kairos-node-{digest}"

    async def _hold_liveness(self, node_id: str) -> None:
        """Open the node's liveness connection, or check it (it reconnects, named again, after a
        cut)."""
        connection = self._liveness.get(node_id)
        if connection is None:
            name = self._liveness_name(node_id)
            connection = Redis.from_url(self._url, client_name=name, single_connection_client=True)
            self._liveness[node_id] = connection
        await connection.ping()

    async def runs_of_crashed_nodes(self, me: str) -> dict[str, int]:
        """Runs per job held by nodes whose process died: nodes that beat while ``me`` held its
        liveness connection, and whose own is gone. Judged only while ``me`` holds its own:
        after a Redis restart every connection is new, and a node not yet back must not look
        crashed. A hint read outside the claim's transaction: a node's death only lowers the
        counts."""
        with guarded(self._where):
            holders = set(await command(self.client, "SMEMBERS", self.k.holders)) - {me}
            if not holders or me not in self._liveness:
                return {}
            clients = await self.client.client_list()
            names = {str(client.get("name", "")): client for client in clients}
            mine = names.get(self._liveness_name(me))
            if mine is None:
                return {}
            now_us = await server_now_us(self.client)
            since_us = now_us - (int(mine.get("age", 0)) + 1) * 1_000_000
            others = sorted(holders)
            beats = await command(self.client, "ZMSCORE", self.k.beats, *others)
            crashed = [
                node
                for node, beat in zip(others, beats, strict=True)
                if beat is not None
                and float(beat) > since_us
                and self._liveness_name(node) not in names
            ]
            gone: dict[str, int] = {}
            for node in crashed:
                run_ids = sorted(await command(self.client, "SMEMBERS", self.k.running(node)))
                if not run_ids:
                    continue
                raws = await command(self.client, "MGET", *(self.k.run(int(i)) for i in run_ids))
                for run_id, raw in zip(run_ids, raws, strict=True):
                    if raw is not None:
                        run = codec.run_from(int(run_id), raw)
                        gone[run.job_id] = gone.get(run.job_id, 0) + 1
        return gone

    async def deregister_node(self, node_id: str) -> None:
        connection = self._liveness.pop(node_id, None)
        if connection is not None:
            await connection.aclose()

        async def change(tx: Tx) -> None:
            tx.write("HDEL", tx.k.nodes, node_id)
            tx.write("ZREM", tx.k.beats, node_id)

        await self._tx(change)

    async def take_over(self, lease_us: int, *, retries: int, policy: ClaimPolicy) -> list[str]:
        with guarded(self._where):
            now_us = await server_now_us(self.client)

        async def change(tx: Tx) -> list[str]:
            silent = f"({now_us - lease_us}"
            dead = sorted(await tx.read("ZRANGEBYSCORE", tx.k.beats, "-inf", silent))
            for node_id in dead:
                tx.write("HDEL", tx.k.nodes, node_id)
                tx.write("ZREM", tx.k.beats, node_id)
            registered = set(await tx.read("ZRANGE", tx.k.beats, 0, -1)) - set(dead)
            orphaned: list[int] = []
            for holder in sorted(await tx.read("SMEMBERS", tx.k.holders)):
                if holder in registered:
                    continue
                held = [int(i) for i in await tx.read("SMEMBERS", tx.k.running(holder))]
                if not held:
                    tx.write("SREM", tx.k.holders, holder)
                orphaned += held
            await ledger.interrupt(tx, orphaned, now_us, retries, policy)
            return dead

        return await self._tx(change)

    async def list_nodes(self) -> list[NodeInfo]:
        with guarded(self._where):
            now_us = await server_now_us(self.client)
            rows: dict[str, str] = await command(self.client, "HGETALL", self.k.nodes)
            flat = await command(self.client, "ZRANGE", self.k.beats, 0, -1, "WITHSCORES")
            beats = dict(scored(flat))
            nodes: list[NodeInfo] = []
            for node_id in sorted(rows):
                hostname, started_us, tasks = codec.loads(rows[node_id])
                running = int(await command(self.client, "SCARD", self.k.running(node_id)))
                beat_us = int(float(beats.get(node_id, now_us)))
                info = NodeInfo(
                    node_id, hostname, started_us, now_us - beat_us, running, frozenset(tasks)
                )
                nodes.append(info)
        return nodes
