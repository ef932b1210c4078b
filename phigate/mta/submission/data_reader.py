"""DATA read in large pieces instead of line by line, with aiosmtpd's exact outcome.

aiosmtpd reads DATA with one ``readuntil(b"\\r\\n")`` per line and keeps a list of lines:
a few hundred awaits and list operations per message, ~5% of ``serve``'s CPU without
scanning. :class:`ChunkedDataMixin` asks the stream for everything up to the next
``".\\r\\n"`` instead (or a limit's worth when there is none) and checks the bytes as a
whole, falling back to the per-line rules only for a message that breaks a limit.

What is kept exactly as aiosmtpd 1.4 does it (tests/mta/submission compare both):

- the end of data is the first ``".\\r\\n"`` at the start of a line, lines being
  delimited by CRLF only (a bare LF or CR is part of a line, so ``\\n.\\n`` ends nothing;
  DATA's checks refuse such bytes afterwards, the SMTP smuggling defence);
- dot-unstuffing: one leading ``.`` removed from every line (RFC 5321 4.5.2);
- the size limit counts the transmitted line bytes before unstuffing; a line over
  ``line_length_limit`` (CRLF included) gives 500, over the size 552, whichever comes
  first in the stream as aiosmtpd decides it (:func:`data_state`); both only after the
  end of data, and nothing over the limits is kept in memory;
- nothing past the end of data is read: a pipelined command stays in the stream.
"""

from __future__ import annotations

import asyncio
import enum
from typing import Any

from aiosmtpd.smtp import MISSING

from phigate.observability import timing

_DOT_CRLF = b".\r\n"
#: A line this long or longer makes aiosmtpd's reader overflow (its stream limit is the
#: line limit, 1001): it is refused before its bytes are counted against the size.
_OVERRUN = 2


class DataState(enum.Enum):
    NOMINAL = enum.auto()
    TOO_LONG = enum.auto()
    TOO_MUCH = enum.auto()


def data_state(raw: bytes | bytearray, *, size_limit: int | None, line_limit: int,
               complete: bool = True) -> DataState:
    """The outcome aiosmtpd gives the DATA bytes ``raw`` (everything before the final
    ``.\\r\\n``); with ``complete=False`` ``raw`` is a prefix longer than
    ``size_limit + line_limit + 3``, which already decides it."""
    lines = raw.split(b"\r\n")
    tail = lines.pop()  # b"" when raw ends with CRLF (a complete DATA always does)
    if complete and not tail and (not size_limit or len(raw) <= size_limit) and (
            max(map(len, lines), default=0) + 2 <= line_limit):
        return DataState.NOMINAL  # the common case, without a per-line loop
    counted = 0
    for line in lines:
        length = len(line) + 2
        if length > line_limit + _OVERRUN:  # aiosmtpd's reader overflows: refused first
            return DataState.TOO_LONG
        counted += length
        if size_limit and counted > size_limit:
            return DataState.TOO_MUCH
        if length > line_limit:
            return DataState.TOO_LONG
    if tail and len(tail) > line_limit + _OVERRUN:
        return DataState.TOO_LONG
    if size_limit and counted + len(tail) > size_limit:
        return DataState.TOO_MUCH
    return DataState.NOMINAL


def unstuff(raw: bytes) -> bytes:
    """Remove the leading dot of every line (RFC 5321 4.5.2)."""
    if raw.startswith(b"."):
        raw = raw[1:]
    return raw.replace(b"\r\n.", b"\r\n")


async def read_data(reader: asyncio.StreamReader, *, size_limit: int | None,
                    line_limit: int) -> tuple[DataState, bytes]:
    """Read up to and including the end of data; its state and (when nominal) the
    unstuffed content."""
    kept = bytearray()
    state: DataState | None = None  # decided early only when a limit is broken
    last_two = b""  # the last two bytes read, for a ".\r\n" at the start of a line
    first = True
    keep_limit = (size_limit or 0) + line_limit + _OVERRUN + 1
    while True:
        try:
            piece = await reader.readuntil(_DOT_CRLF)
            found = True
        except asyncio.LimitOverrunError as overrun:
            # No ".\r\n" in the first ``consumed`` bytes: take those (never past the end
            # of data: the separator cannot begin inside them).
            piece = await reader.readexactly(overrun.consumed)
            found = False
        if found:
            body = piece[:-3]
            at_line_start = ((last_two + body)[-2:] == b"\r\n"
                             or (first and not body))  # the first byte of DATA
            if at_line_start:  # the end of data
                if state is None:
                    kept += body
                break
        first = False
        if state is None:
            kept += piece
            if size_limit and len(kept) > keep_limit:
                state = data_state(kept, size_limit=size_limit, line_limit=line_limit,
                                   complete=False)
                kept = bytearray()  # nothing over the limits is kept
        last_two = (last_two + piece)[-2:]
    if state is None:
        state = data_state(kept, size_limit=size_limit, line_limit=line_limit)
    if state is not DataState.NOMINAL:
        return state, b""
    return state, unstuff(bytes(kept))


class ChunkedDataMixin:
    """``smtp_DATA`` for :class:`aiosmtpd.smtp.SMTP` subclasses (``decode_data=False``),
    reading with :func:`read_data`; everything around the reading is aiosmtpd's."""

    async def smtp_DATA(self, arg: str) -> None:
        smtp: Any = self
        if smtp._decode_data or "DATA" not in smtp._handle_hooks:
            await super().smtp_DATA(arg)  # type: ignore[misc]
            return
        if await smtp.check_helo_needed() or await smtp.check_auth_needed("DATA"):
            return
        if smtp.envelope is None or not smtp.envelope.rcpt_tos:
            await smtp.push("503 Error: need RCPT command")
            return
        if arg:
            await smtp.push("501 Syntax: DATA")
            return
        timing.lap("client")  # the client's DATA on its way (the stages: see server.py)
        await smtp.push("354 End data with <CR><LF>.<CR><LF>")
        try:
            state, content = await read_data(smtp._reader, size_limit=smtp.data_size_limit,
                                             line_limit=smtp.line_length_limit)
        except asyncio.CancelledError:  # the connection went away during DATA
            smtp._writer.close()
            raise
        timing.lap("data_read")  # the content on the wire and read
        if state is not DataState.NOMINAL:
            await smtp.push("500 Line too long (see RFC5321 4.5.3.1.6)"
                            if state is DataState.TOO_LONG else "552 Error: Too much mail data")
            smtp._set_post_data_state()
            return
        smtp.envelope.content = content
        smtp.envelope.original_content = content
        status = await smtp._call_handler_hook("DATA")
        smtp._set_post_data_state()
        await smtp.push("250 OK" if status is MISSING else status)
