"""What DATA checks in the submitted bytes before anything else looks at them.

One pure, bounded function (:func:`check_data`) for a worker thread: line endings, the
header block (:mod:`phigate.mta.submission.header_checks`), the account's message class,
and the client fields that are removed. Submission runs it off the event loop under a time
bound (:func:`check_data_off_loop`), so no message, however built, holds other clients.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from phigate.accounts.store import MESSAGE_CLASSES, Account
from phigate.mta.header_block import HeaderBlock, HeaderLimits
from phigate.mta.submission.header_checks import (
    Originators,
    check_message_header,
    strip_client_headers,
)
from phigate.mta.submission.refusals import Refusal, RefusalReason
from phigate.observability import timing
from phigate.queue.models import MessageClass

CLASS_HEADER = "X-Phigate-Class"
CAMPAIGN_HEADER = "X-Phigate-Campaign"

#: The checks are linear in the bounded header block (milliseconds); this bound only
#: guards against a machine so loaded, or a bug so bad, that they are not.
CHECK_SECONDS = 10.0

REPLY_CHECK_TIMEOUT = "451 4.3.0 Temporary local problem checking the message, try again later"


@dataclass(frozen=True)
class CheckedData:
    """A message that passed: its header fields and the bytes to queue."""

    header: HeaderBlock
    #: The message without the client fields phigate removes (Bcc, Received, ...).
    content: bytes
    message_class: MessageClass
    campaign_id: str | None


def has_bare_line_ending(content: bytes) -> bool:
    """True if a CR or LF appears other than as CRLF, or a NUL anywhere.

    aiosmtpd only ends DATA at CRLF.CRLF, but such bytes would still travel on to the next
    hop, where a lenient server could read ``LF.LF`` as the end of data: the SMTP smuggling
    attack. Refusing them here keeps smuggled messages from ever leaving.
    """
    return b"\0" in content or content.count(b"\r") != content.count(b"\r\n") or (
        content.count(b"\n") != content.count(b"\r\n")
    )


def originators_for(account: Account) -> Originators:
    extra = account.reply_to
    return Originators(
        may_send_as=account.may_send_as,
        may_reply_to=(lambda address: _in_list(address, extra)) if extra else None,
    )


def check_data(content: bytes, account: Account, limits: HeaderLimits | None = None
               ) -> CheckedData | Refusal:
    """The message's fields and the bytes to queue, or why it is refused (blocking)."""
    if has_bare_line_ending(content):
        return Refusal(RefusalReason.BARE_LINE_ENDING)
    checked = check_message_header(content, originators_for(account), limits)
    if isinstance(checked, Refusal):
        return checked
    header = checked.block
    message_class = (header.get(CLASS_HEADER) or "").strip()
    if message_class and message_class not in MESSAGE_CLASSES:
        return Refusal(RefusalReason.UNKNOWN_CLASS)
    if message_class and message_class not in account.classes:
        return Refusal(RefusalReason.CLASS_NOT_PERMITTED)
    campaign = (header.get(CAMPAIGN_HEADER) or "").strip() or None
    return CheckedData(header, strip_client_headers(content, header),
                       MessageClass(message_class) if message_class else account.default_class,
                       campaign)


async def check_data_off_loop(content: bytes, account: Account,
                              limits: HeaderLimits | None = None,
                              seconds: float = CHECK_SECONDS) -> CheckedData | Refusal | None:
    """:func:`check_data` in a worker thread; None if it took longer than ``seconds``.

    A thread cannot be stopped, but the work is bounded by ``limits``, so an abandoned check
    ends soon on its own; the session gets a temporary failure instead of waiting.
    """
    # The executor's future itself, not asyncio.to_thread's coroutine: wait_for would wrap
    # that in a task of its own, one more object and loop step per message.
    future = asyncio.get_running_loop().run_in_executor(
        None, timing.off_loop("checks", check_data, content, account, limits))
    try:
        return await asyncio.wait_for(future, seconds)
    except TimeoutError:
        return None
    finally:
        timing.resumed("checks")


def _in_list(address: str, allowed: tuple[str, ...]) -> bool:
    address = address.strip().lower()
    domain = address.rpartition("@")[2]
    return any(address == entry if "@" in entry else domain == entry for entry in allowed)
