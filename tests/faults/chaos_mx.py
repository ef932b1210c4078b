"""Receiving MTAs that misbehave, for the receiving-side fault tests.

- :class:`ChaosMx`: an aiosmtpd server (STARTTLS offered) whose answer to each attempt is
  decided by a *plan*: ``plan(tag, attempt) -> Fault | None``, where ``tag`` is the local
  part of the MAIL FROM address (tests give every message its own sender) and ``attempt``
  counts that tag's MAIL commands from 1. A fault is one command's misbehaviour: a reply
  (``421``/``451``/``550``...), a stall longer than the client's timeout, a connection
  dropped after the body arrived but before the reply, or a connection cut in the middle
  of the body. Keying by sender and attempt (not by arrival order) keeps a seeded plan
  deterministic however the client's workers interleave.
- :class:`BrokenTlsMx`: offers STARTTLS, says "220 go ahead" and then answers the client's
  TLS hello with plain text, so every handshake fails. It records any command that arrives
  in plaintext afterwards (a downgrade would show as a ``MAIL`` here).

Both run in their own thread on 127.0.0.x; every MX of a test shares one port (the
client's ``[delivery] mx_port``) on a different loopback address.
"""

from __future__ import annotations

import asyncio
import collections
import socket
import socketserver
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from ssl import SSLContext

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass(frozen=True)
class Fault:
    """What the receiving server does wrong at one command of one attempt."""

    command: str  # MAIL | RCPT | DATA
    kind: str  # reply | stall | drop (after the body, before the reply) | cut (mid-body)
    reply: str = ""

    @property
    def code(self) -> int | None:
        return int(self.reply[:3]) if self.kind == "reply" else None

    @property
    def permanent(self) -> bool:
        return self.kind == "reply" and self.reply.startswith("5")

    def __str__(self) -> str:
        return f"{self.command}:{self.reply or self.kind}"


Plan = Callable[[str, int], Fault | None]


@dataclass(frozen=True)
class Accepted:
    tag: str
    rcpt_tos: tuple[str, ...]
    content: bytes
    tls_version: str | None


@dataclass
class _Log:
    lock: threading.Lock = field(default_factory=threading.Lock)
    attempts: collections.Counter[str] = field(default_factory=collections.Counter)
    #: The fault (or None: a clean run) applied at each attempt, per tag.
    applied: dict[str, list[Fault | None]] = field(
        default_factory=lambda: collections.defaultdict(list))
    accepted: list[Accepted] = field(default_factory=list)
    #: Tags whose whole body arrived but whose connection was dropped before the reply.
    unacknowledged: list[str] = field(default_factory=list)


class _ChaosSMTP(SMTP):
    """aiosmtpd's SMTP, plus the one fault the handler hooks cannot express: a cut in the
    middle of the body (``handle_DATA`` only runs once the whole body is in)."""

    fault: Fault | None = None

    async def smtp_DATA(self, arg: str) -> None:
        fault = self.fault
        if (fault is not None and fault.kind == "cut" and not arg
                and self.envelope is not None and self.envelope.rcpt_tos):
            await self.push("354 End data with <CR><LF>.<CR><LF>")
            await self._reader.readuntil(b"\r\n")  # the first line of the body arrives...
            assert isinstance(self.transport, asyncio.Transport)
            self.transport.abort()  # ... and the connection is gone
            # connection_lost() now cancels this handler; until then aiosmtpd would read
            # the rest of the buffered body as commands.
            await asyncio.sleep(1)
            return
        await super().smtp_DATA(arg)


