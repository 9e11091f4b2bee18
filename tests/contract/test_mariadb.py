"""What only MariaDB's store does: its URLs and drivers, the server versions it accepts, the
deadlocks InnoDB breaks by rolling a transaction back, which the store runs again, and the row
locks that fence an outcome recorded while its run is being cancelled."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator

import MySQLdb
import pytest
from sqlalchemy import Connection, text
from sqlalchemy.engine import make_url

from kairos.errors import StoreUnavailable
from kairos.models import RunStatus
from kairos.store import FinishedRun, store_for_url
from kairos.store.mariadb import MariaDbStore
from tests.contract.test_store import NOW, S, every_minute, record
from tests.support import mariadb

WAIT_S = 10


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mariadb+nosuch://kairos:hidden@db/kairos", "unknown MariaDB driver 'nosuch'"),
        ("mysql+mysqlconnector://kairos:hidden@db/kairos", "driver 'mysqlconnector', which is"),
        ("mariadb+asyncmy://kairos:hidden@db/kairos", "'asyncmy' in mariadb+asyncmy://kairos:***@"),
        (
            "oracle://kairos:hidden@db/kairos",
            "supported: sqlite, postgresql, mariadb, redis, memory",
        ),
    ],
)
def test_a_url_kairos_cannot_use_is_refused_naming_what_is_wrong(url: str, expected: str) -> None:
    with pytest.raises(ValueError, match=re.escape(expected)) as refused:
        store_for_url(url)
    assert "hidden" not in str(refused.value)  # the password


def test_mysql_and_mariadb_urls_take_the_default_driver_or_the_one_named() -> None:
    assert isinstance(store_for_url("mysql://kairos@db/kairos"), MariaDbStore)
    for url, driver in [
        ("mariadb://kairos@db/kairos", "mysqldb"),
        ("mysql://kairos@db/kairos", "mysqldb"),
        ("mysql+mysqldb://kairos@db/kairos", "mysqldb"),
    ]:
        store = store_for_url(url)
        assert isinstance(store, MariaDbStore)
        assert store._writer.dialect.driver == driver


@pytest.fixture
def database() -> Iterator[str]:
    mariadb.require_mariadb()
    url = mariadb.create_database()
    yield url
    mariadb.drop_database(url)


@pytest.mark.mariadb
@pytest.mark.parametrize(
    ("mariadb_server", "version", "expected"),
    [
        (True, (10, 5, 22), "is MariaDB 10.5.22; Kairos needs MariaDB 10.6 or later"),
        (False, (8, 0, 36), "is MySQL 8.0.36; Kairos needs MariaDB 10.6 or later"),
    ],
)
async def test_a_server_without_what_kairos_needs_is_refused_at_start(
    database: str, mariadb_server: bool, version: tuple[int, ...], expected: str
) -> None:
    store = MariaDbStore(database)
    # The server here is MariaDB 10.6 or later: the dialect is told otherwise once it has
    # read the real version on connecting, as it would have read an older one.
    store._writer.connect().close()
    dialect = store._writer.dialect
    dialect.server_version_info = version
    dialect.is_mariadb = mariadb_server
    try:
        with pytest.raises(StoreUnavailable) as refused:
            await store.open()
    finally:
        await store.close()
    assert expected in refused.value.detail
    assert "mariadb://root@127.0.0.1" in refused.value.detail


@pytest.mark.mariadb
async def test_a_database_that_refuses_the_connection_is_named_with_what_to_check() -> None:
    mariadb.require_mariadb()
    url = make_url(mariadb.ADMIN_URL).set(username="nobody", password="wrong")
    store = store_for_url(url.render_as_string(hide_password=False))
    try:
        with pytest.raises(StoreUnavailable) as refused:
            await store.open()
    finally:
        await store.close()
    detail = refused.value.detail
    assert detail.startswith("cannot open the database mariadb://nobody:***@127.0.0.1")
    assert "Access denied" in detail
    assert "check that MariaDB runs there" in detail


@pytest.mark.mariadb
async def test_a_transaction_rolled_back_to_break_a_deadlock_runs_again(database: str) -> None:
    """The store's transaction takes row a, then waits for row b, held by another session that
    then asks for a: InnoDB rolls back the lighter of the two, the store's (the other has
    changed many rows), and the store runs it again, which succeeds once the other commits."""
    store = MariaDbStore(database)
    await store.open()
    parsed = make_url(database)
    other = MySQLdb.connect(
        host=parsed.host, port=parsed.port or 3306, user=parsed.username, database=parsed.database
    )
    try:
        cursor = other.cursor()
        cursor.execute("CREATE TABLE rows_ (k VARCHAR(8) PRIMARY KEY, v INT) ENGINE=InnoDB")
        cursor.execute("CREATE TABLE heavy (n INT PRIMARY KEY) ENGINE=InnoDB")
        cursor.execute("INSERT INTO rows_ VALUES ('a', 0), ('b', 0)")
        other.commit()
        cursor.execute("INSERT INTO heavy VALUES " + ", ".join(f"({n})" for n in range(500)))
        cursor.execute("UPDATE rows_ SET v = 1 WHERE k = 'b'")
        holding_a = threading.Event()
        attempts: list[int] = []

        def tx(conn: Connection) -> str:
            attempts.append(len(attempts) + 1)
            conn.execute(text("UPDATE rows_ SET v = v + 10 WHERE k = 'a'"))
            holding_a.set()
            conn.execute(text("UPDATE rows_ SET v = v + 10 WHERE k = 'b'"))
            return "done"

        def the_other() -> None:
            assert holding_a.wait(WAIT_S)
            cursor.execute("UPDATE rows_ SET v = 1 WHERE k = 'a'")  # the deadlock
            other.commit()

        crossing = threading.Thread(target=the_other)
        crossing.start()
        assert await store._write(tx) == "done"
        crossing.join(WAIT_S)
        assert attempts == [1, 2]
        cursor.execute("SELECT k, v FROM rows_ ORDER BY k")
        other.commit()
        assert cursor.fetchall() == (("a", 11), ("b", 11))
    finally:
        other.close()
        await store.close()


@pytest.mark.mariadb
@pytest.mark.parametrize("cancelled", [True, False])
async def test_an_outcome_recorded_while_its_run_is_being_cancelled_follows_the_cancel(
    database: str, cancelled: bool
) -> None:
    """The cancel, in another session, holds the run; the outcome waits for it. A cancel that
    commits leaves the outcome out (of the run and of its job's counts); one rolled back leaves
    it in."""
    store = MariaDbStore(database)
    await store.open()
    parsed = make_url(database)
    other = MySQLdb.connect(
        host=parsed.host, port=parsed.port or 3306, user=parsed.username, database=parsed.database
    )
    try:
        await store.insert_job(record("a", NOW))
        run = (await store.claim_due(NOW, 1, "n", every_minute)).started[0].run
        cursor = other.cursor()
        cancel = "UPDATE kairos_runs SET status = 'cancelled', finished_us = %s WHERE id = %s"
        cursor.execute(cancel, (NOW + S, run.id))
        waits = (
            "SELECT count(*) FROM information_schema.innodb_trx t"
            " JOIN information_schema.processlist p ON p.id = t.trx_mysql_thread_id"
            " WHERE t.trx_state = 'LOCK WAIT' AND p.db = %s"
        )

        waited: list[bool] = []

        def end_the_cancel_once_the_outcome_waits() -> None:
            watching = MySQLdb.connect(
                host=parsed.host, port=parsed.port or 3306, user=parsed.username
            )
            try:
                deadline = time.monotonic() + WAIT_S
                while not waited and time.monotonic() < deadline:
                    looking = watching.cursor()
                    looking.execute(waits, (parsed.database,))
                    if looking.fetchone() == (1,):
                        waited.append(True)
                    time.sleep(0.01)
            finally:
                watching.close()
            if cancelled:
                other.commit()
            else:
                other.rollback()

        ending = threading.Thread(target=end_the_cancel_once_the_outcome_waits)
        ending.start()
        done = FinishedRun(run.id, RunStatus.SUCCEEDED, NOW, NOW + 2 * S, 200)
        await store.finish_runs("n", [done])
        ending.join(WAIT_S)
        assert waited == [True]
        expected = RunStatus.CANCELLED if cancelled else RunStatus.SUCCEEDED
        assert (await store.get_run(run.id)).status is expected
        counts = (await store.job_run_counts(["a"]))["a"]
        assert counts.counts[RunStatus.SUCCEEDED] == (0 if cancelled else 1)
        assert counts.last_status is (None if cancelled else RunStatus.SUCCEEDED)
    finally:
        other.close()
        await store.close()
