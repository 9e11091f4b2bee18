"""Idle and half-sent connections against a real ``kairos serve``: closed after their timeouts,
refused beyond the connection cap, and the API answers meanwhile. The timeouts are set low so
that each test takes a few seconds."""

from __future__ import annotations

import re
import resource
import selectors
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from kairos.api.server import RESERVED_FILES
from tests.support.server import ADMIN_TOKEN, KairosProcess

pytestmark = pytest.mark.e2e

TIMEOUT_S = 2.0
EARLY_S = 0.01  # the event loop's timers are in milliseconds


@dataclass
class Client:
    sock: socket.socket
    opened_s: float
    """Before it connected: the server's clock for it starts later."""
    trickle: bool = False
    """Sends one more header byte on every turn of ``wait_closed``."""
    received: bytes = b""
    closed_s: float | None = None

    @property
    def open_for_s(self) -> float:
        assert self.closed_s is not None
        return self.closed_s - self.opened_s


@contextmanager
def clients() -> Iterator[list[Client]]:
    opened: list[Client] = []
    try:
        yield opened
    finally:
        for client in opened:
            client.sock.close()


def connect(opened: list[Client], port: int, sent: bytes = b"", *, trickle: bool = False) -> Client:
    opened_s = time.monotonic()
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    opened.append(client := Client(sock, opened_s, trickle))
    sock.sendall(sent)
    return client


def wait_closed(clients: list[Client], deadline_s: float) -> None:
    """Read every client until the server closes it; fail after ``deadline_s``."""
    end_s = time.monotonic() + deadline_s
    with selectors.DefaultSelector() as selector:
        for client in clients:
            client.sock.setblocking(False)
            selector.register(client.sock, selectors.EVENT_READ, client)
        while selector.get_map():
            left_s = end_s - time.monotonic()
            assert left_s > 0, f"{len(selector.get_map())} connections still open"
            for key, _ in selector.select(min(left_s, 0.2)):
                _read(selector, key.data)
            for key in list(selector.get_map().values()):
                if key.data.trickle:
                    _send_byte(selector, key.data)


def _read(selector: selectors.BaseSelector, client: Client) -> None:
    try:
        chunk = client.sock.recv(65_536)
    except ConnectionResetError:
        chunk = b""
    client.received += chunk
    if not chunk:
        _closed(selector, client)


def _send_byte(selector: selectors.BaseSelector, client: Client) -> None:
    try:
        client.sock.send(b"x")
    except OSError:  # reset or broken pipe: the server has closed it
        _closed(selector, client)


def _closed(selector: selectors.BaseSelector, client: Client) -> None:
    client.closed_s = time.monotonic()
    selector.unregister(client.sock)


def still_open(clients: list[Client]) -> int:
    with selectors.DefaultSelector() as selector:
        for client in clients:
            selector.register(client.sock, selectors.EVENT_READ)
        return len(clients) - len(selector.select(0))


def test_idle_and_half_sent_connections_are_closed_while_the_api_answers(tmp_path: Path) -> None:
    hard = min(resource.getrlimit(resource.RLIMIT_NOFILE)[1], 4096)
    env = {
        "KAIROS_HEADER_TIMEOUT": str(TIMEOUT_S),
        "KAIROS_BODY_TIMEOUT": str(TIMEOUT_S),
        "KAIROS_KEEP_ALIVE_TIMEOUT": "1",
        "KAIROS_MAX_CONNECTIONS": "400",
    }
    log = tmp_path / "kairos.log"
    db = f"sqlite:///{tmp_path}/k.db"
    server = KairosProcess(db, env=env, log_path=log, file_limit=(256, hard))
    auth = f"Authorization: Bearer {ADMIN_TOKEN}\r\n".encode()
    head = b"GET /jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    stalled_body = b"POST /jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n%bContent-Type: application/json\r\n"
    stalled_body = stalled_body % auth + b'Content-Length: 100\r\n\r\n{"id": '
    with server, server.client() as api, clients() as opened:
        kept_alive = connect(opened, server.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        for _ in range(100):
            connect(opened, server.port)  # sends nothing
            connect(opened, server.port, b"GET /jobs HT")  # half a request line
            connect(opened, server.port, head + auth[:20])  # half its headers
        for _ in range(5):
            connect(opened, server.port, head + b"X-Pad: ", trickle=True)
            connect(opened, server.port, stalled_body)
        idle = opened[1:]

        assert api.get("/healthz").status_code == 200
        assert api.get("/jobs").status_code == 200  # authenticated, reads the database
        assert still_open(idle) == len(idle)  # all this happened while they were open

        wait_closed(opened, deadline_s=TIMEOUT_S + 10)
        assert min(client.open_for_s for client in idle) >= TIMEOUT_S - EARLY_S
        assert all(client.received == b"" for client in idle)
        assert kept_alive.received.startswith(b"HTTP/1.1 200 OK")  # answered, then closed
        assert api.get("/jobs").status_code == 200
    text = log.read_text()
    raised = re.search(r"open-file limit (\d+) \(raised from 256\): accepting up to 400 ", text)
    assert raised is not None, text
    assert int(raised[1]) == hard
    assert "Traceback" not in text  # a body cut short is no error


def test_connections_beyond_the_cap_are_answered_503_and_the_server_lives_on(
    tmp_path: Path,
) -> None:
    env = {
        "KAIROS_HEADER_TIMEOUT": str(TIMEOUT_S),
        "KAIROS_HTTP_WORKERS": "0",  # the calls are made in the server process: 50 more kept
        "KAIROS_MAX_CONCURRENT_RUNS": "50",
    }
    log = tmp_path / "kairos.log"
    db = f"sqlite:///{tmp_path}/k.db"
    server = KairosProcess(db, env=env, log_path=log, file_limit=(300, 300))
    cap = 300 - RESERVED_FILES - 50
    with server, server.client() as api, clients() as idle:
        text = log.read_text()
        assert (
            "open-file limit 300, hard limit 300: too low for KAIROS_MAX_CONNECTIONS=1000" in text
        )
        assert f"accepting at most {cap} connections at once" in text

        for _ in range(200):
            connect(idle, server.port)
        wait_closed(idle, deadline_s=TIMEOUT_S + 10)
        refused = [client for client in idle if client.received]
        held = [client for client in idle if not client.received]
        assert cap - 5 <= len(held) <= cap  # the readiness check's connection may count
        assert all(client.received.startswith(b"HTTP/1.1 503 ") for client in refused)
        assert max(client.open_for_s for client in refused) < TIMEOUT_S / 2
        assert min(client.open_for_s for client in held) >= TIMEOUT_S - EARLY_S

        assert server.proc is not None
        assert server.proc.poll() is None
        assert api.get("/healthz").status_code == 200
        assert api.put("/jobs/after", json=_job()).status_code == 201
    assert "connection(s) refused with 503" in log.read_text()


def _job() -> dict[str, object]:
    return {"trigger": {"type": "interval", "hours": 1}, "target": {"url": "http://127.0.0.1:9/"}}
