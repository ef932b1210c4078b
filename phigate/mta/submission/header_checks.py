"""Strict checks of a submitted header before ``250``, and the client headers removed.

Pure and bounded: :func:`check_message_header` splits the header block once under
:class:`HeaderLimits` and checks the originator fields against what the account may use.
It never touches the event loop's state, so submission may run it in a worker thread.

- Exactly one From (any spelling a lenient reader could take for one: ``From :``, a folded
  `` From:``), with exactly one mailbox, which the account may send as; an mbox ``From ``
  line is refused.
- Sender, Resent-From and Resent-Sender are checked like From; Reply-To against the
  account's senders or the addresses the admin allows for replies.
- No display name or comment in those fields may contain an address-like string: a reader
  shows the display name, so ``reminders@practice.example <ceo@practice.example>`` would be
  signed for one address and read as another.
- Address fields hold at most ``max_addresses`` mailboxes.

Removed before queueing (:func:`strip_client_headers`): Bcc (RFC 6409 section 8.1), and the
trace and authentication fields only a receiving system may write, which a client's copy
would only forge or leak (its internal network): Received, Return-Path, DKIM-Signature,
Authentication-Results and ARC-*.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from phigate.mta.header_block import (
    HeaderBlock,
    HeaderLimits,
    split_header_block,
)
from phigate.mta.submission.addresses import Mailbox, looks_like_address, parse_mailboxes
from phigate.mta.submission.refusals import Refusal, RefusalReason

REMOVED_CLIENT_FIELDS = frozenset({
    "bcc", "resent-bcc", "received", "return-path", "dkim-signature",
    "authentication-results", "arc-seal", "arc-message-signature",
    "arc-authentication-results",
})
_RECIPIENT_FIELDS = ("to", "cc", "resent-to", "resent-cc")
_RESENT_ORIGINATORS = ("resent-from", "resent-sender")

AddressCheck = Callable[[str], bool]


@dataclass(frozen=True)
class Originators:
    """What the account may put in the originator fields."""

    may_send_as: AddressCheck
    #: Reply-To: allowed besides the account's own addresses; default: only those.
    may_reply_to: AddressCheck | None = None


@dataclass(frozen=True)
class CheckedHeader:
    block: HeaderBlock
    #: The From: mailbox's address.
    from_address: str


def check_message_header(content: bytes, originators: Originators,
                         limits: HeaderLimits | None = None) -> CheckedHeader | Refusal:
    """Split and check ``content``'s header block; the first problem found is returned."""
    limits = limits or HeaderLimits()
    block = split_header_block(content, limits)
    if isinstance(block, Refusal):
        return block
    checked = _check_from(block, originators, limits)
    if isinstance(checked, Refusal):
        return checked
    for check in (_check_sender, _check_reply_to, _check_resent, _check_recipient_fields):
        refusal = check(block, originators, limits)
        if refusal is not None:
            return refusal
    return CheckedHeader(block, checked)


def _originator_mailboxes(value: str, limits: HeaderLimits) -> list[Mailbox] | Refusal:
    mailboxes = parse_mailboxes(value, max_addresses=limits.max_addresses)
    if isinstance(mailboxes, Refusal):
        return mailboxes
    if any(looks_like_address(mailbox.display) for mailbox in mailboxes):
        return Refusal(RefusalReason.ADDRESS_IN_DISPLAY_NAME)
    return mailboxes


def _check_from(block: HeaderBlock, originators: Originators, limits: HeaderLimits
                ) -> str | Refusal:
    values = block.get_all("From")
    if len(values) > 1:
        return Refusal(RefusalReason.SEVERAL_FROM)
    if not values:
        return Refusal(RefusalReason.NO_FROM)
    mailboxes = _originator_mailboxes(values[0], limits)
    if isinstance(mailboxes, Refusal):
        return mailboxes
    if len(mailboxes) != 1:
        return Refusal(RefusalReason.NO_FROM)
    address = mailboxes[0].address
    if not originators.may_send_as(address):
        return Refusal(RefusalReason.FROM_NOT_ALLOWED)
    return address


def _check_sender(block: HeaderBlock, originators: Originators, limits: HeaderLimits
                  ) -> Refusal | None:
    values = block.get_all("Sender")
    if len(values) > 1:
        return Refusal(RefusalReason.SEVERAL_SENDER)
    if not values:
        return None
    mailboxes = _originator_mailboxes(values[0], limits)
    if isinstance(mailboxes, Refusal):
        return mailboxes
    if len(mailboxes) != 1:
        return Refusal(RefusalReason.BAD_ADDRESS)
    if not originators.may_send_as(mailboxes[0].address):
        return Refusal(RefusalReason.SENDER_NOT_ALLOWED)
    return None


def _check_reply_to(block: HeaderBlock, originators: Originators, limits: HeaderLimits
                    ) -> Refusal | None:
    values = block.get_all("Reply-To")
    if len(values) > 1:
        return Refusal(RefusalReason.SEVERAL_REPLY_TO)
    if not values:
        return None
    mailboxes = _originator_mailboxes(values[0], limits)
    if isinstance(mailboxes, Refusal):
        return mailboxes
    extra = originators.may_reply_to
    for mailbox in mailboxes:
        if not (originators.may_send_as(mailbox.address)
                or (extra is not None and extra(mailbox.address))):
            return Refusal(RefusalReason.REPLY_TO_NOT_ALLOWED)
    return None


def _check_resent(block: HeaderBlock, originators: Originators, limits: HeaderLimits
                  ) -> Refusal | None:
    for name in _RESENT_ORIGINATORS:
        for value in block.get_all(name):
            mailboxes = _originator_mailboxes(value, limits)
            if isinstance(mailboxes, Refusal):
                return mailboxes
            if not all(originators.may_send_as(m.address) for m in mailboxes):
                return Refusal(RefusalReason.RESENT_NOT_ALLOWED)
    return None


def _check_recipient_fields(block: HeaderBlock, originators: Originators,
                            limits: HeaderLimits) -> Refusal | None:
    """Only the count: the envelope, not these fields, says where the message goes, and
    clients write odd recipient lists (``Smith, John <j@…>``) that are not worth refusing."""
    for name in _RECIPIENT_FIELDS:
        for value in block.get_all(name):
            result = parse_mailboxes(value, max_addresses=limits.max_addresses, groups=True)
            if isinstance(result, Refusal) and result.reason is RefusalReason.TOO_MANY_ADDRESSES:
                return result
    return None


def strip_client_headers(content: bytes, block: HeaderBlock) -> bytes:
    """``content`` without :data:`REMOVED_CLIENT_FIELDS` (every other byte unchanged)."""
    if not any(f.key in REMOVED_CLIENT_FIELDS for f in block.fields):
        return content
    kept = b"".join(f.raw for f in block.fields if f.key not in REMOVED_CLIENT_FIELDS)
    return kept + content[block.block_end:]
