"""REQUIRETLS (RFC 8689) at submission: offered over TLS, taken as a MAIL FROM parameter.

aiosmtpd neither advertises extensions it does not know nor accepts their parameters, so
this mixin adds the EHLO keyword once the session is encrypted (STARTTLS or the implicit-TLS
listener) and takes ``REQUIRETLS`` off ``MAIL FROM`` before aiosmtpd checks the rest; the
flag is kept in ``envelope.mail_options`` and stored with the message
(:func:`requires_tls`). Without TLS the parameter is unknown and refused (555), as the RFC
asks: REQUIRETLS cannot be requested over a connection that is not itself protected.
"""

from __future__ import annotations

from typing import Any

from aiosmtpd.smtp import SMTP, Envelope

KEYWORD = "REQUIRETLS"


class RequireTlsMixin(SMTP):
    def _encrypted(self) -> bool:
        transport = self.transport
        return transport is not None and transport.get_extra_info("ssl_object") is not None

    async def smtp_EHLO(self, hostname: str) -> None:
        if not self._encrypted():
            await super().smtp_EHLO(hostname)
            return
        push = self.push

        async def with_keyword(status: Any) -> None:
            if status == "250 HELP":  # aiosmtpd's last EHLO line: put ours before it
                await push(f"250-{KEYWORD}")
            await push(status)

        self.push = with_keyword  # type: ignore[method-assign]
        try:
            await super().smtp_EHLO(hostname)
        finally:
            del self.push  # back to the class's own push

    async def smtp_MAIL(self, arg: str) -> None:
        words = (arg or "").split()
        flagged = self._encrypted() and any(w.upper() == KEYWORD for w in words[1:])
        if flagged:
            arg = " ".join([words[0]] + [w for w in words[1:] if w.upper() != KEYWORD])
        await super().smtp_MAIL(arg)
        envelope = self.envelope
        if flagged and envelope is not None and envelope.mail_from is not None:
            envelope.mail_options.append(KEYWORD)


def requires_tls(envelope: Envelope) -> bool:
    return KEYWORD in envelope.mail_options
