"""Privacy-first open tracking of marketing campaigns (issue 19): an estimate, never a record.

What is counted, and how:

- Only marketing mail of a campaign, only when the message opts in with
  ``X-Phigate-Track-Opens: yes`` (stripped before delivery like every ``X-Phigate-*``), and
  never mail with PHI: treatment, operations and marketing that carries PHI get no pixel.
- The pixel is first-party: ``{[http] public_url}/o/CAMPAIGN/TOKEN.gif``, served by
  phigate's own HTTP listener. The token is a random nonce chosen when the copy is decorated
  and a MAC over campaign and nonce; the nonce is stored nowhere, so nothing maps a token to
  a recipient.
- A fetch with a genuine token adds to the campaign's counts. Unique opens are told apart by
  a set of keyed digests ``HMAC(campaign key, nonce)`` (:class:`OpenMark`); closing the
  campaign's tracking destroys the key and deletes the set. Fetches by prefetching proxies
  (Apple Mail Privacy Protection, Gmail's and Yahoo's image proxies) are counted apart: they
  fetch whether or not anyone reads the mail.
- Never recorded: who fetched, the address, the IP, the user agent, the time of a single
  fetch (only per-hour counts), any cookie. The HTTP route logs nothing per request.

The figure is labelled "estimated" wherever it is shown (HHS/OCR's guidance on tracking
technologies; see docs/operations.md).
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from phigate.clock import utcnow
from phigate.policy.tokens import TokenSigner
from phigate.queue.policy_models import CampaignOpens, OpenHour, OpenMark
from phigate.queue.store import SqlQueueStore

TRACK_HEADER = b"x-phigate-track-opens"
PIXEL_PREFIX = "/o/"
_NONCE_BYTES = 10
_MAC_BYTES = 10
_CONTEXT = b"phigate-open-pixel-v1\x00"

#: A transparent 1x1 GIF (43 bytes), the same answer to every request.
PIXEL_GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")

#: User-agent marks of fetchers that load images for the reader, opened or not.
_PROXY_MARKS = ("googleimageproxy", "ggpht.com", "yahoomailproxy", "yahoo! slurp")
#: Apple Mail Privacy Protection fetches through Apple's relays with exactly this agent.
_APPLE_MPP_AGENT = "mozilla/5.0"


class FetchKind(enum.StrEnum):
    OPEN = "open"  # a mail client loading the image: counted as an (estimated) open
    PROXY = "proxy"  # a prefetching proxy: counted apart


def classify_fetch(user_agent: str | None) -> FetchKind:
    agent = (user_agent or "").strip().lower()
    if agent == _APPLE_MPP_AGENT or any(mark in agent for mark in _PROXY_MARKS):
        return FetchKind.PROXY
    return FetchKind.OPEN


def wants_tracking(message: bytes) -> bool:
    """The header block carries ``X-Phigate-Track-Opens: yes``."""
    end = message.find(b"\r\n\r\n")
    head = message if end < 0 else message[:end]
    for line in head.split(b"\r\n"):
        name, colon, value = line.partition(b":")
        if colon and name.strip().lower() == TRACK_HEADER:
            return value.strip().lower() in (b"yes", b"true", b"1")
    return False


class PixelTokens:
    """Makes and checks pixel tokens with a key derived from the token key."""

    def __init__(self, key: bytes) -> None:
        self._key = hmac.new(key, _CONTEXT, hashlib.sha256).digest()

    @classmethod
    def for_signer(cls, signer: TokenSigner) -> PixelTokens:
        return cls(signer.derived_key(b"open-pixel"))

    def _mac(self, campaign_id: str, nonce: bytes) -> bytes:
        message = campaign_id.encode("utf-8") + b"\x00" + nonce
        return hmac.new(self._key, message, hashlib.sha256).digest()[:_MAC_BYTES]

    def url(self, public_url: str, campaign_id: str) -> str:
        nonce = secrets.token_bytes(_NONCE_BYTES)
        token = base64.b32encode(nonce + self._mac(campaign_id, nonce)).decode().lower()
        return f"{public_url.rstrip('/')}{PIXEL_PREFIX}{campaign_id}/{token}.gif"

    def nonce(self, campaign_id: str, token: str) -> bytes | None:
        """The nonce of a genuine token for ``campaign_id``, else None."""
        if len(token) != 32:
            return None
        try:
            raw = base64.b32decode(token.upper())
        except (binascii.Error, ValueError):
            return None
        nonce, mac = raw[:_NONCE_BYTES], raw[_NONCE_BYTES:]
        return nonce if hmac.compare_digest(mac, self._mac(campaign_id, nonce)) else None


@dataclass(frozen=True)
class OpenSummary:
    campaign_id: str
    unique_opens: int
    proxy_fetches: int
    fetches: int
    closed: bool
    by_hour: dict[datetime, tuple[int, int]] = field(default_factory=dict)

    def as_dict(self, delivered: int) -> dict[str, Any]:
        rate = self.unique_opens / delivered if delivered else 0.0
        return {"estimated": True, "unique_opens": self.unique_opens,
                "estimated_open_rate": round(rate, 6), "proxy_fetches": self.proxy_fetches,
                "fetches": self.fetches, "tracking_closed": self.closed}


class OpenStore:
    """The aggregate counts (see the module docstring); every write is one short transaction."""

    def __init__(self, store: SqlQueueStore) -> None:
        self._store = store

    def record(self, campaign_id: str, nonce: bytes, kind: FetchKind,
               now: datetime | None = None) -> bool:
        """Count one fetch; True when it was the first of that copy and kind."""
        now = now or utcnow()
        hour = now.replace(minute=0, second=0, microsecond=0)
        with self._store.writing() as session:
            row = self._row(session, campaign_id, now)
            if row.hash_key is None:
                return False  # tracking closed: its set is gone, nothing is counted any more
            row.fetches += 1
            digest = hmac.new(row.hash_key, kind.encode() + b"\x00" + nonce,
                              hashlib.sha256).digest()[:16]
            try:
                with session.begin_nested():
                    session.add(OpenMark(campaign_id=campaign_id, digest=digest))
            except IntegrityError:
                return False
            if kind is FetchKind.OPEN:
                row.unique_opens += 1
            else:
                row.proxy_fetches += 1
            self._count_hour(session, campaign_id, hour, kind)
        return True

    @staticmethod
    def _row(session: Session, campaign_id: str, now: datetime) -> CampaignOpens:
        row = session.get(CampaignOpens, campaign_id)
        if row is None:
            row = CampaignOpens(campaign_id=campaign_id, hash_key=secrets.token_bytes(32),
                                unique_opens=0, proxy_fetches=0, fetches=0, started_at=now)
            session.add(row)
            session.flush()
        return row

    @staticmethod
    def _count_hour(session: Session, campaign_id: str, hour: datetime,
                    kind: FetchKind) -> None:
        row = session.get(OpenHour, (campaign_id, hour))
        if row is None:
            row = OpenHour(campaign_id=campaign_id, hour=hour, unique_opens=0, proxy_fetches=0)
            session.add(row)
        if kind is FetchKind.OPEN:
            row.unique_opens += 1
        else:
            row.proxy_fetches += 1

    def summary(self, campaign_id: str) -> OpenSummary | None:
        """The counts of a campaign that had at least one fetch, else None."""
        with self._store.reading() as session:
            row = session.get(CampaignOpens, campaign_id)
            if row is None:
                return None
            hours = session.execute(select(OpenHour.hour, OpenHour.unique_opens,
                                           OpenHour.proxy_fetches)
                                    .where(OpenHour.campaign_id == campaign_id))
            by_hour = {hour: (opens, proxy) for hour, opens, proxy in hours}
            return OpenSummary(campaign_id, row.unique_opens, row.proxy_fetches, row.fetches,
                               row.hash_key is None, by_hour)

    def close(self, campaign_id: str, now: datetime | None = None,
              session: Session | None = None) -> int:
        """Destroy the campaign's key and digest set (the counts stay); returns the number
        of digests deleted. Later fetches are not counted."""
        if session is None:
            with self._store.writing() as own:
                return self.close(campaign_id, now, own)
        now = now or utcnow()
        row = self._row(session, campaign_id, now)
        row.hash_key, row.closed_at = None, row.closed_at or now
        result = session.execute(delete(OpenMark).where(OpenMark.campaign_id == campaign_id))
        return int(getattr(result, "rowcount", 0) or 0)
