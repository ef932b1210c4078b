"""The first-party open pixel, ``GET /o/CAMPAIGN/TOKEN.gif`` on ``[http] listen``.

Every request gets the same transparent GIF with ``no-store`` and no cookie, whatever the
token: a mail client never shows a broken image, and the answer says nothing about whether
the token was genuine. A genuine token adds to its campaign's aggregate counts
(:mod:`phigate.policy.open_tracking`); the user agent only decides whether the fetch is a
prefetching proxy and is not kept. Nothing is logged per request: no IP, no agent, no token.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from phigate.observability.logs import log_event
from phigate.policy.campaigns import valid_campaign_id
from phigate.policy.open_tracking import PIXEL_GIF, OpenStore, PixelTokens, classify_fetch

log = logging.getLogger("phigate.opens")

_HEADERS = {
    "Cache-Control": "no-store, no-cache, must-revalidate, private",
    "Pragma": "no-cache",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


def add_open_routes(app: web.Application, *, tokens: PixelTokens, opens: OpenStore) -> None:
    app.router.add_get("/o/{campaign}/{token}.gif", OpenPixel(tokens, opens).fetch)


class OpenPixel:
    def __init__(self, tokens: PixelTokens, opens: OpenStore) -> None:
        self._tokens = tokens
        self._opens = opens

    async def fetch(self, request: web.Request) -> web.Response:
        campaign = request.match_info.get("campaign", "")
        token = request.match_info.get("token", "")
        nonce = self._tokens.nonce(campaign, token) if valid_campaign_id(campaign) else None
        if nonce is not None:
            kind = classify_fetch(request.headers.get("User-Agent"))
            try:
                await asyncio.to_thread(self._opens.record, campaign, nonce, kind)
            except SQLAlchemyError as error:
                # A lost count is no reason to show the reader a broken image.
                log_event(log, "open_count_failed", level=logging.WARNING,
                          error=type(error).__name__)
        return web.Response(body=PIXEL_GIF, content_type="image/gif", headers=_HEADERS)
