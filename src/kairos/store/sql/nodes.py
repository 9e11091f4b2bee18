"""The nodes' transactions (heartbeats, take-over of dead nodes' runs, the list) and the
store's metadata."""

from __future__ import annotations

from sqlalchemy import Connection, bindparam, func, insert, select

from kairos.store.base import NodeInfo
from kairos.store.claims import ClaimPolicy
from kairos.store.schema import IS_RUNNING, meta, node_tasks, nodes, runs
from kairos.store.sql import ledger
from kairos.store.sql.backend import Backend

__all__ = ["META_VALUE", "deregister", "heartbeat", "list_nodes", "set_meta_if_absent", "take_over"]

META_VALUE = select(meta.c.value).where(meta.c.key == bindparam("b_key"))
_TASKS_OF = select(node_tasks.c.task).where(node_tasks.c.node_id == bindparam("b_node"))


def heartbeat(
    conn: Connection, *, db: Backend, node_id: str, hostname: str, tasks: frozenset[str]
) -> None:
    now_us = db._db_now_us(conn)
    values = {"id": node_id, "hostname": hostname, "started_us": now_us}
    # Registers the node, or again after another node took it for dead and forgot it.
    beat = db._dialect.upsert(nodes, ["id"], replace=["heartbeat_us"])
    conn.execute(beat.values(heartbeat_us=now_us, **values))
    listed = set(conn.execute(_TASKS_OF, {"b_node": node_id}).scalars())
    if listed != tasks:
        conn.execute(node_tasks.delete().where(node_tasks.c.node_id == node_id))
        if tasks:
            conn.execute(insert(node_tasks), [{"node_id": node_id, "task": t} for t in tasks])


def deregister(conn: Connection, *, node_id: str) -> None:
    conn.execute(nodes.delete().where(nodes.c.id == node_id))
    conn.execute(node_tasks.delete().where(node_tasks.c.node_id == node_id))


def take_over(
    conn: Connection, *, db: Backend, lease_us: int, retries: int, policy: ClaimPolicy
) -> list[str]:
    """``Store.take_over``: the nodes found dead."""
    now_us = db._db_now_us(conn)
    stale = select(nodes.c.id).where(nodes.c.heartbeat_us < now_us - lease_us)
    dead = list(conn.execute(db._lock_due(stale, nodes)).scalars())
    living = set(conn.execute(select(nodes.c.id).where(nodes.c.id.not_in(dead))).scalars())
    dead += sorted(db._gone(conn, living))
    # Runs of nodes with no row at all (forgotten) are orphans: take them too.
    known = select(nodes.c.id).where(nodes.c.id.not_in(dead))
    ledger.interrupt(conn, db, runs.c.node_id.not_in(known), now_us, retries, policy)
    if dead:
        conn.execute(nodes.delete().where(nodes.c.id.in_(dead)))
        conn.execute(node_tasks.delete().where(node_tasks.c.node_id.in_(dead)))
    return dead


_RUNNING_BY_NODE = (
    select(runs.c.node_id, func.count().label("running")).where(IS_RUNNING).group_by(runs.c.node_id)
)


def list_nodes(conn: Connection, *, db: Backend) -> list[NodeInfo]:
    now_us = db._db_now_us(conn)
    held = _RUNNING_BY_NODE.subquery()
    rows = conn.execute(
        select(nodes, held.c.running)
        .outerjoin(held, held.c.node_id == nodes.c.id)
        .order_by(nodes.c.id)
    ).all()
    tasks: dict[str, set[str]] = {}
    for node_id, task in conn.execute(select(node_tasks.c.node_id, node_tasks.c.task)):
        tasks.setdefault(node_id, set()).add(task)
    return [
        NodeInfo(
            r.id,
            r.hostname,
            r.started_us,
            now_us - r.heartbeat_us,
            r.running or 0,
            frozenset(tasks.get(r.id, ())),
        )
        for r in rows
    ]


def set_meta_if_absent(conn: Connection, *, db: Backend, key: str, value: str) -> str:
    """``Store.set_meta_if_absent``: the value kept."""
    # One statement, so that replicas starting together on a new database agree: the first
    # insert wins and the others, waiting for it, insert nothing and read what it wrote.
    add = db._dialect.insert_ignoring_duplicates(meta, ["key"])
    conn.execute(add.values(key=key, value=value))
    kept: str = conn.execute(META_VALUE, {"b_key": key}).scalar_one()
    return kept
