"""A receiving SMTP server on 127.0.0.1 (aiosmtpd) that tests can script per command.

    sink = SmtpSink(port, tls_context=server_context)   # offers STARTTLS; None: withholds it
    sink.start()
    sink.script("RCPT", "450 4.2.0 try again later", times=2)  # the next two RCPTs
    sink.script_rcpt("bob@example.org", "550 5.1.1 no such user")
    sink.script("DATA", DROP)          # close the connection at DATA
    sink.script("MAIL", Stall(5))      # answer MAIL only after 5 s
    ...
    sink.messages  # what it accepted: envelope, content, TLS version, peer
    sink.stop()

Scriptable commands: EHLO (connection-level replies such as "421 too busy"), MAIL, RCPT,
DATA. Scripts are consumed in order, ``times=None`` means for ever. It runs in aiosmtpd's
Controller thread, so it is a real server on a real socket.
"""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from dataclasses import dataclass, field
from ssl import SSLContext
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session


@dataclass(frozen=True)
class Stall:
    """Wait this long before answering (then answer normally, or with ``reply``)."""

    seconds: float
    reply: str | None = None


class _Drop:
    def __repr__(self) -> str:
        return "DROP"


DROP = _Drop()
Action = str | Stall | _Drop


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    content: bytes
    tls_version: str | None
    peer: Any
    session_id: int
    at: float
    mail_options: tuple[str, ...] = ()


@dataclass
class _Rule:
    action: Action
    times: int | None


@dataclass
class _State:
    lock: threading.Lock = field(default_factory=threading.Lock)
    scripts: dict[str, collections.deque[_Rule]] = field(
        default_factory=lambda: collections.defaultdict(collections.deque))
    rcpt_scripts: dict[str, collections.deque[_Rule]] = field(
        default_factory=lambda: collections.defaultdict(collections.deque))
    messages: list[Received] = field(default_factory=list)
    commands: list[tuple[str, str]] = field(default_factory=list)
    #: Every command verb the server dispatched (NOOP, RSET and QUIT too), per session.
    verbs: list[tuple[int, str]] = field(default_factory=list)
    sessions: int = 0
    open_sessions: set[int] = field(default_factory=set)
    max_concurrent: int = 0


def _take(queue: collections.deque[_Rule]) -> Action | None:
    if not queue:
        return None
    rule = queue[0]
    if rule.times is not None:
        rule.times -= 1
        if rule.times <= 0:
            queue.popleft()
    return rule.action


class _Handler:
    def __init__(self, state: _State) -> None:
        self._state = state

    def _next(self, command: str, address: str | None = None) -> Action | None:
        with self._state.lock:
            self._state.commands.append((command, address or ""))
            action = None
            if address is not None:
                action = _take(self._state.rcpt_scripts[address.lower()])
            return action if action is not None else _take(self._state.scripts[command])

    async def _act(self, server: SMTP, action: Action, default: str) -> str:
        if isinstance(action, _Drop):
            assert isinstance(server.transport, asyncio.Transport)
            server.transport.abort()
            return "421 4.4.2 dropped"  # never reaches the client
        if isinstance(action, Stall):
            await asyncio.sleep(action.seconds)
            return action.reply or default
        return action

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope,
                          hostname: str, responses: list[str]) -> list[str]:
        with self._state.lock:
            key = id(server)
            if key not in self._state.open_sessions:
                self._state.open_sessions.add(key)
                self._state.sessions += 1
                self._state.max_concurrent = max(self._state.max_concurrent,
                                                 len(self._state.open_sessions))
        session.host_name = hostname
        action = self._next("EHLO")
        if action is None:
            return responses
        return [await self._act(server, action, responses[0])]

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, mail_options: list[str]) -> str:
        action = self._next("MAIL")
        reply = "250 2.1.0 OK"
        if action is not None:
            reply = await self._act(server, action, reply)
        if reply.startswith("250"):
            envelope.mail_from = address
            envelope.mail_options.extend(mail_options)
        return reply

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        action = self._next("RCPT", address)
        reply = "250 2.1.5 OK"
        if action is not None:
            reply = await self._act(server, action, reply)
        if reply.startswith("250"):
            envelope.rcpt_tos.append(address)
        return reply

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        action = self._next("DATA")
        reply = "250 2.0.0 OK queued"
        if action is not None:
            reply = await self._act(server, action, reply)
        if reply.startswith("250"):
            ssl_object = (server.transport.get_extra_info("ssl_object")
                          if server.transport is not None else None)
            content = envelope.original_content or b""
            with self._state.lock:
                self._state.messages.append(Received(
                    str(envelope.mail_from), tuple(envelope.rcpt_tos), content,
                    ssl_object.version() if ssl_object is not None else None,
                    session.peer, id(server), time.monotonic(),
                    tuple(envelope.mail_options)))
        return reply


