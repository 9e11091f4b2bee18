"""``GET /cluster``: the nodes sharing this database, their heartbeats and the runs they hold."""

from __future__ import annotations

from fastapi import APIRouter

from kairos.api.admin_schemas import ClusterOut, NodeOut
from kairos.api.deps import SchedulerDep, allowed
from kairos.api.routing import KairosRoute
from kairos.clock import from_us
from kairos.identity import Scope
from kairos.store import NodeInfo

__all__ = ["router"]

router = APIRouter(route_class=KairosRoute, tags=["cluster"], dependencies=[allowed(Scope.ADMIN)])


@router.get("/cluster")
async def cluster(scheduler: SchedulerDep) -> ClusterOut:
    """Every live node; a node silent for longer than ``node_lease_s`` is taken over."""
    nodes = await scheduler.list_nodes()
    return ClusterOut(
        node_id=scheduler.node_id,
        node_lease_s=scheduler.node_lease_s,
        nodes=[node_out(n, scheduler.node_id) for n in nodes],
    )


def node_out(node: NodeInfo, this_node_id: str) -> NodeOut:
    """A node as ``GET /cluster`` and ``GET /overview`` show it."""
    return NodeOut(
        id=node.id,
        hostname=node.hostname,
        started_at=from_us(node.started_us).isoformat(),
        heartbeat_age_s=node.heartbeat_age_us / 1_000_000,
        running=node.running,
        this_node=node.id == this_node_id,
    )
