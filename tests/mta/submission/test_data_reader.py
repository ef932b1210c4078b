"""DATA read in large pieces (issue 16 item 4) gives what aiosmtpd's line-by-line reading
gives: the same content, the same reply, the same end of data, for every shape of input.

Each case is sent over a real loopback socket to a stock aiosmtpd server and to one with
:class:`ChunkedDataMixin`, whole and in small writes (so the pieces the reader sees split
lines, CRLFs and the final dot), followed in the same write by a pipelined NOOP that must
still be answered after the DATA reply.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP
from helpers.shared import EVAL

from phigate.mta.submission.data_reader import ChunkedDataMixin, DataState, data_state

LIMIT = 4_000  # the size limit of both servers: small, so the cases can exceed it


class _Capture:
    def __init__(self) -> None:
        self.contents: list[bytes] = []

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
        self.contents.append(envelope.original_content)
        return "250 2.0.0 stored"


class _Chunked(ChunkedDataMixin, SMTP):
    pass


Server = tuple[int, _Capture]


async def _start(cls: type[SMTP]) -> tuple[asyncio.Server, Server]:
    capture = _Capture()
    server = await asyncio.get_running_loop().create_server(
        lambda: cls(capture, data_size_limit=LIMIT, hostname="test", decode_data=False),
        "127.0.0.1", 0)
    return server, (server.sockets[0].getsockname()[1], capture)


@pytest.fixture
async def servers() -> AsyncIterator[tuple[Server, Server]]:
    stock, stock_end = await _start(SMTP)
    chunked, chunked_end = await _start(_Chunked)
    yield stock_end, chunked_end
    for server in (stock, chunked):
        server.close()
        await server.wait_closed()


async def _send(server: Server, data: bytes, write_size: int) -> tuple[list[bytes], bytes | None]:
    """The replies to DATA's end and to the pipelined NOOP, and the content received."""
    port, capture = server
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        await reader.readline()  # greeting
        for command in (b"HELO client", b"MAIL FROM:<a@example.org>", b"RCPT TO:<b@example.org>",
                        b"DATA"):
            writer.write(command + b"\r\n")
            assert (await asyncio.wait_for(reader.readline(), 30))[:1] in (b"2", b"3")
        stream = data + b"NOOP\r\n"
        for start in range(0, len(stream), write_size):
            writer.write(stream[start:start + write_size])
            await writer.drain()
        replies = [(await asyncio.wait_for(reader.readline(), 30))[:3] for _ in range(2)]
        return replies, capture.contents.pop() if capture.contents else None
    finally:
        writer.close()


CASES = {
    "plain": b"Subject: x\r\n\r\nhello\r\nThanks.\r\n.\r\n",
    "empty": b".\r\n",
    "one line": b"x\r\n.\r\n",
    "dot-stuffed": b"..\r\n..leading\r\n.x\r\nmid . dot\r\n...\r\n.\r\n",
    "starts with a dot": b".hidden\r\nbody\r\n.\r\n",
    "bare LF dot LF is not the end": b"a\n.\nsmuggled\r\n.\r\n",
    "CRLF dot LF is not the end": b"a\r\n.\nMAIL FROM:<x@y>\r\n.\r\n",
    "LF dot CRLF is not the end": b"a\n.\r\nb\r\n.\r\n",
    "bare CR": b"a\r.\rb\r\n.\r\n",
    "NUL": b"a\x00b\r\n.\r\n",
    "lines ending in dots": b"One.\r\nTwo..\r\n..\r\n.\r\n",
    "line of 1001": b"x" * 999 + b"\r\n.\r\n",
    "line of 1002": b"x" * 1000 + b"\r\n.\r\n",
    "line of 1003": b"x" * 1001 + b"\r\n.\r\n",
    "line of 1004": b"x" * 1002 + b"\r\n.\r\n",
    "line of 5000": b"y" * 4998 + b"\r\n.\r\n",
    "long line with its CR at a limit": b"z" * 1001 + b"\r" + b"z" * 50 + b"\r\n.\r\n",
    "exactly the size limit": b"a" * 998 + b"\r\n" + (b"b" * 998 + b"\r\n") * 3 + b".\r\n",
    "one byte over the size limit": b"a" * 999 + b"\r\n" + (b"b" * 998 + b"\r\n") * 3 + b".\r\n",
    "far over the size limit": (b"c" * 78 + b"\r\n") * 400 + b".\r\n",
    "long line, then over the size": b"d" * 1500 + b"\r\n" + (b"e" * 98 + b"\r\n") * 60
                                     + b".\r\n",
    "over the size, then a long line": (b"f" * 98 + b"\r\n") * 45 + b"g" * 3000 + b"\r\n"
                                       + b".\r\n",
    "over the size on a 1002 line": (b"h" * 998 + b"\r\n") * 3 + b"i" * 1000 + b"\r\n"
                                    + b".\r\n",
    "overrun line crossing the size": (b"j" * 998 + b"\r\n") * 3 + b"k" * 1500 + b"\r\n"
                                      + b".\r\n",
    "a long message in short lines": (b"l" * 10 + b".\r\n") * 300 + b".\r\n",
}


def _smuggling_cases() -> dict[str, bytes]:
    """The public end-of-data variants (shared/eval), each inside a message."""
    data = json.loads((EVAL / "smtp/smuggling-starttls-vectors/eod_sequences.json").read_text())
    found: set[str] = set()
    for key, value in data.items():
        if not key.startswith("_"):
            found.update(value.values() if isinstance(value, dict) else value)
    return {f"smuggling {sequence!r}": b"a" + sequence.encode("latin-1")
            + b"MAIL FROM:<x@y>\r\nsmuggled\r\n.\r\n" for sequence in sorted(found)}


CASES.update(_smuggling_cases())


@pytest.mark.parametrize("write_size", [1 << 16, 7, 1])
@pytest.mark.parametrize("name", list(CASES))
async def test_chunked_data_reading_matches_aiosmtpd(servers: tuple[Server, Server], name: str,
                                                     write_size: int) -> None:
    data = CASES[name]
    if write_size == 1 and len(data) > 2_000:
        write_size = 3  # byte by byte is slow for the long cases; 3 still splits CRLF.CRLF
    stock, chunked = servers
    expected = await _send(stock, data, write_size)
    assert await _send(chunked, data, write_size) == expected
    assert expected[0][1] == b"250"  # the pipelined NOOP was read as a command by both


def test_the_outcome_of_each_limit_case() -> None:
    """What the socket test compares, spelled out (so a change in aiosmtpd is noticed)."""
    def state(data: bytes) -> DataState:
        return data_state(data[:-3], size_limit=LIMIT, line_limit=1001)

    assert state(CASES["plain"]) is DataState.NOMINAL
    assert state(CASES["line of 1001"]) is DataState.NOMINAL
    assert state(CASES["line of 1002"]) is DataState.TOO_LONG
    assert state(CASES["exactly the size limit"]) is DataState.NOMINAL
    assert state(CASES["one byte over the size limit"]) is DataState.TOO_MUCH
    assert state(CASES["long line, then over the size"]) is DataState.TOO_LONG
    assert state(CASES["over the size, then a long line"]) is DataState.TOO_MUCH
    assert state(CASES["over the size on a 1002 line"]) is DataState.TOO_MUCH
    assert state(CASES["overrun line crossing the size"]) is DataState.TOO_LONG
