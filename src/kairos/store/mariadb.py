"""``MariaDbStore``: the store for a cluster of Kairos processes on one MariaDB database.

Due rows are claimed with ``FOR UPDATE SKIP LOCKED`` (MariaDB 10.6+), as on PostgreSQL, so nodes
never wait on each other's claims and never claim the same fire; the run ledger's unique key
backs that up even if they raced. Transactions run at ``READ COMMITTED``, which takes no gap
locks on these tables; a transaction InnoDB still rolls back to break a deadlock (or a lock
wait that ran out) is run again, a few times, and never reaches a caller as an error.

MariaDB has no ``LISTEN``/``NOTIFY``: changes are announced through a table instead
(``ChangeFeed``), a row written in the change's own transaction and read by every node every
50 ms, so another node hears of a change within about that (bench/RESULTS.md measures it).

Each node holds a named lock (``GET_LOCK``), its liveness lock, on a connection of its own. The
server drops it the moment the node's process dies (SIGKILL, OOM), so the others know at once
that its runs are no longer in flight and stop counting them toward ``max_instances``. Taking
its runs over still waits for the lease: a lock also vanishes with a connection cut while the
process lives on.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from typing import Any

from sqlalchemy import Connection, Select, Table, bindparam, create_engine, select, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, NoSuchModuleError

from kairos.errors import StoreUnavailable
from kairos.store.base import ChangeFn
from kairos.store.changes import ChangeFeed, write_changes
from kairos.store.schema import nodes
from kairos.store.sql import SqlStore
from kairos.store.sql.connections import one_line
from kairos.store.sql.dialect import MariaDbDialect

__all__ = ["MariaDbStore", "url_for_driver"]

DEFAULT_DRIVER = "mysqldb"
"""mysqlclient (``MySQLdb``): the fastest of the drivers measured (bench/RESULTS.md)."""
_MINIMUM_MARIADB = (10, 6)
_CONNECT_TIMEOUT_S = 10
_MIGRATION_LOCK_WAIT_S = 300
# Deadlock found (1213): InnoDB rolled the transaction back. Lock wait timeout exceeded (1205):
# it rolled the statement back, and the store rolls back the rest before running it again.
_ROLLED_BACK_FOR_LOCKS = {1205, 1213}
# The database's clock, in UTC whatever the server's zone (the session's is UTC: see __init__).
_DB_NOW_US = text("SELECT CAST(UNIX_TIMESTAMP(SYSDATE(6)) * 1000000 AS SIGNED)")
_BEATING_SINCE = (
    select(nodes.c.id)
    .where(nodes.c.id.in_(bindparam("ids", expanding=True)))
    .where(nodes.c.heartbeat_us > bindparam("since"))
)


class MariaDbStore(SqlStore):
    writer_threads = 4
    _dialect = MariaDbDialect()

    def __init__(self, url: str) -> None:
        parsed = url_for_driver(make_url(url))
        self._shown = parsed.set(drivername="mariadb").render_as_string()
        self._database = parsed.database or ""
        connect_args: dict[str, Any] = {"init_command": "SET time_zone = '+00:00'"}
        if "connect_timeout" not in parsed.query:  # else an unreachable host takes minutes
            connect_args["connect_timeout"] = _CONNECT_TIMEOUT_S
        if "charset" not in parsed.query:
            connect_args["charset"] = "utf8mb4"
        dbapi = _driver_module(parsed, make_url(url).render_as_string())
        engine = create_engine(
            parsed,
            module=dbapi,
            pool_size=8,
            max_overflow=8,
            pool_pre_ping=True,
            isolation_level="READ COMMITTED",
            connect_args=connect_args,
        )
        super().__init__(engine, engine)
        self._driver_error: type[Exception] = dbapi.Error
        self._feed: ChangeFeed | None = None
        self._liveness: dict[str, tuple[Any, int]] = {}
        """Per node id served here: the driver connection holding its liveness lock, and since
        when (database clock, microseconds)."""

    def _cannot_open(self, error: BaseException | None) -> str:
        return (
            f"cannot open the database {self._shown} ({one_line(error)}); check that MariaDB"
            " runs there and that the URL's host, port, user, password and database name are"
            " right"
        )

    def _must_retry(self, error: DBAPIError) -> bool:
        args: tuple[Any, ...] = getattr(error.orig, "args", ())
        return bool(args) and args[0] in _ROLLED_BACK_FOR_LOCKS

    def _lock_due(self, query: Select[Any], of: Table) -> Select[Any]:
        # MariaDB has no ``OF``: the joined job rows are locked too, and skipped where another
        # node's claim holds them, to be claimed in a later pass.
        return query.with_for_update(skip_locked=True, of=of)

    def _notify_many(self, conn: Connection, notices: list[tuple[int | None, str | None]]) -> None:
        write_changes(conn, notices, time.time_ns() // 1000)

    async def watch(self, on_change: ChangeFn) -> None:
        self._feed = ChangeFeed(self._read, self._write, on_change)
        await self._feed.start()

    def _db_now_us(self, conn: Connection) -> int:
        now: int = conn.execute(_DB_NOW_US).scalar_one()
        return now

    def _check_server(self, conn: Connection) -> None:
        dialect = conn.dialect
        version = tuple(
            int(part) for part in dialect.server_version_info or () if str(part).isdigit()
        )
        shown = ".".join(str(part) for part in version)
        if not getattr(dialect, "is_mariadb", False):
            raise StoreUnavailable(
                f"the database {self._shown} is MySQL {shown}; Kairos needs MariaDB"
                f" {_version(_MINIMUM_MARIADB)} or later (MySQL is not supported yet)"
            ) from None
        if version < _MINIMUM_MARIADB:
            raise StoreUnavailable(
                f"the database {self._shown} is MariaDB {shown}; Kairos needs MariaDB"
                f" {_version(_MINIMUM_MARIADB)} or later, for FOR UPDATE SKIP LOCKED"
            ) from None

    def _before_migrations(self, conn: Connection) -> None:
        # Replicas starting together take turns; the first migrates, the rest find nothing to
        # do. A session's lock, as MariaDB commits each DDL statement by itself.
        name = self._lock_name("migrations")
        taken = conn.execute(
            text("SELECT GET_LOCK(:name, :wait)"),
            {
                "name": name,
                "wait": _MIGRATION_LOCK_WAIT_S,
            },
        ).scalar()
        if taken != 1:
            raise StoreUnavailable(
                f"another Kairos process held the migration lock of {self._shown} for"
                f" {_MIGRATION_LOCK_WAIT_S} s; check for a process stuck migrating"
            ) from None

    def _after_migrations(self, conn: Connection) -> None:
        # Also after a failed migration: the pool keeps the session, and the lock with it.
        with contextlib.suppress(DBAPIError):
            conn.execute(text("DO RELEASE_LOCK(:name)"), {"name": self._lock_name("migrations")})

    def _crashed(self, conn: Connection, node_ids: set[str], me: str) -> set[str]:
        # Nodes that beat while ``me`` held its liveness lock (so they had taken theirs: a node
        # takes its lock before it beats) and whose lock is gone now. Judged only while ``me``
        # holds its own: after a server restart every lock is gone, and a node not yet back
        # must not look crashed.
        held = self._liveness.get(me)
        if held is None or not node_ids:
            return set()
        params = {"ids": sorted(node_ids), "since": held[1]}
        beating = sorted(conn.execute(_BEATING_SINCE, params).scalars())
        if not beating:
            return set()
        names = [self._lock_name(node_id) for node_id in [me, *beating]]
        probes = ", ".join(f"IS_USED_LOCK(:n{i})" for i in range(len(names)))
        holders = conn.execute(
            text(f"SELECT {probes}"), {f"n{i}": name for i, name in enumerate(names)}
        ).one()
        if holders[0] is None:
            return set()
        return {node_id for node_id, holder in zip(beating, holders[1:], strict=True) if not holder}

    async def heartbeat(
        self, node_id: str, hostname: str, tasks: frozenset[str] = frozenset()
    ) -> None:
        # The lock comes first: a node is never seen beating without it.
        await asyncio.to_thread(self._hold_liveness, node_id)
        await super().heartbeat(node_id, hostname, tasks)

    async def deregister_node(self, node_id: str) -> None:
        await super().deregister_node(node_id)
        await asyncio.to_thread(self._release, node_id)

    async def close(self) -> None:
        if self._feed is not None:
            await self._feed.stop()
        for node_id in list(self._liveness):
            await asyncio.to_thread(self._release, node_id)
        await super().close()

    def _hold_liveness(self, node_id: str) -> None:
        held = self._liveness.get(node_id)
        if held is not None:
            try:
                with contextlib.closing(held[0].cursor()) as cursor:
                    cursor.execute("SELECT 1")
                return
            except self._driver_error:  # lost with its connection: take it again
                self._release(node_id)
        # A connection of the lock's own, out of the pool: closing it is the only release.
        try:
            pooled = self._writer.raw_connection()
        except DBAPIError as exc:
            raise StoreUnavailable(f"the database is unavailable: {one_line(exc.orig)}") from exc
        driver: Any = pooled.driver_connection
        pooled.detach()
        try:
            with contextlib.closing(driver.cursor()) as cursor:
                cursor.execute(
                    "SELECT GET_LOCK(%s, 0), CAST(UNIX_TIMESTAMP(SYSDATE(6)) * 1000000 AS SIGNED)",
                    (self._lock_name(node_id),),
                )
                taken, now_us = cursor.fetchone()
            driver.commit()
        except self._driver_error as exc:
            driver.close()
            raise StoreUnavailable(f"could not take the node's liveness lock: {exc}") from exc
        if taken != 1:
            driver.close()
            raise StoreUnavailable(f"another process holds the liveness lock of node {node_id}")
        self._liveness[node_id] = (driver, now_us)

    def _release(self, node_id: str) -> None:
        held = self._liveness.pop(node_id, None)
        if held is not None:
            with contextlib.suppress(self._driver_error):
                held[0].close()

    def _lock_name(self, what: str) -> str:
        """A named lock's name: locks are the server's, shared by its databases, and their
        names at most 64 characters long."""
        digest = hashlib.sha256(f"{self._database}\0{what}".encode()).hexdigest()
        return f"kairos:{digest[:48]}"


def url_for_driver(url: URL) -> URL:
    """``mysql://`` and ``mariadb://`` with the default driver; ``mysql+<driver>://`` and
    ``mariadb+<driver>://`` with theirs (as SQLAlchemy's ``mysql`` dialect, which tells MariaDB
    apart by the server's version)."""
    backend, _, driver = url.drivername.partition("+")
    assert backend in ("mysql", "mariadb")
    return url.set(drivername=f"mysql+{driver or DEFAULT_DRIVER}")


def _driver_module(url: URL, shown: str) -> Any:
    """The DB-API module of ``url``'s driver; raise ``ValueError`` if it is unknown, missing or
    asynchronous (the store runs statements on threads)."""
    driver = url.drivername.partition("+")[2]
    try:
        dialect = url.get_dialect()
    except NoSuchModuleError:
        raise ValueError(
            f"unknown MariaDB driver {driver!r} in {shown}; try mariadb:// (mysqlclient) or"
            " mariadb+pymysql://"
        ) from None
    if dialect.is_async:
        raise ValueError(
            f"the driver {driver!r} in {shown} is asynchronous; Kairos runs its statements on"
            " threads: use mariadb:// (mysqlclient) or mariadb+pymysql://"
        )
    try:
        return dialect.import_dbapi()
    except ImportError as exc:
        raise ValueError(
            f"the database URL {shown} needs the driver {driver!r}, which is not installed (no"
            f" module {exc.name!r}): install kairos-scheduler[mysql] for the default one"
            " (mysqlclient), or name another in the URL, as mariadb+pymysql://"
        ) from None


def _version(parts: tuple[int, ...]) -> str:
    return ".".join(str(part) for part in parts)
