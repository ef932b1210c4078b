"""A raw SMTP client for hostile tests: bytes in, replies out, nothing smoothed over.

aiosmtplib refuses to send malformed commands, which is exactly what these tests need to
send; this client writes whatever it is given and reads one (possibly multi-line) reply,
with a deadline so that a server that never answers fails the test instead of hanging it.
"""

from __future__ import annotations

import asyncio
import base64
import re
import ssl

REPLY_LINE = re.compile(rb"^[2-5][0-9][0-9]([ -]|\r?\n|$)")


class NoReply(AssertionError):
    """The server neither answered nor closed the connection in time: a hang."""


class Wire:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 timeout: float) -> None:
        self.reader, self.writer, self.timeout = reader, writer, timeout

    @classmethod
    async def open(cls, port: int, *, timeout: float = 10.0) -> tuple[Wire, str]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=2**20)
        wire = cls(reader, writer, timeout)
        return wire, await wire.reply()

    async def reply(self) -> str:
        """One reply; '' if the server closed the connection. Raises NoReply on a hang."""
        lines: list[bytes] = []
        while True:
            try:
                line = await asyncio.wait_for(self.reader.readline(), self.timeout)
            except TimeoutError:
                raise NoReply(f"no reply within {self.timeout}s after {len(lines)} lines"
                              ) from None
            except (ConnectionError, ssl.SSLError):
                line = b""
            if not line:
                return b"".join(lines).decode("utf-8", "replace")
            assert REPLY_LINE.match(line), f"not an SMTP reply line: {line[:80]!r}"
            lines.append(line)
            if line[3:4] != b"-":
                return b"".join(lines).decode("utf-8", "replace")

    async def command(self, line: bytes) -> str:
        self.writer.write(line + b"\r\n")
        try:
            await self.writer.drain()
        except ConnectionError:
            return ""
        return await self.reply()

    async def starttls(self, context: ssl.SSLContext) -> None:
        await self.writer.start_tls(context, server_hostname="127.0.0.1")

    async def login(self, context: ssl.SSLContext, user: str, password: str) -> None:
        """EHLO, STARTTLS, EHLO, AUTH PLAIN: an authenticated session or an AssertionError."""
        assert (await self.command(b"EHLO fuzz.test")).startswith("250")
        assert (await self.command(b"STARTTLS")).startswith("220")
        await self.starttls(context)
        assert (await self.command(b"EHLO fuzz.test")).startswith("250")
        if user:
            secret = base64.b64encode(f"\0{user}\0{password}".encode())
            reply = await self.command(b"AUTH PLAIN " + secret)
            assert reply.startswith("235"), reply

    async def data(self, content: bytes) -> str:
        """Send message content after a 354: dot-stuffed, CRLF-terminated, then the dot."""
        lines = content.split(b"\r\n")
        stuffed = b"\r\n".join(b"." + line if line.startswith(b".") else line
                               for line in lines)
        if not stuffed.endswith(b"\r\n"):
            stuffed += b"\r\n"
        self.writer.write(stuffed + b".\r\n")
        try:
            await self.writer.drain()
        except ConnectionError:
            return ""
        return await self.reply()

    async def close(self) -> None:
        self.writer.close()
        try:
            await asyncio.wait_for(self.writer.wait_closed(), 2)
        except (TimeoutError, ConnectionError, ssl.SSLError):
            pass
