"""The secure pickup page (aiohttp), mounted under ``/p/`` on phigate's HTTP listener.

- ``GET /p/TOKEN``: asks for the one-time code (and the practice's second factor, if any).
  Any token that is forged, unknown, expired, locked out of existence or another's gets the
  same 404 page: the page never tells whether a token exists.
- ``POST /p/TOKEN/code``: mails a 6-digit code to the recipient address only (rate limited
  per token and per IP); ``POST /p/TOKEN/verify`` checks it (10 minutes, 5 tries, then
  locked) and opens a session: a ``__Host-`` cookie, Secure, HttpOnly, SameSite=Strict,
  15 minutes, whose hash lives in the token's row (bound to that token, gone at logout).
- ``GET /p/TOKEN/message`` shows it, ``GET /p/TOKEN/a/N`` downloads attachment N as an
  attachment of a safe type, ``POST /p/TOKEN/reply`` sends the one reply through the queue,
  scanned like any message; ``POST /p/TOKEN/logout`` ends the session.
Every response carries CSP ``default-src 'none'``, no-referrer, DENY, HSTS and no-store.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from aiohttp import web

from phigate.clock import Clock, SystemClock
from phigate.config import Settings
from phigate.observability.logs import log_event
from phigate.phi_scanner.findings import ScanResult
from phigate.pickup import content, mail, pages
from phigate.pickup.credentials import new_code, new_session
from phigate.pickup.limits import PickupLimits
from phigate.pickup.metrics import PICKUP_EVENTS
from phigate.pickup.store import CodeCheck, PickupEvent, PickupStore, PickupView
from phigate.pickup.switch import practice_of
from phigate.queue.crypto import DecryptionError
from phigate.queue.models import MessageClass
from phigate.queue.pickup_models import PickupState
from phigate.queue.store import NewMessage, SqlQueueStore

log = logging.getLogger("phigate.pickup")

COOKIE = "__Host-phigate-pickup"
MAX_REPLY_CHARS = 10_000
HEADERS = {
    "Content-Security-Policy": pages.CSP,
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
    "Cache-Control": "no-store",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ReplyScanner(Protocol):
    async def scan(self, raw: bytes) -> ScanResult: ...


class PickupPages:
    def __init__(self, settings: Settings, store: SqlQueueStore, *,
                 scanner: ReplyScanner | None, clock: Clock | None = None,
                 limits: PickupLimits | None = None) -> None:
        self._settings = settings
        self._store = store
        self.pickups = PickupStore(store)
        self._scanner = scanner
        self._clock: Clock = clock or SystemClock()
        self._limits = limits or PickupLimits()
        self._practice = settings.pickup.practice_name or settings.server.domain

    def add_routes(self, app: web.Application) -> None:
        app.middlewares.append(_security_headers)
        app.router.add_get("/p/{token}", self.start)
        app.router.add_post("/p/{token}/code", self.send_code)
        app.router.add_post("/p/{token}/verify", self.verify)
        app.router.add_get("/p/{token}/message", self.message)
        app.router.add_get("/p/{token}/a/{index}", self.download)
        app.router.add_post("/p/{token}/reply", self.reply)
        app.router.add_post("/p/{token}/logout", self.logout)

    # -- helpers --------------------------------------------------------------------------

    def _html(self, body: str, status: int = 200) -> web.Response:
        return web.Response(status=status, text=body, content_type="text/html",
                            charset="utf-8")

    def _invalid(self) -> web.Response:
        return self._html(pages.invalid(self._practice), 404)

    async def _find(self, request: web.Request) -> PickupView | None:
        if not self._limits.hits_per_ip.allow(_ip(request)):
            raise web.HTTPTooManyRequests(text="Too many requests; try again in a minute.")
        token = request.match_info["token"]
        return await asyncio.to_thread(self.pickups.find, token, self._clock.now())

    async def _session(self, request: web.Request) -> PickupView | None:
        view = await self._find(request)
        if view is None or view.state is PickupState.LOCKED:
            return None
        ok = await asyncio.to_thread(self.pickups.session_ok, view.id,
                                     request.cookies.get(COOKIE), self._clock.now())
        return view if ok else None

    def _event(self, event: PickupEvent) -> None:
        PICKUP_EVENTS.labels(event=event.value.removeprefix("pickup_")).inc()
        log_event(log, event.value)

    def _locked(self) -> web.Response:
        return self._html(pages.notice_page(
            self._practice, "Message locked", "There were too many wrong codes, so this "
            "message is locked. Please ask the sender to send it again."), 403)

    # -- the code -------------------------------------------------------------------------

    async def start(self, request: web.Request) -> web.Response:
        view = await self._find(request)
        if view is None:
            return self._invalid()
        if view.state is PickupState.LOCKED:
            return self._locked()
        return self._html(pages.code_form(self._practice, request.match_info["token"],
                                          question=view.question, sent=False))

    async def send_code(self, request: web.Request) -> web.Response:
        view = await self._find(request)
        if view is None:
            return self._invalid()
        if view.state is PickupState.LOCKED:
            return self._locked()
        token = request.match_info["token"]
        if not self._limits.may_send_code(str(view.id), _ip(request)):
            return self._html(pages.code_form(
                self._practice, token, question=view.question, sent=view.codes_sent > 0,
                error="A code was sent a moment ago. Please wait a minute before asking "
                      "for another."), 429)
        code, now = new_code(), self._clock.now()
        practice = practice_of(self._settings, view.sender)
        body = mail.code_mail(practice, to=view.address, code=code, now=now)
        await asyncio.to_thread(self.pickups.issue_code, view.id, code, now, _ip(request))
        # Only ever to the recipient address the row holds, whatever the client sends.
        await asyncio.to_thread(self._store.enqueue, NewMessage(
            sender=practice.address, recipients=[view.address], body=body,
            message_class=MessageClass.OPERATIONS), now=now)
        self._event(PickupEvent.CODE_REQUESTED)
        return self._html(pages.code_form(self._practice, token, question=view.question,
                                          sent=True))

    async def verify(self, request: web.Request) -> web.StreamResponse:
        view = await self._find(request)
        if view is None:
            return self._invalid()
        if view.state is PickupState.LOCKED:
            return self._locked()
        form = await request.post()
        code = str(form.get("code", "")).strip()[:12]
        answer_ok = await self._answer_ok(view, str(form.get("answer", ""))[:200])
        result = await asyncio.to_thread(self.pickups.check_code, view.id, code, answer_ok,
                                         self._clock.now(), _ip(request))
        token = request.match_info["token"]
        if result is CodeCheck.LOCKED:
            self._event(PickupEvent.LOCKOUT)
            return self._locked()
        if result is CodeCheck.WRONG:
            self._event(PickupEvent.CODE_FAILURE)
            return self._html(pages.code_form(
                self._practice, token, question=view.question, sent=True,
                error="That code (or answer) is not right, or the code has expired."), 403)
        value, value_hash = new_session()
        await asyncio.to_thread(self.pickups.open_session, view.id, value_hash,
                                self._clock.now())
        response = _see_other(f"/p/{token}/message")
        response.set_cookie(COOKIE, value, path="/", secure=True, httponly=True,
                            samesite="Strict", max_age=15 * 60)
        return response

    async def _answer_ok(self, view: PickupView, given: str) -> bool:
        if not view.question:
            return True
        try:
            raw = await asyncio.to_thread(self.pickups.open_body, view.id)
        except DecryptionError:
            return False
        factor = content.second_factor(raw)
        return factor is not None and content.answer_matches(factor[1], given)

    # -- the message ----------------------------------------------------------------------

    async def _shown(self, view: PickupView) -> content.Shown | None:
        try:
            raw = await asyncio.to_thread(self.pickups.open_body, view.id)
        except DecryptionError:
            return None
        return content.parse(raw)

    async def message(self, request: web.Request) -> web.StreamResponse:
        view = await self._session(request)
        if view is None:
            return await self._back_to_start(request)
        shown = await self._shown(view)
        if shown is None:
            return self._invalid()
        allowed = await asyncio.to_thread(self.pickups.reply_allowed, view.id)
        await asyncio.to_thread(self.pickups.note, view.id, PickupEvent.VIEW,
                                self._clock.now(), _ip(request))
        self._event(PickupEvent.VIEW)
        return self._html(pages.message_view(self._practice, request.match_info["token"],
                                             shown, reply_allowed=allowed))

    async def _back_to_start(self, request: web.Request) -> web.StreamResponse:
        view = await self._find(request)
        if view is None:
            return self._invalid()
        return _see_other(f"/p/{request.match_info['token']}")

    async def download(self, request: web.Request) -> web.StreamResponse:
        view = await self._session(request)
        if view is None:
            return await self._back_to_start(request)
        shown = await self._shown(view)
        index = request.match_info["index"]
        if shown is None or not index.isdigit() or int(index) >= len(shown.attachments):
            return self._invalid()
        item = shown.attachments[int(index)]
        now = self._clock.now()
        await asyncio.to_thread(self.pickups.note, view.id, PickupEvent.DOWNLOAD, now,
                                _ip(request), {"attachment": int(index)})
        self._event(PickupEvent.DOWNLOAD)
        if view.message_class in self._settings.pickup.destroy_after_download:
            await asyncio.to_thread(self.pickups.destroy, view.id, PickupState.SHREDDED,
                                    PickupEvent.SHREDDED, now, _ip(request))
        return web.Response(body=item.data, headers={
            "Content-Type": content.safe_type(item.content_type),
            "Content-Disposition": f'attachment; filename="{item.filename}"'})

    async def reply(self, request: web.Request) -> web.StreamResponse:
        view = await self._session(request)
        if view is None:
            return await self._back_to_start(request)
        form = await request.post()
        text = str(form.get("text", "")).strip()
        allowed = await asyncio.to_thread(self.pickups.reply_allowed, view.id)
        shown = await self._shown(view)
        if not allowed or shown is None or not text or len(text) > MAX_REPLY_CHARS:
            return self._html(pages.notice_page(self._practice, "Reply not sent",
                                                "This message takes one reply of up to "
                                                "10,000 characters."), 400)
        message_id = await self._enqueue_reply(view, shown, text)
        await asyncio.to_thread(self.pickups.note, view.id, PickupEvent.REPLY,
                                self._clock.now(), _ip(request), {"reply": message_id})
        self._event(PickupEvent.REPLY)
        return self._html(pages.notice_page(self._practice, "Reply sent",
                                            f"Your reply is on its way to {self._practice}."))

    async def _enqueue_reply(self, view: PickupView, shown: content.Shown, text: str) -> str:
        now = self._clock.now()
        practice = practice_of(self._settings, view.sender)
        raw = mail.reply(patient=view.address, sender=practice.address, to=view.sender,
                         subject=shown.subject or "",
                         text=text, in_reply_to=shown.message_id,
                         hostname=self._settings.server.hostname, now=now)
        scan = await self._scan(raw)
        return await asyncio.to_thread(self._store.enqueue, NewMessage(
            sender=practice.address, recipients=[view.sender], body=raw,
            message_class=view.message_class, phi_verdict=scan.verdict, phi_score=scan.score,
            phi_categories=scan.categories), now=now)

    async def _scan(self, raw: bytes) -> ScanResult:
        if self._scanner is None:
            # No scanner here: fail closed, the reply travels as PHI.
            return ScanResult.unscannable_result("no scanner on this node")
        try:
            return await self._scanner.scan(raw)
        except Exception as error:
            log_event(log, "pickup_reply_scan_failed", level=logging.ERROR,
                      error=type(error).__name__)
            return ScanResult.unscannable_result("scan failed")

    async def logout(self, request: web.Request) -> web.StreamResponse:
        view = await self._session(request)
        if view is not None:
            await asyncio.to_thread(self.pickups.close_session, view.id, _ip(request))
        response = self._html(pages.notice_page(
            self._practice, "Message closed", "You can open it again from the link in the "
            "email, with a new code."))
        response.del_cookie(COOKIE, path="/", secure=True, httponly=True, samesite="Strict")
        return response


@web.middleware
async def _security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith("/p/"):
        return await handler(request)
    try:
        response = await handler(request)
    except web.HTTPException as error:
        error.headers.update(HEADERS)
        raise
    response.headers.update(HEADERS)
    return response


def _see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


def _ip(request: web.Request) -> str:
    return request.remote or "unknown"
