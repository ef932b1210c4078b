"""The per-recipient decoration of an outgoing message (called by delivery, before DKIM).

For every recipient delivery asks :func:`decorate` for

- the envelope sender: a VERP return path ``bounces+TOKEN@<bounce domain>`` whose signed
  token names the recipient (and the campaign), so a bounce, however mangled its text,
  maps to exactly one recipient. A null sender (a DSN) stays null: a bounce must never
  cause another one (RFC 5321 4.5.5);
- for marketing, the body with ``List-Unsubscribe`` (https one-click URL and mailto) and
  ``List-Unsubscribe-Post: List-Unsubscribe=One-Click`` (RFC 8058) at the top of the header,
  replacing any the application set itself, so the DKIM signature made afterwards covers
  exactly phigate's headers.

- for marketing, a visible footer in each text part (unsubscribe link with the same token,
  the practice's postal address; see :mod:`footer`). Treatment and operations mail is
  never touched beyond the envelope.
- for marketing of a campaign that opted in (``X-Phigate-Track-Opens: yes``) and carries
  no PHI, a first-party open pixel in the HTML footer (:mod:`phigate.policy.open_tracking`),
  only when ``[http] public_url`` is https.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from phigate.config import Settings
from phigate.mta.delivery.footer import add_footer
from phigate.policy.open_tracking import PixelTokens, wants_tracking
from phigate.policy.token_registry import signer_for
from phigate.policy.tokens import (
    UNSUBSCRIBE_PREFIX,
    TokenClaims,
    TokenSigner,
    unsubscribe_headers,
    verp_address,
)
from phigate.queue.models import MessageClass

_REPLACED = (b"list-unsubscribe", b"list-unsubscribe-post")


@dataclass(frozen=True)
class DecoratedMessage:
    """What goes out for one recipient: the return path (VERP for marketing) and the
    body with the footer and unsubscribe headers."""

    mail_from: str
    body: bytes


def bounce_domain(settings: Settings) -> str:
    return settings.feedback.bounce_domain or settings.server.domain


def token_signer(settings: Settings, engine: Engine) -> TokenSigner | None:
    """The signer of ``[policy] token_key_file`` over the database's token registry;
    None when no key is configured."""
    return signer_for(settings, engine)


def decorate(
    message: bytes,
    *,
    recipient: str,
    sender: str,
    message_class: MessageClass,
    campaign_id: str | None,
    settings: Settings,
    signer: TokenSigner | None,
    phi: bool = False,
) -> DecoratedMessage:
    """The envelope sender and message bytes for one recipient (see module docstring).

    Without a token signer (no ``[policy] token_key_file``) the message goes out with its
    own sender and no List-Unsubscribe: nothing unforgeable could be offered.
    """
    if signer is None:
        return DecoratedMessage(sender, message)
    domain = bounce_domain(settings)
    is_marketing = message_class == "marketing"
    mail_from = sender
    if sender:
        mail_from = verp_address(signer, _verp_claims(recipient, message_class, campaign_id),
                                 domain)
    if not is_marketing:
        return DecoratedMessage(mail_from, message)
    headers = unsubscribe_headers(signer, recipient, campaign_id, settings.http.public_url,
                                  domain)
    # The visible link carries the same token as the header (tokens are deterministic).
    token = signer.make(_unsubscribe_claims(recipient, campaign_id))
    public_url = settings.http.public_url.rstrip("/")
    link = (f"{public_url}/u/{token}" if public_url
            else f"mailto:{UNSUBSCRIBE_PREFIX}{token}@{domain}")
    with_footer = add_footer(message, text=settings.policy.footer_text, unsubscribe_url=link,
                             postal_address=settings.policy.postal_address,
                             pixel_url=_pixel_url(message, campaign_id, phi, settings, signer))
    return DecoratedMessage(mail_from, _with_headers(with_footer, headers))


def token_claims(*, recipient: str, sender: str, message_class: MessageClass,
                 campaign_id: str | None) -> list[TokenClaims]:
    """The claims of the tokens :func:`decorate` makes (and records) for one recipient:
    delivery records them beforehand, in the claim's transaction (:mod:`.scheduler`)."""
    claims = [_verp_claims(recipient, message_class, campaign_id)] if sender else []
    if message_class == "marketing":
        # unsubscribe_headers makes the same claims as the footer's link.
        claims.append(_unsubscribe_claims(recipient, campaign_id))
    return claims


def _verp_claims(recipient: str, message_class: MessageClass,
                 campaign_id: str | None) -> TokenClaims:
    return TokenClaims(kind="verp", recipient=recipient, scope="all",
                       campaign=campaign_id if message_class == "marketing" else None)


def _unsubscribe_claims(recipient: str, campaign_id: str | None) -> TokenClaims:
    return TokenClaims(kind="unsubscribe", recipient=recipient, campaign=campaign_id)


def _pixel_url(message: bytes, campaign_id: str | None, phi: bool, settings: Settings,
               signer: TokenSigner) -> str | None:
    public_url = settings.http.public_url
    if (phi or campaign_id is None or not public_url.startswith("https://")
            or not wants_tracking(message)):
        return None  # never a pixel in mail with PHI, nor over plain http
    return PixelTokens.for_signer(signer).url(public_url, campaign_id)


def _with_headers(message: bytes, headers: dict[str, str]) -> bytes:
    head, separator, body = _split(message)
    kept = [field for field in _fields(head) if _name(field) not in _REPLACED]
    added = [_fold(name, value) for name, value in headers.items()]
    return b"".join(added) + b"".join(kept) + separator + body


def _split(message: bytes) -> tuple[bytes, bytes, bytes]:
    """(header block with its last CRLF, the empty line, body)."""
    index = message.find(b"\r\n\r\n")
    if index < 0:  # headers only
        return (message if message.endswith(b"\r\n") else message + b"\r\n"), b"", b""
    if message.startswith(b"\r\n"):  # no header at all
        return b"", message[:2], message[2:]
    return message[: index + 2], b"\r\n", message[index + 4:]


def _fields(head: bytes) -> list[bytes]:
    """Header fields with their continuation lines, each ending in CRLF."""
    fields: list[bytes] = []
    for line in head.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += line
        else:
            fields.append(line)
    return fields


def _name(field: bytes) -> bytes:
    return field.split(b":", 1)[0].strip().lower()


def _fold(name: str, value: str) -> bytes:
    # Each URI on its own line keeps lines short (RFC 5322 2.1.1); relaxed DKIM
    # canonicalisation and every reader unfold it again.
    folded = value.replace(", <", ",\r\n <")
    return f"{name}: {folded}\r\n".encode("ascii")
