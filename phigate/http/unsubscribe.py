"""One-click unsubscribe over HTTP (RFC 8058), on ``[http] listen`` next to /metrics.

- ``POST /u/TOKEN`` with the form field ``List-Unsubscribe=One-Click`` (what mailbox
  providers send) suppresses the token's recipient for marketing at once, cancels their
  queued marketing mail and answers 200: no cookies, no redirects, nothing to click.
- ``GET /u/TOKEN`` only shows a small page with a button that sends that same POST. A GET
  never unsubscribes: link scanners and prefetchers fetch every URL in a message.
- A forged, mangled or foreign token gets a 404 page and changes nothing. The token is the
  only input: it is checked with the HMAC key alone, and nothing else the client sends
  (cookies, referrer, form fields other than the one-click marker) is used.
"""

from __future__ import annotations

import asyncio
import html
import logging
from urllib.parse import parse_qs

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from phigate.observability.logs import log_event
from phigate.policy.feedback.actions import FeedbackProcessor
from phigate.policy.tokens import TokenClaims, TokenSigner

log = logging.getLogger("phigate.unsubscribe")

ONE_CLICK_FIELD, ONE_CLICK_VALUE = "List-Unsubscribe", "One-Click"
_MAX_TOKEN_LENGTH = 600
_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; form-action 'self'; frame-ancestors 'none'",
}


def add_unsubscribe_routes(app: web.Application, *, signer: TokenSigner | None,
                           processor: FeedbackProcessor, organisation: str) -> None:
    routes = UnsubscribeRoutes(signer, processor, organisation)
    app.router.add_get("/u/{token}", routes.confirm_page)
    app.router.add_post("/u/{token}", routes.unsubscribe)


class UnsubscribeRoutes:
    def __init__(self, signer: TokenSigner | None, processor: FeedbackProcessor,
                 organisation: str) -> None:
        self._signer = signer
        self._processor = processor
        self._organisation = html.escape(organisation)

    def _claims(self, request: web.Request) -> TokenClaims | None:
        token = request.match_info.get("token", "")
        if self._signer is None or not token or len(token) > _MAX_TOKEN_LENGTH:
            return None
        return self._signer.parse(token, kind="unsubscribe")

    async def confirm_page(self, request: web.Request) -> web.Response:
        if self._claims(request) is None:
            return _invalid()
        return _page(200, "Unsubscribe", (
            f"<p>Stop marketing email from {self._organisation} to this address? "
            "Appointment reminders and messages about your care are not affected.</p>"
            f'<form method="post"><input type="hidden" name="{ONE_CLICK_FIELD}" '
            f'value="{ONE_CLICK_VALUE}"><button type="submit">Unsubscribe</button></form>'))

    async def unsubscribe(self, request: web.Request) -> web.Response:
        claims = self._claims(request)
        if claims is None:
            return _invalid()
        if not await _is_one_click(request):
            return _page(400, "Bad request", "<p>This request is missing "
                                             "List-Unsubscribe=One-Click.</p>")
        try:
            result = await asyncio.to_thread(self._processor.unsubscribe, claims,
                                             method="one-click")
        except SQLAlchemyError as error:
            log_event(log, "unsubscribe_failed", level=logging.ERROR,
                      error=type(error).__name__)
            return _page(503, "Please try again", "<p>We could not record your request "
                                                  "just now. Please try again later.</p>")
        log_event(log, "unsubscribed", method="one-click", new=result.added,
                  campaign=claims.campaign, cancelled=len(result.cancelled_messages))
        return _page(200, "Unsubscribed", f"<p>You will no longer receive marketing email "
                                          f"from {self._organisation}.</p>")


async def _is_one_click(request: web.Request) -> bool:
    if request.content_type.startswith("multipart/"):
        form = await request.post()
        return str(form.get(ONE_CLICK_FIELD, "")) == ONE_CLICK_VALUE
    raw = await request.read()
    fields = parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
    return ONE_CLICK_VALUE in fields.get(ONE_CLICK_FIELD, [])


def _invalid() -> web.Response:
    return _page(404, "Link not valid", "<p>This unsubscribe link is not valid. Please use "
                                        "the link from the most recent email.</p>")


def _page(status: int, title: str, body: str) -> web.Response:
    text = (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width\"><title>{title}</title>"
            f"</head><body><h1>{title}</h1>{body}</body></html>")
    return web.Response(status=status, text=text, content_type="text/html",
                        headers=_HEADERS)
