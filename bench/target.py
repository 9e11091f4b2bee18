"""A fast local HTTP/1.1 target for the benchmark, in its own process.

It answers every request ``200 ok`` on keep-alive connections and records the receive time and
the ``X-Kairos-*`` headers of each. ``GET /__stats`` returns the records as JSON, ``GET /__count``
only how many there are (cheap enough to poll while a workload runs), ``POST /__reset`` clears
them. A raw asyncio protocol (on uvloop) keeps it far faster than the scheduler it serves.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

__all__ = ["main"]

_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"
_WANTED = (b"x-kairos-job-id", b"x-kairos-scheduled-for", b"x-kairos-attempt")


class Recorder:
    def __init__(self) -> None:
        self.records: list[tuple[int, str, str, str]] = []


class TargetProtocol(asyncio.Protocol):
    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.buffer = b""
        self.transport: asyncio.WriteTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        received_us = time.time_ns() // 1000
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end]
            length = _content_length(head)
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length :]
            self._answer(head, received_us)

    def _answer(self, head: bytes, received_us: int) -> None:
        assert self.transport is not None
        request_line, _, header_block = head.partition(b"\r\n")
        path = request_line.split(b" ")[1]
        if path in (b"/__stats", b"/__count"):
            records = self.recorder.records
            body = json.dumps(records if path == b"/__stats" else len(records)).encode()
            self.transport.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                + str(len(body)).encode()
                + b"\r\n\r\n"
                + body
            )
            return
        if path == b"/__reset":
            self.recorder.records.clear()
        else:
            headers = _headers(header_block)
            self.recorder.records.append(
                (received_us, *(headers.get(name, "") for name in _WANTED))  # type: ignore[arg-type]
            )
        self.transport.write(_OK)


def _content_length(head: bytes) -> int:
    lower = head.lower()
    index = lower.find(b"\r\ncontent-length:")
    if index < 0:
        return 0
    end = lower.find(b"\r\n", index + 2)
    return int(lower[index + 17 : end if end > 0 else None].strip())


def _headers(block: bytes) -> dict[bytes, str]:
    found = {}
    for line in block.split(b"\r\n"):
        name, _, value = line.partition(b":")
        key = name.strip().lower()
        if key in _WANTED:
            found[key] = value.strip().decode()
    return found


async def serve(port: int) -> None:
    recorder = Recorder()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: TargetProtocol(recorder), "127.0.0.1", port, backlog=4096
    )
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.run(serve(args.port))
    except ImportError:
        asyncio.run(serve(args.port))


if __name__ == "__main__":
    main()
