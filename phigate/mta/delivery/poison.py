"""Messages delivery cannot process, and what happens to them (issue 14 items 2-3).

Before a stored message is decorated and handed to dkimpy, its header block gets one
linear, bounded look (:func:`check_header_block`): dkimpy's header parse concatenates bytes
quadratically, so an 8 MB header of 2 M continuation lines held a delivery thread for
minutes. Submission refuses such messages at DATA now; a message stored before that, or
by another path, is still never signed: it is bounced with a DSN (``5.3.4`` too big,
``5.6.0`` malformed) and its recipients fail, instead of being retried until parked.

A message that cannot be processed at all (undecryptable, DKIM signing fails, our code
crashes on it three times) is parked ``corrupt`` for the admin; the sender is told with
a DSN ``5.3.0`` "could not be processed". Neither DSN quotes anything of the message (no
Subject, no body): both are built in the minimal form of DSNs about PHI mail.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from datetime import datetime

from phigate.errors import PhigateError
from phigate.mta.delivery.dsn import FailedRecipient, build_dsn
from phigate.mta.header_block import HeaderLimits

_FIELD_NAME = re.compile(rb"[\x21-\x39\x3b-\x7e]+:")
_HEADER_END = re.compile(rb"\r?\n\r?\n")


class Unprocessable(enum.StrEnum):
    """Why delivery could not process a message (the metric's ``reason`` label)."""

    TOO_BIG = "too_big"  # header block over a bound: bounced 5.3.4
    MALFORMED = "malformed"  # not a header block dkimpy can be given: bounced 5.6.0
    UNDECRYPTABLE = "undecryptable"  # parked corrupt
    DKIM = "dkim"  # signing failed: parked corrupt at the error limit
    TIMEOUT = "timeout"  # the prepare step ran over its time bound twice: parked
    REPEATED_ERRORS = "processing_error"  # our code failed on it repeatedly: parked

    @property
    def status(self) -> str:
        return {Unprocessable.TOO_BIG: "5.3.4", Unprocessable.MALFORMED: "5.6.0"}.get(
            self, "5.3.0")


class PoisonMessage(PhigateError):
    """The stored message must not reach the signer; says why in a word, never content."""

    def __init__(self, reason: Unprocessable) -> None:
        super().__init__(f"message not processable: {reason.value}")
        self.reason = reason


def check_header_block(message: bytes, limits: HeaderLimits | None = None
                       ) -> Unprocessable | None:
    """One linear pass over the header block: its size, line count, each field's folded
    length, and that every line is a field or a continuation. None: fit to sign."""
    limits = limits or HeaderLimits()
    # Search a bounded window only: a head without a blank line near the start is too big.
    end = _HEADER_END.search(message, 0, limits.max_block_bytes + 4)
    if end is None:
        return (Unprocessable.TOO_BIG if len(message) > limits.max_block_bytes
                else Unprocessable.MALFORMED)
    head = message[:end.start()]
    lines = head.split(b"\n")
    if len(lines) > limits.max_lines:
        return Unprocessable.TOO_BIG
    field_bytes = 0
    for number, line in enumerate(lines):
        if line[:1] in (b" ", b"\t"):
            if number == 0:
                return Unprocessable.MALFORMED  # a continuation of nothing
            field_bytes += len(line) + 1
        elif _FIELD_NAME.match(line) is None:
            return Unprocessable.MALFORMED  # a non-header line, a bad field name
        else:
            field_bytes = len(line) + 1
        if field_bytes > limits.max_field_bytes:
            return Unprocessable.TOO_BIG
    return None


_TEXT = {
    "5.3.4": "Your message could not be delivered: its header is larger than the mail\n"
             "system can process. Please send it again with a smaller header.",
    "5.6.0": "Your message could not be delivered: its header is malformed (a line that\n"
             "is not a header field, or a header without the blank line before the body).",
    "5.3.0": "Your message could not be processed by the mail system and was not sent.\n"
             "It is kept for the practice's mail administrator, who has been alerted.",
}


def unprocessable_dsn(*, sender: str, recipients: Sequence[str], reason: Unprocessable,
                      queue_id: str, reporting_mta: str, from_domain: str, arrival: datetime,
                      now: datetime) -> bytes | None:
    """The DSN for ``reason`` (None for a null sender), quoting nothing of the message."""
    status = reason.status
    explanation = (f"This is the mail system at {reporting_mta}.\n\n{_TEXT[status]}\n\n"
                   f"Queue id: {queue_id}\n")
    return build_dsn(
        original=b"\r\n", envelope_sender=sender,
        failed=[FailedRecipient(address, status, None,
                                f"X-Phigate; {reason.value}: could not be processed",
                                last_attempt=now) for address in recipients],
        reporting_mta=reporting_mta, arrival=arrival, queue_id=queue_id, phi=True,
        from_domain=from_domain, explanation=explanation,
        subject="Undelivered Mail Returned to Sender")
