"""Request bodies over real HTTP: the size limit holds on every route (the lean ``PUT`` and the
web UI's forms too) and is enforced while the body arrives; ids and text that URLs and JSON
allow but Kairos cannot keep are refused."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import httpx
import pytest

from tests.support.server import ADMIN_TOKEN, KairosProcess

pytestmark = pytest.mark.e2e

LIMIT = 4096
BATCH_LIMIT = 65_536
JOB = {"trigger": {"type": "cron", "expression": "0 2 * * *"}, "target": {"url": "http://h/"}}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KairosProcess]:
    db = tmp_path_factory.mktemp("limits") / "k.db"
    env = {
        "KAIROS_MAX_REQUEST_BYTES": str(LIMIT),
        "KAIROS_MAX_BATCH_BYTES": str(BATCH_LIMIT),
        "KAIROS_HTTP_WORKERS": "0",
    }
    with KairosProcess(f"sqlite:///{db}", env=env) as process:
        yield process


@pytest.fixture
def api(server: KairosProcess) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def padded(size: int, **job: object) -> dict[str, object]:
    """A job whose JSON is about ``size`` bytes."""
    filler = "x" * (size - len(json.dumps(JOB)) - 12)
    return JOB | job | {"target": {"url": "http://h/", "body": filler}}


def send_raw(port: int, head: str, body: bytes) -> tuple[int, bytes]:
    """Send a request as written (no client resolves its path or frames its body); return the
    status and body of the answer, which must come while the request may still be unfinished."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.replace("\n", "\r\n").encode() + body)
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += sock.recv(65_536)
        head_part, _, rest = answer.partition(b"\r\n\r\n")
        length = int(
            next(
                line
                for line in head_part.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            ).split(b":")[1]
        )
        while len(rest) < length:
            rest += sock.recv(65_536)
        return int(head_part.split(b" ")[1]), rest


@pytest.mark.parametrize(
    ("method", "path", "headers"),
    [
        ("PUT", "/jobs/big", {"Content-Type": "application/json"}),  # the lean path
        ("PUT", "/jobs/big", {"Content-Type": "application/json; charset=utf-8"}),
        ("POST", "/jobs", {"Content-Type": "application/json"}),
        ("PATCH", "/jobs/small", {"Content-Type": "application/json"}),
        ("POST", "/tasks", {"Content-Type": "application/json"}),
        ("POST", "/ui/login", {"Content-Type": "application/x-www-form-urlencoded"}),
        ("POST", "/auth/token", {"Content-Type": "application/x-www-form-urlencoded"}),
    ],
)
def test_a_body_over_the_limit_is_413_on_every_route(
    api: httpx.Client, method: str, path: str, headers: dict[str, str]
) -> None:
    assert api.put("/jobs/small", json=padded(LIMIT - 100)).status_code in (200, 201)
    body = json.dumps(padded(LIMIT + 1, id="big")).encode()
    response = api.request(method, path, content=body, headers=headers)
    assert response.status_code == 413, response.text
    assert "4096 bytes" in response.json()["detail"]
    assert "KAIROS_MAX_REQUEST_BYTES" in response.json()["detail"]
    assert api.get("/jobs/big").status_code == 404


def test_a_chunked_body_is_refused_as_soon_as_it_passes_the_limit(server: KairosProcess) -> None:
    head = f"""PUT /jobs/chunked HTTP/1.1
Host: 127.0.0.1
Authorization: Bearer {ADMIN_TOKEN}
Content-Type: application/json
Transfer-Encoding: chunked

"""
    chunk = b"400\r\n" + b" " * 1024 + b"\r\n"
    # Five KiB sent and the body not ended (no last chunk): the answer comes all the same.
    status, body = send_raw(server.port, head, chunk * 5)
    assert status == 413
    assert "KAIROS_MAX_REQUEST_BYTES" in json.loads(body)["detail"]


def test_a_chunked_body_under_the_limit_is_read(server: KairosProcess) -> None:
    payload = json.dumps(JOB).encode()
    head = f"""PUT /jobs/chunked-ok HTTP/1.1
Host: 127.0.0.1
Authorization: Bearer {ADMIN_TOKEN}
Content-Type: application/json
Transfer-Encoding: chunked
Connection: close

"""
    chunks = b"".join(
        f"{len(part):x}\r\n".encode() + part + b"\r\n" for part in (payload[:9], payload[9:])
    )
    status, _ = send_raw(server.port, head, chunks + b"0\r\n\r\n")
    assert status == 201


def test_a_batch_has_its_own_larger_limit(api: httpx.Client) -> None:
    jobs = [padded(1000, id=f"b{i}") for i in range(10)]
    assert api.post("/jobs:batch", json={"jobs": jobs}).status_code == 200
    jobs = [padded(1000, id=f"b{i}") for i in range(70)]
    response = api.post("/jobs:batch", json={"jobs": jobs})
    assert response.status_code == 413
    assert "KAIROS_MAX_BATCH_BYTES" in response.json()["detail"]


@pytest.mark.parametrize("job_id", [".", ".."])
def test_a_dot_id_sent_as_written_is_422_naming_it(server: KairosProcess, job_id: str) -> None:
    body = json.dumps(JOB).encode()
    head = f"""PUT /jobs/{job_id} HTTP/1.1
Host: 127.0.0.1
Authorization: Bearer {ADMIN_TOKEN}
Content-Type: application/json
Content-Length: {len(body)}
Connection: close

"""
    status, answer = send_raw(server.port, head, body)
    assert status == 422
    assert json.loads(answer)["detail"][0]["loc"] == ["path", "job_id"]


def test_a_lone_surrogate_on_the_lean_put_is_422_naming_the_field(api: httpx.Client) -> None:
    body = json.dumps(JOB | {"description": "\ud800"}).encode()
    response = api.put("/jobs/s", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "description"]
