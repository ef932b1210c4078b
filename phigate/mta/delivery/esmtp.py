"""What the delivery client says in ESMTP beyond the commands themselves: the EHLO that
falls back to HELO, the MAIL FROM parameters (SIZE, 8BITMIME, SMTPUTF8, REQUIRETLS) and
what a finished TLS handshake may claim."""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiosmtplib

from phigate.mta.delivery.outcomes import PLAINTEXT, TlsInfo

if TYPE_CHECKING:
    from phigate.mta.delivery.client import OutboundMessage


async def ehlo(smtp: aiosmtplib.SMTP) -> None:
    try:
        await smtp.ehlo()
    except aiosmtplib.SMTPHeloError as error:
        if error.code < 500:
            raise
        await smtp.helo()  # a server without ESMTP


def tls_info(smtp: aiosmtplib.SMTP, *, verified: bool) -> TlsInfo:
    ssl_object = smtp.get_transport_info("ssl_object")
    if ssl_object is None:
        return PLAINTEXT
    cipher = ssl_object.cipher()
    # With the verify level the handshake itself checked chain and host name; at the
    # other levels nothing was checked, so nothing is claimed.
    return TlsInfo(ssl_object.version(), cipher[0] if cipher else None, verified)


def needs_smtputf8(message: OutboundMessage) -> bool:
    return not (message.sender.isascii() and all(r.isascii() for r in message.recipients))


def mail_options(smtp: aiosmtplib.SMTP, message: OutboundMessage, utf8: bool,
                  verified: bool = False) -> list[str]:
    options = []
    if smtp.supports_extension("size"):
        options.append(f"SIZE={len(message.content)}")
    if smtp.supports_extension("8bitmime") and not message.content.isascii():
        options.append("BODY=8BITMIME")
    if utf8:
        options.append("SMTPUTF8")
    if message.require_tls or (message.phi and verified
                               and smtp.supports_extension("requiretls")):
        # Passed on (RFC 8689 4.2.1); PHI asks for it wherever a verified hop offers it, so
        # the next hops keep to TLS too.
        options.append("REQUIRETLS")
    return options