class _ChaosHandler:
    def __init__(self, log: _Log, plan: Plan, stall_seconds: float) -> None:
        self._log = log
        self._plan = plan
        self._stall = stall_seconds

    async def _act(self, server: SMTP, fault: Fault, default: str) -> str:
        if fault.kind == "reply":
            return fault.reply
        if fault.kind == "stall":
            await asyncio.sleep(self._stall)  # the client has given up by now
            return default
        assert isinstance(server.transport, asyncio.Transport)
        server.transport.abort()  # drop
        return "421 4.4.2 dropped"  # never reaches the client

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, mail_options: list[str]) -> str:
        tag = address.partition("@")[0]
        with self._log.lock:
            self._log.attempts[tag] += 1
            fault = self._plan(tag, self._log.attempts[tag])
            self._log.applied[tag].append(fault)
        assert isinstance(server, _ChaosSMTP)
        server.fault = fault
        if fault is not None and fault.command == "MAIL":
            return await self._act(server, fault, "250 2.1.0 OK")
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        fault = getattr(server, "fault", None)
        if fault is not None and fault.command == "RCPT":
            reply = await self._act(server, fault, "250 2.1.5 OK")
            if not reply.startswith("250"):
                return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        tag = str(envelope.mail_from).partition("@")[0]
        fault = getattr(server, "fault", None)
        if fault is not None and fault.command == "DATA":
            if fault.kind == "drop":
                with self._log.lock:
                    self._log.unacknowledged.append(tag)
            reply = await self._act(server, fault, "250 2.0.0 OK queued")
            if not reply.startswith("250"):
                return reply
        ssl_object = (server.transport.get_extra_info("ssl_object")
                      if server.transport is not None else None)
        with self._log.lock:
            self._log.accepted.append(Accepted(
                tag, tuple(envelope.rcpt_tos), envelope.original_content or b"",
                ssl_object.version() if ssl_object is not None else None))
        return "250 2.0.0 OK queued"


class _ChaosController(Controller):
    def factory(self) -> SMTP:
        return _ChaosSMTP(self.handler, **self.SMTP_kwargs)


class ChaosMx:
    def __init__(self, address: str, port: int, plan: Plan, *, tls_context: SSLContext,
                 stall_seconds: float) -> None:
        self.address, self.port = address, port
        self._log = _Log()
        self._controller = _ChaosController(
            _ChaosHandler(self._log, plan, stall_seconds), hostname=address, port=port,
            tls_context=tls_context, server_hostname="mx.chaos.test", decode_data=False)

    def start(self) -> ChaosMx:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def applied(self, tag: str) -> list[Fault | None]:
        with self._log.lock:
            return list(self._log.applied.get(tag, []))

    def accepted(self, tag: str) -> list[Accepted]:
        with self._log.lock:
            return [a for a in self._log.accepted if a.tag == tag]

    def unacknowledged(self, tag: str) -> int:
        with self._log.lock:
            return self._log.unacknowledged.count(tag)

    @property
    def all_accepted(self) -> list[Accepted]:
        with self._log.lock:
            return list(self._log.accepted)


class _BrokenTlsHandler(socketserver.StreamRequestHandler):
    server: _BrokenTlsServer
    timeout = 10  # never keep a test waiting on a silent client

    def handle(self) -> None:
        self.wfile.write(b"220 mx.broken.test ESMTP\r\n")
        while line := self.rfile.readline(1000):
            verb = line[:8].strip().upper().decode("ascii", "replace")
            self.server.note(verb)
            if verb.startswith(("EHLO", "HELO")):
                self.wfile.write(b"250-mx.broken.test\r\n250-8BITMIME\r\n250 STARTTLS\r\n")
            elif verb.startswith("STARTTLS"):
                self.wfile.write(b"220 2.0.0 Ready to start TLS\r\n")
                self.wfile.flush()
                self.request.recv(4096)  # the client's TLS hello...
                # ... answered with a line of plain text: not a TLS record at all.
                self.wfile.write(b"554 5.0.0 this is not TLS\r\n")
            elif verb.startswith("QUIT"):
                self.wfile.write(b"221 2.0.0 bye\r\n")
                return
            else:  # a client that went on in plaintext: recorded, and politely accepted
                self.wfile.write(b"250 2.0.0 OK\r\n")


class _BrokenTlsServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int]) -> None:
        super().__init__(address, _BrokenTlsHandler)
        self.lock = threading.Lock()
        self.commands: list[str] = []
        self.handshakes = 0

    def note(self, verb: str) -> None:
        with self.lock:
            self.commands.append(verb)
            self.handshakes += verb.startswith("STARTTLS")


class BrokenTlsMx:
    def __init__(self, address: str, port: int) -> None:
        self.address, self.port = address, port
        self._server = _BrokenTlsServer((address, port))
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)

    def start(self) -> BrokenTlsMx:
        self._thread.start()
        with socket.create_connection((self.address, self.port), timeout=5) as probe:
            probe.recv(100)  # serving: the greeting came
        with self._server.lock:
            self._server.commands.clear()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    @property
    def commands(self) -> list[str]:
        with self._server.lock:
            return list(self._server.commands)

    @property
    def handshakes(self) -> int:
        with self._server.lock:
            return self._server.handshakes