class _CountingSMTP(SMTP):
    def __init__(self, state: _State, *args: Any, requiretls: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._state = state
        self._requiretls = requiretls
        self._smtp_methods = {verb: self._recording(verb, method)
                              for verb, method in self._smtp_methods.items()}

    def _recording(self, verb: str, method: Any) -> Any:
        async def recorded(arg: str) -> None:
            with self._state.lock:
                self._state.verbs.append((id(self), verb))
            await method(arg)

        return recorded

    async def smtp_EHLO(self, hostname: str) -> None:
        if not self._requiretls or self._tls_protocol is None:
            await super().smtp_EHLO(hostname)
            return
        # RFC 8689: REQUIRETLS is offered only over TLS; aiosmtpd has no hook to add a
        # keyword, so the last reply line gets one before it.
        push = self.push

        async def with_requiretls(status: str) -> None:
            if status == "250 HELP":
                await push("250-REQUIRETLS")
            await push(status)

        self.push = with_requiretls  # type: ignore[method-assign, assignment]
        try:
            await super().smtp_EHLO(hostname)
        finally:
            self.push = push  # type: ignore[method-assign]

    async def smtp_MAIL(self, arg: str) -> None:
        # aiosmtpd refuses parameters it does not know; take REQUIRETLS off and keep it.
        words = (arg or "").split()
        flagged = self._requiretls and any(w.upper() == "REQUIRETLS" for w in words[1:])
        if flagged:
            arg = " ".join([words[0]] + [w for w in words[1:] if w.upper() != "REQUIRETLS"])
        await super().smtp_MAIL(arg)
        if flagged and self.envelope is not None and self.envelope.mail_from is not None:
            self.envelope.mail_options.append("REQUIRETLS")

    def connection_lost(self, error: Exception | None) -> None:
        with self._state.lock:
            self._state.open_sessions.discard(id(self))
        super().connection_lost(error)


class _Controller(Controller):
    def __init__(self, state: _State, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._state = state

    requiretls = False

    def factory(self) -> SMTP:
        return _CountingSMTP(self._state, self.handler, requiretls=self.requiretls,
                             **self.SMTP_kwargs)


class SmtpSink:
    def __init__(self, port: int, *, tls_context: SSLContext | None = None,
                 implicit_tls: SSLContext | None = None, hostname: str = "127.0.0.1",
                 timeout: float = 30.0, credentials: dict[str, str] | None = None,
                 requiretls: bool = False) -> None:
        """``tls_context`` offers STARTTLS; ``implicit_tls`` speaks TLS from the start;
        ``credentials`` (user -> password) requires AUTH, only after TLS; ``requiretls``
        offers REQUIRETLS (RFC 8689) after STARTTLS and records it in ``mail_options``."""
        self.port = port
        self.hostname = hostname
        self._state = _State()
        self.logins: list[str] = []
        kwargs: dict[str, Any] = {"server_hostname": "sink.test", "timeout": timeout,
                                  "decode_data": False}
        if tls_context is not None:
            kwargs["tls_context"] = tls_context
        if implicit_tls is not None:
            kwargs["ssl_context"] = implicit_tls
        if credentials is not None:
            kwargs["authenticator"] = self._authenticator(credentials)
            kwargs["auth_required"] = True
            kwargs["auth_require_tls"] = True
        self._controller = _Controller(self._state, _Handler(self._state), hostname=hostname,
                                       port=port, **kwargs)
        self._controller.requiretls = requiretls

    def _authenticator(self, credentials: dict[str, str]) -> Any:
        def check(server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                  auth_data: Any) -> AuthResult:
            username = auth_data.login.decode()
            ok = credentials.get(username) == auth_data.password.decode()
            if ok:
                self.logins.append(username)
            # handled=False: aiosmtpd then sends the 235/535 reply itself (FACTS.md).
            return AuthResult(success=ok, handled=False, auth_data=auth_data)

        return check

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> SmtpSink:
        self._controller.start()
        with self._state.lock:  # forget the Controller's own readiness probe
            self._state.sessions = 0
            self._state.max_concurrent = 0
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- scripting ---------------------------------------------------------------------

    def script(self, command: str, action: Action, *, times: int | None = 1) -> None:
        with self._state.lock:
            self._state.scripts[command.upper()].append(_Rule(action, times))

    def script_rcpt(self, address: str, action: Action, *, times: int | None = None) -> None:
        with self._state.lock:
            self._state.rcpt_scripts[address.lower()].append(_Rule(action, times))

    def clear_scripts(self) -> None:
        with self._state.lock:
            self._state.scripts.clear()
            self._state.rcpt_scripts.clear()

    def reset_counters(self) -> None:
        """Start counting sessions and concurrency afresh (messages are kept)."""
        with self._state.lock:
            self._state.sessions = 0
            self._state.max_concurrent = len(self._state.open_sessions)

    # -- what happened -----------------------------------------------------------------

    @property
    def messages(self) -> list[Received]:
        with self._state.lock:
            return list(self._state.messages)

    @property
    def commands(self) -> list[tuple[str, str]]:
        with self._state.lock:
            return list(self._state.commands)

    @property
    def verbs(self) -> list[tuple[int, str]]:
        """(session, verb) of every command received, NOOP and RSET included."""
        with self._state.lock:
            return list(self._state.verbs)

    @property
    def sessions(self) -> int:
        """Connections that got as far as EHLO."""
        with self._state.lock:
            return self._state.sessions

    @property
    def max_concurrent(self) -> int:
        with self._state.lock:
            return self._state.max_concurrent

    def delivered_to(self, address: str) -> list[Received]:
        return [m for m in self.messages if address in m.rcpt_tos]
