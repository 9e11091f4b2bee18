"""The Kairos HTTP API from Python: ``Client`` (synchronous) and ``AsyncClient`` (asyncio),
typed with the server's own models, with one exception tree rooted at ``ClientError``.

    from kairos.client import Client, NotFound

    with Client("http://127.0.0.1:8000", token) as kairos:
        kairos.put_job("nightly", {"trigger": {...}, "target": {...}})
        for job in kairos.list_jobs(tag="team"):
            print(job.id, job.next_run_time)

Importing it loads the wire models and httpx, never the engine nor FastAPI.
"""

from kairos.client.aio import AsyncClient
from kairos.client.calls import JobPut
from kairos.client.errors import (
    ApiError,
    ClientError,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    Problem,
    ServerError,
    TooManyRequests,
    Unauthorized,
    Unreachable,
)
from kairos.client.sync import Client

__all__ = [
    "ApiError",
    "AsyncClient",
    "Client",
    "ClientError",
    "Conflict",
    "Forbidden",
    "Invalid",
    "JobPut",
    "NotFound",
    "Problem",
    "ServerError",
    "TooManyRequests",
    "Unauthorized",
    "Unreachable",
]
